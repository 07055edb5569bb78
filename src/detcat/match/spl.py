"""Computing the fields an SPL query makes with eval and rex.

``languages.spl.computed`` records, in a stage's ``params["computed"]``, how each
eval'd field a filter reads is computed from the event's fields; ``match.programs``
runs it, with SPL's functions below: ``+`` also joins strings, ``.`` joins texts,
string comparisons are case-sensitive (``search`` compares the computed value as it
compares any field: ignoring case).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from detcat.match.evaluate import Dialect
from detcat.match.programs import (
    Functions,
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
    truth,
    values,
)


def spl_dialect(d: Dialect, programs: dict[str, Any], conditions: dict[str, Any]) -> Dialect:
    """``d`` computing the eval'd fields of ``programs`` (name -> program) and the
    conditions kept ``Opaque`` of ``conditions`` (text -> program)."""
    return computing(d, programs.get, FUNCTIONS, conditions.get)


# -- functions -------------------------------------------------------------------------


def _if(cond: Value, yes: Value, no: Value) -> Value:
    return yes if truth(cond) else no


def _split(s: Value, sep: Value) -> Value:
    t, by = text(s), text(sep)
    if t is None or by is None:
        return None
    return t.split(by) if by else list(t)


def _mvindex(v: Value, start: Value, end: Value = None) -> Value:
    items = values(v)
    i, j = num(start), num(end)
    if not items or i is None:
        return None
    if end is None:
        i = int(i)
        return items[i] if -len(items) <= i < len(items) else None
    if j is None:
        return None
    got = items[int(i) : (int(j) + 1) or None]
    return got[0] if len(got) == 1 else got or None


def _mvfind(v: Value, pattern: Value) -> Value:
    rx = regex(pattern)
    if rx is None:
        return None
    texts = [text(x) for x in values(v)]
    return next((i for i, t in enumerate(texts) if t is not None and rx.search(t)), None)


def _mvjoin(v: Value, delimiter: Value) -> Value:
    by = text(delimiter)
    items = [text(x) for x in values(v)]
    return None if by is None or not items else by.join(t for t in items if t is not None)


def _match(s: Value, pattern: Value) -> Value:
    t, rx = text(s), regex(pattern)
    return None if t is None or rx is None else rx.search(t) is not None


def _replace(s: Value, pattern: Value, repl: Value) -> Value:
    t, rx, by = text(s), regex(pattern), text(repl)
    if t is None or rx is None or by is None:
        return None
    if "\\" in by:
        raise Unknown  # back-references are spelled differently in SPL and RE2
    return rx.sub(lambda _: by, t)


def _tonumber(v: Value, base: Value = None) -> Value:
    if base is None:
        return num(v)
    t, b = text(v), num(base)
    try:
        return None if t is None or b is None else int(t, int(b))
    except ValueError:
        return None


def _trim(strip: Callable[[str, str | None], str]) -> Callable[..., Value]:
    def fn(v: Value, chars: Value = None) -> Value:
        t = text(v)
        return None if t is None else strip(t, text(chars) if chars is not None else None)

    return fn


FUNCTIONS: Functions = {
    "abs": lambda v: numeric(abs, v),
    "case": case,
    "coalesce": first_non_null,
    "if": _if,
    "isnotnull": lambda v: v is not None,
    "isnull": lambda v: v is None,
    "len": on_text(len),
    "like": lambda s, pattern: like(s, pattern, "%", "_"),
    "lower": on_text(str.lower),
    "ltrim": _trim(str.lstrip),
    "match": _match,
    "mvcount": mv_count,
    "mvfind": _mvfind,
    "mvindex": _mvindex,
    "mvjoin": _mvjoin,
    "replace": _replace,
    "rtrim": _trim(str.rstrip),
    "split": _split,
    "substr": substring,
    "tonumber": _tonumber,
    "tostring": lambda v, *_: text(v),
    "trim": _trim(str.strip),
    "upper": on_text(str.upper),
    "true": lambda: True,
    "false": lambda: False,
}
