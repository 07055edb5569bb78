"""Counting rules over the stream: Elastic threshold rules and Sigma correlations.

Both count events (or other rules' detections) per group — the values of the
rule's group-by fields — inside a time window that slides with the stream:

- an Elastic *threshold* rule fires when ``value`` events of its query share the
  ``threshold.field`` values (and, with ``cardinality``, show that many distinct
  values of a field) within the rule's look-back (``from = "now-9m"``: 9 minutes).
  Kibana counts per scheduled run; a sliding window of the look-back finds every
  burst a run could see (and, for bursts longer than the run interval, some it
  would split: the same answer as a run aligned with the burst).
- a Sigma correlation (``event_count``, ``value_count``, ``temporal``,
  ``temporal_ordered``) counts the detections of the rules it references within
  ``timespan``. A condition asking for *at least* a number is decided on the
  event that reaches it; "fewer than" (``lt``, ``lte``) and ``eq`` depend on
  the window's end and are not evaluated (the rule stays partial).

A group fires once per window: its counted events are forgotten after it fires.
Memory per group is the number the condition asks for.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from detcat.match.events import Event
from detcat.match.stateful import (
    Detection,
    Engine,
    Groups,
    KeyFn,
    Results,
    event_time,
    field_key,
    span_seconds,
)

if TYPE_CHECKING:
    from detcat.match import RulePlan, StagePlan


@dataclass
class _Window:
    """The last events of a group: (time, label, certain), at most ``need`` of them,
    and for distinct counts the last time each value was seen."""

    need: int
    events: deque[tuple[float | None, str, bool]] = field(default_factory=deque)
    values: dict[Any, float | None] = field(default_factory=dict)

    def add(self, t: float | None, label: str, certain: bool, span: float) -> None:
        self.events.append((t, label, certain))
        while len(self.events) > self.need:
            self.events.popleft()
        while self.events and _expired(self.events[0][0], t, span):
            self.events.popleft()

    def count_values(self, values: tuple[Any, ...], t: float | None, span: float) -> int:
        for v in values:
            self.values.pop(v, None)
            self.values[v] = t
        for v, seen in list(self.values.items()):
            if _expired(seen, t, span):
                del self.values[v]
        return len(self.values)

    def detection(self) -> Detection:
        times = [t for t, _, _ in self.events]
        certain = all(c for _, _, c in self.events) and None not in times
        reason = "" if certain else "an event without a time, or an unknown stage result"
        return Detection([label for _, label, _ in self.events], certain, reason)


def _expired(first: float | None, now: float | None, span: float) -> bool:
    return first is not None and now is not None and now - first > span


# -- Elastic threshold ---------------------------------------------------------------------


def threshold_engine(rule: RulePlan) -> Engine | str:
    main = next((s for s in rule.stages if s.filters_events), None)
    agg = next((s for s in rule.stages if s.name == "threshold"), None)
    if main is None or agg is None:
        return "a threshold rule without a query"
    value = agg.params.get("threshold")
    window = span_seconds(str(agg.params.get("window", "now-6m")).removeprefix("now-"))
    if not isinstance(value, int) or window is None:
        return "threshold value or look-back not understood"
    cardinality = agg.params.get("cardinality") or []
    if len(cardinality) > 1:
        return "more than one cardinality condition"
    return Threshold(rule, main, field_key(main, list(agg.params.get("by") or [])), value,
                     window, cardinality[0] if cardinality else None)  # fmt: skip


class Threshold:
    watches = False

    def __init__(
        self,
        rule: RulePlan,
        main: StagePlan,
        key: KeyFn,
        value: int,
        window: float,
        cardinality: dict[str, Any] | None,
    ):
        self.rule, self.main, self.key, self.window = rule, main, key, window
        self.need = max(value, 1)
        self.distinct = int(cardinality["value"]) if cardinality else 0
        self.distinct_key = field_key(main, [str(cardinality["field"])]) if cardinality else None
        self.groups = Groups()

    def is_open(self) -> bool:
        return bool(self.groups.items)

    def feed(self, ev: Event, results: Results) -> list[Detection]:
        r = results.get(self.main.name, False)
        k = self.key(ev) if r is not False else None
        if k is None:
            return []
        t = event_time(ev)
        win = self.groups.items.get(k) or _Window(self.need)
        win.add(t, ev.label, r is True, self.window)
        enough = len(win.events) >= self.need
        if self.distinct_key is not None:
            values = self.distinct_key(ev)
            seen = win.count_values(values[0] if values else (), t, self.window)
            enough = enough and seen >= self.distinct
        if not enough:
            self.groups.put(k, win)
            return []
        self.groups.items.pop(k, None)  # fired: the next alert needs a new count
        return [win.detection()]


# -- Sigma correlations -------------------------------------------------------------------

_AT_LEAST = {"gte": 0, "gt": 1}


def correlation_engine(rule: RulePlan, by_id: dict[str, RulePlan]) -> Correlation | str:
    stages = [s for s in rule.stages]
    params = stages[0].params if stages else {}
    kind = str(params.get("type", ""))
    refs = [str(s.params.get("rule", "")) for s in stages]
    missing = [r for r in refs if r not in by_id]
    if missing:
        return f"referenced rule {missing[0]} is not a single-event rule of the catalog (by id)"
    span = span_seconds(params.get("timespan", ""))
    if span is None:
        return f"timespan {params.get('timespan')!r} not understood"
    cond = params.get("condition") or {}
    need = 0
    if kind in ("event_count", "value_count"):
        ops = [op for op in cond if op in _AT_LEAST]
        if len(ops) != 1 or any(op not in (*_AT_LEAST, "field") for op in cond):
            return f"condition {cond} is not an 'at least' count"
        need = int(cond[ops[0]]) + _AT_LEAST[ops[0]]
    elif kind not in ("temporal", "temporal_ordered"):
        return f"correlation type {kind!r} not evaluated"
    group_by = [str(g) for g in params.get("group-by") or []]
    keys = {r: field_key(by_id[r].stages[0], group_by) for r in refs}
    value = str(cond.get("field", "")) if kind == "value_count" else ""
    values = {r: field_key(by_id[r].stages[0], [value]) for r in refs} if value else {}
    return Correlation(rule, kind, refs, keys, values, span, need)


class Correlation:
    """Fed with the detections of the referenced rules on each event."""

    watches = False

    def __init__(
        self,
        rule: RulePlan,
        kind: str,
        refs: list[str],
        keys: dict[str, KeyFn],
        values: dict[str, KeyFn],
        span: float,
        need: int,
    ):
        self.rule, self.kind, self.refs, self.keys = rule, kind, refs, keys
        self.values, self.span, self.need = values, span, need
        self.groups = Groups()

    def is_open(self) -> bool:
        return bool(self.groups.items)

    def feed(self, ev: Event, fired: Results) -> list[Detection]:
        out: list[Detection] = []
        t = event_time(ev)
        for ref in self.refs:
            r = fired.get(ref, False)
            k = self.keys[ref](ev) if r is not False else None
            if k is None:
                continue
            got = self._count(k, ref, ev, t, r is True)
            if got is not None:
                out.append(got)
        return out

    def _count(
        self, k: Any, ref: str, ev: Event, t: float | None, certain: bool
    ) -> Detection | None:
        if self.kind in ("event_count", "value_count"):
            win = self.groups.items.get(k) or _Window(self.need)
            win.add(t, ev.label, certain, self.span)
            enough = len(win.events) >= self.need
            if self.kind == "value_count":
                values = self.values[ref](ev)
                seen = win.count_values(values[0] if values else (), t, self.span)
                enough = seen >= self.need
            if not enough:
                self.groups.put(k, win)
                return None
            self.groups.items.pop(k, None)
            return win.detection()
        return self._temporal(k, ref, ev, t, certain)

    def _temporal(
        self, k: Any, ref: str, ev: Event, t: float | None, certain: bool
    ) -> Detection | None:
        """Every referenced rule fired within the timespan (in order when ordered)."""
        seen: dict[str, tuple[float | None, str, bool]] = self.groups.items.get(k) or {}
        if self.kind == "temporal_ordered":
            i = self.refs.index(ref)
            if any(r not in seen for r in self.refs[:i]):
                return None
        seen[ref] = (t, ev.label, certain)
        for r, (first, _, _) in list(seen.items()):
            if _expired(first, t, self.span):
                del seen[r]
        if any(r not in seen for r in self.refs):
            self.groups.put(k, seen)
            return None
        self.groups.items.pop(k, None)
        win = _Window(len(self.refs), deque(seen[r] for r in self.refs))
        return win.detection()
