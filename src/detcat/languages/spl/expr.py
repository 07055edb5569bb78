"""SPL's search language -> ``Expr``, and what both expression languages share.

``spl.pipeline`` splits a query into commands and hands the expression parts
here (and to ``spl.eval``), together with a ``Scope`` that knows what each
field name means at that point of the pipeline (renames, eval-derived fields,
aggregation outputs, lookup outputs). Field names are resolved while the tree
is built, so a predicate on ``b`` written after ``| rename a AS b`` carries
``field_raw="a"``. The grammar of both languages is ``spl.lark``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from detcat.languages import wildcards
from detcat.languages.lalr import lalr, position
from detcat.model import (
    Expr,
    Not,
    Op,
    Opaque,
    Predicate,
    QueryError,
    Reason,
    Value,
    and_,
    or_,
)

# -- grammar ----------------------------------------------------------------------


@cache
def _parser() -> Lark:
    # Built on first use: importing detcat must not do work.
    grammar = Path(__file__).with_name("spl.lark").read_text(encoding="utf-8")
    return lalr(
        grammar,
        start=["search", "eval", "evals"],
        maybe_placeholders=False,
    )


def parse_tree(text: str, start: str, src: str, offset: int) -> Tree:
    """Parse ``text`` (found at ``offset`` of the whole query ``src``)."""
    try:
        return _parser().parse(text, start=start)
    except UnexpectedInput as e:
        at_end = isinstance(e, UnexpectedToken) and e.token.type == "$END"
        pos = offset + (len(text) if at_end or e.pos_in_stream is None else e.pos_in_stream)
        raise QueryError(_describe(e, start), *position(src, pos)) from None


def _describe(e: UnexpectedInput, start: str) -> str:
    what = "search expression" if start == "search" else "eval expression"
    if isinstance(e, UnexpectedToken):
        tok = "end of input" if e.token.type == "$END" else repr(str(e.token))
        return f"unexpected {tok} in {what}"
    if isinstance(e, UnexpectedCharacters):
        return f"unexpected character {e.char!r} in {what}"
    if isinstance(e, UnexpectedEOF):
        return f"unexpected end of {what}"
    return f"cannot read {what}"  # pragma: no cover - lark has no other kinds


# -- values -------------------------------------------------------------------------

Char = tuple[str, bool]  # one character of a pattern, and whether it is a wildcard

_INT = re.compile(r"-?(?:0|[1-9]\d*)")
_FLOAT = re.compile(r"-?\d+\.\d+")
_CIDR = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}/\d{1,2}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*/\d{1,3}")
_TOKEN_REF = re.compile(r"\$(\w+)\$")  # a `map` template token: the outer result's field


def number(text: str) -> int | float | None:
    """The number ``text`` spells exactly, or None."""
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text) and repr(float(text)) == text.lstrip("+"):
        return float(text)
    return None


def unquote(text: str) -> tuple[str, bool]:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1], True
    return text, False


def search_chars(text: str) -> list[Char]:
    """Decode a search-language value: ``*`` is the only wildcard and cannot be
    escaped (Splunk: "the backslash can't be used to escape the asterisk");
    ``\\\\`` and ``\\"`` are escapes; any other backslash stays literal."""
    out: list[Char] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in '\\"':
            out.append(_char(text[i + 1], False))
            i += 2
            continue
        out.append(_char(c, c == "*"))
        i += 1
    return out


_CHARS: dict[Char, Char] = {}


def _char(c: str, wildcard: bool) -> Char:
    """One shared tuple per distinct character: a long value costs a pointer
    per character, not a new tuple."""
    key = (c, wildcard)
    return _CHARS.setdefault(key, key)


def eval_string(token: str) -> str:
    """An eval string literal's value: only ``\\\\`` and ``\\"`` are escapes."""
    if token.startswith('""') and token.endswith('""') and len(token) > 4:
        token = token[1:-1]  # ""x"": a quoted macro expanded inside quotes (see spl.lark)
    body, _ = unquote(token)
    return re.sub(r'\\([\\"])', r"\1", body) if "\\" in body else body


