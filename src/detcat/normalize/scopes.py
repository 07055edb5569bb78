"""Which field-table scopes apply to a stage, from the vendor facts parsers record.

A scope names a part of a vendor table in ``fields.toml`` (``category:image_load``,
``event:PROCESS_LAUNCH``); the same raw field can mean different things in
different log sources (Sigma ``ImageLoaded`` is a DLL in ``image_load`` and a
driver in ``driver_load``; UDM ``principal.process`` is the parent in a process
launch and the actor elsewhere).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from detcat.model import Leaf, Op, Predicate, Rule, Stage, leaves
from detcat.normalize.fields import ANY
from detcat.normalize.tables import FIELDS, load

UDM_EVENT_TYPE = "metadata.event_type"


def stage_scopes(rule: Rule, stage: Stage) -> tuple[str, ...]:
    match rule.vendor:
        case "sigma":
            return sigma_scopes(rule.context.get("logsource") or {})
        case "elastic":
            return _tagged("category", [stage.params.get("category")])
        case "splunk":
            platforms = splunk_platforms(tuple(rule.context.get("data_source") or ()))
            return _tagged("datamodel", [stage.params.get("datamodel")])[:-1] + platforms
        case "chronicle":
            return _tagged("event", udm_event_types(rule, stage))
    return (ANY,)


def sigma_scopes(logsource: dict[str, Any]) -> tuple[str, ...]:
    keys = ("category", "service", "product")
    return tuple(f"{k}:{logsource[k]}" for k in keys if logsource.get(k)) + (ANY,)


@cache
def _platform_prefixes() -> list[tuple[str, str]]:
    table = load(FIELDS).get("splunk", {}).get("platforms", {})
    return sorted(table.items(), key=lambda kv: -len(kv[0]))


@cache
def splunk_platforms(data_sources: tuple[str, ...]) -> tuple[str, ...]:
    """Platform scopes of a Splunk search from its data_source names."""
    found: list[str] = []
    for name in data_sources:
        hit = next((p for pre, p in _platform_prefixes() if str(name).startswith(pre)), None)
        if hit:
            found.append(f"platform:{hit}")
    return (*dict.fromkeys(found), ANY)


def _tagged(kind: str, values: Iterable[Any]) -> tuple[str, ...]:
    return tuple(f"{kind}:{v}" for v in values if v) + (ANY,)


def udm_event_types(rule: Rule, stage: Stage) -> list[str]:
    """The UDM event types a stage filters on, else those the rule declares."""
    found = positive_values(stage.expr, lambda p: p.field_raw == UDM_EVENT_TYPE)
    if found:
        return [str(v) for v in found]
    declared = rule.context.get("event_types") or []
    return [str(v) for v in declared]


def positive_values(expr: Any, want: Any) -> list[Any]:
    """Values of ``eq`` predicates selected by ``want`` that are not negated."""
    out: list[Any] = []
    for lf in leaves(expr):
        if _positive_eq(lf) and want(lf.node):
            out.append(lf.node.value)  # type: ignore[union-attr]
    return list(dict.fromkeys(out))


def _positive_eq(lf: Leaf) -> bool:
    node = lf.node
    return isinstance(node, Predicate) and not lf.negated and node.op is Op.EQ
