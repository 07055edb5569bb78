"""ES|QL text -> commands, items and expression nodes (``N``): the reading
side of the ES|QL parser; esql.py gives it meaning.

- ``split_commands(text)``: the commands of a query, split at pipes outside
  strings and comments.
- ``split_items(body)``: the ``[name =] expression`` items of an EVAL or STATS
  body and the STATS groups after BY, by a scanner (brackets and strings
  checked), without parsing the expressions.
- ``parse_body(start, body)``: one command body read with its start symbol of
  esql.lark: index patterns, rename pairs, or a tree of ``N`` nodes whose
  ``start``/``end`` index the body, so that esql.py can quote the source of
  anything it cannot turn into predicates.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple, TypeAlias

from lark import Lark, Token, Transformer

from detcat.errors import DetcatError
from detcat.languages.lalr import lalr

# Strings, names and comments are "unrolled loops" (runs of one character class):
# re keeps state per repetition of an alternation, ~100 bytes per character.
_STRING_ESCAPE = re.compile(r"\\([tnr\"\\])")
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r"}
# The items of a CONST_LIST token (comments between them skipped).
_LIST_ITEM = re.compile(
    r'"""[\s\S]*?"{3,5}|"[^"\\]*(?:\\.[^"\\]*)*"|-?\d+(?:\.\d+)?|//[^\n]*|/\*[\s\S]*?\*/'
)
_BACKQUOTED = r"`(?=[^`]|``)[^`]*(?:``[^`]*)*`"  # `a``b`: a doubled backquote inside
_NAME_PART = re.compile(rf"{_BACKQUOTED}|[^.`]+")
_PIECES = re.compile(
    r'"""[\s\S]*?"{3,5}|"[^"\\]*(?:\\.[^"\\]*)*"|`[^`]*`|//[^\n]*|/\*[\s\S]*?\*/|\|'
)
_NAME = rf"(?:[a-z_@][a-z0-9_]*|{_BACKQUOTED})(?:\.(?:[a-z0-9_@]+|{_BACKQUOTED}))*"
_GAP = r"(?:\s++|//[^\n]*|/\*[\s\S]*?\*/)*"  # whitespace and comments
QNAME = re.compile(_NAME, re.IGNORECASE)
TRIM = re.compile(rf"^{_GAP}|{_GAP}$")
LEAD = re.compile(_GAP)
_ASSIGN = re.compile(rf"{_GAP}({_NAME}){_GAP}=(?![=~])", re.IGNORECASE)
# What the EVAL/STATS item scanner must see: strings and comments (skipped
# whole), brackets, commas, a lone quote (unterminated string) and the word BY.
_SCAN = re.compile(
    r'"""[\s\S]*?"{3,5}|"[^"\\]*(?:\\.[^"\\]*)*"|`[^`]*(?:``[^`]*)*`|//[^\n]*|/\*[\s\S]*?\*/'
    r'|[()\[\]{},"]|(?<![\w.@`])by(?![\w.])',
    re.IGNORECASE,
)
_OPEN = {"(", "[", "{"}
_CLOSE = {")": "(", "]": "[", "}": "{"}
Item: TypeAlias = tuple[str | None, int, int]  # (name if "name =", start, end) in the body
STARTS = (
    "from_body",
    "where_body",
    "rename_body",
    "extract_body",
)


class N(NamedTuple):
    """An ES|QL expression node; ``start``/``end`` index the command body.
    (A NamedTuple: nodes are made per token, and tuples are made fastest.)"""

    kind: str
    args: tuple[Any, ...]
    start: int
    end: int
    value: Any = None


class BodyError(DetcatError):
    """What the item scanner finds wrong, at ``pos`` in the body."""

    def __init__(self, message: str, pos: int):
        super().__init__(message)
        self.message = message
        self.pos = pos


