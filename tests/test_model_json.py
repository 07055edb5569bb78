"""Expression trees to JSON and back: the catalog's stored form of every stage."""

from __future__ import annotations

import pytest

from detcat.model import And, Not, Op, Opaque, Or, Predicate, expr_from_json, expr_to_json


def pred(value: object, field: str = "process.name", op: Op = Op.EQ) -> Predicate:
    return Predicate(field_raw="Image", op=op, value=value, syntax="=", field=field)  # type: ignore[arg-type]


TREES = [
    pred("cmd.exe"),
    And((pred("cmd.exe"), Not(pred("a", op=Op.CONTAINS)))),
    Or((pred(1), pred(True), pred(1.0), pred(-0.0), pred(0.0), pred(None))),
    And((Opaque("x | stats", "unsupported command"), Or((pred("a"), pred("a"))))),
    pred(["a", "b"], op=Op.EQ),
]


@pytest.mark.parametrize("tree", TREES, ids=range(len(TREES)))
def test_round_trip_keeps_each_value_and_its_type(tree: object) -> None:
    back = expr_from_json(expr_to_json(tree))  # type: ignore[arg-type]
    assert back == tree
    assert [type(p.value) for p in _leaves(back)] == [type(p.value) for p in _leaves(tree)]
    assert [repr(p.value) for p in _leaves(back)] == [repr(p.value) for p in _leaves(tree)]


def test_shared_leaves_are_one_object_across_trees_but_never_across_types() -> None:
    shared: dict[object, object] = {}
    a = expr_from_json(expr_to_json(And((pred("cmd.exe"), pred(1)))), shared)  # type: ignore[arg-type]
    b = expr_from_json(expr_to_json(Or((pred("cmd.exe"), pred(True)))), shared)  # type: ignore[arg-type]
    assert a.children[0] is b.children[0]  # type: ignore[union-attr]
    assert a.children[1].value == 1 and type(a.children[1].value) is int  # type: ignore[union-attr]
    assert type(b.children[1].value) is bool  # type: ignore[union-attr]


def _leaves(e: object) -> list[Predicate]:
    if isinstance(e, Predicate):
        return [e]
    if isinstance(e, (And, Or)):
        return [p for c in e.children for p in _leaves(c)]
    if isinstance(e, Not):
        return _leaves(e.child)
    return []
