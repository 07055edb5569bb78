"""Rules that one event cannot fire: evaluated over the stream of events.

``detcat match`` reads events in the order given, which it takes as time order. A
multi-event rule gets an *engine* (``engine_for``) that the matcher feeds every
event with the results of the rule's stages on it; an engine answers with the
detections the event completes: the labels of the events that make it up, and
whether every step was certain (a step on an unknown stage result makes the
detection undetermined, never a match).

Engines: EQL ``sequence`` (``by``, ``maxspan``, ``until``, ``with runs``), EQL
``sample`` and legacy ``join`` (``match.sequences``); Elastic threshold rules and
Sigma correlations (``event_count``, ``value_count``, ``temporal``,
``temporal_ordered``) (``match.aggregates``); YARA-L multi-event rules with
``match … over`` windows (``match.yaral``). Any other multi-stage rule stays
"partial" with the reason it is not evaluated.

Memory is bounded: an open sequence holds at most one event label per stage,
each rule keeps at most ``MAX_OPEN`` open groups (the oldest are dropped first,
and a window or ``maxspan`` drops expired ones).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from detcat.match.events import Event
from detcat.sources import registry

if TYPE_CHECKING:
    from detcat.match import RulePlan, StagePlan

# The engines a vendor may name (``Vendor.language_engines``, ``rule_type_engines``).
ENGINES = frozenset({"sequences", "windows", "threshold"})
MAX_OPEN = 10_000  # open groups (join keys) per rule

# Where events carry their time: ECS, Sysmon/evtx, legacy EQL, UDM.
_TIME_FIELDS = (
    "@timestamp",
    "timestamp",
    "TimeCreated_SystemTime",
    "UtcTime",
    "metadata.event_timestamp",
    "event.created",
)
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass
class Detection:
    events: list[str]
    certain: bool
    reason: str = ""


# The results of a rule's stages on one event: stage name -> True or None (unknown).
Results = dict[str, bool | None]


class Engine(Protocol):
    rule: RulePlan
    watches: bool  # fed every event while open (an ``until`` stage, a window)

    def feed(self, ev: Event, results: Results) -> list[Detection]: ...

    def is_open(self) -> bool: ...


def engine_for(rule: RulePlan) -> Engine | str:
    """The rule's engine, or why it has none."""
    from detcat.match import aggregates, sequences, yaral

    names = [s.name for s in rule.stages]
    engine = registry.language_engine(rule.language)
    if engine == "sequences" and any(
        n.startswith(("sequence[", "sample[", "join[")) for n in names
    ):
        return sequences.eql_engine(rule)
    if registry.rule_type_engine(rule.vendor, rule.rule_type) == "threshold":
        return aggregates.threshold_engine(rule)
    if engine == "windows":
        return yaral.yaral_engine(rule)
    return _no_engine_reason(rule)


def _no_engine_reason(rule: RulePlan) -> str:
    names = {s.name for s in rule.stages}
    if "new_terms" in names:
        return "new terms rules compare with the history before the input: not evaluated"
    if rule.language == "none" or not any(s.expr is not None for s in rule.stages):
        return "no query to evaluate (a machine learning job)"
    if any(str(s.role) == "aggregate" for s in rule.stages):
        return "an aggregation (stats, eventstats, STATS …) over the stream is not evaluated"
    return "a multi-stage rule of this kind is not evaluated over the stream"


# -- stage evaluation outside the index -------------------------------------------------------


def holds(stage: StagePlan, ev: Event) -> bool | None:
    """The stage's filter on ``ev`` with the index's admission checks (for stages the
    index does not hold: ``until``, negated ones)."""
    if stage.events and ev.catalog_id is not None and ev.catalog_id not in stage.events:
        return False
    if stage.gates and not stage.admits(ev):
        return False
    return stage.test()(ev)


# -- keys ------------------------------------------------------------------------------------

Key = tuple[Any, ...]
KeyFn = Callable[[Event], Key | None]


def field_key(stage: StagePlan, names: list[str]) -> KeyFn:
    """The values of raw ``names`` (as the stage's vendor writes them) on an event;
    None when one is missing (the event takes no part)."""
    resolve = stage.rule.ref_resolver(stage)
    canon = [resolve(n) for n in names]

    def key(ev: Event) -> Key | None:
        out = []
        for alts in canon:
            values = [v for n in alts for v in ev.get(n) or () if v is not None and v != ""]
            if not values:
                return None
            out.append(tuple(values))
        return tuple(out)

    return key


# -- time ------------------------------------------------------------------------------------


def span_seconds(text: Any) -> float | None:
    """``"5m"``, ``"500ms"``, ``"1d"`` (a bare number: seconds) in seconds."""
    m = _SPAN.match(str(text))
    if m is None:
        return None
    return float(m.group(1)) * _UNIT[(m.group(2) or "s").lower()]


def event_time(ev: Event) -> float | None:
    """The event's time in seconds since the epoch, from the first time field it has."""
    for name in _TIME_FIELDS:
        for v in ev.fields.get(name) or ev.raw.get(name) or ():
            t = _seconds(v)
            if t is not None:
                return t
    return None


def _seconds(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        x = float(v)
        if x > 1e16:  # Windows FILETIME (100 ns since 1601), legacy EQL's timestamps
            return x / 1e7 - 11_644_473_600
        return x / 1000 if x > 1e11 else x  # epoch milliseconds or seconds
    text = str(v).strip()
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        pass
    try:
        return _seconds(float(text))
    except ValueError:
        return None


@dataclass
class Groups:
    """Open state per group key, oldest first, at most ``MAX_OPEN`` groups."""

    items: dict[Key, Any] = field(default_factory=dict)
    dropped: int = 0

    def put(self, key: Key, value: Any) -> None:
        self.items.pop(key, None)
        self.items[key] = value
        if len(self.items) > MAX_OPEN:
            del self.items[next(iter(self.items))]
            self.dropped += 1
