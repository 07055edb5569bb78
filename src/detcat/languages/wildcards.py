"""Wildcard patterns -> the model's operators, for every language that has them.

Each parser decodes its own pattern syntax (Sigma's ``SpecialChars``, KQL's
unquoted ``*``, ES|QL ``LIKE``, SPL search values and ``like()``) into *parts*:
literal text and ``Wild`` positions. ``classify`` then says what the pattern
means, once for all of them (model.py's contract):

- no wildcard: ``eq`` the text; only ``*``: ``exists``;
- ``*x`` ``ends_with`` x, ``x*`` ``starts_with`` x, ``*x*`` ``contains`` x
  (literal text, so a literal ``*`` in x is just a character);
- any other placement: ``wildcard`` in the model's spelling, ``*`` any run and
  ``?`` one character with **no escapes**; a pattern whose literal text holds a
  ``*`` or ``?`` cannot be spelled that way and becomes an anchored
  ``regex_match`` instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from enum import Enum
from typing import TypeAlias

from detcat.model import Op


class Wild(Enum):
    """A wildcard position: ``ANY`` any run of characters, ``ONE`` one character."""

    ANY = "*"
    ONE = "?"


Part: TypeAlias = str | Wild


def parts(chars: Iterable[tuple[str, bool]]) -> tuple[Part, ...]:
    """Parts from (character, is-wildcard) pairs, adjacent literals joined."""
    out: list[Part] = []
    buf: list[str] = []
    for c, wild in chars:
        if wild:
            if buf:
                out.append("".join(buf))
                buf = []
            out.append(Wild(c))
        else:
            buf.append(c)
    if buf:
        out.append("".join(buf))
    return tuple(out)


def classify(pattern: Sequence[Part]) -> tuple[Op, str | None]:
    """(op, value) of a pattern (see the module docstring); ``exists`` has None."""
    pattern = _squeeze(pattern)
    if not any(isinstance(p, Wild) for p in pattern):
        return Op.EQ, "".join(pattern)  # type: ignore[arg-type]
    if all(p is Wild.ANY for p in pattern):
        return Op.EXISTS, None
    lo, hi = 0, len(pattern)
    while lo < hi and pattern[lo] is Wild.ANY:
        lo += 1
    while hi > lo and pattern[hi - 1] is Wild.ANY:
        hi -= 1
    core = pattern[lo:hi]
    if any(isinstance(p, Wild) for p in core):
        if any("*" in p or "?" in p for p in pattern if isinstance(p, str)):
            return Op.REGEX_MATCH, as_regex(pattern)
        return Op.WILDCARD, render(pattern)
    text = "".join(core)  # type: ignore[arg-type]
    if lo and hi < len(pattern):
        return Op.CONTAINS, text
    return (Op.ENDS_WITH if lo else Op.STARTS_WITH), text


def render(pattern: Sequence[Part]) -> str:
    """The model's wildcard spelling: ``*``/``?`` wild, literal text as is."""
    return "".join(p.value if isinstance(p, Wild) else p for p in pattern)


def as_regex(pattern: Sequence[Part]) -> str:
    """The anchored regex of a pattern (literals through ``re.escape``)."""
    body = "".join(
        re.escape(p) if isinstance(p, str) else ".*" if p is Wild.ANY else "." for p in pattern
    )
    return f"^{body}$"


def keyword(pattern: Sequence[Part]) -> str:
    """A field-less search term: it matches anywhere, so outer ``*`` add nothing."""
    pattern = list(_squeeze(pattern))
    while pattern and pattern[0] is Wild.ANY:
        pattern.pop(0)
    while pattern and pattern[-1] is Wild.ANY:
        pattern.pop()
    return render(pattern)


def _squeeze(pattern: Sequence[Part]) -> tuple[Part, ...]:
    """``**`` matches what ``*`` matches: one spelling; empty literals dropped."""
    out: list[Part] = []
    for p in pattern:
        if p == "" or (p is Wild.ANY and out and out[-1] is Wild.ANY):
            continue
        out.append(p)
    return tuple(out)
