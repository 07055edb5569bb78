"""``detcat parse``: what a query looks at (its stages and normalized predicates).

Exit codes as for every detcat command: 0 success; 1 a query that does not parse;
2 usage error; 3 no such batch file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from detcat.cli.options import EXIT_FAILED, LANGUAGE_CHOICE, dump_json
from detcat.cli.render import plural, tree_lines
from detcat.errors import UsageProblem
from detcat.model import QueryError


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
    rule (YAML), for yaral a whole rule. Each predicate line shows the canonical
    field, [the field as written], the operator and the value. NOT negates what is
    under it; EXCL is a NOT at the top of a stage: what it holds is an exclusion.
    """
    if jsonl:
        sys.exit(_parse_batch(language, query))
    from detcat.parse import parse_json

    data = parse_json(language, _read_query(query))
    click.echo(dump_json(data) if as_json else render_stages(data["stages"]))


def _read_query(query: str | None) -> str:
    if query is None or query == "-":
        if sys.stdin.isatty():
            raise UsageProblem("give QUERY or pipe it on stdin")
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
        except (ValueError, RecursionError) as e:  # includes json.JSONDecodeError
            row["error"] = (
                f"input line {number}: {e if isinstance(e, ValueError) else 'nested too deeply'}"
            )
        failed = failed or row["error"] is not None
        click.echo(dump_json(row, indent=None))
    return EXIT_FAILED if failed else 0


def _open_batch(path: str) -> Any:
    from detcat.match.reading import EventFileNotFound

    p = Path(path)
    if not p.is_file():
        raise EventFileNotFound(f"no such file {path}")
    return p.open(encoding="utf-8", errors="replace")


_BATCH_KEYS = ("field", "field_raw", "op", "value", "negated", "exclusion")


def _batch_stage(stage: dict[str, Any]) -> dict[str, Any]:
    """The issue's line shape: predicates with exactly these keys, and Opaque parts."""
    return {
        "name": stage["name"],
        "role": stage["role"],
        "predicates": [{k: p[k] for k in _BATCH_KEYS} for p in stage["predicates"]],
        "opaque": stage["opaque"],
    }


def render_stages(stages: list[dict[str, Any]]) -> str:
    """A readable tree: one block per stage, AND/OR/NOT/EXCL nesting, one predicate a
    line, then how many predicates the stage has and how many are exclusions."""
    lines: list[str] = []
    for s in stages:
        head = f"stage {s['name']} ({s['role']})" + (" must NOT occur" if s.get("negated") else "")
        if s["events"]:
            head += "  events: " + ", ".join(s["events"])
        lines.append(head)
        lines += tree_lines(s["tree"], 1)
        preds = s["predicates"]
        excl = sum(p["exclusion"] for p in preds)
        lines.append(f"  = {plural(len(preds), 'predicate')}, {plural(excl, 'exclusion')}"
                     f", {len(s['opaque'])} opaque")  # fmt: skip
    return "\n".join(lines)


COMMANDS = [parse]