def like_chars(pattern: str) -> list[Char]:
    """like(): ``%`` is any string, ``_`` any one character."""
    return [("*", True) if c == "%" else ("?", True) if c == "_" else (c, False) for c in pattern]


def plain(chars: Sequence[Char]) -> str:
    """The model's wildcard spelling (model.py): ``*``/``?`` wildcards, no escapes."""
    return "".join(c for c, _ in chars)


def classify(chars: Sequence[Char]) -> tuple[Op, str | None]:
    """The operator a (possibly wildcarded) value stands for, and the value."""
    return wildcards.classify(wildcards.parts(chars))


# -- scope ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldRef:
    """What a field name means at one point of a pipeline."""

    raw: str  # the field as the vendor's data has it (after undoing renames)
    kind: str = ""  # "" | "derived"
    level: int = 0  # 0 = raw events, n = output of the n-th aggregation
    ci: bool = False  # read through lower()/upper(): comparisons ignore case
    lookup: Any = None  # the lookup whose output this field is, if any
    cases: Cases | None = None  # eval x=if(cond, "yes", "no")
    present: Expr | None = None  # rex "(?<x>re)": x is non-null exactly when this holds
    program: list[Any] | None = None  # eval'd: how to compute it (spl.computed)
    program_at: int = 0  # the pipeline's count of value changes when it was eval'd


@dataclass(frozen=True, slots=True)
class Cases:
    """``eval x=if(cond, yes, no)`` (or ``case(cond, yes[, true(), no])``, where a
    missing ``no`` is null): testing x against a branch value tests cond."""

    cond: Expr
    yes: Value
    no: Value
    refs: tuple[FieldRef, ...]  # the fields cond reads

    def test(self, value: Value, ci: bool) -> Expr | None:
        """The condition ``x == value`` stands for, or None for another value."""

        def same(a: Value, b: Value) -> bool:
            if a is None or b is None:
                return False  # null equals nothing
            return str(a).casefold() == str(b).casefold() if ci else str(a) == str(b)

        if same(value, self.yes) and not same(value, self.no):
            return self.cond
        if same(value, self.no):
            return Not(self.cond)
        return None


class Scope(Protocol):
    def resolve(self, name: str) -> FieldRef: ...

    def here(self) -> FieldRef: ...  # the pipeline position itself (free text)

    def subsearch(self, index: int, negated: bool) -> None: ...


@dataclass(slots=True)
class Conjunct:
    """One top-level AND member of a filter and the fields it touched."""

    expr: Expr
    refs: list[FieldRef] = field(default_factory=list)
    # Its Opaque conditions on computed values: text -> program (None: not computable)
    conditions: dict[str, Any] = field(default_factory=dict)


# Time-range modifiers select the search window; they are not event filters.
TIME_MODIFIERS = frozenset(
    [
        "earliest",
        "latest",
        "_index_earliest",
        "_index_latest",
        "starttime",
        "endtime",
        "starthoursago",
        "endhoursago",
        "startdaysago",
        "enddaysago",
        "startminutesago",
        "endminutesago",
        "earliest_time",
        "latest_time",
        "timeformat",
    ]
)
ORDERING = {"<": Op.LT, "<=": Op.LTE, ">": Op.GT, ">=": Op.GTE}
FLIPPED = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "=": "=", "==": "==", "!=": "!="}
CASE_FOLDS = frozenset({"lower", "upper"})


