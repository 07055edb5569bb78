"""Computed values: the programs a query's own fields are computed by.

A language's parser records how a field the query makes is computed from the
event (SPL's ``eval`` and ``rex``: ``languages.spl.computed``, whose docstring
lists the forms; ES|QL's ``EVAL``: ``match.esql`` reads its text); here a program
becomes a function of the event, and a derived predicate on it
(``process_name_length = 5``) a test of the value with the same operators as any
field. The forms are the language's, the semantics mostly shared: a missing field
is null; a function of null gives null; a comparison with null is null, which
``if`` and ``where`` take as false; numbers compare as numbers, strings
case-sensitively. Each language gives its table of functions.

A value this module cannot settle (a multivalue field where one value is
expected, a regex RE2 refuses, a hostile number) is unknown: the test answers
None, as for any part detcat cannot evaluate.
"""

from __future__ import annotations

import inspect
import math
import operator
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from typing import Any

import re2

from detcat.match.evaluate import NULL, Dialect, Test, compile_predicate, number
from detcat.match.events import Event, Scalar
from detcat.model import Op, Opaque, Predicate

Value = Any  # None (null), a scalar, or a list of scalars (a multivalue)
Compute = Callable[[Event], Value]
Resolve = Callable[[str], tuple[str, ...]]
Functions = dict[str, Callable[..., Value]]
_COMPUTED = "\x00computed"  # the computed value's name in a one-field event


class Unknown(Exception):
    """The value cannot be settled on this event."""


class NotComputable(Exception):
    """The program uses something this module does not compute."""


# What computing a value on one event may raise: unknown there (hostile values
# such as inf or huge integers give the arithmetic and value errors)
_UNSETTLED = (Unknown, ArithmeticError, ValueError)


def computing(
    d: Dialect,
    program_of: Callable[[str], Any],
    functions: Functions,
    condition_of: Callable[[str], Any] | None = None,
) -> Dialect:
    """``d`` evaluating the derived predicates whose field ``program_of`` gives a
    program for (None: it has none), and the ``Opaque`` conditions whose text
    ``condition_of`` gives one for, with the language's ``functions``."""
    resolve = d.refs or (lambda raw: (raw,))
    if condition_of is not None:

        def opaque(o: Opaque) -> Test | None:
            prog = condition_of(o.text)
            return None if prog is None else condition_test(prog, resolve, functions)

        d.opaque = opaque

    def derived(p: Predicate) -> Test | None:
        prog = program_of(p.field_raw or "")
        if prog is None:
            return None
        try:
            compute = compile_program(prog, resolve, functions)
        except NotComputable:
            return None
        return computed_test(p, compute, d.full_match)

    d.derived = derived
    return d


def computed_test(p: Predicate, compute: Compute, full_match: bool) -> Test:
    """``p`` on the computed value: the value as the only field of an event; a
    number against a number, a text against a text directly (what that test does,
    without the event)."""
    on_value = compile_predicate(replace(p, field=_COMPUTED, kind=""), full_match)
    order = _NUMERIC_TESTS.get(p.op)
    want = number(p.value) if order else None
    # (a number written as text still compares as a number: "5.0" equals 5)
    affix = _TEXT_TESTS.get(p.op) if isinstance(p.value, str) and want is None else None
    fold = not p.case_sensitive
    text_want = p.value.casefold() if fold and affix else p.value

    def test(ev: Event) -> Any:
        try:
            v = compute(ev)
        except _UNSETTLED:
            return None
        if v is None:  # a missing field fails every test but is_null
            return p.op is Op.IS_NULL
        if want is not None and v.__class__ in (int, float):
            return order(v, want)  # type: ignore[misc]
        if affix is not None and v.__class__ is str:
            return affix(v.casefold() if fold else v, text_want)
        return on_value(Event("", {}, {_COMPUTED: values(v)}))  # a new one: threads share tests

    return test


def condition_test(prog: list[Any], resolve: Resolve, functions: Functions) -> Test | None:
    """A condition's program (``len(user) >= 8``) as a test: true or false as it
    computes; null is NULL (a ``where`` keeps no event on it, negated or not); a
    value that is no truth (``where len(x)``) is unknown. None: not computable."""
    try:
        compute = compile_program(prog, resolve, functions)
    except NotComputable:
        return None

    def test(ev: Event) -> Any:
        try:
            v = compute(ev)
        except _UNSETTLED:
            return None
        if v is None:
            return NULL
        return v if v.__class__ is bool else None

    return test


