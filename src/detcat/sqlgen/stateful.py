"""Multi-event (stateful) rules compiled to SQL where window functions give the
Python matcher's answer exactly (``match.stateful``: its semantics are the
reference), else reported with the precise reason.

Both engines see one stream: the events of every route, ordered by the
matcher's own time (``rows.SECONDS``, nulls last), then label (the Python engine
reads a normalized folder in that order). A rule becomes *entries*: per event,
per stage (or referenced rule) that holds on it, the stage's group key (its
group-by / join fields, typed so that SQL equality is Python's: ``rows.
key_text``) and a sub-order within the event. Two shapes compile:

- **counts** (``Count``): Elastic threshold rules (with ``cardinality`` too),
  Sigma ``event_count``, ``value_count`` and ``temporal`` correlations, YARA-L
  rules whose condition asks each event variable for a number of events. Per
  group, each variable keeps its last N entries inside a sliding window (and
  the last time of each distinct value), and a group that has them all fires and
  starts over. With times non-decreasing along the stream this is: fire at
  entry *i* when the oldest entry it needs (rank *m_i*: the smallest over
  variables of the N-th latest entry; with distinct values also the D-th latest
  of their last ranks) is inside the window and after the group's previous
  detection; the last condition is a fold over the candidates (DuckDB
  ``list_reduce``, Spark ``aggregate``), over runs of consecutive candidates
  where one counter is all (a steady stream is one run: linear, where a fold
  over candidates would copy its list of detections at each step).
- **steps** (``Steps``): EQL sequences with ``by`` fields, an optional
  ``maxspan`` and ``with runs``. Per key, step *j* holds at most one open
  sequence, which the next step-*j+1* entry takes (moving it on, or dropping it
  past ``maxspan``). So a step-*j+1* entry moves a sequence on exactly when the
  latest entry before it among (step-*j* entries that moved one on, step-*j+1*
  entries) is a step-*j* one: one window per step, from the first; an
  ``until`` entry between them drops the sequence.

Everything else stays on the Python matcher (``--engine python``) with the
reason: samples and joins, an ``until`` that requires no field,
``temporal_ordered``, and the rules the matcher does not evaluate either.
A detection whose events include one without a time is *unknown*, as in the
matcher. The matcher keeps at most ``match.stateful.MAX_OPEN`` open groups per
rule (dropping the oldest); SQL keeps all: the answers differ only beyond that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from detcat.match import RulePlan, StagePlan, required_fields
from detcat.match.aggregates import Correlation, Threshold, correlation_engine
from detcat.match.sequences import Join, Sequence
from detcat.match.stateful import engine_for
from detcat.match.yaral import MultiEvent, condition_needs

NOT_EVALUATED = "the Python matcher does not evaluate it either: "
# A join key the parser keeps as a field name (``match.sequences._FIELD_NAME``).
_FIELD_NAME = re.compile(r"^[^\s()*/%+,\"'`]+$")


@dataclass(frozen=True)
class Part:
    """The entries one stage (or referenced rule) gives: on each event it holds
    on, its key (canonical fields; ``drop_empty``: an empty string is no value, as
    ``match.stateful.field_key`` reads keys) for counter ``var``; ``sub`` orders
    the entries of one event (the matcher's order)."""

    stage: StagePlan
    fields: tuple[str, ...]
    drop_empty: bool
    var: int
    sub: int
    distinct: str | None = None  # the field whose distinct values ``Count`` counts


@dataclass(frozen=True)
class Count:
    """Fires when every counter ``var`` has ``needs[var]`` entries of a group in
    the window of ``span`` seconds (and, with ``distinct``, the entries since the
    last detection show that many distinct values of their ``Part.distinct``
    field in the window); the group then starts over."""

    parts: tuple[Part, ...]
    needs: tuple[int, ...]
    span: float
    distinct: int = 0


UNTIL = -1  # the ``var`` of a sequence's ``until`` part


@dataclass(frozen=True)
class Steps:
    """Step 0, then 1, … on one key, within ``span`` seconds (None: any time); an
    ``until`` part (``var`` UNTIL) drops its key's open sequences."""

    parts: tuple[Part, ...]
    span: float | None


Shape = Count | Steps


def compile_stateful(plan: RulePlan, single: dict[str, RulePlan]) -> Shape | str:
    """The rule's SQL shape, or why it stays on the Python matcher. ``single``:
    the single-event rules by id (what Sigma correlations reference)."""
    from detcat.match import StageRole

    if any(s.role is StageRole.CORRELATION for s in plan.stages):
        engine = correlation_engine(plan, single)
    else:
        engine = engine_for(plan)
    if isinstance(engine, str):
        return NOT_EVALUATED + engine
    if isinstance(engine, Threshold):
        return _threshold(plan, engine)
    if isinstance(engine, Correlation):
        return _correlation(engine, single)
    if isinstance(engine, MultiEvent):
        return _yaral(plan, engine)
    if isinstance(engine, Sequence):
        return _sequence(engine)
    if isinstance(engine, Join):
        return "sample / join (one event per subquery in any order): not compiled"
    return f"engine {type(engine).__name__} not compiled"


def _fields(stage: StagePlan, raw: list[str]) -> tuple[str, ...]:
    """Raw field names as the stage's vendor writes them, canonical."""
    resolve = stage.rule.ref_resolver(stage)
    return tuple(resolve(n)[0] for n in raw)


def _threshold(plan: RulePlan, engine: Threshold) -> Shape | str:
    agg = next(s for s in plan.stages if s.name == "threshold")
    keys = _fields(engine.main, [str(f) for f in agg.params.get("by") or []])
    cardinality = agg.params.get("cardinality") or []
    distinct = _fields(engine.main, [str(cardinality[0]["field"])])[0] if cardinality else None
    part = Part(engine.main, keys, True, 0, 0, distinct)
    return Count((part,), (engine.need,), engine.window, engine.distinct)


def _correlation(engine: Correlation, single: dict[str, RulePlan]) -> Shape | str:
    if engine.kind == "temporal_ordered":
        return "temporal_ordered correlation (order checked against open state): not compiled"
    params = engine.rule.stages[0].params
    group_by = [str(g) for g in params.get("group-by") or []]
    condition = params.get("condition") or {}
    field = str(condition.get("field", "")) if engine.kind == "value_count" else ""
    parts = []
    for sub, ref in enumerate(engine.refs):
        stage = single[ref].stages[0]
        var = 0 if engine.kind != "temporal" else sub
        distinct = _fields(stage, [field])[0] if field else None
        parts.append(Part(stage, _fields(stage, group_by), True, var, sub, distinct))
    if engine.kind == "event_count":
        return Count(tuple(parts), (engine.need,), engine.span)
    if engine.kind == "value_count":  # only the distinct values count
        return Count(tuple(parts), (1,), engine.span, engine.need)
    if len(set(engine.refs)) != len(engine.refs):
        return "temporal correlation naming one rule twice: not compiled"
    return Count(tuple(parts), (1,) * len(parts), engine.span)


def _yaral(plan: RulePlan, engine: MultiEvent) -> Shape | str:
    need = condition_needs(plan.condition)
    assert not isinstance(need, str)  # the engine exists: the condition was read
    parts, needs = [], []
    for var, (name, stage) in enumerate(engine.stages.items()):
        joins = {str(j["with"]): str(j["field"]) for j in stage.params.get("joins") or []}
        keys = _fields(stage, [joins[p] for p in sorted(joins)])
        parts.append(Part(stage, keys, True, var, var))
        needs.append(need[name])
    return Count(tuple(parts), tuple(needs), engine.window)


def _sequence(engine: Sequence) -> Shape | str:
    last = len(engine.steps) - 1
    # on one event ``until`` goes first, then the later steps (matcher order)
    steps = [(step, var, last - var) for var, step in enumerate(engine.steps)]
    if engine.until is not None:
        if not required_fields(engine.until.expr):  # the matcher tests it on every event
            return "sequence with an until that requires no field: not compiled"
        steps.append((engine.until, UNTIL, -1))
    parts = []
    for step, var, sub in steps:
        if not all(_FIELD_NAME.match(k) for k in step.join_keys):
            return "a join key is an expression, not a field: not compiled"
        parts.append(Part(step, _fields(step, list(step.join_keys)), False, var, sub))
    return Steps(tuple(parts), engine.span)
