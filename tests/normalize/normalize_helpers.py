"""Build one-stage rules the way each vendor's source module records them."""

from __future__ import annotations

from typing import Any

from detcat.model import Expr, Op, Predicate, Rule, Stage, and_, predicates
from detcat.normalize import normalize_rule

LANGUAGE = {"sigma": "sigma", "elastic": "eql", "splunk": "spl", "chronicle": "yaral"}


def pred(raw: str | None, value: Any = "x", op: Op = Op.EQ, **kw: Any) -> Predicate:
    return Predicate(field_raw=raw, op=op, value=value, **kw)


def make_rule(
    vendor: str,
    expr: Expr,
    context: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    language: str | None = None,
) -> Rule:
    return Rule(
        vendor=vendor,
        id="t",
        title="t",
        source_path="t",
        language=language or LANGUAGE[vendor],
        stages=[Stage(expr=expr, params=dict(params or {}))],
        context=dict(context or {}),
    )


def sigma(category: str | None = None, product: str = "windows", service: str | None = None):
    logsource = {"category": category, "product": product, "service": service}
    return {"logsource": {k: v for k, v in logsource.items() if v}}


def normalized(rule: Rule) -> Rule:
    normalize_rule(rule)
    return rule


def canonical_of(vendor: str, raw: str, where: dict[str, Any] | None = None) -> str | None:
    """The canonical field of ``raw`` in a one-predicate rule of ``vendor``."""
    where = where or {}
    extra: list[Expr] = []
    if vendor == "chronicle" and "event_type" in where:
        extra.append(pred("metadata.event_type", where["event_type"]))
    rule = make_rule(
        vendor,
        and_(pred(raw), *extra),
        context=where.get("context"),
        params=where.get("params"),
    )
    first = predicates(normalized(rule).stages[0].expr)[0]
    return first.field
