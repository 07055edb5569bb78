"""``detcat parse`` and ``detcat match`` (registered by cli.py).

Exit codes as for every detcat command: 0 success; 1 the work failed (a query
that does not parse, an unreadable event file); 2 usage error; 3 not found (no
catalog, no such event file).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from detcat.cli.options import (
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    LANGUAGE_CHOICE,
    VENDOR_CHOICE,
    db_option,
    json_option,
)
from detcat.cli.options import dump_json as _dump
from detcat.model import And, Expr, Not, Opaque, Or, Predicate, QueryError, Stage

# -- detcat parse ----------------------------------------------------------------------


@click.command()
@click.argument("language", type=LANGUAGE_CHOICE)
@click.argument("query", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the stages as JSON.")
@click.option(
    "--jsonl",
    is_flag=True,
    help='Batch mode: read {"id", "query"} lines from stdin (or QUERY as a file), '
    'write one {"id", "stages", "error"} line each; exit 1 if any failed.',
)
def parse(language: str, query: str | None, as_json: bool, jsonl: bool) -> None:
    """What a query looks at: its stages and normalized predicates.

    QUERY is the query text, or "-" / nothing to read stdin. For sigma give a whole
    rule (YAML), for yaral a whole rule. Each predicate shows the canonical field,
    the field as written, the operator and the value; NOT marks a negated
    predicate, EXCL one inside a top-level NOT (an exclusion).
    """
    if jsonl:
        sys.exit(_parse_batch(language, query))
    text = _read_query(query)
    from detcat.parse import parse_json, parse_query

    try:
        if as_json:
            click.echo(_dump(parse_json(language, text)))
        else:
            click.echo(render_stages(parse_query(language, text)))
    except QueryError as e:
        at = f" at line {e.line}, column {e.column}" if e.line else ""
        click.echo(f"error: {e.message}{at}", err=True)
        sys.exit(EXIT_FAILED)


def _read_query(query: str | None) -> str:
    if query is None or query == "-":
        if sys.stdin.isatty():
            raise click.UsageError("give QUERY or pipe it on stdin")
        return sys.stdin.read()
    return query


def _parse_batch(language: str, source: str | None) -> int:
    from detcat.parse import parse_query, stages_json

    stream = sys.stdin if source in (None, "-") else _open_batch(source)  # type: ignore[arg-type]
    failed = False
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        row: dict[str, Any] = {"id": None, "stages": [], "error": None}
        try:
            item = json.loads(line)
            if not isinstance(item, dict) or not isinstance(item.get("query"), str):
                raise ValueError('expected an object with a "query" string')
            row["id"] = item.get("id")
            row["stages"] = [
                _batch_stage(s) for s in stages_json(parse_query(language, item["query"]))
            ]
        except QueryError as e:
            at = f" at line {e.line}, column {e.column}" if e.line else ""
            row["error"] = f"{e.message}{at}"
        except ValueError as e:  # includes json.JSONDecodeError
            row["error"] = f"input line {number}: {e}"
        failed = failed or row["error"] is not None
        click.echo(_dump(row, indent=None))
    return EXIT_FAILED if failed else 0


def _open_batch(path: str) -> Any:
    p = Path(path)
    if not p.is_file():
        click.echo(f"error: no such file {path}", err=True)
        sys.exit(EXIT_NOT_FOUND)
    return p.open(encoding="utf-8")


_BATCH_KEYS = ("field", "field_raw", "op", "value", "negated", "exclusion")


def _batch_stage(stage: dict[str, Any]) -> dict[str, Any]:
    """The issue's line shape: predicates with exactly these keys, and Opaque parts."""
    return {
        "name": stage["name"],
        "role": stage["role"],
        "predicates": [{k: p[k] for k in _BATCH_KEYS} for p in stage["predicates"]],
        "opaque": stage["opaque"],
    }


def render_stages(stages: list[Stage]) -> str:
    """A readable tree: one block per stage, AND/OR/NOT nesting, one predicate a line."""
    lines: list[str] = []
    for s in stages:
        head = f"stage {s.name} ({s.role})" + (" must NOT occur" if s.negated else "")
        if s.events:
            head += "  events: " + ", ".join(s.events)
        lines.append(head)
        if s.expr is None:
            lines.append("  (no filter)")
        else:
            _render(s.expr, 1, lines)
    return "\n".join(lines)


def _render(expr: Expr, depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    match expr:
        case And(children) | Or(children):
            lines.append(pad + ("AND" if isinstance(expr, And) else "OR"))
            for c in children:
                _render(c, depth + 1, lines)
        case Not(child):
            lines.append(pad + "NOT")
            _render(child, depth + 1, lines)
        case Opaque(text):
            lines.append(f"{pad}? opaque ({expr.why()}): {' '.join(text.split())[:120]}")
        case Predicate():
            lines.append(pad + _predicate_line(expr))


def _predicate_line(p: Predicate) -> str:
    raw = f" [{p.field_raw}]" if p.field_raw and p.field_raw != p.field else ""
    value = "" if p.value is None else f" {json.dumps(p.value, ensure_ascii=False)}"
    notes = [n for n in (p.kind, "case-sensitive" if p.case_sensitive else "") if n]
    tail = f"  ({', '.join(notes)})" if notes else ""
    return f"{p.field}{raw} {p.op}{value}{tail}"


# -- detcat match -----------------------------------------------------------------------


@click.command()
@click.argument("event_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@db_option
@click.option("--vendor", type=VENDOR_CHOICE, help="Only these rules.")
@json_option
def match(event_files: tuple[Path, ...], db: Path, vendor: str | None, as_json: bool) -> None:
    """Which catalog rules fire on the events in EVENT_FILES.

    Files hold JSON events: Windows events in the evtx-to-JSON shape
    ({"Event": {"System": …, "EventData": …}}), flat or ECS-nested objects, a JSON
    array of them, or JSON lines. Rules of every vendor are evaluated; a rule with
    several stages (sequence, aggregation, correlation) lists the stages that
    matched as "partial" instead of claiming a match, and a rule whose known parts
    hold but that depends on something detcat cannot evaluate is "undetermined".
    """
    from detcat.match import Matcher
    from detcat.match.events import EventFileError, read_events
    from detcat.store import MissingCatalog, connect

    missing = [str(f) for f in event_files if not f.is_file()]
    if missing:
        click.echo(f"error: no such event file: {', '.join(missing)}", err=True)
        sys.exit(EXIT_NOT_FOUND)
    try:
        matcher = Matcher.from_catalog(connect(db), vendor)
    except MissingCatalog as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_NOT_FOUND)
    results, failed = [], False
    for path in event_files:
        try:
            results += [matcher.match(ev) for ev in read_events(path)]
        except EventFileError as e:
            click.echo(f"error: {e}", err=True)
            failed = True
    if as_json:
        click.echo(_dump([r.to_json() for r in results]))
    else:
        for r in results:
            click.echo(render_result(r.to_json()))
    sys.exit(EXIT_FAILED if failed else 0)


def render_result(r: dict[str, Any]) -> str:
    lines = [f"{r['event']}: {len(r['matches'])} matching rule(s)"]
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
        lines.append(f"  undetermined: {len(r['undetermined'])} rule(s) (use --json for details)")
    return "\n".join(lines)
