"""``detcat technique``, ``rule`` and ``search``: guides, rules, and finding them."""

from __future__ import annotations

from pathlib import Path

import click

from detcat.cli import render
from detcat.cli.options import (
    VENDOR_CHOICE,
    db_option,
    json_option,
    limit_options,
    open_catalog,
    out,
    print_json,
    rows,
)


@click.command()
@click.argument("technique_id")
@db_option
@limit_options()
@json_option
def technique(technique_id: str, db: Path, limit: int, all_rows: bool, as_json: bool) -> None:
    """The authoring guide of one ATT&CK technique (e.g. T1219)."""
    from detcat.guide import technique_guide

    data = technique_guide(open_catalog(db), technique_id, limit=rows(limit, all_rows))
    if as_json:
        print_json(data)
    else:
        render.technique(out(), data)


@click.command()
@click.argument("rule_id")
@click.option("--vendor", type=VENDOR_CHOICE)
@db_option
@json_option
def rule(rule_id: str, vendor: str | None, db: Path, as_json: bool) -> None:
    """One rule: metadata, stages with predicate trees, exclusions, indicators."""
    from detcat.guide import UnknownRule, rule_detail

    rules = rule_detail(open_catalog(db), vendor, rule_id.strip())
    if not rules:
        raise UnknownRule(f"no {vendor + ' ' if vendor else ''}rule with id {rule_id}")
    if as_json:
        print_json(rules[0] if len(rules) == 1 else rules)
    else:
        console = out()
        for r in rules:
            render.rule(console, r)


@click.command()
@click.argument("query")
@db_option
@limit_options()
@json_option
def search(query: str, db: Path, limit: int, all_rows: bool, as_json: bool) -> None:
    """Full-text search over titles and descriptions; `field:value` searches predicates."""
    from detcat.search import search as run_search

    data = run_search(open_catalog(db), query, limit=rows(limit, all_rows))
    if as_json:
        print_json(data)
    else:
        render.search(out(), data)


COMMANDS = [technique, rule, search]
