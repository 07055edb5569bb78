"""``detcat build``: the catalog from a sources directory."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from detcat.cli import render
from detcat.cli.options import EXIT_FAILED, db_option, err, json_option, out
from detcat.cli.options import print_json as _print_json
from detcat.errors import UsageProblem


@click.command()
@click.option(
    "--sources",
    multiple=True,
    envvar="DETCAT_SOURCES",
    help="Sources directory (sigma/ elastic/ splunk/ chronicle/ attack/); repeat it, as "
    "DIR or NAME=DIR, to add private rule folders as named collections (the first bare "
    "DIR is 'public'). Default: $DETCAT_SOURCES, else download pinned snapshots into a cache.",
)
@db_option
@click.option("--include-deprecated", is_flag=True, help="Also read deprecated/unsupported rules.")
@click.option(
    "--strict",
    is_flag=True,
    help="Exit 1 when any problem was recorded or a vendor has fewer rules than before.",
)
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: CPUs).")  # fmt: skip
@click.option(
    "--max-file-size",
    type=click.IntRange(min=1),
    default=4096,
    show_default=True,
    help="Skip (as a problem) source files larger than this many KiB.",
)
@click.option("--full", is_flag=True,
              help="Read every file (no incremental update).")  # fmt: skip
@click.option("--force", is_flag=True,
              help="Replace --db even when it is not a detcat catalog.")  # fmt: skip
@json_option
def build(
    sources: tuple[str, ...],
    db: Path,
    include_deprecated: bool,
    strict: bool,
    workers: int | None,
    max_file_size: int,
    full: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Build the catalog from a sources directory into --db (atomically)."""
    from detcat import catalog, fetch
    from detcat.store import replaceable

    if not force and not replaceable(db):
        raise UsageProblem(
            f"{db} exists and is not a detcat catalog: not replacing it "
            "(choose another --db, or pass --force)"
        )
    if not sources:
        sources = (str(fetch.ensure_sources(console=err())),)
    try:
        collections = catalog.collections(sources)
        with render.build_progress(err()) as progress:
            report = catalog.build(
                collections, db, include_deprecated=include_deprecated, workers=workers,
                progress=progress, max_file_bytes=max_file_size * 1024, incremental=not full,
            )  # fmt: skip
    except catalog.BuildError as e:
        raise catalog.BuildError(f"build failed: {e} (the previous catalog is unchanged)") from e
    _derive(db)
    if as_json:
        _print_json(render.build_report_json(report))
    else:
        render.build_summary(out(), report)
    if strict and (report.problem_count or report.dropped):
        sys.exit(EXIT_FAILED)


def _derive(db: Path) -> None:
    """Tables computed from a fresh catalog (near-duplicate clusters, which a
    build writes itself: this only fills in a catalog that lacks them; the corpus
    reach of every indicator), so that ``similar``, ``lint`` and the site find
    them ready."""
    from detcat import reach, similar

    with err().status("near-duplicate rules"):
        similar.ensure(db)
    reach.ensure(db)


COMMANDS = [build]