def split_commands(text: str) -> list[tuple[int, str]]:
    """The commands of a query with their offsets; pipes inside strings and
    comments do not split."""
    out: list[tuple[int, str]] = []
    start = 0
    for m in _PIECES.finditer(text):
        if m.group() == "|":
            out.append((start, text[start : m.start()]))
            start = m.end()
    out.append((start, text[start:]))
    return out


def split_items(body: str) -> tuple[list[Item], list[Item]]:
    """EVAL / STATS items: ``[name =] expression`` separated by top-level commas,
    the STATS groups after a top-level BY. Only their names and CASE conditions
    matter to the catalog, so the items are split by this scanner (brackets and
    strings checked) rather than parsed; CASE expressions are parsed later.
    Raises ``BodyError`` with the offset of what is wrong."""
    groups: list[list[Item]] = [[]]
    stack: list[str] = []
    start = 0
    for m in _SCAN.finditer(body):
        tok = m.group()
        if tok in _OPEN:
            stack.append(tok)
        elif tok in _CLOSE:
            if not stack or stack.pop() != _CLOSE[tok]:
                raise BodyError(f"unbalanced {tok!r}", m.start())
        elif tok == '"':
            raise BodyError("unterminated string", m.start())
        elif not stack and tok == ",":
            groups[-1].append(_item(body, start, m.start()))
            start = m.end()
        elif not stack and len(groups) == 1 and tok.lower() == "by":
            # ``STATS BY x`` has no aggregation: the only item before BY may be empty
            if groups[0] or TRIM.sub("", body[start : m.start()]):
                groups[0].append(_item(body, start, m.start()))
            groups.append([])
            start = m.end()
    if stack:
        raise BodyError(f"unclosed {stack[-1]!r}", len(body))
    groups[-1].append(_item(body, start, len(body)))
    return groups[0], groups[1] if len(groups) > 1 else []


def _item(body: str, start: int, end: int) -> Item:
    text = body[start:end]
    if not TRIM.sub("", text):
        raise BodyError("item expected", start)
    m = _ASSIGN.match(text)
    if m is None:
        return None, start, end
    return unquote_name(m.group(1)), start + m.end(), end


def parse_body(start: str, body: str) -> Any:
    """Parse a command body; raises lark's ``UnexpectedInput`` on bad syntax."""
    return _parser().parse(body, start=start)


def string_value(token: str) -> str:
    """An ES|QL string literal's value: ``\"\"\"…\"\"\"`` verbatim, ``"…"`` unescaped."""
    if token.startswith('"""'):
        return token[3:-3]
    return _STRING_ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), token[1:-1])


def _span(c: list[Any]) -> tuple[int, int]:
    first, last = c[0], c[-1]
    start = first.start_pos if isinstance(first, Token) else first.start
    end = last.end_pos if isinstance(last, Token) else last.end
    return start, end


def _nodes(c: list[Any]) -> tuple[Any, ...]:
    return tuple(x for x in c if not isinstance(x, Token))


def _node(kind: str) -> Callable[[Any, list[Any]], N]:
    def build(self: Any, c: list[Any]) -> N:
        return N(kind, _nodes(c), *_span(c))

    return build


def _literal(convert: Callable[[str], Any]) -> Callable[[Any, list[Any]], N]:
    def build(self: Any, c: list[Token]) -> N:
        tok = c[0]
        return N("lit", (), tok.start_pos, tok.end_pos, convert(tok))

    return build