class Builder:
    """Builds Expr from parse trees of ``text``, resolving fields in ``scope``."""

    def __init__(self, text: str, scope: Scope, src: str, offset: int) -> None:
        self.text, self.scope, self.src, self.offset = text, scope, src, offset
        self.refs: list[FieldRef] = []
        self._negations = 0

    def ref(self, name: str) -> FieldRef:
        r = self.scope.resolve(name)
        self.refs.append(r)
        return r

    def cases(self, ref: FieldRef, value: Value, ci: bool) -> Expr | None:
        """``x == value`` for an if()-derived x, as the condition it stands for."""
        if ref.cases is None:
            return None
        expr = ref.cases.test(value, ci)
        if expr is not None:
            self.refs.extend(ref.cases.refs)
        return expr

    def source(self, node: Tree | Token) -> str:
        """The text a subtree was parsed from (for Opaque nodes)."""
        if isinstance(node, Token):
            return str(node)
        tokens = list(node.scan_values(lambda v: isinstance(v, Token)))
        if not tokens:
            return ""
        start, end = tokens[0].start_pos or 0, tokens[-1].end_pos or 0
        start = _opened(self.text, start, end, _leading_minus(node))
        return self.text[start : _closed(self.text, start, end)]

    def conjuncts(
        self, tree: Tree, top: str, build: Callable[[Any], Expr | None]
    ) -> list[Conjunct]:
        nodes = (
            tree.children[0].children
            if tree.children and _is(tree.children[0], top)
            else tree.children
        )
        out = []
        for node in nodes:
            self.refs = []
            expr = build(node)
            if expr is not None:
                out.append(Conjunct(expr, self.refs))
        return out


def _opened(text: str, start: int, end: int, minus: int) -> int:
    """Extend ``text[start:end]`` back over the ``(`` it closes and the ``minus``
    unary minus signs that begin it: the tree keeps no punctuation, so a subtree's
    first token may follow them (``-len(x)``, ``(len(x) + 1) * 2``)."""
    unopened = _unopened(text[start:end])
    while True:
        j = start
        while j > 0 and text[j - 1].isspace():
            j -= 1
        c = text[j - 1] if j > 0 else ""
        if c == "(" and (unopened or minus):  # between a sign and its operand: only (
            unopened = max(unopened - 1, 0)
        elif c == "-" and minus:
            minus -= 1
        else:
            return start
        start = j - 1


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?')  # a quoted string (to its end if unclosed)


def _unopened(text: str) -> int:
    """How many ``)`` of ``text`` (outside strings) close a ``(`` before it."""
    depth = lowest = 0
    for part in _STRING.split(text):
        for c in part:
            depth += {"(": 1, ")": -1}.get(c, 0)
            lowest = min(lowest, depth)
    return -lowest


def _leading_minus(node: Tree | Token) -> int:
    """The unary minus signs (``e_minus``) on the subtree's leftmost path."""
    n = 0
    while isinstance(node, Tree) and node.children:
        n += node.data == "e_minus"
        node = node.children[0]
    return n


def _closed(text: str, start: int, end: int) -> int:
    """Extend ``text[start:end]`` over the ``)`` it leaves open: the tree keeps no
    punctuation, so a subtree's last token may precede closing parentheses."""
    depth, i = 0, start
    while i < len(text) and (i < end or depth > 0):
        c = text[i]
        if c == '"':
            close = text.find('"', i + 1)
            while close > 0 and text[close - 1] == "\\":
                close = text.find('"', close + 1)
            i = len(text) if close < 0 else close + 1
            continue
        depth += {"(": 1, ")": -1}.get(c, 0)
        i += 1
    return i


def _is(node: Any, data: str) -> bool:
    return isinstance(node, Tree) and node.data == data


RAW_TEXT = "_raw"  # the event as indexed: a test of it is field-less (Predicate.whole_event)


def field_name(ref: FieldRef | None) -> str | None:
    """The predicate's field: None for the event's raw text (unless the query made
    a ``_raw`` of its own)."""
    if ref is None or (ref.raw == RAW_TEXT and not ref.kind):
        return None
    return ref.raw


def predicate(
    ref: FieldRef | None, op: Op, value: Value, syntax: str, cs: bool = False, kind: str = ""
) -> Predicate:
    return Predicate(
        field_raw=field_name(ref),
        op=op,
        value=value,
        syntax=syntax,
        case_sensitive=cs,
        kind=kind or (ref.kind if ref else ""),
    )


