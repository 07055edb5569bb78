"""YARA-L 2.0 (Google SecOps / Chronicle rules): text -> ``YaraLRule`` objects.

A file holds one or more ``rule name { meta: events: match: outcome: condition:
options: }`` blocks. Every event variable (``$e``) becomes one ``Stage``; its
filters become predicates on UDM paths written without the variable
(``target.process.file.full_path``). Placeholders (``$x = $e.f``) and
comparisons between event variables are join keys, not indicators: they go to
``Stage.join_keys`` / ``Stage.params["joins"]``. The outcome section is recorded
as text, the condition as a small JSON tree plus stage parameters (``negated``
for ``!$e``, ``min_count`` for ``#e > N``). The events section -> stages part,
and the syntax tree node types, live in ``yaral_events``.

Value transforms of a single field compared with a literal
(``re.replace($e.user, "@.*", "") in %admins``) are *derived* predicates
(``kind="derived"``, the field written as the transform): YARA-L's equivalent of
an SPL ``eval`` followed by ``where``. Arithmetic and functions combining
several values stay ``Opaque``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, UnexpectedInput

from detcat.languages.lalr import TOKENS, lalr
from detcat.languages.yaral_events import (
    Arith,
    Bool,
    Call,
    Cmp,
    Lit,
    MetaValue,
    Node,
    Ref,
    event_stages,
)
from detcat.model import QueryError, Stage, depth_limited


@cache
def _parser(lenient: bool) -> Lark:
    text = (Path(__file__).parent / "yaral.lark").read_text(encoding="utf-8")
    grammar, _, modes = text.partition("//@strict\n")
    strict, _, lenient_terminals = modes.partition("//@lenient\n")
    grammar += lenient_terminals if lenient else strict
    return lalr(grammar, accelerate=True, lexer="contextual", transformer=_ToAst())


# -- syntax tree (node types in yaral_events) ----------------------------------


def _span(items: list[Any]) -> tuple[int, int]:
    items = [i for i in items if i is not None]
    starts = [i.start if isinstance(i, Node) else i.start_pos for i in items]
    ends = [i.end if isinstance(i, Node) else i.end_pos for i in items]
    return min(starts), max(ends)


def _unquote(text: str) -> str:
    # Only the escapes YARA-L defines; "\." and friends stay, they matter in regexes.
    body = text[1:-1]
    return re.sub(r"\\([\\\"ntr])", lambda m: _ESCAPES.get(m[1], m[1]), body)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def _tok(items: list[Any], kind: str) -> str:
    return next((str(t).lower() for t in items if isinstance(t, TOKENS) and t.type == kind), "")


def _nocase(items: list[Any]) -> bool:
    return bool(_tok(items, "NOCASE"))


def _flat(op: str, items: list[Any]) -> Bool:
    left = items[0]
    head = left.args if isinstance(left, Bool) and left.op == op else (left,)
    return Bool(*_span(items), op, (*head, *items[1:]))


def _number(t: str) -> int | float:
    return float(t) if "." in t else int(t)


# Callback factories: Lark calls ``transformer.<rule>(children)``.
def _literal(kind: str, convert: Callable[[str], Any]) -> Callable[..., Lit]:
    def callback(self: Any, items: list[Token]) -> Lit:
        t = items[0]
        return Lit(t.start_pos, t.end_pos, convert(str(t)), kind)

    return callback


def _section(name: str, convert: Callable[[list[Any]], Any] = list) -> Callable[..., Any]:
    return lambda self, items: (name, convert(items))


class _ToAst(Transformer):  # type: ignore[type-arg]
    """Lark callbacks (run inside the LALR parser): tokens -> ``Node`` trees."""

    def ref(self, items: list[Token]) -> Ref:
        var, _, path = str(items[0]).partition(".")
        return Ref(items[0].start_pos, items[0].end_pos, var, path)

    string = _literal("string", _unquote)  # also meta and option values
    bstring = _literal("string", lambda t: t[1:-1])
    number = _literal("number", _number)
    true = _literal("bool", lambda t: True)
    false = _literal("bool", lambda t: False)
    regex = _literal("regex", lambda t: t[1:-1])
    count = _literal("count", str)
    list_ref = _literal("list", lambda t: t[1:])
    bare_value = _literal("bare", str)

    def call(self, items: list[Any]) -> Call:
        args = tuple(a for a in items[1:] if isinstance(a, Node))
        return Call(*_span(items), str(items[0]), args)

    def paren(self, items: list[Any]) -> Any:
        return replace(items[1], start=items[0].start_pos, end=items[2].end_pos)

    def arith(self, items: list[Any]) -> Arith:
        return Arith(*_span(items), str(items[1]), (items[0], items[2]))

    def neg(self, items: list[Any]) -> Node:
        inner = items[1]
        if isinstance(inner, Lit) and inner.kind == "number":
            return Lit(items[0].start_pos, inner.end, -inner.value, "number")  # type: ignore[operator]
        return Arith(*_span(items), "neg", (inner,))

    def comparison(self, items: list[Any]) -> Cmp:
        left, right = (i for i in items if not isinstance(i, TOKENS))
        quant, op = _tok(items, "QUANT"), _tok(items, "CMP")
        return Cmp(*_span(items), quant, left, op, right, _nocase(items))

    def in_list(self, items: list[Any]) -> Cmp:
        lst = next(t for t in items if isinstance(t, TOKENS) and t.type == "LIST")
        right = Lit(lst.start_pos, lst.end_pos, str(lst)[1:], "list")
        left = next(i for i in items if not isinstance(i, TOKENS))
        quant, mode = _tok(items, "QUANT"), _tok(items, "LIST_MODE")
        return Cmp(*_span(items), quant, left, "in", right, _nocase(items), mode)

    def bare(self, items: list[Any]) -> Bool:
        node = next(i for i in items if not isinstance(i, TOKENS))
        return Bool(*_span(items), "bare", (node,), _tok(items, "QUANT"), _nocase(items))

    def or_(self, items: list[Any]) -> Bool:
        return _flat("or", items)

    def and_(self, items: list[Any]) -> Bool:
        return _flat("and", items)

    def not_(self, items: list[Any]) -> Bool:
        return Bool(*_span(items), "not", tuple(items))

    def absent(self, items: list[Any]) -> Bool:
        return Bool(*_span(items), "absent", (self.ref(items),))

    # -- sections: tagged tuples, assembled by rule_def ----------------------
    word = _literal("word", lambda t: {"true": True, "false": False}.get(t.lower(), t))
    meta_sec = _section("meta")
    events_sec = _section("events")
    match_sec = _section("match")
    outcome_sec = _section("outcome")
    condition_sec = _section("condition", lambda items: items[0])
    options_sec = _section("options", dict)

    def meta_entry(self, items: list[Any]) -> tuple[str, MetaValue]:
        return str(items[0]), items[1].value

    option = meta_entry

    def outcome_assign(self, items: list[Any]) -> tuple[str, Any]:
        return str(items[0]), items[1]

    def rule_def(self, items: list[Any]) -> dict[str, Any]:
        kw, name, end = items[0], items[1], items[-1]
        raw: dict[str, Any] = dict(items[2:-1])
        raw.update(name=str(name), start=kw.start_pos, end=end.end_pos, line=kw.line)
        return raw

    def start(self, items: list[Any]) -> list[dict[str, Any]]:
        return items


# -- public API ---------------------------------------------------------------


@dataclass(slots=True)
class YaraLRule:
    name: str
    meta: dict[str, MetaValue] = field(default_factory=dict)  # first value of each key
    meta_items: list[tuple[str, MetaValue]] = field(default_factory=list)  # all, in order
    stages: list[Stage] = field(default_factory=list)
    match: dict[str, Any] | None = None  # {"keys", "window", "window_seconds", …}
    outcome: dict[str, Any] = field(default_factory=dict)  # {"text", "assignments"}
    condition: dict[str, Any] = field(default_factory=dict)  # {"text", "expr"}
    options: dict[str, MetaValue] = field(default_factory=dict)
    text: str = ""  # the rule's own source, `rule` to the closing brace
    line: int = 1


@depth_limited
def parse_rules(text: str, *, lenient: bool = False) -> list[YaraLRule]:
    """Parse every rule in a file. ``lenient`` accepts generator flaws (see yaral.lark).

    Raises ``QueryError`` with a file-relative line and column for unreadable text.
    """
    try:
        raws = _parser(lenient).parse(text)
    except UnexpectedInput as e:
        raise _error(e, text) from None
    return [_build_rule(raw, text) for raw in raws]


# What the user must write, for each terminal of yaral.lark a parser can expect
# (grammar names such as ``_EVENTS`` never reach a message). None: not worth naming.
EXPECTED_WORDS: dict[str, str | None] = {
    "RULE_KW": "rule NAME {", "RULE_NAME": "a rule name", "LBRACE": "'{'", "RBRACE": "'}'",
    "_META": "meta:", "_EVENTS": "events:", "_MATCH": "match:", "_OUTCOME": "outcome:",
    "_CONDITION": "condition:", "_OPTIONS": "options:", "COLON": "':'",
    "META_KEY": 'a meta entry (key = "value")', "META_STRING": 'a "quoted" value',
    "OPTION_KEY": "an option name", "EQUAL": "'='", "CMP": "a comparison (=, !=, <, >)",
    "REF": "an event field ($e.metadata.event_type) or $variable", "COUNT": "#variable",
    "LIST": "%reference_list", "FUNC": "a function call (re.regex(...))",
    "STRING": 'a "quoted string"', "BSTRING": "a `raw string`", "REGEX": "/regex/",
    "NUMBER": "a number", "SIGNED_NUMBER": "a number", "DURATION": "a duration (10m)",
    "TRUE": "true", "FALSE": "false", "BANG": "'!'", "_NOT": "not", "_AND": "and",
    "_OR": "or", "_IN": "in", "NOCASE": "nocase", "QUANT": "any/all", "LIST_MODE": None,
    "_OVER": "over", "EVERY": "every", "WINDOW_SIDE": "before/after", "LPAR": "'('",
    "RPAR": "')'", "COMMA": "','", "PLUS": "'+'", "MINUS": "'-'", "MUL_OP": "'*' or '/'",
    "BARE_VALUE": None, "COMMENT": None, "BLOCK_COMMENT": None,
}  # fmt: skip
_SECTIONS = ("_META", "_EVENTS", "_MATCH", "_OUTCOME", "_CONDITION", "_OPTIONS")


def _error(e: UnexpectedInput, text: str) -> QueryError:
    at_end = getattr(getattr(e, "token", None), "type", "") == "$END"
    pos = len(text) if at_end or e.pos_in_stream is None else e.pos_in_stream
    snippet = text[pos : pos + 30].split("\n")[0]
    if not snippet:
        found = "end of file"
    elif snippet[0] == '"' and '"' not in text[pos + 1 :].split("\n")[0]:
        found = "start of an unterminated string"
    else:
        found = repr(snippet)
    hint = _expected(set(getattr(e, "expected", None) or getattr(e, "allowed", None) or ()))
    if at_end or e.line is None or e.line < 1:
        return QueryError(f"unexpected {found}{hint}", *_end_position(text))
    return QueryError(f"unexpected {found}{hint}", e.line, e.column)


def _expected(names: set[str]) -> str:
    """ "; write one of: condition:, outcome:, …" — sections first (a missing section
    is the usual mistake), then at most eight other things, in the user's words."""
    ordered = [n for n in _SECTIONS if n in names] + sorted(names - set(_SECTIONS))
    words = list(dict.fromkeys(w for n in ordered if (w := EXPECTED_WORDS.get(n))))
    if not words:
        return ""
    more = ", …" if len(words) > 8 else ""
    return f"; write {'one of: ' if len(words) > 1 else ''}{', '.join(words[:8])}{more}"


