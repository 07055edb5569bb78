"""Per-vendor log-source facts -> candidate providers and implied catalog events.

Tables: ``data/event_sources.toml``. Each function reads what that vendor's source
module records (Sigma logsource, Elastic index patterns and EQL category, Splunk
data_source names and data model, UDM event types).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from detcat.model import Rule, Stage
from detcat.normalize.tables import EVENT_SOURCES, load


@dataclass(frozen=True)
class Hints:
    implied: tuple[str, ...] = ()  # catalog event ids the log source implies
    providers: tuple[str, ...] = ()  # provider keys whose event ids the stage may name


NONE = Hints()


def vendor_hints(rule: Rule, stage: Stage, classes: Iterable[str]) -> Hints:
    match rule.vendor:
        case "sigma":
            return sigma_hints(rule.context.get("logsource") or {})
        case "elastic":
            category = stage.params.get("category")
            return elastic_hints(elastic_index(rule, stage), category, list(classes))
        case "splunk":
            return splunk_hints(
                rule.context.get("data_source") or [], stage.params.get("datamodel")
            )
        case "chronicle":
            types = list(classes) or list(rule.context.get("event_types") or [])
            return chronicle_hints(types)
    return NONE


@cache
def _table(vendor: str) -> dict[str, Any]:
    return load(EVENT_SOURCES)[vendor]


# -- Sigma -------------------------------------------------------------------


def sigma_hints(logsource: dict[str, Any]) -> Hints:
    table = _table("sigma")
    by_product = table["category"].get(logsource.get("category") or "", {})
    implied = by_product.get(logsource.get("product") or "*", by_product.get("*", []))
    service, product = logsource.get("service"), logsource.get("product")
    provider = table["service"].get(f"{product}/{service}") or table["service"].get(service or "")
    return Hints(tuple(implied), (provider,) if provider else ())


# -- Elastic -----------------------------------------------------------------


@cache
def _index_prefixes() -> list[tuple[str, list[str]]]:
    items = _table("elastic")["index"].items()
    return sorted(items, key=lambda kv: -len(kv[0]))  # longest prefix first


def elastic_providers(patterns: Iterable[str]) -> list[str]:
    out: list[str] = []
    for pattern in patterns:
        for prefix, providers in _index_prefixes():
            if pattern.startswith(prefix):
                out.extend(providers)
                break
    return list(dict.fromkeys(out))


def elastic_index(rule: Rule, stage: Stage) -> list[str]:
    """Index patterns: the rule's, else those of the ES|QL ``FROM`` command."""
    found = rule.context.get("index") or stage.params.get("from")
    if not found and rule.stages:
        found = rule.stages[0].params.get("from")
    return [str(x) for x in found or []]


def _index_categories(index: Iterable[str]) -> list[str]:
    by_prefix = _table("elastic").get("index_category", {})
    found = (c for pattern in index for pre, c in by_prefix.items() if pattern.startswith(pre))
    return list(dict.fromkeys(found))


def elastic_hints(index: list[str], category: str | None, classes: list[str]) -> Hints:
    providers = elastic_providers(index)
    table = _table("elastic")["category"]
    cats = [category] if category and category != "any" else [c for c in classes if c in table]
    cats = cats or _index_categories(index)
    implied: list[str] = []
    for cat in cats:
        keyed = [f"{cat}/{t}" for t in classes if f"{cat}/{t}" in table] or [cat]
        for key in keyed:
            for provider in providers:
                implied.extend(table.get(key, {}).get(provider, []))
    return Hints(tuple(dict.fromkeys(implied)), tuple(providers))


# -- Splunk ------------------------------------------------------------------


@cache
def _data_source_patterns() -> list[tuple[re.Pattern[str], dict[str, Any]]]:
    return [(re.compile(e["pattern"]), e) for e in _table("splunk")["data_source"]]


@cache
def splunk_data_source(name: str) -> Hints:
    for rx, entry in _data_source_patterns():
        m = rx.match(name.strip())
        if m is None:
            continue
        arg = m.group(1) if rx.groups else ""
        # auditd record types: "Linux Auditd Add User" -> ADD_USER
        arg = arg.upper().replace(" ", "_") if entry.get("upper") else arg
        events = tuple(e.replace("{1}", arg) for e in entry.get("events", []))
        return Hints(events, tuple(entry.get("providers", [])))
    return NONE


def splunk_hints(data_sources: Iterable[str], datamodel: str | None) -> Hints:
    implied: list[str] = []
    providers: list[str] = []
    for name in data_sources:
        # "Sysmon EventID 1 AND Sysmon EventID 3" names two sources
        for part in re.split(r"\s+AND\s+", str(name)):
            hint = splunk_data_source(part)
            implied.extend(hint.implied)
            providers.extend(hint.providers)
    if not implied and datamodel:
        implied.extend(_table("splunk")["datamodel"].get(datamodel, []))
    return Hints(tuple(dict.fromkeys(implied)), tuple(dict.fromkeys(providers)))


# -- Chronicle ---------------------------------------------------------------


def chronicle_hints(event_types: Iterable[str]) -> Hints:
    provider = _table("chronicle")["event_type_provider"]
    return Hints(tuple(f"{provider}:{t}" for t in event_types))
