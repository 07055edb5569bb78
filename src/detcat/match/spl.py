"""Computing the fields an SPL query makes with eval.

``languages.spl.computed`` records, in a stage's ``params["computed"]``, how each
eval'd field a filter reads is computed from the event's fields. Here such a
program becomes a function of the event, and a derived predicate
(``process_name_length = 5``) a test of its value with the same operators as any
field. SPL's eval semantics: a missing field is null; functions of null give
null; a comparison with null is null, which ``if`` and ``where`` take as false;
``+`` adds numbers and joins strings; string comparisons are case-sensitive.

A value this module cannot settle (a multivalue field where one value is
expected, a regex RE2 refuses) is unknown: the test answers None, as before.
"""

from __future__ import annotations

import inspect
import math
import operator
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import re2

from detcat.match.evaluate import Dialect, Test, compile_predicate
from detcat.match.events import Event, Scalar
from detcat.model import Predicate

Value = Any  # None (null), a scalar, or a list of scalars (a multivalue)
Compute = Callable[[Event], Value]
_COMPUTED = "\x00computed"  # the computed value's name in a one-field event


class Unknown(Exception):
    """The value cannot be settled on this event."""


class NotComputable(Exception):
    """The program uses something this module does not compute."""


def spl_dialect(d: Dialect, programs: dict[str, Any]) -> Dialect:
    """``d`` computing the eval'd fields of ``programs`` (name -> program)."""
    resolve = d.refs or (lambda raw: (raw,))

    def derived(p: Predicate) -> Test | None:
        prog = programs.get(p.field_raw or "")
        if prog is None:
            return None
        try:
            compute = compile_program(prog, resolve)
        except NotComputable:
            return None
        return _test(p, compute, d.full_match)

    d.derived = derived
    return d


def _test(p: Predicate, compute: Compute, full_match: bool) -> Test:
    """``p`` on the computed value: the value as the only field of an event."""
    on_value = compile_predicate(replace(p, field=_COMPUTED, kind=""), full_match)

    def test(ev: Event) -> Any:
        try:
            v = compute(ev)
        except (Unknown, ArithmeticError, ValueError):  # hostile values: inf, huge ints
            return None
        return on_value(Event("", {}, {_COMPUTED: _values(v)}))

    return test


def compile_program(prog: list[Any], resolve: Callable[[str], tuple[str, ...]]) -> Compute:
    """A program (``languages.spl.computed``) as a function of the event; ``resolve``
    gives the canonical names of a vendor field. Raises ``NotComputable``."""
    match prog:
        case ["num", n]:
            return lambda ev: n
        case ["str", s]:
            return lambda ev: s
        case ["null"]:
            return lambda ev: None
        case ["field", raw]:
            return _field(resolve(raw))
        case ["call", name, args]:
            fn = FUNCTIONS.get(name)
            if fn is None:
                raise NotComputable(name)
            parts = [compile_program(a, resolve) for a in args]
            try:
                inspect.signature(fn).bind(*parts)
            except TypeError:
                raise NotComputable(f"{name} with {len(parts)} arguments") from None
            return lambda ev: fn(*[part(ev) for part in parts])
        case ["arith", items]:
            return _arith(items, resolve)
        case ["neg", a]:
            inner = compile_program(a, resolve)
            return lambda ev: _numeric(lambda x: -x, inner(ev))
        case ["not", a]:
            inner = compile_program(a, resolve)
            return lambda ev: None if (v := _truth(inner(ev))) is None else not v
        case ["and" | "or" as op, items]:
            parts = [compile_program(a, resolve) for a in items]
            return lambda ev: _logic(op, [_truth(part(ev)) for part in parts])
        case ["cmp", op, a, b]:
            left, right = compile_program(a, resolve), compile_program(b, resolve)
            return lambda ev: _compare(op, left(ev), right(ev))
        case ["rex", a, regex, group]:
            return _rex(compile_program(a, resolve), regex, group)
        case ["in", a, items]:
            left = compile_program(a, resolve)
            parts = [compile_program(x, resolve) for x in items]
            return lambda ev: _in(left(ev), [part(ev) for part in parts])
    raise NotComputable(repr(prog)[:60])


