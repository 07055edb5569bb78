"""``detcat events normalize``: JSON event files as Parquet for ``detcat backtest``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from detcat.cli.options import EXIT_FAILED, db_option, json_option, open_catalog, print_json
from detcat.cli.render import plural

if TYPE_CHECKING:
    from detcat.match.reading import BadEvent

SHOWN_BAD = 20


@click.group()
def events() -> None:
    """Event files: prepare them for backtests."""


@events.command()
@click.argument("event_files", nargs=-1, required=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="The folder to write (Parquet partitioned by event kind).",
)
@db_option
@click.option(
    "--batch-rows",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Rows per Parquet file (memory stays flat at about this many).",
)
@json_option
def normalize(
    event_files: tuple[str, ...], out_dir: Path, db: Path, batch_rows: int, as_json: bool
) -> None:
    """Write the events of EVENT_FILES ("-" reads stdin) as Parquet in --out.

    Events are read as `detcat match` reads them (evtx-JSON, ECS-nested or flat
    JSON, arrays, JSON lines) and made canonical; each becomes one row with a
    column per canonical field (and variant: case-folded, numeric, address) the
    catalog's rules test, and the raw JSON, in a folder per event kind
    (detcat_kind=sysmon_1/…). Give the folder to `detcat backtest`. A document
    that cannot be read is reported on stderr and skipped (exit code 1).
    """
    from detcat.backtest.parquet import normalize_files
    from detcat.match import load_rules
    from detcat.match.reading import check_event_file
    from detcat.sqlgen import as_backtested, compile_rules
    from detcat.sqlgen.rules import wanted_columns

    for path in event_files:
        check_event_file(path)
    columns, nonnull = wanted_columns(compile_rules(as_backtested(load_rules(open_catalog(db)))))
    shown = [0]

    def bad(b: BadEvent) -> None:
        shown[0] += 1
        if shown[0] <= SHOWN_BAD:
            click.echo(f"error: bad event {b}", err=True)

    summary = normalize_files(event_files, out_dir, columns, nonnull, bad, batch_rows)
    if as_json:
        print_json(
            {
                "out": str(out_dir),
                "events": summary.events,
                "bad": summary.bad,
                "kinds": summary.kinds,
            }
        )
    else:
        click.echo(
            f"{plural(summary.events, 'event')} written to {out_dir} "
            f"({plural(len(summary.kinds), 'event kind')})"
        )
    if summary.bad:
        click.echo(f"error: {plural(summary.bad, 'bad event')} skipped", err=True)
        sys.exit(EXIT_FAILED)


COMMANDS = [events]
