"""Kibana Query Language (KQL) -> Expr.

``kql.parse(text)`` reads one KQL query. Semantics kept from Kibana:

- ``field:value`` compares case-insensitively in practice (Elastic rules use
  keyword fields with case-insensitive normalizers or lowercase values), so
  ``case_sensitive=False``; ``syntax=":"``.
- Unquoted values: ``*`` is the only wildcard; ``*x`` ends_with, ``x*``
  starts_with, ``*x*`` contains, other placements wildcard; a bare ``*`` is
  exists. Quoted values never hold wildcards (``"a*"`` is the literal ``a*``).
- Escapes: ``\\*`` ``\\\\`` ``\\:`` ``\\"`` ``\\(`` … stay literal, ``\\t``
  ``\\n`` ``\\r`` are whitespace, ``\\uXXXX`` a code point, ``\\or`` the word.
- ``field:(a or b and not c)`` distributes the field over the value tree.
- ``field >= n``: gt/gte/lt/lte, numeric values where the literal is a number.
- ``parent:{ child: v }`` (nested query): the child field is ``parent.child``.
- A value with no field is free text: op ``keyword`` with no field.

KQL has no comments; ``/*`` and ``*/`` are ordinary value characters.

Speed: lark's LALR driver costs more per token than the regex that reads it,
and half of the text of real queries is ``field:(v1 or v2 or …)`` lists; the
grammar reads such a list of plain values as one VALUE_LIST token (see
kql.lark), and ``parse(text, value_lists=False)`` takes the general rule.
"""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedInput

from detcat.languages.lalr import lalr, unexpected
from detcat.languages.wildcards import Part, Wild, classify, keyword
from detcat.model import (
    Expr,
    Not,
    Op,
    Predicate,
    QueryError,
    and_,
    depth_limited,
    map_predicates,
    or_,
)

SYNTAX = ":"
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|or|and|not|.)", re.IGNORECASE | re.DOTALL)
_WHITESPACE_ESCAPES = {"t": "\t", "n": "\n", "r": "\r"}
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_CIDR = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}/\d{1,2}|[0-9a-fA-F]*:[0-9a-fA-F:.]*/\d{1,3}")
_RANGE_OPS = {">": Op.GT, ">=": Op.GTE, "<": Op.LT, "<=": Op.LTE}
# The words of a VALUE_LIST token (see kql.lark): values at even positions, "or" between.
_LIST_WORD = re.compile(r'"(?:\\.|[^"\\])*"|(?:\\u[0-9a-fA-F]{4}|\\.|[^\\\s()])+', re.S)


WILD = Wild.ANY  # KQL's only wildcard (``?`` is ES|QL's LIKE only)


class Value(NamedTuple):
    """A KQL value as segments: literal text and ``WILD`` for each wildcard.
    (A NamedTuple: one is made per value token, and tuples are made fastest.)"""

    parts: tuple[Part, ...]
    quoted: bool
    start: int = -1  # offsets of an unquoted word in the query text
    end: int = -1


def _unescape(m: re.Match[str]) -> str:
    esc = m.group(1)
    if len(esc) == 5 and esc[0] in "uU":
        return chr(int(esc[1:], 16))
    return _WHITESPACE_ESCAPES.get(esc, esc)


def unquoted_value(text: str) -> Value:
    """Split an unquoted literal into text and wildcard segments."""
    if "\\" not in text:  # the common case: no escapes, split at the stars
        if "*" not in text:
            return Value((text,), quoted=False)
        pieces = text.split("*")
        it: list[Part] = [pieces[0]]
        for piece in pieces[1:]:
            it.extend((WILD, piece))
        return Value(tuple(p for p in it if p != ""), quoted=False)
    parts: list[Part] = []
    buf: list[str] = []
    pos = 0
    for m in re.finditer(r"\\(?:u[0-9a-fA-F]{4}|or|and|not|.)|\*", text, re.I | re.S):
        buf.append(text[pos : m.start()])
        if m.group() == "*":
            parts.extend(("".join(buf), WILD))
            buf = []
        else:
            buf.append(_ESCAPE.sub(_unescape, m.group()))
        pos = m.end()
    buf.append(text[pos:])
    parts.append("".join(buf))
    return Value(tuple(p for p in parts if p != ""), quoted=False)


def quoted_value(token: str) -> Value:
    """A quoted string: ``\\"`` and ``\\\\`` unescape, other backslashes stay."""
    body = token[1:-1]
    if "\\" in body:
        body = re.sub(r"\\(u[0-9a-fA-F]{4}|[trn\\\"])", _quoted_unescape, body)
    return Value((body,) if body else (), quoted=True)


def _quoted_unescape(m: re.Match[str]) -> str:
    esc = m.group(1)
    if len(esc) == 5:
        return chr(int(esc[1:], 16))
    return _WHITESPACE_ESCAPES.get(esc, esc)


def literal_text(v: Value) -> str:
    return "".join(p.value if isinstance(p, Wild) else p for p in v.parts)


def value_predicate(field: str, v: Value, syntax: str = SYNTAX) -> Predicate:
    if len(v.parts) == 1 and not isinstance(v.parts[0], Wild):  # plain text: most values
        text = v.parts[0]
        # on an ip field (the only kind a CIDR block can match) `:` is a CIDR match
        op = Op.CIDR if "/" in text and _CIDR.fullmatch(text) else Op.EQ
        return Predicate(field, op, text, syntax)
    if v.parts and all(p is WILD for p in v.parts):
        return Predicate(field, Op.EXISTS, True, syntax)
    op, value = classify(v.parts) if not v.quoted else (Op.EQ, "".join(v.parts))  # type: ignore[arg-type]
    return Predicate(field, op, value, syntax)


