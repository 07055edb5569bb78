"""EQL ``sequence``, ``sample`` and legacy ``join`` over the stream of events.

Sequences follow Elasticsearch (and the legacy ``eql`` package, which agrees):

- events are taken in the order given; a sequence's steps share the values of
  their join keys (the shared ``by`` keys, then each step's own), computed on
  each step's event (``by unique_pid`` on one step, ``by unique_ppid`` on the
  next); an event without a key value takes no part;
- per key, each step holds one open sequence: an event matching step *i* moves
  the open sequence of step *i-1* forward (the later steps first, so one event
  never makes two steps of one sequence), and a new first-step event replaces the
  open one at step 1;
- ``with maxspan`` bounds the time from the first to the last event; ``until``
  drops the key's open sequences; ``with runs=N`` repeats a step N times.

``sample`` (Elasticsearch) and ``join`` (legacy) want one event per subquery with
the same keys, in any order: the first event of each subquery per key, emitted
when every subquery has one. Not evaluated (the rule stays partial, with the
reason): missing-event steps ``![…]``, ``fork``, and pipes after a sequence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from detcat.match.eql import NotEvaluated, compile_value
from detcat.match.eql_functions import Undetermined
from detcat.match.events import Event
from detcat.match.stateful import (
    Detection,
    Engine,
    Groups,
    Key,
    KeyFn,
    Results,
    event_time,
    holds,
    span_seconds,
)

if TYPE_CHECKING:
    from detcat.match import RulePlan, StagePlan


def eql_engine(rule: RulePlan) -> Engine | str:
    """The engine of an EQL sequence, sample or join, or why there is none."""
    steps = [s for s in rule.stages if s.name != "until"]
    until = next((s for s in rule.stages if s.name == "until"), None)
    if any(s.negated for s in steps):
        return "missing-event steps ![…] are not evaluated"
    if any("fork" in s.params for s in steps):
        return "fork is not evaluated"
    if any(s.params.get("pipes") for s in rule.stages):
        return "pipes after a sequence are not evaluated"
    try:
        expanded = [s for s in steps for _ in range(int(s.params.get("runs", 1) or 1))]
        keys = [eql_key(s) for s in expanded]
        until_key = eql_key(until) if until else None
    except NotEvaluated as e:
        return f"a join key is not evaluated: {e}"
    maxspan = steps[0].params.get("maxspan")
    span = span_seconds(maxspan) if maxspan else None
    if maxspan and span is None:
        return f"maxspan {maxspan!r} not understood"
    if steps[0].name.startswith("sequence["):
        return Sequence(rule, expanded, keys, until, until_key, span)
    return Join(rule, expanded, keys, until, until_key)


# A join key that is a field's name as the parser keeps it: unquoted, so
# `odd-key` is no subtraction. Anything else is an expression (`pid * 2`).
_FIELD_NAME = re.compile(r"^[^\s()*/%+,\"'`]+$")


def eql_key(stage: StagePlan) -> KeyFn:
    """The stage's join key values on an event (None: a key is null)."""
    resolve = stage.rule.ref_resolver(stage)
    values = [
        _field_values(resolve(text)) if _FIELD_NAME.match(text) else compile_value(text, resolve)
        for text in stage.join_keys
    ]

    def key(ev: Event) -> Key | None:
        """Raises ``Undetermined`` for a key Elasticsearch could not compute either
        (``length()`` of a number): the event's part in the sequence is unknown."""
        out = []
        for v in values:
            got = v(ev)
            if not got:
                return None
            out.append(tuple(got))
        return tuple(out)

    return key


def _field_values(names: tuple[str, ...]) -> Callable[[Event], list[Any]]:
    return lambda ev: [v for n in names for v in ev.get(n) or () if v is not None]


@dataclass
class _Open:
    """An open sequence: its events so far, the first one's time, and whether each
    step was certain."""

    events: tuple[str, ...]
    start: float | None
    certain: bool