def _field(names: tuple[str, ...]) -> Compute:
    def read(ev: Event) -> Value:
        values = [v for name in names for v in ev.get(name) or () if v is not None]
        if not values:
            return None
        return values[0] if len(values) == 1 else values

    return read


def _rex(source: Compute, regex: str, group: str) -> Compute:
    try:
        rx = re2.compile(regex)
    except re2.error:
        raise NotComputable(f"rex {regex!r}: RE2 cannot run it") from None
    if group not in rx.groupindex:
        raise NotComputable(f"rex {regex!r} has no group {group!r}")

    def compute(ev: Event) -> Value:
        text = _text(source(ev))
        m = None if text is None else rx.search(text)
        return None if m is None else m.group(group)

    return compute


# -- values --------------------------------------------------------------------------


def _one(v: Value) -> Scalar:
    """A single value: a multivalue with several is not one (unknown)."""
    if isinstance(v, list):
        if len(v) > 1:
            raise Unknown
        return v[0] if v else None
    return v


def _text(v: Value) -> str | None:
    v = _one(v)
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _num(v: Value) -> int | float | None:
    v = _one(v)
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return v
    try:
        return int(v, 0) if v.strip().lower().startswith(("0x", "-0x")) else float(v)
    except ValueError:
        return None


def _truth(v: Value) -> bool | None:
    v = _one(v)
    return v if isinstance(v, bool) or v is None else bool(v)


def _numeric(fn: Callable[[Any], Any], v: Value) -> Value:
    n = _num(v)
    return None if n is None else fn(n)


def _logic(op: str, values: list[bool | None]) -> bool | None:
    if op == "and":
        return False if False in values else None if None in values else True
    return True if True in values else None if None in values else False


_ORDER = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
          ">": operator.gt, ">=": operator.ge}  # fmt: skip


def _compare(op: str, a: Value, b: Value) -> bool | None:
    """Numbers numerically, else strings, case-sensitively; null gives null."""
    x, y = _one(a), _one(b)
    if x is None or y is None:
        return None
    nx, ny = _num(x), _num(y)
    if nx is not None and ny is not None:
        return _ORDER[op](nx, ny)
    return _ORDER[op](_text(x), _text(y))


def _in(v: Value, items: list[Value]) -> bool | None:
    return None if _one(v) is None else any(_compare("==", v, i) for i in items)


def _arith(items: list[Any], resolve: Callable[[str], tuple[str, ...]]) -> Compute:
    first = compile_program(items[0], resolve)
    rest = [
        (op, compile_program(b, resolve)) for op, b in zip(items[1::2], items[2::2], strict=True)
    ]

    def compute(ev: Event) -> Value:
        acc = first(ev)
        for op, part in rest:
            acc = _apply(op, acc, part(ev))
        return acc

    return compute


def _apply(op: str, a: Value, b: Value) -> Value:
    if op == ".":
        x, y = _text(a), _text(b)
        return None if x is None or y is None else x + y
    x, y = _num(a), _num(b)
    if x is None or y is None:
        s, t = _one(a), _one(b)
        return s + t if op == "+" and isinstance(s, str) and isinstance(t, str) else None
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    if y == 0:
        return None
    return x / y if op == "/" else math.fmod(x, y)


# -- functions -------------------------------------------------------------------------


def _if(cond: Value, yes: Value, no: Value) -> Value:
    return yes if _truth(cond) else no


def _case(*args: Value) -> Value:
    for cond, value in zip(args[::2], args[1::2], strict=False):
        if _truth(cond):
            return value
    return None


def _substr(s: Value, start: Value, length: Value = None) -> Value:
    text, i = _text(s), _num(start)
    if text is None or i is None:
        return None
    i = int(i)
    begin = i - 1 if i > 0 else max(len(text) + i, 0) if i < 0 else 0
    n = _num(length)
    return text[begin:] if length is None or n is None else text[begin : begin + max(int(n), 0)]


