"""Fused predicate functions (``match.fuse``) answer as the closures they replace.

Each case: a predicate tree, an event, the expected answer, and whether the tree is
fused (two-valued throughout, more than one call). The fused function and the
closures must both give the expected answer.
"""

from __future__ import annotations

from typing import Any

import pytest

from detcat.match.evaluate import compile_expr
from detcat.match.events import canonical_event
from detcat.match.fuse import MAX_DEPTH, fuse
from detcat.model import And, Expr, Not, Op, Opaque, Or, Predicate

NAME, CMD = "process.name", "process.command_line"


def P(field: str, op: Op, value: Any, cased: bool = False) -> Predicate:
    return Predicate(field, op, value, case_sensitive=cased, field=field)


def nested_nots(depth: int) -> Expr:
    expr: Expr = P(NAME, Op.EQ, "a.exe")
    for _ in range(depth):
        expr = Not(expr)
    return expr


# (why, tree, event document, expected answer, fused)
CASES: list[tuple[str, Expr, dict[str, Any], Any, bool]] = [
    ("one leaf is left as it is", P(NAME, Op.EQ, "cmd.exe"), {NAME: "CMD.EXE"}, True, False),
    (
        "and of equal-tests, folded",
        And((P(NAME, Op.EQ, "cmd.exe"), P(CMD, Op.CONTAINS, "/c"))),
        {NAME: "Cmd.exe", CMD: "cmd /C dir"},
        True,
        True,
    ),
    (
        "and stops at the first false",
        And((P(NAME, Op.EQ, "x.exe"), P(CMD, Op.CONTAINS, "/c"))),
        {NAME: "cmd.exe", CMD: "cmd /c"},
        False,
        True,
    ),
    (
        "a value list is one set test",
        Or((P(NAME, Op.EQ, "a.exe"), P(NAME, Op.EQ, "b.exe"), P(CMD, Op.ENDS_WITH, "x"))),
        {NAME: ["z.exe", "B.EXE"]},
        True,
        True,
    ),
    (
        "a case-sensitive test reads the plain texts",
        And((P(NAME, Op.EQ, "Cmd.exe", cased=True), Not(P(CMD, Op.EQ, "x")))),
        {NAME: "cmd.exe"},
        False,
        True,
    ),
    (
        "not of a missing field's test holds",
        And((P(NAME, Op.EQ, "cmd.exe"), Not(P(CMD, Op.CONTAINS, "whoami")))),
        {NAME: "cmd.exe"},
        True,
        True,
    ),
    (
        "an unknown part keeps the three-valued closures",
        And((P(NAME, Op.EQ, "cmd.exe"), Opaque("x", "computed value"))),
        {NAME: "cmd.exe"},
        None,
        False,
    ),
    (
        "a tree deeper than MAX_DEPTH is left as closures",
        And((nested_nots(MAX_DEPTH + 2), P(CMD, Op.EQ, "x"))),
        {NAME: "a.exe", CMD: "x"},
        True,
        False,
    ),
]


@pytest.mark.parametrize(
    ("why", "tree", "doc", "expected", "fused"), CASES, ids=[c[0] for c in CASES]
)
def test_fused_answers_as_closures(
    why: str, tree: Expr, doc: dict[str, Any], expected: Any, fused: bool
) -> None:
    closures = compile_expr(tree, False)
    one = fuse(closures)
    event = canonical_event("e", doc)
    assert (one is not closures) == fused, why
    assert closures(event) is expected, why
    assert one(event) is expected, why
