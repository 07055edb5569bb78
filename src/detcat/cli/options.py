"""What every ``detcat`` command module shares: exit codes and common options.

Exit codes: 0 success; 1 the work failed; 2 usage error (click); 3 not found
(no catalog, unknown technique, rule or file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from detcat.store import DEFAULT_DB

EXIT_FAILED = 1
EXIT_NOT_FOUND = 3

VENDOR_CHOICE = click.Choice(["sigma", "elastic", "splunk", "chronicle"])

db_option = click.option(
    "--db",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_DB,
    show_default=True,
    envvar="DETCAT_DB",
    help="The catalog file (SQLite).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def dump_json(data: Any, indent: int | None = 2) -> str:
    return json.dumps(data, indent=indent, ensure_ascii=False, default=str)