class _ToIR(Transformer[Token, Any]):
    """Command bodies -> plain values; expressions -> ``N`` with spans."""

    def from_body(self, c: list[Any]) -> tuple[list[str], list[str]]:
        metadata = c.pop() if c and isinstance(c[-1], list) else []
        return [string_value(t) if t.startswith('"') else str(t) for t in c], metadata

    def metadata(self, c: list[Token]) -> list[str]:
        return [str(t) for t in c]

    def where_body(self, c: list[N]) -> N:
        return c[0]

    def rename_body(self, c: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return c

    def rename_as(self, c: list[Token]) -> tuple[str, str]:
        return unquote_name(str(c[0])), unquote_name(str(c[1]))

    def rename_assign(self, c: list[Token]) -> tuple[str, str]:
        return unquote_name(str(c[1])), unquote_name(str(c[0]))

    def extract_body(self, c: list[Any]) -> tuple[N, str]:
        return c[0], string_value(str(c[1]))

    def qname(self, c: list[Token]) -> N:
        tok = c[0]
        name = str(tok)
        if "`" in name:
            name = ".".join(unquote_name(part) for part in _NAME_PART.findall(name))
        return N("field", (), tok.start_pos, tok.end_pos, name)

    def compare(self, c: list[Any]) -> N:
        return N("compare", (c[0], str(c[1]), c[2]), *_span(c))

    def call(self, c: list[Any]) -> N:
        args = c[2].args if len(c) == 4 else ()
        return N("call", args, *_span(c), c[0].value.lower())

    def arg_list(self, c: list[Any]) -> N:
        return N("args", c[0].args, 0, 0)

    def map(self, c: list[Any]) -> N:
        return N("map", _nodes(c), *(_span(c) if c else (0, 0)))

    def timespan(self, c: list[Token]) -> N:
        gap = " " if c[1].start_pos > c[0].end_pos else ""  # "1 hour", "5m" as written
        return N("lit", (), *_span(c), f"{c[0]}{gap}{c[1]}")

    def count_all(self, c: list[Token]) -> N:
        return N("args", (N("star", (), *_span(c)),), 0, 0)

    def expr_list(self, c: list[N]) -> N:
        return N("list", tuple(c), *_span(c))

    def CONST_LIST(self, tok: Token) -> N:  # noqa: N802 - lark terminal callback
        base = tok.start_pos
        items = tuple(
            N("lit", (), base + m.start(), base + m.end(), _constant_value(m.group()))
            for m in _LIST_ITEM.finditer(tok)
            if m.group()[0] != "/"
        )
        return N("list", items, base, tok.end_pos)

    def in_(self, c: list[Any]) -> N:
        return N("in", (c[0], _list_of(c).args), *_span(c))

    def not_in(self, c: list[Any]) -> N:
        return N("not_in", (c[0], _list_of(c).args), *_span(c))

    def pattern_list(self, c: list[Any]) -> N:
        return N("pattern_list", c[0].args, *_span(c))

    def arith(self, c: list[Any]) -> N:
        return N("arith", (c[0], c[2]), *_span(c), str(c[1]))

    def signed(self, c: list[Any]) -> N:
        return N("signed", (str(c[0]), c[1]), *_span(c))

    def cast(self, c: list[Any]) -> N:
        return N("cast", (c[0],), c[0].start, c[1].end_pos, str(c[1]))

    # A chain of n operands is one node with n children (see esql.lark).
    or_ = _node("or")
    and_ = _node("and")
    not_ = _node("not")
    parens = _node("parens")
    match_op = _node("match_op")
    is_null = _node("is_null")
    is_not_null = _node("is_not_null")
    like = _node("like")
    not_like = _node("not_like")
    rlike = _node("rlike")
    not_rlike = _node("not_rlike")
    array = _node("array")
    param = _node("param")
    string = _literal(string_value)
    number = _literal(lambda s: float(s) if re.search(r"[.eE]", s) else int(s))
    true = _literal(lambda s: True)
    false = _literal(lambda s: False)
    null = _literal(lambda s: None)


def _list_of(c: list[Any]) -> N:
    return next(x for x in c[1:] if isinstance(x, N) and x.kind == "list")


def _constant_value(text: str) -> Any:
    if text[0] == '"':
        return string_value(text)
    return float(text) if "." in text else int(text)


def unquote_name(s: str) -> str:
    return s[1:-1].replace("``", "`") if s.startswith("`") else s


@cache
def _parser() -> Lark:
    grammar = Path(__file__).with_name("esql.lark").read_text()
    return lalr(grammar, start=list(STARTS), transformer=_ToIR())
