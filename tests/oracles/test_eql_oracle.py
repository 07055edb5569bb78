"""detcat's EQL parser against Elastic's own: the ``eql`` package (AGPL, a test-only
dependency; never imported by detcat itself).

For every active EQL rule of the Elastic corpus both parsers read the query. The
structure must agree: the list of event queries as ``(category, negated, join keys,
maxspan)``, with a ``with runs=N`` subquery counted N times (eql repeats it) and the
``until`` subquery last. And each side is reduced to the set of
``(field, op, value, negated)`` facts it states:

- detcat: every ``Predicate`` of every stage (``Opaque`` parts state nothing, and
  predicates on a computed value such as ``length(x) > 0``, kind "derived", are
  left out: eql's AST gives no field for them);
- eql: its AST, walked with the same reading rules (``Comparison``, ``InSet``,
  ``IsNull``/``IsNotNull``, ``Not``, and the calls ``wildcard`` (what eql makes of
  ``:`` and ``like``), ``match`` (``regex``), ``stringContains``, ``startsWith``,
  ``endsWith``, ``cidrMatch``, ``arrayContains``). A comparison involving a computed
  value (``length(x) > 0``, ``startsWith(substring(…), …)``, arithmetic) states
  nothing, as in detcat.

Case flags are left out of the comparison: eql folds the case-insensitivity of
``:``, ``like~``, ``regex~`` and ``in~`` away. ``negated`` is the polarity (under an
odd number of ``not``, ``!=`` counting as one).

Remaining disagreement classes (the ones this test tolerates, under 1%):

- none are known in the current corpus. Should Elastic's parser and ours ever read a
  rule differently, the failure message lists the rule with both sides' extra facts.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from detcat.languages import eql as detcat_eql
from detcat.languages.eql_values import classify
from detcat.model import Op, Predicate, Stage, leaves

eql = pytest.importorskip("eql")

Fact = tuple[str, str, Any, bool]
Shape = tuple[str, bool, tuple[str, ...], str | None]

# eql function name (lower-case) -> detcat op; None: a wildcard pattern to classify.
_FUNCTIONS: dict[str, Op | None] = {
    "wildcard": None,
    "match": Op.REGEX_MATCH,
    "matchlite": Op.REGEX_MATCH,
    "stringcontains": Op.CONTAINS,
    "startswith": Op.STARTS_WITH,
    "endswith": Op.ENDS_WITH,
    "cidrmatch": Op.CIDR,
    "arraycontains": Op.EQ,
}
_ORDER = {"<": Op.LT, "<=": Op.LTE, ">": Op.GT, ">=": Op.GTE}
_MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def eql_rules(corpora: Path) -> Iterator[tuple[str, str]]:
    """(path relative to the corpus, query) of every active EQL rule."""
    root = corpora / "elastic"
    for folder in ("rules", "rules_building_block"):
        for path in sorted((root / folder).rglob("*.toml")):
            if "_deprecated" in path.relative_to(root).parts:
                continue
            rule = tomllib.loads(path.read_text(encoding="utf-8")).get("rule", {})
            if rule.get("language") == "eql":
                yield str(path.relative_to(root)), rule["query"]


# -- detcat's side ------------------------------------------------------------


def detcat_facts(stages: list[Stage]) -> set[Fact]:
    facts: set[Fact] = set()
    for stage in stages:
        for leaf in leaves(stage.expr):
            if isinstance(leaf.node, Predicate) and leaf.node.kind != "derived":
                p = leaf.node
                facts.add((p.field_raw or "", str(p.op), p.value, leaf.negated))
    return facts


# -- eql's side ---------------------------------------------------------------


def _name(node: Any) -> str | None:
    if not isinstance(node, eql.ast.Field):
        return None
    return node.base + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in node.path)


def _literal(node: Any) -> tuple[bool, Any]:
    if isinstance(node, eql.ast.Null):
        return True, None
    if isinstance(node, eql.ast.Literal):
        return True, node.value
    return False, None


def _comparison(node: Any, negated: bool) -> set[Fact]:
    left, op, right = node.left, node.comparator, node.right
    if _name(left) is None and _name(right) is not None:
        left, right, op = right, left, _MIRROR[op]
    field, (is_lit, value) = _name(left), _literal(right)
    if field is None:
        return set()
    if _name(right) is not None:
        return {(field, str(Op.FIELD_REF), _name(right), negated ^ (op == "!="))}
    if not is_lit:
        return set()
    if op in _ORDER:
        return {(field, str(_ORDER[op]), value, negated)}
    return {(field, str(Op.EQ), value, negated ^ (op == "!="))}


def _call(node: Any, negated: bool) -> set[Fact]:
    name = node.name.lower().rstrip("~")
    if name not in _FUNCTIONS or not node.arguments:
        return set()
    field, *args = node.arguments
    if _name(field) is None or not all(_name(a) or _literal(a)[0] for a in args):
        return set()
    facts: set[Fact] = set()
    for arg in args:
        if _name(arg) is not None:
            facts.add((_name(field), str(Op.FIELD_REF), _name(arg), negated))  # type: ignore[arg-type]
            continue
        op, value = _FUNCTIONS[name], arg.value
        if op is None:
            op, value = classify(value) if isinstance(value, str) else (Op.EQ, value)
        facts.add((_name(field), str(op), value, negated))  # type: ignore[arg-type]
    return facts


def _in_set(node: Any, negated: bool) -> set[Fact]:
    field = _name(node.expression)
    if field is None:
        return set()
    facts: set[Fact] = set()
    for item in node.container:
        if _name(item) is not None:
            facts.add((field, str(Op.FIELD_REF), _name(item), negated))
        elif _literal(item)[0]:
            value = _literal(item)[1]
            facts.add((field, str(Op.IS_NULL if value is None else Op.EQ), value, negated))
    return facts


def _walk(node: Any, negated: bool) -> set[Fact]:
    a = eql.ast
    if isinstance(node, a.Not):
        return _walk(node.term, not negated)
    if isinstance(node, a.And | a.Or):
        return set().union(*(_walk(t, negated) for t in node.terms))
    if isinstance(node, a.Comparison):
        return _comparison(node, negated)
    if isinstance(node, a.InSet):
        return _in_set(node, negated)
    if isinstance(node, a.IsNull | a.IsNotNull):
        field = _name(node.expr)
        op = Op.IS_NULL if isinstance(node, a.IsNull) else Op.EXISTS
        return {(field, str(op), None, negated)} if field else set()
    if isinstance(node, a.FunctionCall):
        return _call(node, negated)
    return set()  # literals, bare fields, arithmetic: no fact


def eql_parse(query: str) -> Any:
    """eql's AST, with every relaxation the Elastic rules need."""
    from eql.parser import (
        allow_negation,
        allow_runs,
        allow_sample,
        elasticsearch_syntax,
        ignore_missing_functions,
        skip_optimizations,
    )

    flags = (elasticsearch_syntax, ignore_missing_functions, skip_optimizations)
    with flags[0], flags[1], flags[2], allow_runs, allow_sample, allow_negation:
        return eql.parse_query(query)