def _split(s: Value, sep: Value) -> Value:
    text, by = _text(s), _text(sep)
    if text is None or by is None:
        return None
    return text.split(by) if by else list(text)


def _mvcount(v: Value) -> Value:
    return None if v is None else len(v) if isinstance(v, list) else 1


def _mvindex(v: Value, start: Value, end: Value = None) -> Value:
    items = _values(v)
    i, j = _num(start), _num(end)
    if not items or i is None:
        return None
    if end is None:
        i = int(i)
        return items[i] if -len(items) <= i < len(items) else None
    if j is None:
        return None
    got = items[int(i) : (int(j) + 1) or None]
    return got[0] if len(got) == 1 else got or None


def _values(v: Value) -> list[Scalar]:
    return v if isinstance(v, list) else [] if v is None else [v]


def _mvfind(v: Value, pattern: Value) -> Value:
    rx = _regex(pattern)
    if rx is None:
        return None
    texts = [_text(x) for x in _values(v)]
    return next((i for i, t in enumerate(texts) if t is not None and rx.search(t)), None)


def _mvjoin(v: Value, delimiter: Value) -> Value:
    by = _text(delimiter)
    items = [_text(x) for x in _values(v)]
    return None if by is None or not items else by.join(t for t in items if t is not None)


def _regex(pattern: Value) -> Any:
    text = _text(pattern)
    if text is None:
        return None
    try:
        return re2.compile(text)
    except re2.error:
        raise Unknown from None  # PCRE that RE2 refuses: not settled here


def _match(s: Value, pattern: Value) -> Value:
    text, rx = _text(s), _regex(pattern)
    return None if text is None or rx is None else rx.search(text) is not None


def _replace(s: Value, pattern: Value, repl: Value) -> Value:
    text, rx, by = _text(s), _regex(pattern), _text(repl)
    if text is None or rx is None or by is None:
        return None
    if "\\" in by:
        raise Unknown  # back-references are spelled differently in SPL and RE2
    return rx.sub(lambda _: by, text)


def _like(s: Value, pattern: Value) -> Value:
    text, pat = _text(s), _text(pattern)
    if text is None or pat is None:
        return None
    body = "".join(".*" if c == "%" else "." if c == "_" else re2.escape(c) for c in pat)
    return re2.fullmatch(f"(?s){body}", text) is not None


def _tonumber(v: Value, base: Value = None) -> Value:
    if base is None:
        return _num(v)
    text, b = _text(v), _num(base)
    try:
        return None if text is None or b is None else int(text, int(b))
    except ValueError:
        return None


def _trim(strip: Callable[[str, str | None], str]) -> Callable[..., Value]:
    def fn(v: Value, chars: Value = None) -> Value:
        text = _text(v)
        return None if text is None else strip(text, _text(chars) if chars is not None else None)

    return fn


def _text_fn(fn: Callable[[str], Any]) -> Callable[[Value], Value]:
    return lambda v: None if (text := _text(v)) is None else fn(text)


FUNCTIONS: dict[str, Callable[..., Value]] = {
    "abs": lambda v: _numeric(abs, v),
    "case": _case,
    "coalesce": lambda *vs: next((v for v in vs if v is not None), None),
    "if": _if,
    "isnotnull": lambda v: v is not None,
    "isnull": lambda v: v is None,
    "len": _text_fn(len),
    "like": _like,
    "lower": _text_fn(str.lower),
    "ltrim": _trim(str.lstrip),
    "match": _match,
    "mvcount": _mvcount,
    "mvfind": _mvfind,
    "mvindex": _mvindex,
    "mvjoin": _mvjoin,
    "replace": _replace,
    "rtrim": _trim(str.rstrip),
    "split": _split,
    "substr": _substr,
    "tonumber": _tonumber,
    "tostring": lambda v, *_: _text(v),
    "trim": _trim(str.strip),
    "upper": _text_fn(str.upper),
    "true": lambda: True,
    "false": lambda: False,
}
