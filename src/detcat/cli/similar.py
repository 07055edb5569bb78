"""``detcat similar`` and ``detcat clusters``: near-duplicate rules across vendors
(registered by cli/__init__).

Exit codes: 0 success; 2 usage error; 3 no catalog or no such rule.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from detcat.cli.options import EXIT_NOT_FOUND, VENDOR_CHOICE, db_option, dump_json, json_option
from detcat.cli.render import show_value


def _catalog(db: Path) -> Any:
    from detcat import similar
    from detcat.store import MissingCatalog, connect

    try:
        conn = connect(db)  # first: never derive tables into a file that is not a catalog
        similar.ensure(db)
        return conn
    except MissingCatalog as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_NOT_FOUND)


@click.command()
@click.argument("rule_id")
@click.option("--vendor", type=VENDOR_CHOICE, help="The vendor of RULE_ID (when ids collide).")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(min=1),
              help="Rules to list.")  # fmt: skip
@db_option
@json_option
def similar(rule_id: str, vendor: str | None, limit: int, db: Path, as_json: bool) -> None:
    """Catalog rules (any vendor) most similar to RULE_ID: weighted Jaccard over
    indicators, exclusions and events, with the features they share."""
    from detcat.similar import similar_rules

    found = similar_rules(_catalog(db), vendor, rule_id, limit=limit)
    if found is None:
        click.echo(f"error: no rule with id {rule_id}", err=True)
        sys.exit(EXIT_NOT_FOUND)
    if as_json:
        click.echo(dump_json(found))
        return
    table = Table("score", "vendor", "rule", "shared")
    for n in found:
        shared = "; ".join(_feature(f) for f in n["shared"][:4])
        more = f" (+{len(n['shared']) - 4})" if len(n["shared"]) > 4 else ""
        # Text, not markup: values are shown exactly as stored (see render.py).
        table.add_row(f"{n['score']:.2f}", n["vendor"],
                      Text(f"{n['title']} ({n['id']})"), Text(shared + more))  # fmt: skip
    Console().print(table if found else "no similar rule")


def _feature(f: dict[str, str]) -> str:
    if f["kind"] == "event":
        return f"event {f['event']}"
    prefix = "NOT " if f["kind"] == "exclusion" else ""
    return f"{prefix}{f['field']} {f['op']} {show_value(f['value'])}"


@click.command()
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=0),
              help="Clusters to list (0: all).")  # fmt: skip
@click.option("--cross-vendor", is_flag=True, help="Only clusters with rules of several vendors.")
@db_option
@json_option
def clusters(limit: int, cross_vendor: bool, db: Path, as_json: bool) -> None:
    """Clusters of near-duplicate rules across the catalog, biggest first."""
    from detcat import similar as sim

    conn = _catalog(db)
    found = [c for c in sim.clusters(conn) if not cross_vendor or len(c["vendors"]) > 1]
    found = found[:limit] if limit else found
    if as_json:
        click.echo(dump_json({"summary": sim.cluster_summary(conn), "clusters": found}))
        return
    console = Console()
    s = sim.cluster_summary(conn)
    console.print(f"{s['clusters']} clusters, {s['cross_vendor']} cross-vendor, "
                  f"biggest {s['biggest']} rules")  # fmt: skip
    for c in found:
        console.print(f"\n[bold]cluster {c['cluster']}[/bold] ({c['size']} rules: "
                      f"{', '.join(c['vendors'])})")  # fmt: skip
        for r in c["rules"]:
            console.print(Text(f"  {r['vendor']:<9} {r['title']} ({r['id']})"))


COMMANDS = [similar, clusters]
