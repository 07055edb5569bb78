"""EQL operands while a query is parsed: fields, literals, calls and computed values.

Each operand remembers its span in the query text, so that whatever detcat cannot
express as a predicate becomes an ``Opaque`` carrying the source exactly as written.
The text being parsed lives in ``source`` (a context variable, so that parses in
different threads never see each other's text).
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Any, NamedTuple, TypeAlias

from detcat.languages import wildcards
from detcat.model import Expr, Op, Reason, Value

source: ContextVar[str] = ContextVar("eql_source")


class Field(NamedTuple):
    raw: str
    start: int
    end: int

    def text(self) -> str:
        return source.get()[self.start : self.end]


class Lit(NamedTuple):
    value: Value
    start: int
    end: int

    def text(self) -> str:
        return source.get()[self.start : self.end]


class Call(NamedTuple):
    name: str  # as written, without the "~"
    insensitive: bool  # written with "~"
    args: tuple[Any, ...]
    start: int
    end: int

    def text(self) -> str:
        return source.get()[self.start : self.end]


class Computed(NamedTuple):
    """Arithmetic, a lineage test (``descendant of […]``): never a predicate."""

    start: int
    end: int
    reason: Reason
    detail: str

    def text(self) -> str:
        return source.get()[self.start : self.end]


class Tuple(NamedTuple):
    """A parenthesized list: ``("a", "b")`` after ``:``, ``like``, ``==``…"""

    items: tuple[Any, ...]
    start: int
    end: int

    def text(self) -> str:
        return source.get()[self.start : self.end]


class Group(NamedTuple):
    """A parenthesized boolean expression, kept apart in case it is compared."""

    expr: Expr
    start: int
    end: int

    def text(self) -> str:
        return source.get()[self.start : self.end]


Node: TypeAlias = Field | Lit | Call | Computed | Tuple | Group
NODE_TYPES = (Field, Lit, Call, Computed, Tuple, Group)

# -- literals ------------------------------------------------------------------

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_ESCAPE = re.compile(r"\\(u\{([0-9A-Fa-f]{2,8})\}|.)")


def _unescape(match: re.Match[str]) -> str:
    # An escape EQL does not define stays as written (backslash included).
    if match.group(2):
        code = int(match.group(2), 16)
        return chr(code) if code <= 0x10FFFF else match.group(0)
    char = match.group(1)
    return _ESCAPES.get(char, "\\" + char)


def unescape_string(token: str) -> str:
    """The value of a string token, whichever of the five quotings it uses."""
    if token.startswith('"""'):
        return token[3:-3]
    if token.startswith("?"):
        return token[2:-1]
    body = token[1:-1]
    return _ESCAPE.sub(_unescape, body) if "\\" in body else body


def literal_list(token: str, offset: int, item: re.Pattern[str]) -> tuple[Lit, ...]:
    """The strings and numbers of a ``("a", "b", 4624)`` token, with their spans.
    ``item`` matches a string (group "s"), a number (group "n") or a comment."""
    items = []
    for m in item.finditer(token):
        text = m.group("s")
        if text is not None:
            value: Value = unescape_string(text)
        elif (text := m.group("n")) is not None:
            value = float(text) if "." in text or "e" in text.lower() else int(text)
        else:
            continue
        items.append(Lit(value, offset + m.start(), offset + m.end()))
    return tuple(items)


_BACKQUOTED = re.compile(r"`((?=[^`]|``)[^`]*(?:``[^`]*)*)`")


def unquote_field(token: str) -> str:
    """A field's name: without the optional mark ``?`` or escaping backquotes."""
    name = token[1:] if token.startswith("?") else token
    if "`" in name:
        name = _BACKQUOTED.sub(lambda m: m.group(1).replace("``", "`"), name)
    return name


def classify(value: str) -> tuple[Op, str | None]:
    """Wildcard pattern -> (op, value): ``*x`` ends_with, ``x*`` starts_with, ``*x*``
    contains (values without the outer ``*``), other ``*``/``?`` patterns wildcard, a
    pattern of only ``*`` exists."""
    if "*" not in value and "?" not in value:
        return Op.EQ, value
    # EQL has no escape for a wildcard: every * and ? is one
    return wildcards.classify(wildcards.parts((c, c in "*?") for c in value))
