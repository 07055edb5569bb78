"""``detcat stats`` and ``detcat problems``: what the catalog holds and what failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from detcat.cli import render
from detcat.cli.options import db_option, json_option, open_catalog, out, print_json


@click.command()
@db_option
@click.option("--unmapped", is_flag=True, help="List fields without a canonical name.")
@json_option
def stats(db: Path, unmapped: bool, as_json: bool) -> None:
    """Coverage per vendor: rules, fully parsed, Opaque reasons, problems."""
    from detcat import guide

    conn = open_catalog(db)
    data: Any = guide.unmapped_fields(conn) if unmapped else guide.stats(conn)
    if as_json:
        print_json(data)
    elif unmapped:
        render.unmapped(out(), data)
    else:
        render.stats(out(), data)


@click.command()
@db_option
@json_option
def problems(db: Path, as_json: bool) -> None:
    """Files and rules that failed to load or parse, with reasons."""
    from detcat import guide

    data = guide.problems(open_catalog(db))
    if as_json:
        print_json(data)
    else:
        render.problems(out(), data)


COMMANDS = [stats, problems]
