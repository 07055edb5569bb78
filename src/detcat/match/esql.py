"""Computing the fields an ES|QL query makes with EVAL.

The ES|QL parser keeps an EVAL'd field's expression as text in the stage's
``params["derived"]`` (``multi_spaces`` -> ``LOCATE(process.command_line,
space(100))``). Here that text is read with the ES|QL grammar into a program
(``match.programs``), fields EVAL'd before it inlined, and computed with ES|QL's
functions below (1-based string positions, ``LIKE`` with ``*`` and ``?``,
``RLIKE`` matching the whole value). What is not an expression of the event's
fields (an aggregation, DISSECT or GROK, a function not listed) stays unknown.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from lark.exceptions import LarkError

from detcat.languages.esql_syntax import N, parse_body
from detcat.match.evaluate import Dialect
from detcat.match.programs import (
    Functions,
    NotComputable,
    Unknown,
    Value,
    case,
    computing,
    first_non_null,
    like,
    mv_count,
    num,
    numeric,
    on_text,
    regex,
    substring,
    text,
    values,
)

MAX_INLINED = 8  # EVAL'd fields read through other EVAL'd fields, at most this deep
MAX_SPACE = 1 << 16  # SPACE(n) longer than this is not built (hostile n)


def esql_dialect(d: Dialect, redefined: list[str]) -> Dialect:
    """``d`` computing the stage's EVAL'd fields (``d.computed``: name -> text). A
    name the query makes twice (``redefined``) is not computed, nor what reads it:
    the text kept is the last, and a filter between the two reads the first."""
    texts = _texts(d.computed, frozenset(redefined))
    return computing(d, lambda name: program(name, texts), FUNCTIONS)


def _texts(derived: dict[str, Any], redefined: frozenset[str]) -> tuple[tuple[str, Any], ...]:
    """The EVAL texts; a name made twice maps to None (it has no program)."""
    return tuple((k, None if k in redefined else v) for k, v in derived.items())


@lru_cache(maxsize=4096)
def program(name: str, derived: tuple[tuple[str, Any], ...], depth: int = 0) -> Any:
    """The program of EVAL'd field ``name``, or None when it has none."""
    source = dict(derived).get(name)
    if not isinstance(source, str) or depth > MAX_INLINED:
        return None
    try:
        return _program(parse_body("where_body", source), name, derived, depth)
    except (LarkError, NotComputable, RecursionError):
        return None


def _program(n: N, name: str, derived: tuple[tuple[str, Any], ...], depth: int) -> list[Any]:
    def sub(x: N) -> list[Any]:
        return _program(x, name, derived, depth)

    match n.kind:
        case "lit":
            return _constant(n.value)
        case "field":
            if n.value != name and any(k == n.value for k, _ in derived):
                inlined = program(n.value, derived, depth + 1)
                if inlined is None:
                    raise NotComputable(n.value)
                return inlined  # type: ignore[no-any-return]
            return ["field", n.value]
        case "call":
            return ["call", n.value, [sub(a) for a in n.args]]
        case "arith":
            return ["arith", [sub(n.args[0]), n.value, sub(n.args[1])]]
        case "signed":
            sign, x = n.args
            return ["neg", sub(x)] if sign == "-" else sub(x)
        case "compare":
            a, op, b = n.args
            return ["cmp", op, sub(a), sub(b)]
        case "and" | "or":
            return [n.kind, [sub(a) for a in n.args]]
        case "not":
            return ["not", sub(n.args[0])]
        case "parens" | "cast":  # a cast keeps the value (see languages/esql.py)
            return sub(n.args[0])
        case "is_null" | "is_not_null" | "like" | "rlike":
            return ["call", n.kind, [sub(a) for a in n.args]]
        case "not_like" | "not_rlike":
            return ["not", ["call", n.kind[4:], [sub(a) for a in n.args]]]
        case "in" | "not_in":
            x, items = n.args
            test = ["in", sub(x), [sub(i) for i in items]]
            return test if n.kind == "in" else ["not", test]
    raise NotComputable(n.kind)


def _constant(v: Any) -> list[Any]:
    if v is None:
        return ["null"]
    if isinstance(v, bool):
        return ["bool", v]
    if isinstance(v, int | float):
        return ["num", v]
    if isinstance(v, str):
        return ["str", v]
    raise NotComputable("constant")


# -- functions -------------------------------------------------------------------------


def _locate(s: Value, sub: Value, start: Value = 1) -> Value:
    """1-based position of ``sub`` in ``s`` from ``start``; 0 when absent."""
    t, u, i = text(s), text(sub), num(start)
    if t is None or u is None or i is None:
        return None
    return t.find(u, max(int(i) - 1, 0)) + 1


def _space(n: Value) -> Value:
    k = num(n)
    if k is None:
        return None
    if k > MAX_SPACE:
        raise Unknown
    return " " * max(int(k), 0)


def _left(s: Value, n: Value) -> Value:
    t, k = text(s), num(n)
    return None if t is None or k is None else t[: max(int(k), 0)]


def _right(s: Value, n: Value) -> Value:
    t, k = text(s), num(n)
    return None if t is None or k is None else t[len(t) - min(max(int(k), 0), len(t)) :]


def _concat(*args: Value) -> Value:
    parts = [text(a) for a in args]
    return None if any(p is None for p in parts) else "".join(parts)  # type: ignore[arg-type]


def _replace(s: Value, pattern: Value, new: Value) -> Value:
    t, rx, by = text(s), regex(pattern), text(new)
    if t is None or rx is None or by is None:
        return None
    if "$" in by or "\\" in by:
        raise Unknown  # group references: Java's spelling, not RE2's
    return rx.sub(lambda _: by, t)


def _affix(test: str) -> Any:
    def fn(s: Value, affix: Value) -> Value:
        t, a = text(s), text(affix)
        return None if t is None or a is None else getattr(t, test)(a)

    return fn


def _rlike(s: Value, pattern: Value) -> Value:
    t, rx = text(s), regex(pattern)
    return None if t is None or rx is None else rx.fullmatch(t) is not None


FUNCTIONS: Functions = {
    "abs": lambda v: numeric(abs, v),
    "case": case,
    "coalesce": first_non_null,
    "concat": _concat,
    "ends_with": _affix("endswith"),
    "is_not_null": lambda v: v is not None,
    "is_null": lambda v: v is None,
    "left": _left,
    "length": on_text(len),
    "like": lambda s, pattern: like(s, pattern, "*", "?", "\\"),
    "locate": _locate,
    "ltrim": on_text(str.lstrip),
    "mv_count": mv_count,
    "mv_first": lambda v: values(v)[0] if values(v) else None,
    "mv_last": lambda v: values(v)[-1] if values(v) else None,
    "replace": _replace,
    "right": _right,
    "rlike": _rlike,
    "rtrim": on_text(str.rstrip),
    "space": _space,
    "starts_with": _affix("startswith"),
    "substring": substring,
    "to_double": lambda v: numeric(float, v),
    "to_integer": lambda v: numeric(int, v),
    "to_long": lambda v: numeric(int, v),
    "to_lower": on_text(str.lower),
    "to_string": lambda v: text(v),
    "to_upper": on_text(str.upper),
    "trim": on_text(str.strip),
}
