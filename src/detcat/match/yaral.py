"""YARA-L multi-event rules over the stream: ``match $key over 10m`` windows.

A YARA-L rule names event variables (``$fail``, ``$success``), ties them together
with placeholders (``$fail.target.user.userid = $user``), groups by the
``match`` variables over a window, and asks in its ``condition`` for each
variable to occur (``$fail and $success``) or to occur more than a number of
times (``#fail > 3``). detcat evaluates the rules whose parts are all of that
form:

- every variable binds the same placeholders, each through one field: the
  placeholders' values are the group's key;
- the condition is an ``and`` of ``$e`` and ``#e > N`` / ``#e >= N`` covering
  every variable;
- the window is ``match … over W`` (SecOps' hop windows; a sliding window of W
  sees every group of events a hop window can).

A detection is reported on the event that completes it, with the events that
make it up; the group then starts over. Not evaluated (the rule stays partial,
with the reason): comparisons between two events' fields (``$a.ip != $b.ip``,
timestamp order), absent variables (``!$e``), ``or``/``not`` conditions, outcome
conditions (``$risk_score > 50``), sliding windows (``over 1h after $e``).
"""

from __future__ import annotations

import json
from collections import deque
from typing import TYPE_CHECKING, Any

from detcat.match.events import Event
from detcat.match.stateful import Detection, Engine, Groups, KeyFn, Results, event_time, field_key

if TYPE_CHECKING:
    from detcat.match import RulePlan, StagePlan

_AT_LEAST = {">": 1, ">=": 0}


def yaral_engine(rule: RulePlan) -> Engine | str:
    need = condition_needs(rule.condition)
    if isinstance(need, str):
        return need
    stages = {s.name: s for s in rule.stages}
    if set(need) != set(stages):
        return "the condition does not require every event variable"
    match = next((s.params["match"] for s in rule.stages if "match" in s.params), None)
    if not match or not match.get("window_seconds"):
        return "no match window"
    if match.get("side") or match.get("anchor"):
        return "sliding windows (over … before/after $e) are not evaluated"
    placeholders: list[str] | None = None
    keys: dict[str, KeyFn] = {}
    for name, stage in stages.items():
        bound = _placeholders(stage)
        if isinstance(bound, str):
            return bound
        if placeholders is None:
            placeholders = sorted(bound)
        if sorted(bound) != placeholders:
            return "event variables bind different placeholders: the join is not evaluated"
        keys[name] = field_key(stage, [bound[p] for p in placeholders])
    if not set(match.get("keys") or ()) <= set(placeholders or ()):
        return "a match variable is not a placeholder every event binds"
    return MultiEvent(rule, stages, keys, need, float(match["window_seconds"]))


def condition_needs(condition: dict[str, Any] | None) -> dict[str, int] | str:
    """Event variable -> how many of its events the condition asks for."""
    expr = (condition or {}).get("expr")
    if expr is None:
        return "the condition is not recorded"
    need: dict[str, int] = {}
    for term in expr.get("and", [expr]):
        if "event" in term:
            need[term["event"]] = max(need.get(term["event"], 0), 1)
        elif "count" in term and term.get("op") in _AT_LEAST and isinstance(term["value"], int):
            var = "$" + term["count"][1:]
            need[var] = max(need.get(var, 0), term["value"] + _AT_LEAST[term["op"]])
        else:
            return f"condition {json.dumps(term)} is not evaluated"
    return need


def _placeholders(stage: StagePlan) -> dict[str, str] | str:
    """Placeholder -> the field of this event bound to it."""
    out: dict[str, str] = {}
    for join in stage.params.get("joins") or []:
        other = str(join.get("with", ""))
        if join.get("op") != "=" or "." in other or not other.startswith("$"):
            return f"a comparison between events ({join.get('field')} {join.get('op')} {other})"
        if other in out:
            return f"placeholder {other} bound twice in one event"
        out[other] = str(join["field"])
    return out


class MultiEvent:
    watches = False

    def __init__(
        self,
        rule: RulePlan,
        stages: dict[str, StagePlan],
        keys: dict[str, KeyFn],
        need: dict[str, int],
        window: float,
    ):
        self.rule, self.stages, self.keys = rule, stages, keys
        self.need, self.window = need, window
        self.groups = Groups()  # key -> {var: deque of (time, label, certain)}

    def is_open(self) -> bool:
        return bool(self.groups.items)

    def feed(self, ev: Event, results: Results) -> list[Detection]:
        out = []
        t = event_time(ev)
        for var, r in results.items():
            k = self.keys[var](ev) if var in self.keys else None
            if k is None:
                continue
            group = self.groups.items.get(k) or {v: deque() for v in self.stages}
            seen = group[var]
            seen.append((t, ev.label, r is True))
            while len(seen) > self.need[var]:
                seen.popleft()
            for events in group.values():
                while (
                    events
                    and events[0][0] is not None
                    and t is not None
                    and (t - events[0][0] > self.window)
                ):
                    events.popleft()
            if all(len(group[v]) >= n for v, n in self.need.items()):
                self.groups.items.pop(k, None)
                out.append(_detection(group))
            else:
                self.groups.put(k, group)
        return out


def _detection(group: dict[str, deque[tuple[float | None, str, bool]]]) -> Detection:
    items = sorted((e for events in group.values() for e in events), key=lambda e: e[0] or 0)
    certain = all(c and t is not None for t, _, c in items)
    reason = "" if certain else "an event without a time, or an unknown event filter"
    return Detection([label for _, label, _ in items], certain, reason)
