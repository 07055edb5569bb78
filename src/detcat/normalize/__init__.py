"""Vendor terms -> canonical terms: fields, operators/values, events.

``normalize_rule`` is called by the catalog for every rule after reading it. It
rewrites each stage's expression so every predicate carries a canonical ``field``
(ECS; ``"<vendor>:<raw>"`` when no canonical meaning exists), normalized
operator/value, *implied* predicates next to their source, and fills
``stage.events`` with catalog event ids. Tables are data files under
``detcat/data`` compiled once, on first use; importing this package does no work.
"""

from __future__ import annotations

from functools import lru_cache, partial
from typing import Any

from detcat.model import (
    Expr,
    Predicate,
    Rule,
    Stage,
    StageRole,
    map_predicates,
    replace,
    value_text,
)
from detcat.normalize.events import Event, event_catalog, get_event, stage_events
from detcat.normalize.fields import (
    by_value,
    canonical_field,
    explain,
    is_mapped,
    is_windows_event,
    namespaced,
    selector_kind,
    windows_table,
)
from detcat.normalize.scopes import stage_scopes
from detcat.normalize.values import (
    add_implied,
    case_by_field_type,
    lookup_name,
    normalize_value,
)
from detcat.sources.registry import full_match as full_match_regex


def normalize_rule(rule: Rule) -> None:
    """Fill canonical fields, normalize ops/values, add implied predicates and events.

    A stage is read twice when its events matter to its fields: first without them,
    to learn its catalog events (event codes, providers and log sources are named
    by fields whose meaning does not depend on the event), then with them, so that
    Windows event data reads as the event defines it (``normalize/fields.py``).
    Filters after an aggregation read the events of the stages before them.
    """
    full_match = full_match_regex(rule.language)
    events: tuple[str, ...] = ()
    for stage in rule.stages:
        if stage.expr is None:
            continue
        written = stage.expr
        stage.expr = _normalized(rule, stage, written, full_match, ())
        if stage.role is StageRole.EVENTS:
            stage.events = stage_events(rule, stage)
            events = tuple(stage.events)
        context = _windows_context(events)
        if context:
            stage.expr = _normalized(rule, stage, written, full_match, context)


def _normalized(
    rule: Rule, stage: Stage, expr: Expr, full_match: bool, events: tuple[str, ...]
) -> Expr:
    fn = partial(
        normalize_predicate,
        vendor=rule.vendor,
        scopes=stage_scopes(rule, stage),
        full_match=full_match,
        derived=stage.params.get("derived") or {},
        events=events,
        language=rule.language,
    )
    return map_predicates(expr, fn)


def _windows_context(events: tuple[str, ...]) -> tuple[str, ...]:
    """The events that change how a stage's fields read: Windows event logs."""
    table = windows_table().by_event
    return tuple(e for e in events if e in table or is_windows_event(e))


def normalize_predicate(
    p: Predicate,
    vendor: str,
    scopes: tuple[str, ...],
    full_match: bool = False,
    derived: dict[str, Any] | None = None,
    events: tuple[str, ...] = (),
    language: str = "",
) -> Expr:
    """One predicate in canonical terms (may grow into an And/Or)."""
    if p.field is not None:
        return p  # already normalized (parsers leave field None): stay idempotent
    field, folded = _canonical_name(p, vendor, scopes, derived, events)
    if isinstance(p.value, float):  # 0.0 == -0.0 would share a memo entry: not memoized
        return _in_canonical_terms(p, type(p.value), field, folded, vendor, full_match, language)
    return _memo(p, type(p.value), field, folded, vendor, full_match, language)


def _canonical_name(
    p: Predicate,
    vendor: str,
    scopes: tuple[str, ...],
    derived: dict[str, Any] | None,
    events: tuple[str, ...],
) -> tuple[str, bool]:
    """The canonical field of ``p`` and whether the query case-folds it: the only
    part of normalizing a predicate that depends on the stage (scopes, events,
    fields computed in the query)."""
    raw, folded = lookup_name(p, derived)
    if p.kind == "derived" and raw == p.field_raw:
        # Computed inside the query: canonical only when its name is a table entry
        # (CIM process_exec), never through a fallback (rmm_exception must not
        # become winlog.event_data.rmm_exception).
        entry = explain(vendor, scopes, raw, events)
        explicit = entry is not None and entry.section != "fallback"
        return (entry.canonical if explicit else namespaced(vendor, raw or "")), folded
    return by_value(vendor, raw, p.value) or canonical_field(vendor, scopes, raw, events), folded


def _in_canonical_terms(
    p: Predicate,
    value_type: type,
    field: str,
    folded: bool,
    vendor: str,
    full_match: bool,
    language: str,
) -> Expr:
    """``p`` with its canonical ``field``: case rule, operator and value, implied
    predicates. A pure function of its arguments (``value_type`` keeps ``1``,
    ``1.0`` and ``True``, equal as keys, apart in the memo)."""
    q = case_by_field_type(replace(p, field=field), vendor, language)
    if folded:
        q = replace(q, case_sensitive=False)
    if not p.kind and selector_kind(vendor, field):
        q = replace(q, kind="selector")
    out = normalize_value(q, full_match)
    return map_predicates(out, add_implied) if out is not q else add_implied(q)


# The same predicate recurs across rules (a corpus has ~120k distinct ones in
# ~170k), and a Windows stage is normalized twice (see ``normalize_rule``): the
# second time only fields whose meaning depends on the event are new work.
_memo = lru_cache(maxsize=1 << 18)(_in_canonical_terms)


def indicator_key(p: Predicate) -> tuple[str, str, str]:
    """(field, op, case-folded value): the identity of an indicator across vendors."""
    return (p.field or p.field_raw or "", str(p.op), fold_value(p.value))


def fold_value(value: object) -> str:
    """The case-folded text that identifies a value in indicator aggregation."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value_text(value).casefold()


__all__ = [
    "full_match_regex",
    "fold_value",
    "Event",
    "event_catalog",
    "get_event",
    "indicator_key",
    "is_mapped",
    "normalize_predicate",
    "normalize_rule",
]