def _end_position(text: str) -> tuple[int, int]:
    return text.count("\n") + 1, len(text) - text.rfind("\n")


# -- rule assembly ----------------------------------------------------------------


def _build_rule(raw: dict[str, Any], text: str) -> YaraLRule:
    meta_items = raw.get("meta", [])
    meta: dict[str, MetaValue] = {}
    for key, value in meta_items:
        meta.setdefault(key, value)
    rule = YaraLRule(name=raw["name"], meta=meta, meta_items=meta_items, line=raw["line"])
    rule.text = text[raw["start"] : raw["end"]]
    rule.match = _match(raw.get("match"))
    rule.outcome = {
        "text": _section_text(raw.get("outcome"), text),
        "assignments": {k: text[v.start : v.end] for k, v in raw.get("outcome", [])},
    }
    rule.options = raw.get("options", {})
    rule.stages = event_stages(raw.get("events", []), text)
    by_name = {s.name: s for s in rule.stages}
    cond = raw["condition"]
    rule.condition = {"text": text[cond.start : cond.end]}
    rule.condition["expr"] = _condition_json(cond, text, set(by_name))
    _apply_condition(rule.condition["expr"], by_name)
    if rule.stages and rule.match:
        rule.stages[0].params["match"] = rule.match
    return rule