def keyword_predicate(v: Value) -> Predicate:
    """Free text matches anywhere: surrounding wildcards add nothing."""
    return Predicate(None, Op.KEYWORD, keyword(v.parts), "")


def number(text: str) -> int | float | str:
    if not _NUMBER.fullmatch(text):
        return text
    try:
        return int(text)
    except ValueError:
        return float(text)


# The query being parsed, for the rare value spanning several words; lark's
# inline transformer is shared, so the text is kept per thread.
_state = threading.local()


class _Values(NamedTuple):
    """A boolean combination of values inside ``field:( … )``, before the
    field is known: ``op`` is "or", "and" or "not"."""

    op: str
    children: tuple[Value | _Values, ...]


_COMBINE = {"or": or_, "and": and_}


def apply_field(field: str, tree: Value | _Values) -> Expr:
    if isinstance(tree, Value):
        return value_predicate(field, tree)
    if tree.op == "not":
        return Not(apply_field(field, tree.children[0]))
    return _COMBINE[tree.op](*(apply_field(field, c) for c in tree.children))


class _ToExpr(Transformer[Token, Any]):
    def QUOTED(self, tok: Token) -> Value:  # noqa: N802 - lark terminal callback
        return quoted_value(str(tok))

    def UNQUOTED(self, tok: Token) -> Value:  # noqa: N802 - lark terminal callback
        v = unquoted_value(str(tok))
        return Value(v.parts, False, tok.start_pos, tok.end_pos)

    def FIELD(self, tok: Token) -> str:  # noqa: N802 - lark terminal callback
        name = tok.value[:-1].rstrip()
        return literal_text(quoted_value(name) if name[0] == '"' else unquoted_value(name))

    def VALUE_LIST(self, tok: Token) -> _Values:  # noqa: N802 - lark terminal callback
        words = _LIST_WORD.findall(tok.value, 1, len(tok.value) - 1)
        values = [quoted_value(w) if w[0] == '"' else unquoted_value(w) for w in words[::2]]
        return _Values("or", tuple(values))

    def or_query(self, children: list[Expr]) -> Expr:
        return or_(*children)

    def and_query(self, children: list[Expr]) -> Expr:
        return and_(*children)

    def not_query(self, children: list[Expr]) -> Expr:
        return Not(children[0])

    def values_or(self, children: list[Value | _Values]) -> _Values:
        return _Values("or", tuple(children))

    def values_and(self, children: list[Value | _Values]) -> _Values:
        return _Values("and", tuple(children))

    def values_not(self, children: list[Value | _Values]) -> _Values:
        return _Values("not", tuple(children))

    def field(self, children: list[Value]) -> str:
        return literal_text(children[0])

    def value(self, children: list[Value]) -> Value:
        return _join(children)

    free_value = value

    def free_text(self, children: list[Value]) -> Expr:
        return keyword_predicate(children[0])

    def field_value(self, children: list[Any]) -> Expr:
        return apply_field(children[0], children[1])

    def nested(self, children: list[Any]) -> Expr:
        parent, tree = children
        return map_predicates(  # type: ignore[no-any-return]
            tree,
            lambda p: replace(p, field_raw=f"{parent}.{p.field_raw}") if p.field_raw else p,
        )

    def range(self, children: list[Any]) -> Expr:
        field, op, lit = children
        raw = literal_text(lit)
        value = raw if lit.quoted and not _NUMBER.fullmatch(raw) else number(raw)
        return Predicate(field, _RANGE_OPS[str(op)], value, str(op))


def _join(values: list[Value]) -> Value:
    """Adjacent unquoted words form one value, inner whitespace kept as written
    (Kibana reads ``a b`` as the single value "a b")."""
    if len(values) == 1:
        return values[0]
    return unquoted_value(_state.text[values[0].start : values[-1].end])


@cache
def _parser(value_lists: bool = True) -> Lark:
    grammar = (Path(__file__).with_name("kql.lark")).read_text()
    if not value_lists:
        grammar = grammar.replace("| VALUE_LIST", "")
    return lalr(grammar, accelerate=True, transformer=_ToExpr(), maybe_placeholders=False)


@depth_limited
def parse(text: str, *, value_lists: bool = True) -> Expr:
    """Parse one KQL query; ``QueryError`` (1-based line/column) if unreadable.

    ``value_lists=False`` reads ``(a or b)`` value lists through the general
    grammar rule instead of the VALUE_LIST token (tests check both agree)."""
    if not text.strip():
        raise QueryError("empty KQL query", 1, 1)
    _state.text = text
    try:
        return _parser(value_lists).parse(text)  # type: ignore[no-any-return]
    except UnexpectedInput as e:
        message = unexpected(e, text, "KQL")
        line, col = _end(text) if message.endswith("end of query") else (e.line, e.column)
        raise QueryError(message, line, col) from None


def _end(text: str) -> tuple[int, int]:
    """Line and column just past the last character of a query."""
    body = text.rstrip()
    return body.count("\n") + 1, len(body) - (body.rfind("\n") + 1) + 1
