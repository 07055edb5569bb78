"""``detcat coverage`` and ``detcat layer`` (registered by cli/__init__.py).

Exit codes as for every detcat command: 0 success; 1 the work failed (an
unreadable events file); 2 usage error (an unknown event id); 3 not found (no
catalog, no such file).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from detcat.cli.options import (
    EXIT_FAILED,
    VENDOR_CHOICE,
    db_option,
    dump_json,
    json_option,
    open_catalog,
)

console = Console()

events_option = click.option(
    "--events",
    "events",
    multiple=True,
    metavar="EVENT",
    help="A catalog event id you collect (sysmon:1, security:4688, udm:PROCESS_LAUNCH); repeat it.",
)
vendor_option = click.option(
    "--vendor", "vendors", type=VENDOR_CHOICE, multiple=True, help="Only these vendors' rules."
)
collection_option = click.option(
    "--collection", help="Only the rules of this collection (public, or a private sources name)."
)


def _connect(db: Path) -> Any:
    return open_catalog(db)  # a missing or foreign catalog: one line, exit 3 (cli/__init__)


def _user_events(events: tuple[str, ...], events_file: Path | None) -> tuple[list[str], Any]:
    """Event ids from the flags and the file (with what the file's sample said)."""
    from detcat.coverage import read_events_file
    from detcat.match.reading import EventFileError

    sample = None
    ids = list(events)
    if events_file is not None:
        try:
            sample = read_events_file(events_file)
        except EventFileError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(EXIT_FAILED)
        ids += sample.events
    return ids, sample


@click.command()
@events_option
@click.option(
    "--events-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="One event id per line, or a JSON / JSON-lines sample of your own events "
    "(their kinds are recognized as `detcat match` recognizes them).",
)
@vendor_option
@collection_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1),
              help="Rows of the text tables.")  # fmt: skip
@db_option
@json_option
def coverage(
    events: tuple[str, ...],
    events_file: Path | None,
    vendors: tuple[str, ...],
    collection: str | None,
    limit: int,
    db: Path,
    as_json: bool,
) -> None:
    """Which techniques your log sources can detect, and what one more event would
    unlock.

    A rule is runnable when each of its events stages reads one of your events (a
    stage's events are alternatives: Sigma process_creation is Sysmon 1 or
    Security 4688); a multi-stage rule (sequence, correlation) needs every stage
    covered. Rules detcat cannot tie to events are never runnable. With
    --collection, `adopt` lists techniques only the other collections cover.
    """
    from detcat import coverage as cov

    ids, sample = _user_events(events, events_file)
    try:
        _, data = cov.report(_connect(db), ids, vendors or None, collection)
    except cov.UnknownEvent as e:
        raise click.UsageError(str(e)) from None
    if sample is not None:
        data["sample"] = sample.to_json()
    if as_json:
        click.echo(dump_json(data))
    else:
        _render(data, limit)


def _render(data: dict[str, Any], limit: int) -> None:
    s = data["summary"]
    console.print(
        f"[bold]{s['runnable_techniques']}[/bold] of {s['techniques']} techniques have a "
        f"runnable rule on {len(data['events'])} event kinds "
        f"({s['runnable_rules']} of {s['rules']} rules; {s['rules_without_events']} rules "
        "read events detcat cannot name and never count)."
    )
    if "sample" in data:
        sm = data["sample"]
        console.print(
            f"Sample: {sm['documents']} documents, {sm['unrecognized']} not recognized; "
            + ", ".join(f"{k} x{n}" for k, n in sm["recognized"].items())
        )
    table = Table("event", "title", "techniques gained", "rules gained", title="Unlock next")
    for u in data["unlock"][:limit]:
        table.add_row(u["event"], escape(u["title"]), str(u["techniques_gained"]),
                      str(u["rules_gained"]))  # fmt: skip
    console.print(table)
    ready = [t for t in data["techniques"] if t["runnable"]]
    ready.sort(key=lambda t: (-t["runnable"], t["id"]))
    table = Table("technique", "name", "runnable", "rules", title="Best covered techniques")
    for t in ready[:limit]:
        table.add_row(t["id"], escape(t["name"]), str(t["runnable"]), str(t["rules"]))
    console.print(table)
    if "adopt" in data:
        table = Table("technique", "name", "rules elsewhere", title="Candidates to adopt")
        for t in data["adopt"][:limit]:
            table.add_row(t["id"], escape(t["name"]), str(t["rules"]))
        console.print(table)


@click.command()
@vendor_option
@events_option
@collection_option
@click.option(
    "--score",
    type=click.Choice(["rules", "runnable", "vendors"]),
    help="What a technique's score counts (default: runnable with --events, else rules).",
)
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), help="Write here, not stdout."
)
@db_option
def layer(
    vendors: tuple[str, ...],
    events: tuple[str, ...],
    collection: str | None,
    score: str | None,
    out: Path | None,
    db: Path,
) -> None:
    """An ATT&CK Navigator layer (format 4.5): one entry per technique id, scored
    by the rules tagged with exactly that id (sub-techniques are their own
    entries); with --events, by the rules runnable on those events."""
    from detcat import coverage as cov
    from detcat.navigator import layer as make_layer

    try:
        doc = make_layer(
            _connect(db), vendors=vendors or None, collection=collection, events=events,
            score=score,
        )  # fmt: skip
    except cov.UnknownEvent as e:
        raise click.UsageError(str(e)) from None
    text = dump_json(doc)
    if out is None:
        click.echo(text)
        return
    out.write_text(text + "\n", encoding="utf-8")
    click.echo(f"{out}: {len(doc['techniques'])} techniques", err=True)


COMMANDS = [coverage, layer]
