"""The catalog of events (``data/events.toml``) and rule stage -> catalog events.

Event identity is ``event.code`` (Sigma ``EventID``, Splunk ``EventCode``, ECS
``event.code``/``winlog.event_id``, UDM ``metadata.product_event_type`` all map
there; cloud rules name ``event.action``) read against a *provider*: the one the
query names (``event.provider``, channel, dataset) or else those the vendor's
log-source facts suggest (see ``hints.py``). A log source can also imply events
by itself (Sigma ``process_creation`` is Sysmon 1 and Security 4688).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from detcat.model import Op, Predicate, Rule, Stage, leaves
from detcat.normalize.hints import Hints, vendor_hints
from detcat.normalize.tables import EVENT_SOURCES, EVENTS, load

# canonical fields whose values name event ids / providers / classes
ID_FIELDS = frozenset({"event.code", "event.action"})
PROVIDER_FIELDS = frozenset(
    {
        "event.provider",
        "winlog.channel",
        "winlog.provider_name",
        "event.dataset",
        "event.module",
        "log.file.path",  # Splunk source: "XmlWinEventLog:Security"
    }
)
CLASS_FIELDS = frozenset({"event.category", "event.type"})


@dataclass(frozen=True)
class Event:
    id: str  # "<provider key>:<event id>"
    provider: str  # as logs spell it: "Microsoft-Windows-Sysmon"
    event_id: str
    title: str


@cache
def _catalog() -> dict[str, Event]:
    out: dict[str, Event] = {}
    for key, prov in load(EVENTS)["providers"].items():
        for eid, title in prov["events"].items():
            out[f"{key}:{eid}"] = Event(f"{key}:{eid}", prov["name"], str(eid), title)
    return out


@cache
def _folded_ids() -> dict[str, str]:
    """Case-folded id -> catalog id: cloud operation names vary in case across vendors."""
    return {k.casefold(): k for k in _catalog()}


def catalog_id(candidate: str) -> str | None:
    """The catalog id ``candidate`` names, if any."""
    return candidate if candidate in _catalog() else _folded_ids().get(candidate.casefold())


def event_catalog() -> list[Event]:
    """Every event of the dictionary, in table order."""
    return list(_catalog().values())


def get_event(event_id: str) -> Event | None:
    return _catalog().get(event_id)


@cache
def _provider_names() -> dict[str, str]:
    return {k.casefold(): v for k, v in load(EVENT_SOURCES)["provider_names"].items()}


# Splunk spells a Windows channel as a source: "XmlWinEventLog:<channel>"
_CHANNEL_SOURCE = re.compile(r"^(?:Xml)?WinEventLog:", re.IGNORECASE)


def provider_key(name: str) -> str | None:
    """The catalog provider a provider/channel/dataset/source value names."""
    names = _provider_names()
    folded = _CHANNEL_SOURCE.sub("", name).casefold()
    return names.get(folded)


@cache
def _classifications() -> frozenset[str]:
    return frozenset(load(EVENT_SOURCES).get("classifications", []))


def _provider(event_id: str) -> str:
    return event_id.split(":", 1)[0]


@dataclass(frozen=True)
class StageFacts:
    """What a normalized stage's positive equality tests say about its events."""

    ids: tuple[str, ...]  # event.code and event.action values
    providers: tuple[str, ...]  # provider keys named by provider/channel/dataset values
    classes: tuple[str, ...]  # event.category / event.type values


def stage_facts(stage: Stage) -> StageFacts:
    """One walk of the stage: the values of its positive equality tests on the id,
    provider and class fields (implied predicates left out), in order, without
    repeats."""
    found: dict[frozenset[str], list[Any]] = {ID_FIELDS: [], PROVIDER_FIELDS: [], CLASS_FIELDS: []}
    for node, negated, _ in leaves(stage.expr):
        if negated or not isinstance(node, Predicate) or node.op is not Op.EQ:
            continue
        if node.kind == "implied":
            continue
        for fields, values in found.items():
            if node.field in fields:
                values.append(node.value)

    def texts(fields: frozenset[str]) -> list[str]:
        return [str(v) for v in dict.fromkeys(found[fields])]

    named = [key for key in map(provider_key, texts(PROVIDER_FIELDS)) if key]
    return StageFacts(
        tuple(texts(ID_FIELDS)), tuple(dict.fromkeys(named)), tuple(texts(CLASS_FIELDS))
    )


def stage_events(rule: Rule, stage: Stage) -> list[str]:
    """Catalog event ids for a normalized stage (fields already canonical)."""
    facts = stage_facts(stage)
    return combine(vendor_hints(rule, stage, facts.classes), facts)


def combine(hints: Hints, facts: StageFacts) -> list[str]:
    """The stage's event ids under each candidate provider, plus the events its log
    source implies (narrowed to the named ids, and to named providers)."""
    implied = list(hints.implied)
    providers = list(dict.fromkeys([*hints.providers, *(e.split(":", 1)[0] for e in implied)]))
    if facts.providers:
        providers = list(facts.providers)
        implied = [e for e in implied if e.split(":", 1)[0] in facts.providers] or implied
    named = (catalog_id(f"{p}:{v}") for p in providers for v in facts.ids)
    out = [e for e in named if e]
    if facts.ids:
        classes = [e for e in implied if _provider(e) in _classifications()]
        coded = [e for e in implied if _provider(e) not in _classifications()]
        narrowed = [e for e in coded if e.split(":", 1)[1] in facts.ids]
        implied = classes + (narrowed or (coded if not out else []))
    out.extend(e for e in map(catalog_id, implied) if e)
    return list(dict.fromkeys(out))
