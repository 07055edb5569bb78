"""Vendor terms -> canonical terms: fields, operators/values, events.

``normalize_rule`` is called by the catalog for every rule after reading it. It
rewrites each stage's expression so every predicate carries a canonical ``field``
(ECS; ``"<vendor>:<raw>"`` when no canonical meaning exists), normalized
operator/value, *implied* predicates next to their source, and fills
``stage.events`` with catalog event ids. Tables are data files under
``detcat/data`` compiled once, on first use; importing this package does no work.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from detcat.model import (
    Expr,
    Predicate,
    Rule,
    StageRole,
    map_predicates,
    replace,
    value_text,
)
from detcat.normalize.events import Event, event_catalog, get_event, stage_events
from detcat.normalize.fields import canonical_field, explain, is_mapped, namespaced
from detcat.normalize.scopes import stage_scopes
from detcat.normalize.values import add_implied, lookup_name, normalize_value
from detcat.sources.registry import full_match as full_match_regex


def normalize_rule(rule: Rule) -> None:
    """Fill canonical fields, normalize ops/values, add implied predicates and events."""
    full_match = full_match_regex(rule.language)
    for stage in rule.stages:
        if stage.expr is None:
            continue
        fn = partial(
            normalize_predicate,
            vendor=rule.vendor,
            scopes=stage_scopes(rule, stage),
            full_match=full_match,
            derived=stage.params.get("derived") or {},
        )
        stage.expr = map_predicates(stage.expr, fn)
        if stage.role is StageRole.EVENTS:
            stage.events = stage_events(rule, stage)


def normalize_predicate(
    p: Predicate,
    vendor: str,
    scopes: tuple[str, ...],
    full_match: bool = False,
    derived: dict[str, Any] | None = None,
) -> Expr:
    """One predicate in canonical terms (may grow into an And/Or)."""
    if p.field is not None:
        return p  # already normalized (parsers leave field None): stay idempotent
    raw, folded = lookup_name(p, derived)
    if p.kind == "derived" and raw == p.field_raw:
        # Computed inside the query: canonical only when its name is a table entry
        # (CIM process_exec), never through a fallback (rmm_exception must not
        # become winlog.event_data.rmm_exception).
        entry = explain(vendor, scopes, raw)
        explicit = entry is not None and entry.section != "fallback"
        field = entry.canonical if explicit else namespaced(vendor, raw or "")
    else:
        field = canonical_field(vendor, scopes, raw)
    q = replace(p, field=field)
    if folded:
        q = replace(q, case_sensitive=False)
    out = normalize_value(q, full_match)
    return map_predicates(out, add_implied) if out is not q else add_implied(q)


def indicator_key(p: Predicate) -> tuple[str, str, str]:
    """(field, op, case-folded value): the identity of an indicator across vendors."""
    return (p.field or p.field_raw or "", str(p.op), fold_value(p.value))


def fold_value(value: object) -> str:
    """The case-folded text that identifies a value in indicator aggregation."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value_text(value).casefold()


__all__ = [
    "fold_value",
    "full_match_regex",
    "Event",
    "event_catalog",
    "get_event",
    "indicator_key",
    "is_mapped",
    "normalize_predicate",
    "normalize_rule",
]
