"""``detcat export-csv DIR`` (registered by cli/__init__.py).

Exit codes: 0 success; 2 usage error; 3 not found (no catalog).
"""

from __future__ import annotations

from pathlib import Path

import click

from detcat.cli.options import VENDOR_CHOICE, db_option, dump_json, json_option, open_catalog


@click.command("export-csv")
@click.argument("out", type=click.Path(path_type=Path, file_okay=False))
@click.option("--vendor", "vendors", type=VENDOR_CHOICE, multiple=True, help="Only these vendors.")
@click.option("--collection", help="Only the rules of this collection.")
@db_option
@json_option
def export_csv(
    out: Path, vendors: tuple[str, ...], collection: str | None, db: Path, as_json: bool
) -> None:
    """Write rules.csv, techniques.csv, indicators.csv, exclusions.csv and fields.csv
    into OUT (spreadsheet-safe: text that would start a formula gets a leading ')."""
    from detcat.csvexport import export_csv as write

    conn = open_catalog(db)  # a missing or foreign catalog: one line, exit 3
    written = write(conn, out, vendors or None, collection)
    if as_json:
        click.echo(dump_json({"dir": str(out), "rows": written}))
    else:
        for name, n in written.items():
            click.echo(f"{out / name}: {n} rows")


COMMANDS = [export_csv]