# -- the search language ------------------------------------------------------------------


class SearchBuilder(Builder):
    def build(self, node: Tree) -> Expr | None:
        match node.data:
            case "s_and":
                return _and_opt(self.build(c) for c in node.children)
            case "s_or":
                return _or_opt(self.build(c) for c in node.children)
            case "s_neg":
                self._negations += 1
                child = self.build(node.children[0])
                self._negations -= 1
                return Not(child) if child is not None else None
            case "s_cmp":
                return self.compare(node)
            case "s_in":
                return self.in_list(node)
            case "s_word":
                return self.keyword(node.children[0])
            case "s_termfn":
                return self.termfn(node)
            case "s_sub":
                index = int(re.sub(r"\D", "", str(node.children[0])))
                self.scope.subsearch(index, self._negations % 2 == 1)
                return None
        raise AssertionError(node.data)  # pragma: no cover - grammar and code disagree

    def compare(self, node: Tree) -> Expr | None:
        fnode, cmp, vnode = node.children
        name, _ = unquote(str(fnode.children[0]))
        if name in TIME_MODIFIERS:
            return None
        ref = self.ref(name)
        raw = str(vnode.children[0])
        if cmp in ("=", "==", "!="):
            test = self.cases(ref, unquote(raw)[0], ci=True)
            pred = (
                self.equals(ref, raw, "!=" if cmp == "!=" else str(cmp)) if test is None else test
            )
            return Not(pred) if cmp == "!=" else pred
        text, _ = unquote(raw)
        value = "".join(c for c, _ in search_chars(text))
        num = number(value)
        return predicate(ref, ORDERING[str(cmp)], value if num is None else num, str(cmp))

    def equals(self, ref: FieldRef, raw: str, syntax: str) -> Expr:
        text, _ = unquote(raw)
        if m := _TOKEN_REF.fullmatch(text):
            return predicate(ref, Op.FIELD_REF, m.group(1), syntax)
        if _CIDR.fullmatch(text):
            return predicate(ref, Op.CIDR, text, syntax)
        op, value = classify(search_chars(text))
        if op is Op.EXISTS and ref.present is not None:
            return ref.present  # a rex group is there when its pattern matched
        num = number(value) if op is Op.EQ and value is not None else None
        return predicate(ref, op, value if num is None else num, syntax)

    def in_list(self, node: Tree) -> Expr:
        fnode, items = node.children
        ref = self.ref(unquote(str(fnode.children[0]))[0])
        preds = [self.equals(ref, str(item.children[0]), "IN") for item in items.children]
        if not preds:
            return Opaque(self.source(node), Reason.EMPTY, "IN list")
        return or_(*preds)

    def keyword(self, token: Token) -> Expr | None:
        self.refs.append(self.scope.here())
        text, quoted = unquote(str(token))
        if text == "*" and not quoted:
            return None  # matches every event
        if m := _TOKEN_REF.fullmatch(text):
            return predicate(None, Op.FIELD_REF, m.group(1), "")
        return predicate(None, Op.KEYWORD, plain(search_chars(text)), "")

    def termfn(self, node: Tree) -> Expr:
        self.refs.append(self.scope.here())
        fn, arg = node.children
        text, _ = unquote(str(arg))
        name = str(fn)[:-1]
        return predicate(None, Op.KEYWORD, plain(search_chars(text)), f"{name}()", name == "CASE")


def _and_opt(items: Any) -> Expr | None:
    kept = [x for x in items if x is not None]
    return and_(*kept) if kept else None


def _or_opt(items: Any) -> Expr | None:
    kept = [x for x in items if x is not None]
    return or_(*kept) if kept else None


def search_conjuncts(text: str, scope: Scope, src: str, offset: int) -> list[Conjunct]:
    """The top-level AND members of a search-language expression."""
    tree = parse_tree(text, "search", src, offset)
    b = SearchBuilder(text, scope, src, offset)
    return b.conjuncts(tree, "s_and", b.build)