def _section_text(assignments: list[tuple[str, Any]] | None, text: str) -> str:
    return "\n".join(f"{k} = {text[v.start : v.end]}" for k, v in assignments or [])


_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _match(items: list[Token] | None) -> dict[str, Any] | None:
    if items is None:
        return None
    match: dict[str, Any] = {"keys": [], "window": "", "window_seconds": None}
    side = ""
    for t in items:
        if t.type == "REF" and side:
            match["anchor"] = str(t)
        elif t.type == "REF":
            match["keys"].append(str(t))
        elif t.type == "DURATION":
            match["window"] = str(t)
            match["window_seconds"] = int(str(t)[:-1]) * _UNIT_SECONDS[str(t)[-1].lower()]
        elif t.type == "WINDOW_SIDE":
            side = match["side"] = str(t).lower()
        elif t.type == "EVERY":
            match["every"] = True
    return match


def _condition_json(node: Any, text: str, events: set[str]) -> Any:
    """The condition as JSON: {"and": […]}, {"event": "$e"}, {"absent": "$e"},
    {"count": "#e", "op": ">", "value": 5}, {"var": "$risk", "op": ">", "value": 50}."""
    match node:
        case Bool(op="and" | "or" as op, args=args):
            return {op: [_condition_json(a, text, events) for a in args]}
        case Bool(op="not", args=(arg,)):
            return {"not": _condition_json(arg, text, events)}
        case Bool(op="absent", args=(Ref(var=var),)):
            return {"absent": var}
        case Ref(var=var, path="") | Bool(op="bare", args=(Ref(var=var, path=""),), quant=""):
            return {"event": var} if var in events else {"var": var}
        case Cmp(left=Lit(kind="count", value=c), right=Lit(kind="number", value=n)):
            return {"count": c, "op": node.op, "value": n}
        case Cmp(left=Ref(var=var, path=""), right=Lit(kind="number" | "string" | "bool")):
            return {"var": var, "op": node.op, "value": node.right.value}
    return {"text": text[node.start : node.end]}


def _apply_condition(cond: Any, stages: dict[str, Stage]) -> None:
    """`!$e` -> negated stage; `#e > N` -> params count / min_count."""
    match cond:
        case {"absent": var} if var in stages:
            stages[var].negated = True
        case {"count": count, "op": op, "value": int() as n} if "$" + count[1:] in stages:
            params = stages["$" + count[1:]].params
            params["count"] = {"op": op, "value": n}
            if op in (">", ">=", "="):
                params["min_count"] = n + 1 if op == ">" else n
        case {"and": list(args)} | {"or": list(args)}:
            for arg in args:
                _apply_condition(arg, stages)
        case {"not": arg}:
            _apply_condition(arg, stages)
