"""YARA-L 2.0 (Google SecOps / Chronicle rules): text -> ``YaraLRule`` objects.

A file holds one or more ``rule name { meta: events: match: outcome: condition:
options: }`` blocks. Every event variable (``$e``) becomes one ``Stage``; its
filters become predicates on UDM paths written without the variable
(``target.process.file.full_path``). Placeholders (``$x = $e.f``) and
comparisons between event variables are join keys, not indicators: they go to
``Stage.join_keys`` / ``Stage.params["joins"]``. The outcome section is recorded
as text, the condition as a small JSON tree plus stage parameters (``negated``
for ``!$e``, ``min_count`` for ``#e > N``).

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
from typing import Any, TypeAlias

from lark import Lark, Token, Transformer, UnexpectedInput

from detcat.model import (
    Expr,
    Not,
    Op,
    Opaque,
    Predicate,
    QueryError,
    Stage,
    StageRole,
    and_,
    or_,
)

MetaValue: TypeAlias = str | int | float | bool


@cache
def _parser(lenient: bool) -> Lark:
    text = (Path(__file__).parent / "yaral.lark").read_text(encoding="utf-8")
    grammar, _, modes = text.partition("//@strict\n")
    strict, _, lenient_terminals = modes.partition("//@lenient\n")
    grammar += lenient_terminals if lenient else strict
    return Lark(grammar, parser="lalr", lexer="contextual", transformer=_ToAst())


# -- syntax tree ----------------------------------------------------------------
# Small nodes with source spans, so that Opaque nodes can quote the rule text.


@dataclass(frozen=True, slots=True)
class _Node:
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _Ref(_Node):
    var: str  # "$e"
    path: str  # "target.process.file.full_path"; "" for placeholders and bare $e


@dataclass(frozen=True, slots=True)
class _Lit(_Node):
    value: MetaValue
    kind: str  # string | number | bool | regex | list | count | bare


@dataclass(frozen=True, slots=True)
class _Call(_Node):
    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _Arith(_Node):
    op: str
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _Cmp(_Node):
    quant: str  # "", "any", "all"
    left: Any
    op: str  # = != < <= > >= in
    right: Any
    nocase: bool
    mode: str = ""  # "", "regex", "cidr" for `in` lists


@dataclass(frozen=True, slots=True)
class _Bool(_Node):
    op: str  # and | or | not | absent | bare
    args: tuple[Any, ...]
    quant: str = ""
    nocase: bool = False


def _span(items: list[Any]) -> tuple[int, int]:
    items = [i for i in items if i is not None]
    starts = [i.start if isinstance(i, _Node) else i.start_pos for i in items]
    ends = [i.end if isinstance(i, _Node) else i.end_pos for i in items]
    return min(starts), max(ends)


def _unquote(text: str) -> str:
    # Only the escapes YARA-L defines; "\." and friends stay, they matter in regexes.
    body = text[1:-1]
    return re.sub(r"\\([\\\"ntr])", lambda m: _ESCAPES.get(m[1], m[1]), body)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def _tok(items: list[Any], kind: str) -> str:
    return next((str(t).lower() for t in items if isinstance(t, Token) and t.type == kind), "")


def _nocase(items: list[Any]) -> bool:
    return bool(_tok(items, "NOCASE"))


def _flat(op: str, items: list[Any]) -> _Bool:
    left = items[0]
    head = left.args if isinstance(left, _Bool) and left.op == op else (left,)
    return _Bool(*_span(items), op, (*head, *items[1:]))


def _number(t: str) -> int | float:
    return float(t) if "." in t else int(t)


# Callback factories: Lark calls ``transformer.<rule>(children)``.
def _literal(kind: str, convert: Callable[[str], Any]) -> Callable[..., _Lit]:
    def callback(self: Any, items: list[Token]) -> _Lit:
        t = items[0]
        return _Lit(t.start_pos, t.end_pos, convert(str(t)), kind)

    return callback


def _section(name: str, convert: Callable[[list[Any]], Any] = list) -> Callable[..., Any]:
    return lambda self, items: (name, convert(items))


class _ToAst(Transformer):  # type: ignore[type-arg]
    """Lark callbacks (run inside the LALR parser): tokens -> ``_Node`` trees."""

    def ref(self, items: list[Token]) -> _Ref:
        var, _, path = str(items[0]).partition(".")
        return _Ref(items[0].start_pos, items[0].end_pos, var, path)

    string = _literal("string", _unquote)  # also meta and option values
    bstring = _literal("string", lambda t: t[1:-1])
    number = _literal("number", _number)
    true = _literal("bool", lambda t: True)
    false = _literal("bool", lambda t: False)
    regex = _literal("regex", lambda t: t[1:-1])
    count = _literal("count", str)
    list_ref = _literal("list", lambda t: t[1:])
    bare_value = _literal("bare", str)

    def call(self, items: list[Any]) -> _Call:
        args = tuple(a for a in items[1:] if isinstance(a, _Node))
        return _Call(*_span(items), str(items[0]), args)

    def paren(self, items: list[Any]) -> Any:
        return replace(items[1], start=items[0].start_pos, end=items[2].end_pos)

    def arith(self, items: list[Any]) -> _Arith:
        return _Arith(*_span(items), str(items[1]), (items[0], items[2]))

    def neg(self, items: list[Any]) -> _Node:
        inner = items[1]
        if isinstance(inner, _Lit) and inner.kind == "number":
            return _Lit(items[0].start_pos, inner.end, -inner.value, "number")  # type: ignore[operator]
        return _Arith(*_span(items), "neg", (inner,))

    def comparison(self, items: list[Any]) -> _Cmp:
        left, right = (i for i in items if not isinstance(i, Token))
        quant, op = _tok(items, "QUANT"), _tok(items, "CMP")
        return _Cmp(*_span(items), quant, left, op, right, _nocase(items))

    def in_list(self, items: list[Any]) -> _Cmp:
        lst = next(t for t in items if isinstance(t, Token) and t.type == "LIST")
        right = _Lit(lst.start_pos, lst.end_pos, str(lst)[1:], "list")
        left = next(i for i in items if not isinstance(i, Token))
        quant, mode = _tok(items, "QUANT"), _tok(items, "LIST_MODE")
        return _Cmp(*_span(items), quant, left, "in", right, _nocase(items), mode)

    def bare(self, items: list[Any]) -> _Bool:
        node = next(i for i in items if not isinstance(i, Token))
        return _Bool(*_span(items), "bare", (node,), _tok(items, "QUANT"), _nocase(items))

    def or_(self, items: list[Any]) -> _Bool:
        return _flat("or", items)

    def and_(self, items: list[Any]) -> _Bool:
        return _flat("and", items)

    def not_(self, items: list[Any]) -> _Bool:
        return _Bool(*_span(items), "not", tuple(items))

    def absent(self, items: list[Any]) -> _Bool:
        return _Bool(*_span(items), "absent", (self.ref(items),))

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


def parse_rules(text: str, *, lenient: bool = False) -> list[YaraLRule]:
    """Parse every rule in a file. ``lenient`` accepts generator flaws (see yaral.lark).

    Raises ``QueryError`` with a file-relative line and column for unreadable text.
    """
    try:
        raws = _parser(lenient).parse(text)
    except UnexpectedInput as e:
        raise _error(e, text) from None
    return [_build_rule(raw, text) for raw in raws]


_FRIENDLY = {"REF": "$variable", "RPAR": "')'", "LPAR": "'('", "RBRACE": "'}'", "EQUAL": "'='"}


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
    expected = sorted(getattr(e, "expected", None) or getattr(e, "allowed", None) or ())
    names = [_FRIENDLY.get(x, x) for x in expected[:6]]
    hint = f" (expected {', '.join(names)})" if names else ""
    if at_end or e.line is None or e.line < 1:
        return QueryError(f"unexpected {found}{hint}", *_end_position(text))
    return QueryError(f"unexpected {found}{hint}", e.line, e.column)


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
    rule.stages = _Events(raw.get("events", []), text).stages()
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
            match["window_seconds"] = int(t[:-1]) * _UNIT_SECONDS[t[-1].lower()]
        elif t.type == "WINDOW_SIDE":
            side = match["side"] = str(t).lower()
        elif t.type == "EVERY":
            match["every"] = True
    return match


def _condition_json(node: Any, text: str, events: set[str]) -> Any:
    """The condition as JSON: {"and": […]}, {"event": "$e"}, {"absent": "$e"},
    {"count": "#e", "op": ">", "value": 5}, {"var": "$risk", "op": ">", "value": 50}."""
    match node:
        case _Bool(op="and" | "or" as op, args=args):
            return {op: [_condition_json(a, text, events) for a in args]}
        case _Bool(op="not", args=(arg,)):
            return {"not": _condition_json(arg, text, events)}
        case _Bool(op="absent", args=(_Ref(var=var),)):
            return {"absent": var}
        case _Ref(var=var, path="") | _Bool(op="bare", args=(_Ref(var=var, path=""),), quant=""):
            return {"event": var} if var in events else {"var": var}
        case _Cmp(left=_Lit(kind="count", value=c), right=_Lit(kind="number", value=n)):
            return {"count": c, "op": node.op, "value": n}
        case _Cmp(left=_Ref(var=var, path=""), right=_Lit(kind="number" | "string" | "bool")):
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


# -- events -> stages -----------------------------------------------------------

_FLIP = {"=": "=", "!=": "!=", "<": ">", ">": "<", "<=": ">=", ">=": "<="}
_ORDER = {"<": Op.LT, "<=": Op.LTE, ">": Op.GT, ">=": Op.GTE}
_MATCH_FUNCS = {
    "re.regex": Op.REGEX_MATCH,
    "strings.contains": Op.CONTAINS,
    "strings.starts_with": Op.STARTS_WITH,
    "strings.ends_with": Op.ENDS_WITH,
    "net.ip_in_range_cidr": Op.CIDR,
}
_CASE_FUNCS = frozenset({"strings.to_lower", "strings.to_upper"})
# Transforms of one value: comparing their result is a derived predicate (see the
# module docstring). Functions that combine values (concat, coalesce) or count
# (length, count_substrings) are not here: their comparisons stay Opaque.
_DERIVED_FUNCS = frozenset(
    {"re.replace", "re.capture", "strings.base64_decode", "strings.trim", "strings.ltrim"}
    | {"strings.rtrim", "strings.reverse", "strings.url_decode", "strings.extract_domain"}
    | {"strings.extract_hostname", "cast.as_int", "cast.as_float", "cast.as_string"}
    | {"math.abs", "timestamp.get_day_of_week", "timestamp.get_hour", "timestamp.get_minute"}
    | {"timestamp.get_date", "timestamp.get_week", "timestamp.get_timestamp"}
)
_VALUE_KINDS = frozenset({"string", "number", "bool", "regex", "list", "bare"})


@dataclass(frozen=True, slots=True)
class _Field:
    var: str
    path: str
    folded: str = ""  # "strings.to_lower" / "strings.to_upper": case-insensitive
    kind: str = ""  # "derived" for a transform of the field


def _children(node: Any) -> tuple[Any, ...]:
    match node:
        case _Cmp(left=left, right=right):
            return (left, right)
        case _Call(args=args) | _Arith(args=args) | _Bool(args=args):
            return args
    return ()


def _refs(node: Any) -> list[_Ref]:
    if isinstance(node, _Ref):
        return [node]
    return [r for child in _children(node) for r in _refs(child)]


def _conjuncts(node: Any) -> list[Any]:
    """Lines are ANDed: `( a and $e.f = $x )` is the same as two lines."""
    if isinstance(node, _Bool) and node.op == "and":
        return [leaf for arg in node.args for leaf in _conjuncts(arg)]
    return [node]


def _is_value(node: Any) -> bool:
    return isinstance(node, _Lit) and node.kind in _VALUE_KINDS


class _Events:
    """Turns the statements of an events section into one stage per event variable."""

    def __init__(self, statements: list[Any], text: str) -> None:
        self.text = text
        statements = [leaf for s in statements for leaf in _conjuncts(s)]
        self.vars = list(dict.fromkeys(r.var for s in statements for r in _refs(s) if r.path))
        self.filters: dict[str, list[Expr]] = {v: [] for v in self.vars}
        self.joins: dict[str, list[dict[str, str]]] = {v: [] for v in self.vars}
        self.keys: dict[str, list[str]] = {v: [] for v in self.vars}
        self.bindings: dict[str, list[Any]] = {}
        relations = [s for s in statements if self._is_relation(s)]
        for rel in relations:
            for side, other in ((rel.left, rel.right), (rel.right, rel.left)):
                if rel.op == "=" and self._is_placeholder(side):
                    self.bindings.setdefault(side.var, []).append(other)
        for stmt in statements:
            if self._is_relation(stmt):
                self._relation(stmt)
            else:
                self._place(stmt)

    # -- classification ---------------------------------------------------------
    def _is_placeholder(self, node: Any) -> bool:
        return isinstance(node, _Ref) and not node.path and node.var not in self.filters

    def _is_relation(self, node: Any) -> bool:
        """`$x = $e.f`, `$e1.f = $e2.f`, `re.capture($e.f, "…") = $x`: no literal side."""
        return (
            isinstance(node, _Cmp)
            and node.op != "in"
            and bool(_refs(node.left))
            and bool(_refs(node.right))
            and not isinstance(node.left, _Arith)
            and not isinstance(node.right, _Arith)
        )

    def _field(self, node: Any, depth: int = 0) -> _Field | None:
        if isinstance(node, _Ref):
            if node.path:
                return _Field(node.var, node.path)
            for bound in self.bindings.get(node.var, []) if depth < 4 else []:
                if (found := self._field(bound, depth + 1)) is not None:
                    return found
            return None
        if not isinstance(node, _Call):
            return None
        if node.name in _CASE_FUNCS and len(node.args) == 1:
            inner = self._field(node.args[0], depth)
            return _Field(inner.var, inner.path, node.name, inner.kind) if inner else None
        fields = [self._field(a, depth) for a in node.args if not _is_value(a)]
        if node.name in _DERIVED_FUNCS and len(fields) == 1 and fields[0] is not None:
            return _Field(fields[0].var, self._render(node), kind="derived")
        return None

    def _render(self, node: Any, keep_var: bool = False) -> str:
        """Canonical text: `re.replace(target.user.userid, "@.*$", "")`."""
        match node:
            case _Ref(var=var, path=path) if path:
                return f"{var}.{path}" if keep_var else path
            case _Ref(var=var):
                bound = self._field(node)
                return bound.path if bound and not keep_var else var
            case _Lit(kind="string", value=value):
                return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
            case _Lit(kind="regex", value=value):
                return f"/{value}/"
            case _Call(name=name, args=args):
                return f"{name}({', '.join(self._render(a, keep_var) for a in args)})"
        return self.text[node.start : node.end]

    def _vars(self, node: Any) -> list[str]:
        found = {f.var for r in _refs(node) if (f := self._field(r)) is not None}
        return [v for v in self.vars if v in found]

    # -- statements -----------------------------------------------------------
    def _place(self, stmt: Any) -> None:
        expr = self._expr(stmt)
        owners = self._vars(stmt)
        if len(owners) > 1:
            expr = self._opaque(stmt, "expression spans several event variables")
        owner = owners[0] if owners else (self.vars[0] if self.vars else "$e")
        self.filters.setdefault(owner, []).append(expr)

    def _relation(self, rel: _Cmp) -> None:
        left, right = rel.left, rel.right
        if (same := _field_ref(rel)) is not None:  # one event compared with itself: a filter
            self.filters[left.var].append(same)
            return
        for side, other, op in ((left, right, rel.op), (right, left, _FLIP[rel.op])):
            for var in self._direct_vars(side):
                record = {"field": self._render(side), "op": op, "with": self._render(other, True)}
                self.joins[var].append(record)
                if op == "=" and record["field"] not in self.keys[var]:
                    self.keys[var].append(record["field"])
        if not self._direct_vars(left) and not self._direct_vars(right) and self.vars:
            self.joins[self.vars[0]].append(  # `$x = $y`: placeholders only
                {"field": self._render(left, True), "op": rel.op, "with": self._render(right, True)}
            )

    def _direct_vars(self, node: Any) -> list[str]:
        return list(dict.fromkeys(r.var for r in _refs(node) if r.path))

    # -- boolean expressions ----------------------------------------------------
    def _opaque(self, node: Any, reason: str) -> Opaque:
        return Opaque(self.text[node.start : node.end], reason)

    def _expr(self, node: Any) -> Expr:
        match node:
            case _Bool(op="and", args=args):
                return and_(*(self._expr(a) for a in args))
            case _Bool(op="or", args=args):
                return or_(*(self._expr(a) for a in args))
            case _Bool(op="not", args=(arg,)):
                return Not(self._expr(arg))
            case _Bool(op="bare", args=(_Call() as call,)):
                return self._function(node, call, node.quant, node.nocase)
            case _Call():
                return self._function(node, node, "", False)
            case _Cmp(op="in"):
                return self._in_list(node)
            case _Cmp():
                return self._compare(node)
        return self._opaque(node, "value used as a condition")

    def _no_field(self, node: Any) -> str:
        """A categorical reason why ``node`` is not a field."""
        match node:
            case _Arith():
                return "arithmetic comparison"
            case _Call(name=name):
                return f"function {name}() compares a computed value"
            case _Ref():
                return "placeholder without an event field"
        return "comparison without an event field"

    def _compare(self, node: _Cmp) -> Expr:
        left, right, op = node.left, node.right, node.op
        if _is_value(left) and not _is_value(right):
            left, right, op = right, left, _FLIP[op]
        if (same := _field_ref(node)) is not None:
            return same
        if not _is_value(right):
            reason = "variable comparison inside a boolean expression"
            if isinstance(left, _Arith) or isinstance(right, _Arith):
                reason = "arithmetic comparison"
            return self._opaque(node, reason)
        if right.kind == "bare":
            return self._opaque(node, "undelimited value")
        found = self._field(left)
        if found is None:
            return self._opaque(node, self._no_field(left))
        return _predicate(found, op, right, node.nocase, node.quant) or self._opaque(
            node, f"{right.kind} value with operator {op}"
        )

    def _function(self, node: Any, call: _Call, quant: str, nocase: bool) -> Expr:
        op = _MATCH_FUNCS.get(call.name)
        if op is None:
            return self._opaque(node, f"unsupported function {call.name}()")
        if len(call.args) != 2 or not _is_value(call.args[1]):
            return self._opaque(node, f"{call.name}() without a literal pattern")
        found = self._field(call.args[0])
        if found is None:
            return self._opaque(node, self._no_field(call.args[0]))
        syntax = f"{quant} {call.name}()" if quant else f"{call.name}()"
        sensitive = op != Op.CIDR and not (nocase or found.folded)
        value = call.args[1].value
        return Predicate(found.path, op, value, syntax, sensitive, kind=found.kind)

    def _in_list(self, node: _Cmp) -> Expr:
        found = self._field(node.left)
        if found is None:
            return self._opaque(node, self._no_field(node.left))
        syntax = " ".join(p for p in (node.quant, "in", node.mode) if p)
        sensitive = node.mode != "cidr" and not (node.nocase or found.folded)
        value = node.right.value
        return Predicate(found.path, Op.IN_LIST, value, syntax, sensitive, kind=found.kind)

    def stages(self) -> list[Stage]:
        out = []
        for var, exprs in self.filters.items():
            stage = Stage(name=var, expr=and_(*exprs) if exprs else None, role=StageRole.EVENTS)
            stage.join_keys = self.keys.get(var, [])
            if self.joins.get(var):
                stage.params["joins"] = self.joins[var]
            out.append(stage)
        return out


def _field_ref(node: _Cmp) -> Expr | None:
    """`$e.a < $e.b`: two fields of the same event."""
    left, right = node.left, node.right
    if not (isinstance(left, _Ref) and isinstance(right, _Ref) and left.path and right.path):
        return None
    if left.var != right.var:
        return None
    syntax = f"{node.quant} {node.op}".strip()
    pred = Predicate(left.path, Op.FIELD_REF, right.path, syntax, not node.nocase)
    return Not(pred) if node.op == "!=" else pred


def _predicate(f: _Field, op: str, value: _Lit, nocase: bool, quant: str) -> Expr | None:
    """``f op value`` for a literal value; None for combinations YARA-L rejects."""
    prefix = f"{quant} " if quant else ""
    syntax = f"{prefix}{f.folded}() {op}" if f.folded else f"{prefix}{op}"
    sensitive = not (nocase or f.folded)
    v = value.value
    if value.kind == "regex" and op in ("=", "!="):
        pred = Predicate(f.path, Op.REGEX_MATCH, v, f"{syntax} /re/", sensitive, kind=f.kind)
    elif value.kind in ("regex", "list") or (isinstance(v, bool) and op in _ORDER):
        return None
    elif op in ("=", "!=") and v == "":  # the UDM idiom for "field (not) set"
        null_op = Op.EXISTS if op == "!=" else Op.IS_NULL
        return Predicate(f.path, null_op, None, f'{syntax} ""', sensitive, kind=f.kind)
    elif op in ("=", "!="):
        pred = Predicate(f.path, Op.EQ, v, syntax, sensitive, kind=f.kind)
    else:
        return Predicate(f.path, _ORDER[op], v, syntax, sensitive, kind=f.kind)
    return Not(pred) if op == "!=" else pred