_NUMERIC_TESTS = {Op.EQ: operator.eq, Op.GT: operator.gt, Op.GTE: operator.ge,
                  Op.LT: operator.lt, Op.LTE: operator.le}  # fmt: skip
_TEXT_TESTS = {Op.EQ: operator.eq, Op.CONTAINS: operator.contains, Op.STARTS_WITH: str.startswith,
               Op.ENDS_WITH: str.endswith}  # fmt: skip


def compile_program(prog: list[Any], resolve: Resolve, functions: Functions) -> Compute:
    """A program as a function of the event; ``resolve`` gives the canonical names
    of a vendor field. Raises ``NotComputable``."""

    def comp(p: list[Any]) -> Compute:
        return compile_program(p, resolve, functions)

    match prog:
        case ["num" | "str" | "bool", constant]:
            return lambda ev: constant
        case ["null"]:
            return lambda ev: None
        case ["field", raw]:
            return _field(resolve(raw))
        case ["call", name, args]:
            fn = functions.get(name)
            if fn is None:
                raise NotComputable(name)
            parts = [comp(a) for a in args]
            try:
                inspect.signature(fn).bind(*parts)
            except TypeError:
                raise NotComputable(f"{name} with {len(parts)} arguments") from None
            return _call(fn, parts)
        case ["arith", items]:
            steps = zip(items[1::2], items[2::2], strict=True)
            return _arith(comp(items[0]), [(op, comp(b)) for op, b in steps])
        case ["neg", a]:
            inner = comp(a)
            return lambda ev: numeric(lambda x: -x, inner(ev))
        case ["not", a]:
            inner = comp(a)
            return lambda ev: None if (v := truth(inner(ev))) is None else not v
        case ["and" | "or" as op, items]:
            parts = [comp(a) for a in items]
            return lambda ev: _logic(op, [truth(part(ev)) for part in parts])
        case ["cmp", op, a, b]:
            left, right = comp(a), comp(b)
            return lambda ev: _compare(op, left(ev), right(ev))
        case ["rex", a, pattern, group]:
            return _rex(comp(a), pattern, group)
        case ["in", a, items]:
            left = comp(a)
            parts = [comp(x) for x in items]
            return lambda ev: _in(left(ev), [part(ev) for part in parts])
    raise NotComputable(repr(prog)[:60])


def _call(fn: Callable[..., Value], parts: list[Compute]) -> Compute:
    """``fn`` of its arguments' values; the common arities without a list per call."""
    match parts:
        case []:
            return lambda ev: fn()
        case [a]:
            return lambda ev: fn(a(ev))
        case [a, b]:
            return lambda ev: fn(a(ev), b(ev))
        case [a, b, c]:
            return lambda ev: fn(a(ev), b(ev), c(ev))
    return lambda ev: fn(*[part(ev) for part in parts])


def _field(names: tuple[str, ...]) -> Compute:
    def read(ev: Event) -> Value:
        found = [v for name in names for v in ev.get(name) or () if v is not None]
        if not found:
            return None
        return found[0] if len(found) == 1 else found

    return read


def _rex(source: Compute, pattern: str, group: str) -> Compute:
    rx = _compiled(pattern)
    if rx is None:
        raise NotComputable(f"rex {pattern!r}: RE2 cannot run it")
    if group not in rx.groupindex:
        raise NotComputable(f"rex {pattern!r} has no group {group!r}")

    def compute(ev: Event) -> Value:
        s = text(source(ev))
        m = None if s is None else rx.search(s)
        return None if m is None else m.group(group)

    return compute


def _arith(first: Compute, rest: list[tuple[str, Compute]]) -> Compute:
    def compute(ev: Event) -> Value:
        acc = first(ev)
        for op, part in rest:
            acc = _apply(op, acc, part(ev))
        return acc

    return compute


def _apply(op: str, a: Value, b: Value) -> Value:
    """``+ - * / %`` on numbers (``+`` also joins two strings), ``.`` joins texts."""
    if op == ".":
        x, y = text(a), text(b)
        return None if x is None or y is None else x + y
    m, n = num(a), num(b)
    if m is None or n is None:
        s, t = one(a), one(b)
        return s + t if op == "+" and isinstance(s, str) and isinstance(t, str) else None
    if op == "+":
        return m + n
    if op == "-":
        return m - n
    if op == "*":
        return m * n
    if n == 0:
        return None
    return m / n if op == "/" else math.fmod(m, n)


