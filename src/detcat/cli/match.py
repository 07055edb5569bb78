"""``detcat match``: which catalog rules fire on JSON events.

Events are read one at a time and each result is written as soon as it is known,
so memory stays flat however long the input. A document that cannot be read is a
*bad event*: one line on stderr (the first ``SHOWN_BAD`` of them), an
``{"event", "error"}`` item with ``--json``, and exit code 1 at the end; the
events after it are still matched.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import click
import orjson

from detcat.cli.options import (
    EXIT_FAILED,
    VENDOR_CHOICE,
    db_option,
    dump_json,
    json_option,
    open_catalog,
)
from detcat.cli.render import plural

if TYPE_CHECKING:
    from detcat.match.reading import BadEvent

SHOWN_BAD = 20  # bad events reported one by one on stderr; the rest are counted


@click.command()
@click.argument("event_files", nargs=-1, required=True)
@db_option
@click.option("--vendor", type=VENDOR_CHOICE, help="Only these rules.")
@json_option
@click.option(
    "--jsonl",
    "as_jsonl",
    is_flag=True,
    help="Print one JSON result per line (JSON lines) as each event is matched.",
)
@click.option(
    "--complete-capture",
    is_flag=True,
    help="The events are all there is for their hosts (a sandbox run, a capture from "
    "boot): EQL lineage (descendant of …) may then answer no, not only yes or undetermined.",
)
def match(
    event_files: tuple[str, ...],
    db: Path,
    vendor: str | None,
    as_json: bool,
    as_jsonl: bool,
    complete_capture: bool,
) -> None:
    """Which catalog rules fire on the events in EVENT_FILES ("-" reads stdin).

    Files hold JSON events: Windows events in the evtx-to-JSON shape
    ({"Event": {"System": …, "EventData": …}}), flat or ECS-nested objects, a JSON
    array of them, or JSON lines. Rules of every vendor are evaluated; a rule with
    several stages (sequence, aggregation, correlation) lists the stages that
    matched and check a value as "partial" instead of claiming a match, and a
    rule whose known parts hold but that depends on something detcat cannot
    evaluate is "undetermined".
    With --json the output is a JSON array with one item per event, written as
    the events are read; with --jsonl the same items one a line (JSON lines). An
    event that cannot be read is {"event", "error"}. Memory stays flat however
    many events are read.
    """
    from detcat.match import Matcher
    from detcat.match.reading import STDIN, EventFileError, check_event_file, read_events

    if as_json and as_jsonl:
        raise click.UsageError("--json and --jsonl: choose one")
    for path in event_files:
        check_event_file(path)
    matcher = Matcher.from_catalog(open_catalog(db), vendor).stream(complete_capture)
    # The rules live as long as the process: later collections need not walk them.
    gc.freeze()
    output: _Output = _Text()
    if as_json or as_jsonl:
        output = _JsonArray() if as_json else _JsonLines(interactive=STDIN in event_files)
    bad = _BadEvents(output)
    for path in event_files:
        try:
            for event in read_events(path, bad.add):
                output.write(matcher.match(event).to_json())
        except EventFileError as e:  # unreadable or empty: the other files still count
            bad.file(str(e))
    output.close()
    bad.summary()
    sys.exit(EXIT_FAILED if bad.count else 0)


class _Output(Protocol):
    def write(self, result: dict[str, Any]) -> None: ...

    def bad(self, label: str, message: str) -> None: ...

    def close(self) -> None: ...


class _Text:
    def write(self, result: dict[str, Any]) -> None:
        click.echo(render_result(result))

    def bad(self, label: str, message: str) -> None:
        pass  # stderr says it

    def close(self) -> None:
        pass


def json_bytes(item: dict[str, Any]) -> bytes:
    """One result as compact UTF-8 JSON: orjson, ten times faster than ``json`` on
    results of a few kilobytes (a tenth of the matcher's time per event)."""
    try:
        return orjson.dumps(item, default=str)
    except orjson.JSONEncodeError:  # what only json takes (an int beyond 64 bits)
        return dump_json(item, indent=None).encode()


class _JsonArray:
    """A JSON array written item by item (one item a line)."""

    def __init__(self) -> None:
        self.first = True
        self.stream = sys.stdout.buffer
        self.stream.write(b"[\n")

    def write(self, item: dict[str, Any]) -> None:
        self.stream.write((b"" if self.first else b",\n") + json_bytes(item))
        self.first = False

    def bad(self, label: str, message: str) -> None:
        self.write({"event": label, "error": message})

    def close(self) -> None:
        self.stream.write(b"\n]\n" if not self.first else b"]\n")
        self.stream.flush()


class _JsonLines:
    """One JSON object a line, buffered; flushed per event when reading stdin (a
    pipe's reader sees each result as soon as it is known)."""

    def __init__(self, interactive: bool) -> None:
        self.stream = sys.stdout.buffer
        self.interactive = interactive

    def write(self, item: dict[str, Any]) -> None:
        self.stream.write(json_bytes(item) + b"\n")
        if self.interactive:
            self.stream.flush()

    def bad(self, label: str, message: str) -> None:
        self.write({"event": label, "error": message})

    def close(self) -> None:
        self.stream.flush()


class _BadEvents:
    def __init__(self, output: _Output) -> None:
        self.output = output
        self.count = 0

    def add(self, bad: BadEvent) -> None:
        self.count += 1
        self.output.bad(bad.label, bad.message)
        if self.count <= SHOWN_BAD:
            click.echo(f"error: bad event {bad}", err=True)

    def file(self, message: str) -> None:
        self.count += 1
        click.echo(f"error: {message}", err=True)

    def summary(self) -> None:
        if self.count > SHOWN_BAD:
            click.echo(f"error: {plural(self.count, 'bad event')} in all "
                       f"(the first {SHOWN_BAD} are shown above)", err=True)  # fmt: skip


def render_result(r: dict[str, Any]) -> str:
    lines = [f"{r['event']}: {plural(len(r['matches']), 'matching rule')}"]
    for m in r["matches"]:
        # A multi-event rule this event completes: with the events that make it up.
        events = f"  (events {', '.join(m['events'])})" if m.get("events") else ""
        lines.append(f"  {m['vendor']:<9} {m['id']}  {m['title']}{events}")
    for p in r.get("partial", []):
        stages = ", ".join(p["stages"])
        lines.append(
            f"  partial   {p['vendor']} {p['id']}  {p['title']}  "
            f"(stages {stages} of {len(p['of'])})"
        )
    if r.get("undetermined"):
        n = plural(len(r["undetermined"]), "rule")
        lines.append(f"  undetermined: {n} (use --json for details)")
    return "\n".join(lines)


COMMANDS = [match]
