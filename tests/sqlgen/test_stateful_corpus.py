"""The real corpus's multi-event rules that compile to SQL give the Python
matcher's detections on event streams made for them.

SigmaHQ's regression events fire none of them (single Windows events, years
apart), so each compiled rule gets a stream of its own: a *witness* document
per stage (the stage's required values, checked by the matcher to hold),
repeated with group keys from a small pool (or missing), times advancing by
steps around the rule's window, a few events without a time. All streams go
into one file, so every rule also sees the others' events; the Python engine
and DuckDB read the same normalized rows."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from detcat.backtest import backtest
from detcat.backtest.parquet import normalize_files
from detcat.match import RulePlan, StagePlan, load_rules
from detcat.match.events import canonical_event
from detcat.model import And, Not, Op, Or, Predicate
from detcat.sqlgen import CompiledRule, Status, compile_rules
from detcat.sqlgen.rules import wanted_columns
from detcat.sqlgen.stateful import Count, Steps
from detcat.store import connect

EVENTS_PER_RULE = 14  # plus three per event a detection needs
START = 1_704_067_200  # 2024-01-01


def witness(expr: Any) -> dict[str, Any] | None:
    """Field values under which ``expr`` may hold (the matcher checks it)."""
    if isinstance(expr, And):
        out: dict[str, Any] = {}
        for c in expr.children:
            got = witness(c)
            if got is None or any(out.get(k, v) != v for k, v in got.items()):
                return None
            out.update(got)
        return out
    if isinstance(expr, Or):
        return next((w for c in expr.children if (w := witness(c)) is not None), None)
    if isinstance(expr, Not):
        return {}  # a missing field makes most negations hold
    if not isinstance(expr, Predicate) or expr.field is None:
        return None
    v = expr.value
    text = {
        Op.EQ: v,
        Op.CONTAINS: f"x{v}x",
        Op.STARTS_WITH: f"{v}x",
        Op.ENDS_WITH: f"x{v}",
        Op.EXISTS: "x",
        Op.GT: v + 1 if isinstance(v, int | float) else None,
        Op.GTE: v,
        Op.LT: v - 1 if isinstance(v, int | float) else None,
        Op.LTE: v,
    }.get(expr.op)
    return None if text is None else {expr.field: text}


def document(fields: dict[str, Any], t: float | None) -> dict[str, Any]:
    doc: dict[str, Any] = {} if t is None else {"@timestamp": t}
    for name, value in fields.items():
        doc[name] = value  # flat ECS: dotted names as keys
    return doc


def holds(stage: StagePlan, doc: dict[str, Any]) -> bool:
    ev = canonical_event("w", doc)
    return stage.applies(ev) and stage.test()(ev) is True


def stream(c: CompiledRule, start: float) -> list[dict[str, Any]] | None:
    """Events for one compiled rule, or None when a stage has no witness."""
    assert c.shape is not None
    rng = random.Random(c.key)  # each rule's stream its own: others do not move it
    witnesses = []
    for part in c.shape.parts:
        w = witness(part.stage.expr)
        if w is None or not holds(part.stage, document(w, start)):
            return None
        witnesses.append((part, w))
    span = c.shape.span or 60.0
    need = (
        sum(c.shape.needs) + c.shape.distinct if isinstance(c.shape, Count) else len(c.shape.parts)
    )
    small = [0.0, 0.5, span / (2 * need)]  # bursts that fit the window
    large = [span, span + 0.5, 2 * span]  # and gaps at and past its edge
    docs, t = [], start
    events = min(EVENTS_PER_RULE + 3 * need, 300)
    for n in range(events):
        # sequences: mostly their steps in order; counts: any part
        in_order = isinstance(c.shape, Steps) and rng.random() < 0.8
        part, w = witnesses[n % len(witnesses)] if in_order else rng.choice(witnesses)
        fields = dict(w)
        for f in part.fields:
            if f not in w:  # a key the filter does not fix: a pool value or missing
                key = rng.choice(["alice", "bob", None])
                if key is not None:
                    fields[f] = key
        t += rng.choice(small if rng.random() < 0.8 else large)
        no_time = n >= events - 2 and rng.random() < 0.5
        docs.append(document(fields, None if no_time else t))
    return docs


@pytest.fixture(scope="module")
def streams(corpus_db: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    plans = load_rules(connect(corpus_db))
    compiled = [c for c in compile_rules(plans) if c.status is Status.STATEFUL]
    docs: list[dict[str, Any]] = []
    used: list[RulePlan] = []
    for i, c in enumerate(compiled):
        got = stream(c, START + i * 86_400)
        if got is not None:
            docs += got
            used.append(c.plan)
    tmp = tmp_path_factory.mktemp("corpus-streams")
    path = tmp / "events.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    columns, nonnull = wanted_columns(compile_rules(used))
    normalize_files([path], tmp / "rows", columns, nonnull, print)
    return used, len(compiled), tmp / "rows"


def test_corpus_multi_event_rules_same_detections(streams: tuple) -> None:
    used, compiled, rows = streams
    assert len(used) >= compiled // 2  # most compiled rules got a stream
    got = {e: backtest([str(rows)], used, {}, e) for e in ("python", "duckdb")}
    assert not got["duckdb"].fallback
    answers = {
        e: {k: (r.hits, r.unknown, r.samples) for k, r in b.rules.items()} for e, b in got.items()
    }
    assert answers["duckdb"] == answers["python"]
    fired = [k for k, (h, _, _) in answers["python"].items() if h]
    assert len(fired) >= len(used) // 3  # the comparison is not empty
    assert {k.split(":")[0] for k in fired} >= {"elastic", "chronicle"}
    shapes = {type(c.shape) for c in compile_rules(used) if c.shape is not None}
    assert Count in shapes and len(shapes) == 2  # counts and sequences
