"""The ``detcat`` command line.

Exit codes: 0 success; 1 the work failed (build error, problems under
``--strict``); 2 usage error; 3 not found (no catalog, unknown technique/rule).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from detcat.cli import render
from detcat.cli.options import (
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    VENDOR_CHOICE,
    db_option,
    dump_json,
    json_option,
)

console = Console()
err = Console(stderr=True)


def _print_json(data: Any) -> None:
    click.echo(dump_json(data))


def _connect(db: Path) -> Any:
    from detcat.store import MissingCatalog, connect

    try:
        return connect(db)
    except MissingCatalog as e:
        err.print(f"[red]{escape(str(e))}[/red]")
        sys.exit(EXIT_NOT_FOUND)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="detcat")
def main() -> None:
    """detcat: one catalog of the public detection rules, with per-technique
    authoring guides (fields, indicators, exclusions) across Sigma, Elastic,
    Splunk and Google SecOps."""


@main.command()
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
@click.option("--workers", type=int, default=None, help="Worker processes (default: CPUs).")
@click.option(
    "--max-file-size",
    type=click.IntRange(min=1),
    default=4096,
    show_default=True,
    help="Skip (as a problem) source files larger than this many KiB.",
)
@json_option
def build(
    sources: tuple[str, ...],
    db: Path,
    include_deprecated: bool,
    strict: bool,
    workers: int | None,
    max_file_size: int,
    as_json: bool,
) -> None:
    """Build the catalog from a sources directory into --db (atomically)."""
    from detcat import catalog, fetch

    if not sources:
        try:
            sources = (str(fetch.ensure_sources(console=err)),)
        except fetch.FetchError as e:
            err.print(f"[red]{escape(str(e))}[/red]")
            sys.exit(EXIT_FAILED)
    try:
        collections = catalog.collections(sources)
        with render.build_progress(err) as progress:
            report = catalog.build(
                collections, db, include_deprecated=include_deprecated, workers=workers,
                progress=progress, max_file_bytes=max_file_size * 1024,
            )  # fmt: skip
    except catalog.BuildError as e:
        err.print(f"[red]build failed: {escape(str(e))}[/red] (the previous catalog is unchanged)")
        sys.exit(EXIT_FAILED)
    _derive(db)
    if as_json:
        _print_json(render.build_report_json(report))
    else:
        render.build_summary(console, report)
    if strict and (report.problem_count or report.dropped):
        sys.exit(EXIT_FAILED)


def _derive(db: Path) -> None:
    """Tables computed from a fresh catalog (near-duplicate clusters), so that
    ``similar``, ``lint`` and the site find them ready."""
    from detcat import similar

    with err.status("near-duplicate rules"):
        similar.ensure(db)


@main.command()
@click.argument("technique_id")
@db_option
@click.option("--limit", default=50, show_default=True, help="Rows per section.")
@json_option
def technique(technique_id: str, db: Path, limit: int, as_json: bool) -> None:
    """The authoring guide of one ATT&CK technique (e.g. T1219)."""
    from detcat.guide import UnknownTechnique, technique_guide

    try:
        data = technique_guide(_connect(db), technique_id, limit=limit)
    except UnknownTechnique as e:
        err.print(f"[red]{escape(str(e))}[/red]")
        sys.exit(EXIT_NOT_FOUND)
    if as_json:
        _print_json(data)
    else:
        render.technique(console, data)


@main.command()
@click.argument("rule_id")
@click.option("--vendor", type=VENDOR_CHOICE)
@db_option
@json_option
def rule(rule_id: str, vendor: str | None, db: Path, as_json: bool) -> None:
    """One rule: metadata, stages with predicate trees, indicators, exclusions."""
    from detcat.guide import rule_detail

    rules = rule_detail(_connect(db), vendor, rule_id)
    if not rules:
        err.print(f"[red]no rule with id {escape(rule_id)}[/red]")
        sys.exit(EXIT_NOT_FOUND)
    if as_json:
        _print_json(rules[0] if len(rules) == 1 else rules)
    else:
        for r in rules:
            render.rule(console, r)


@main.command()
@db_option
@click.option("--unmapped", is_flag=True, help="List fields without a canonical name.")
@json_option
def stats(db: Path, unmapped: bool, as_json: bool) -> None:
    """Coverage per vendor: rules, fully parsed, Opaque reasons, problems."""
    from detcat import guide

    conn = _connect(db)
    data: Any = guide.unmapped_fields(conn) if unmapped else guide.stats(conn)
    if as_json:
        _print_json(data)
    elif unmapped:
        render.unmapped(console, data)
    else:
        render.stats(console, data)


@main.command()
@db_option
@json_option
def problems(db: Path, as_json: bool) -> None:
    """Files and rules that failed to load or parse, with reasons."""
    from detcat import guide

    data = guide.problems(_connect(db))
    if as_json:
        _print_json(data)
    else:
        render.problems(console, data)


@main.command()
@click.argument("query")
@db_option
@click.option("--limit", default=50, show_default=True)
@json_option
def search(query: str, db: Path, limit: int, as_json: bool) -> None:
    """Full-text search over titles and descriptions; `field:value` searches predicates."""
    from detcat.search import search as run_search

    data = run_search(_connect(db), query, limit=limit)
    if as_json:
        _print_json(data)
    else:
        render.search(console, data)


def _register_optional_commands() -> None:
    """Commands that live with their layer (fidelity tools, the web site, MCP)."""
    for module, names in (
        ("detcat.cli.fidelity", ("parse", "match")),
        ("detcat.cli.lint", ("lint",)),
        ("detcat.cli.similar", ("similar", "clusters")),
        ("detcat.cli.coverage", ("coverage", "layer")),
        ("detcat.cli.diff", ("diff",)),
        ("detcat.cli.export_csv", ("export_csv",)),
        ("detcat.web.cli", ("serve", "export_site")),
        ("detcat.cli.mcp", ("mcp",)),
    ):
        if importlib.util.find_spec(module) is None:
            continue
        mod = importlib.import_module(module)
        for name in names:
            if cmd := getattr(mod, name, None):
                main.add_command(cmd)


_register_optional_commands()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
