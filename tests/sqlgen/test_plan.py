"""The route plan: a rule's gate is a necessary condition (where it is false the
rule is false, never unknown), chunks keep hot literals alone, and the planned
query gives what evaluating every rule on every row gives."""

from __future__ import annotations

import itertools

import duckdb
import pytest

from detcat.sqlgen import dialect
from detcat.sqlgen.ir import (
    FALSE,
    All,
    Any_,
    Col,
    Has,
    Neg,
    Node,
    NumCmp,
    Regex,
    Unknown,
    Variant,
)
from detcat.sqlgen.plan import Sample, decode, gate, plan_route

CMD = Col("cmd", Variant.FOLD)
IMG = Col("img", Variant.FOLD)
a, b, c = Has(CMD, "alpha"), Has(CMD, "beta"), Has(IMG, "\x1fc.exe\x1f")
PRESENT = {"cmd", "cmd#cf", "img", "img#cf"}


@pytest.mark.parametrize(
    ("node", "want"),
    [
        (a, {a}),
        (All((a, NumCmp(Col("n", Variant.NUM), "gt", 1.0))), {a}),  # one child suffices
        (Any_((a, c)), {a, c}),  # an OR needs every child's
        (Any_((a, NumCmp(Col("n", Variant.NUM), "gt", 1.0))), None),
        (Neg(a), None),  # NOT a holds where a is missing
        (All((Neg(a), b)), {b}),
        (Any_((a, Unknown("u"))), None),  # unknown where a is false
        (All((a, Unknown("u"))), {a}),  # unknown only where a holds
        (Regex(Col("cmd"), "x.*y", "i", literals=("xx", "yy")), {Has(CMD, "xx"), Has(CMD, "yy")}),
        (Regex(Col("cmd"), "x", "i", literals=("x",)), None),  # too short to say anything
        (Regex(Col("other"), "x.*y", "i", literals=("xx",)), None),  # no folded column
        (Regex(Col("cmd"), ".*", "i"), None),  # no literal known
    ],
)
def test_gate_is_a_necessary_substring_test(node: Node, want: set[Has] | None) -> None:
    got = gate(node, PRESENT, lambda g: len(g))
    assert (set(got) if got is not None else None) == want


def test_gate_picks_the_cheapest_child() -> None:
    sample = Sample([{"cmd#cf": "alpha beta"}, {"cmd#cf": "alpha"}], {"cmd#cf": {"alpha", "beta"}})
    assert gate(All((a, b)), PRESENT, sample.cost) == frozenset({b})  # beta: in half the rows


@pytest.mark.parametrize(("code", "want"), [(0, (0, True)), (7, (7, True)), (-1, (0, False))])
def test_decode(code: int, want: tuple[int, bool]) -> None:
    assert decode(code) == want


VALUES = ["alpha", "beta", "alpha beta", "gamma", None]
IMAGES = ["\x1fc.exe\x1f", "\x1fd.exe\x1f", None]
RULES: list[Node] = [
    a,
    b,
    All((a, b)),
    Any_((a, c)),
    All((Neg(b), c)),
    All((a, Unknown("u"))),
    Any_((b, Unknown("u"))),
    Neg(Any_((a, c))),
    Any_((Has(CMD, "gamma"), Has(CMD, "delta"))),
    FALSE,
]


@pytest.mark.parametrize(("hot", "chunk_max"), [(0.0, 100), (0.5, 100), (1.0, 100), (1.0, 2)])
def test_planned_query_equals_every_rule_on_every_row(
    hot: float, chunk_max: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every row of a small grid, planned with chunks hot and cold (``HOT``) and
    small (two chunks of two under one super chunk), gives the codes of evaluating
    each rule's condition directly."""
    from detcat.sqlgen import plan

    monkeypatch.setattr(plan, "HOT", hot)
    monkeypatch.setattr(plan, "CHUNK_MAX", chunk_max)
    d = dialect("duckdb")
    rows = list(itertools.product(VALUES, IMAGES))
    con = duckdb.connect()
    con.execute(
        'CREATE TABLE t (_label VARCHAR, _time VARCHAR, _python BOOLEAN, "cmd#cf" VARCHAR,'
        ' "img#cf" VARCHAR)'
    )
    for i, (cmd, img) in enumerate(rows):
        con.execute("INSERT INTO t VALUES (?, NULL, FALSE, ?, ?)", [str(i), cmd, img])
    sample = Sample(
        [{"cmd#cf": cmd, "img#cf": img} for cmd, img in rows],
        {"cmd#cf": {"alpha", "beta", "gamma", "delta"}, "img#cf": {"\x1fc.exe\x1f"}},
    )
    rules = list(enumerate(RULES))
    planned = plan_route(rules, PRESENT, sample)
    assert bool(planned.supers) is (chunk_max == 2)
    got = {
        (label, code)
        for label, _, codes in con.execute(
            d.route_query("t", plan_route(rules, PRESENT, sample))
        ).fetchall()
        for code in codes
    }
    want = set()
    for code, node in rules:
        cond = d.condition(node, strict=True)
        for label, value in con.execute(f"SELECT _label, {cond} FROM t").fetchall():
            if value is not False:
                want.add((label, code if value else -1 - code))
    assert got == want
    assert len(want) > 10