def eql_facts(ast: Any) -> set[Fact]:
    facts: set[Fact] = set()
    for node in ast:
        if isinstance(node, eql.ast.EventQuery):
            facts |= _walk(node.query, False)
    return facts


def eql_shape(ast: Any) -> list[Shape]:
    first = ast.first
    if isinstance(first, eql.ast.EventQuery):
        return [(first.event_type, False, (), None)]
    span = getattr(first, "max_span", None)
    maxspan = f"{span.quantity}{span.unit.value}" if span else None
    subs = [(q, q.data.get("is_negated", False)) for q in first.queries]
    if getattr(first, "close", None) is not None:
        subs.append((first.close, True))
    return [
        (sub.query.event_type, negated, tuple(_name(k) or "" for k in sub.join_values), maxspan)
        for sub, negated in subs
    ]


def detcat_shape(stages: list[Stage]) -> list[Shape]:
    return [
        (s.params["category"], s.negated, tuple(s.join_keys), s.params.get("maxspan"))
        for s in stages
        for _ in range(s.params.get("runs", 1))
    ]


# -- the comparison -----------------------------------------------------------


def _diff(path: str, ours: set[Fact], theirs: set[Fact]) -> str:
    lines = [path]
    lines += [f"  only detcat: {f}" for f in sorted(ours - theirs, key=repr)]
    lines += [f"  only eql:    {f}" for f in sorted(theirs - ours, key=repr)]
    return "\n".join(lines)


def test_eql_oracle_agreement(corpora: Path) -> None:
    rules = list(eql_rules(corpora))
    disagreements, facts, vacuous = [], 0, 0
    for path, query in rules:
        stages, ast = detcat_eql.parse(query), eql_parse(query)
        ours, theirs = detcat_facts(stages), eql_facts(ast)
        if detcat_shape(stages) != eql_shape(ast):
            disagreements.append(
                f"{path}\n  detcat: {detcat_shape(stages)}\n  eql:    {eql_shape(ast)}"
            )
        elif ours != theirs:
            disagreements.append(_diff(path, ours, theirs))
        facts += len(theirs)
        vacuous += not ours and not theirs
    agreed = len(rules) - len(disagreements)
    print(
        f"\nEQL oracle: {agreed}/{len(rules)} rules agree ({agreed / len(rules):.2%}), "
        f"{facts} facts compared, {vacuous} rules with none"
    )
    assert len(rules) == 1024
    assert agreed / len(rules) >= 0.99, "\n".join(disagreements)
    # agreement must not come from saying nothing: nearly every rule states facts
    assert vacuous / len(rules) < 0.01