def _logic(op: str, found: list[bool | None]) -> bool | None:
    if op == "and":
        return False if False in found else None if None in found else True
    return True if True in found else None if None in found else False


_ORDER = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
          ">": operator.gt, ">=": operator.ge}  # fmt: skip


def _compare(op: str, a: Value, b: Value) -> bool | None:
    """Numbers numerically, else strings, case-sensitively (``=~``: ignoring case);
    null gives null."""
    x, y = one(a), one(b)
    if x is None or y is None:
        return None
    nx, ny = num(x), num(y)
    if nx is not None and ny is not None:
        return _ORDER["==" if op == "=~" else op](nx, ny)
    s, t = text(x), text(y)
    if op == "=~":
        return s.casefold() == t.casefold()  # type: ignore[union-attr]
    return _ORDER[op](s, t)


def _in(v: Value, items: list[Value]) -> bool | None:
    return None if one(v) is None else any(_compare("==", v, i) for i in items)


# -- values, as functions read them ----------------------------------------------------


def one(v: Value) -> Scalar:
    """A single value: a multivalue with several is not one (unknown)."""
    if isinstance(v, list):
        if len(v) > 1:
            raise Unknown
        return v[0] if v else None
    return v


def values(v: Value) -> list[Scalar]:
    """A value as the list of its values (null: none)."""
    return v if isinstance(v, list) else [] if v is None else [v]


def text(v: Value) -> str | None:
    v = one(v)
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def num(v: Value) -> int | float | None:
    """A number, or the number a text spells (``0x1F`` too); otherwise None."""
    v = one(v)
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return v
    try:
        return int(v, 0) if v.strip().lower().startswith(("0x", "-0x")) else float(v)
    except ValueError:
        return None


def truth(v: Value) -> bool | None:
    v = one(v)
    return v if isinstance(v, bool) or v is None else bool(v)


def numeric(fn: Callable[[Any], Any], v: Value) -> Value:
    n = num(v)
    return None if n is None else fn(n)


def regex(pattern: Value) -> Any:
    """A compiled pattern; a pattern RE2 refuses is not settled here."""
    p = text(pattern)
    if p is None:
        return None
    rx = _compiled(p)
    if rx is None:
        raise Unknown
    return rx


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    """Patterns are mostly constants of the query: compiled once, not per event.
    A pattern RE2 refuses is expected (PCRE, Java): None, and nothing logged."""
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error:
        return None


def on_text(fn: Callable[[str], Any]) -> Callable[[Value], Value]:
    """``fn`` of a value's text; null stays null."""
    return lambda v: None if (s := text(v)) is None else fn(s)


def mv_count(v: Value) -> Value:
    """How many values (null: null)."""
    return None if v is None else len(values(v))


def first_non_null(*args: Value) -> Value:
    return next((v for v in args if v is not None), None)


def case(*args: Value) -> Value:
    """The value after the first true condition (``cond, value, …``); an odd last
    argument is the default."""
    for cond, value in zip(args[::2], args[1::2], strict=False):
        if truth(cond):
            return value
    return args[-1] if len(args) % 2 else None


def substring(s: Value, start: Value, length: Value = None) -> Value:
    """From 1-based ``start`` (negative: from the end), ``length`` characters or all."""
    t, i = text(s), num(start)
    if t is None or i is None:
        return None
    i = int(i)
    begin = i - 1 if i > 0 else max(len(t) + i, 0) if i < 0 else 0
    n = num(length)
    return t[begin:] if length is None or n is None else t[begin : begin + max(int(n), 0)]


def like(s: Value, pattern: Value, many: str, single: str, escape: str = "") -> Value:
    """Whether the whole text of ``s`` matches a LIKE ``pattern``: ``many`` is any
    run, ``single`` one character, ``escape`` (when given) quotes the next one."""
    t, p = text(s), text(pattern)
    if t is None or p is None:
        return None
    body, chars = [], iter(p)
    for c in chars:
        if escape and c == escape:
            body.append(re2.escape(next(chars, escape)))
        else:
            body.append(".*" if c == many else "." if c == single else re2.escape(c))
    return regex("(?s)" + "".join(body)).fullmatch(t) is not None