class _Base:
    def __init__(
        self,
        rule: RulePlan,
        steps: list[StagePlan],
        keys: list[KeyFn],
        until: StagePlan | None,
        until_key: KeyFn | None,
    ):
        self.rule, self.steps, self.keys = rule, steps, keys
        self.until, self.until_key = until, until_key
        self.watches = until is not None

    def feed(self, ev: Event, results: Results) -> list[Detection]:
        try:
            return self._step(ev, results)
        except Undetermined as e:
            # A join key that cannot be computed on this event: the rule's outcome
            # from here on is unknown, said on this event.
            return [Detection([ev.label], False, f"join key not computable: {e}")]

    def _step(self, ev: Event, results: Results) -> list[Detection]:
        raise NotImplementedError

    def _until(self, ev: Event, groups: list[Groups]) -> None:
        """An ``until`` event ends its key's open sequences (maybe, when unknown)."""
        if self.until is None or self.until_key is None or not any(g.items for g in groups):
            return
        r = holds(self.until, ev)
        if r is False:
            return
        k = self.until_key(ev)
        if k is None:
            return
        for g in groups:
            found = g.items.get(k)
            if found is None:
                continue
            if r is True:
                del g.items[k]
            else:
                _uncertain(found)


def _uncertain(state: Any) -> None:
    for item in state if isinstance(state, list) else [state]:
        if item is not None:
            item.certain = False


class Sequence(_Base):
    def __init__(
        self,
        rule: RulePlan,
        steps: list[StagePlan],
        keys: list[KeyFn],
        until: StagePlan | None,
        until_key: KeyFn | None,
        span: float | None,
    ):
        super().__init__(rule, steps, keys, until, until_key)
        self.span = span  # maxspan in seconds
        # open[i]: sequences whose last step is step i (0-based), per key
        self.open = [Groups() for _ in self.steps[:-1]]

    def is_open(self) -> bool:
        return any(g.items for g in self.open)

    def _step(self, ev: Event, results: Results) -> list[Detection]:
        self._until(ev, self.open)
        t = event_time(ev) if self.span is not None else None
        out: list[Detection] = []
        for i in range(len(self.steps) - 1, 0, -1):
            r = results.get(self.steps[i].name, False)
            if r is False:
                continue
            k = self.keys[i](ev)
            prev = self.open[i - 1].items.get(k) if k is not None else None
            if prev is None:
                continue
            certain = prev.certain and r is True
            if self.span is not None:
                if t is None or prev.start is None:
                    certain = False  # no time: maxspan cannot be checked
                elif t - prev.start > self.span:
                    del self.open[i - 1].items[k]  # type: ignore[arg-type]
                    continue
            if r is True:
                del self.open[i - 1].items[k]  # type: ignore[arg-type]
            else:
                prev.certain = False  # it may have moved on
            step = _Open((*prev.events, ev.label), prev.start, certain)
            if i == len(self.steps) - 1:
                out.append(_detection(step))
            else:
                self.open[i].put(k, step)  # type: ignore[arg-type]
        self._start(ev, results, t, out)
        return out

    def _start(self, ev: Event, results: Results, t: float | None, out: list[Detection]) -> None:
        r = results.get(self.steps[0].name, False)
        if r is False:
            return
        k = self.keys[0](ev)
        if k is None:
            return
        first = _Open((ev.label,), t, r is True)
        if len(self.steps) == 1:
            out.append(_detection(first))
            return
        old = self.open[0].items.get(k)
        if r is None and old is not None:
            old.certain = False  # replaced or not: unknown
        else:
            self.open[0].put(k, first)


class Join(_Base):
    def __init__(
        self,
        rule: RulePlan,
        steps: list[StagePlan],
        keys: list[KeyFn],
        until: StagePlan | None,
        until_key: KeyFn | None,
    ):
        super().__init__(rule, steps, keys, until, until_key)
        self.groups = Groups()  # key -> one open slot per step

    def is_open(self) -> bool:
        return bool(self.groups.items)

    def _step(self, ev: Event, results: Results) -> list[Detection]:
        self._until(ev, [self.groups])
        out: list[Detection] = []
        for i, step in enumerate(self.steps):
            r = results.get(step.name, False)
            if r is False:
                continue
            k = self.keys[i](ev)
            if k is None:
                continue
            slots = self.groups.items.get(k) or [None] * len(self.steps)
            if slots[i] is not None:
                continue
            slots[i] = _Open((ev.label,), None, r is True)
            if all(s is not None for s in slots):
                self.groups.items.pop(k, None)
                events = tuple(label for s in slots for label in s.events)
                out.append(_detection(_Open(events, None, all(s.certain for s in slots))))
            else:
                self.groups.put(k, slots)
            break  # one event fills one subquery
        return out


def _detection(step: _Open) -> Detection:
    reason = "" if step.certain else "a step of the sequence is unknown on its event"
    return Detection(list(step.events), step.certain, reason)
