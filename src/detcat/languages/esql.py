"""ES|QL -> stages.

``esql.parse(text)`` returns the stages of one ES|QL query:

- ``WHERE`` commands before the first ``STATS`` filter events: they are ANDed
  into the first stage (role ``events``; ``params["from"]`` holds the index
  patterns of ``FROM``, ``params["metadata"]`` its METADATA fields).
- Each ``STATS … BY …`` opens an ``aggregate`` stage (``params["by"]``,
  ``params["aggregations"]``) that the ``WHERE`` commands after it filter.
  ``INLINE STATS`` keeps the rows: it stays in the current stage
  (``params["inline_stats"]``).
- Fields made inside the query (``EVAL``, ``DISSECT``, ``GROK``, ``RENAME``,
  ``STATS`` outputs, ``COMPLETION``) give predicates with ``kind="derived"``;
  the stage that makes one maps it to its source in ``params["derived"]`` (the
  last one: a name made twice is also listed in ``params["redefined"]``).

Comparisons follow ES|QL's case rules: ``==``, ``LIKE``, ``RLIKE``, ``IN``
are case-sensitive, ``=~`` is not, and neither is any comparison of a
``TO_LOWER``/``TO_UPPER``-wrapped field. ``KQL("…")`` is read by the KQL
parser. What has no predicate reading (arithmetic, ``LENGTH(x) > n``) becomes
``Opaque`` with its source text.

Commands are split at pipes outside strings and comments; WHERE, FROM,
DISSECT/GROK and RENAME bodies are parsed with their own start symbol of
esql.lark (see esql_syntax.py). EVAL and STATS compute rather than filter:
only their output names matter, plus the conditions of a CASE with constant
results (``WHERE x IS NOT NULL`` after ``EVAL x = CASE(c1, "a", c2, "b")`` is
``c1 OR c2``), so their items are split by a scanner that checks brackets and
strings, and only CASE expressions are parsed. KEEP, DROP, SORT, LIMIT,
MV_EXPAND, SAMPLE, ENRICH and LOOKUP JOIN filter nothing; any other command
becomes an ``Opaque`` instead of a syntax error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from lark.exceptions import UnexpectedInput

from detcat.languages import kql, wildcards
from detcat.languages.esql_syntax import (
    LEAD,
    QNAME,
    TRIM,
    BodyError,
    Item,
    N,
    parse_body,
    split_commands,
    split_items,
)
from detcat.languages.lalr import position, unexpected
from detcat.model import (
    Expr,
    Not,
    Op,
    Opaque,
    Predicate,
    QueryError,
    Reason,
    Stage,
    StageRole,
    and_,
    depth_limited,
    map_predicates,
    opaques,
    or_,
    replace,
)

_COMMAND = re.compile(
    r"(?:\s|//[^\n]*|/\*[\s\S]*?\*/)*(inline\s+stats|lookup\s+join|[a-z_]+)\b", re.IGNORECASE
)
_CASE_CALL = re.compile(r"case\s*\(", re.IGNORECASE)
_DISSECT_KEY = re.compile(r"%\{([^}]*)\}")
_DISSECT_NAME = re.compile(r"->$|/\d+$")  # %{name->} padding, %{+name/2} append order
_GROK_KEY = re.compile(r"%\{\w+:([^}:]+)(?::\w+)?\}|\(\?<(\w+)>")
_COMPLETION_TARGET = re.compile(r"\s*([\w.@]+|`[^`]+`)\s*=(?!=)")
_SOURCES = {"from", "ts", "metrics", "row", "show"}
# Commands that neither drop rows by a condition nor make a field we track.
_NEUTRAL = {"keep", "drop", "sort", "limit", "mv_expand", "sample", "lookup join", "enrich"}
_COMPARE = {"==": Op.EQ, "=~": Op.EQ, "<": Op.LT, "<=": Op.LTE, ">": Op.GT, ">=": Op.GTE}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!=", "=~": "=~"}
_CASE_FOLDS = {"to_lower", "to_upper"}
# Constant folding of a comparison against one CASE result (null compares false).
_EQUALITY: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda v, c: v is not None and v == c,
    "!=": lambda v, c: v is not None and v != c,
    "=~": lambda v, c: isinstance(v, str) and isinstance(c, str) and v.lower() == c.lower(),
}
# Type conversions keep the field's value: comparing TO_IP(source.ip) is comparing source.ip.
_TRANSPARENT = {
    "to_string", "to_str", "to_ip", "to_double", "to_dbl", "to_integer", "to_int", "to_long",
    "to_unsigned_long", "to_ul", "to_ulong", "to_boolean", "to_bool", "to_version", "to_ver",
    "to_datetime", "to_dt", "to_date_nanos",
}  # fmt: skip
_STRING_FUNCS = {"starts_with": Op.STARTS_WITH, "ends_with": Op.ENDS_WITH, "contains": Op.CONTAINS}
_MATCH_FUNCS = {"match", "match_phrase", "mv_contains"}


# -- pipeline -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Case:
    conditions: tuple[Expr, ...]
    values: tuple[Any, ...]
    default: Any


@dataclass(slots=True)
class _Pipeline:
    """Stages being built while walking the commands of one query."""

    text: str
    stages: list[Stage] = field(default_factory=list)
    derived: set[str] = field(default_factory=set)
    # EVAL x = CASE(c1, "v1", …, default) with constant values: the conditions
    # stand in for tests of x (see _Cond.case_test).
    cases: dict[str, _Case | _LazyCase | None] = field(default_factory=dict)

    @property
    def current(self) -> Stage:
        return self.stages[-1]

    def add_filter(self, expr: Expr) -> None:
        self.current.expr = expr if self.current.expr is None else and_(self.current.expr, expr)

    def case(self, name: str) -> _Case | None:
        entry = self.cases.get(name)
        if isinstance(entry, _LazyCase):
            entry = self.cases[name] = entry.read()
        return entry

    def derive(self, name: str, source: str) -> None:
        derived = self.current.params.setdefault("derived", {})
        if name in self.derived and derived.get(name) != source:
            # made again otherwise ("derived" keeps the last source only); DISSECT's
            # %{+x} appends within one command: the same source
            redefined = self.current.params.setdefault("redefined", [])
            if name not in redefined:
                redefined.append(name)
        self.derived.add(name)
        derived[name] = source


@depth_limited
def parse(text: str) -> list[Stage]:
    """Parse one ES|QL query into stages; ``QueryError`` if unreadable."""
    if not text.strip():
        raise QueryError("ES|QL: empty query", 1, 1)
    pipe = _Pipeline(text, [Stage(name="main", role=StageRole.EVENTS)])
    for i, (offset, command) in enumerate(split_commands(text)):
        m = _COMMAND.match(command)
        name = " ".join(m.group(1).lower().split()) if m else ""
        if not name or (i == 0) != (name in _SOURCES):
            expected = "FROM, ROW or SHOW" if i == 0 else "a processing command"
            line, col = position(text, offset + LEAD.match(command).end())  # type: ignore[union-attr]
            raise QueryError(f"ES|QL: expected {expected}", line, col)
        handler = _HANDLERS.get(name, _unknown)
        handler(_Command(pipe, name, command[m.end() :], offset + m.end()))
    return pipe.stages


@dataclass(slots=True)
class _Command:
    pipe: _Pipeline
    name: str
    body: str
    offset: int  # of the body in the whole query

    def parse(self, start: str) -> Any:
        try:
            return parse_body(start, self.body)
        except UnexpectedInput as e:
            message = unexpected(e, self.body, "ES|QL", "command")
            at_end = message.endswith("end of command")
            pos = len(TRIM.sub("", self.body)) if at_end else max(e.pos_in_stream or 0, 0)
            if at_end:
                pos += LEAD.match(self.body).end()  # type: ignore[union-attr]
            self.fail(message, pos)

    def source(self, node: N) -> str:
        return self.body[node.start : node.end]

    def items(self) -> tuple[list[Item], list[Item]]:
        try:
            return split_items(self.body)
        except BodyError as e:
            self.fail(f"ES|QL: {self.name.upper()}: {e.message}", e.pos)

    def fail(self, message: str, pos: int) -> NoReturn:
        raise QueryError(message, *position(self.pipe.text, self.offset + pos))


def _from(cmd: _Command) -> None:
    if cmd.name in ("row", "show"):
        return
    sources, metadata = cmd.parse("from_body")
    cmd.pipe.current.params["from"] = sources
    if metadata:
        cmd.pipe.current.params["metadata"] = metadata


def _where(cmd: _Command) -> None:
    cmd.pipe.add_filter(_Cond(cmd).condition(cmd.parse("where_body")))


def _eval(cmd: _Command) -> None:
    for target, start, end in cmd.items()[0]:
        expr = TRIM.sub("", cmd.body[start:end])
        name = target or expr
        cmd.pipe.cases.pop(name, None)
        if _CASE_CALL.match(expr):  # read when a WHERE tests it (most are only aggregated)
            sub = _Command(cmd.pipe, cmd.name, cmd.body[start:end], cmd.offset + start)
            cmd.pipe.cases[name] = _LazyCase(sub, frozenset(cmd.pipe.derived))
        cmd.pipe.derive(name, expr)


@dataclass(frozen=True, slots=True)
class _LazyCase:
    """An EVAL'd CASE not read yet, with the fields derived before it."""

    cmd: _Command
    derived: frozenset[str]

    def read(self) -> _Case | None:
        return _case(_Cond(self.cmd, self.derived), self.cmd.parse("where_body"))


def _case(cond: _Cond, n: N) -> _Case | None:
    """A CASE whose results are all constants, its conditions read as filters."""
    if n.kind != "call" or n.value != "case" or len(n.args) < 2:
        return None
    pairs = len(n.args) // 2
    values = [_constant(n.args[2 * i + 1]) for i in range(pairs)]
    default = _constant(n.args[-1]) if len(n.args) % 2 else (None,)
    if default is None or any(v is None for v in values):
        return None
    conditions = tuple(cond.condition(n.args[2 * i]) for i in range(pairs))
    if any(opaques(c) for c in conditions):
        return None
    return _Case(conditions, tuple(v[0] for v in values), default[0])  # type: ignore[index]


def _stats(cmd: _Command) -> None:
    aggs, by = cmd.items()
    outputs = [(t, TRIM.sub("", cmd.body[a:b])) for t, a, b in aggs]
    outputs = [(t or e, e) for t, e in outputs]
    pipe = cmd.pipe
    if cmd.name == "stats":
        pipe.cases.clear()  # their conditions test events, which STATS folds away
        n = sum(1 for s in pipe.stages if s.role is StageRole.AGGREGATE)
        groups = [(t, TRIM.sub("", cmd.body[a:b])) for t, a, b in by]
        params = {"by": [t or e for t, e in groups], "aggregations": [e for _, e in outputs]}
        name = "stats" if n == 0 else f"stats_{n + 1}"
        pipe.stages.append(Stage(name=name, role=StageRole.AGGREGATE, params=params))
        for target, expr in groups:
            if target is not None or not QNAME.fullmatch(expr):
                pipe.derive(target or expr, expr)
    else:
        pipe.current.params.setdefault("inline_stats", []).extend(e for _, e in outputs)
    for name, expr in outputs:
        pipe.derive(name, expr)


def _extract(cmd: _Command) -> None:
    node, pattern = cmd.parse("extract_body")
    if cmd.name == "dissect":
        keys = [_DISSECT_NAME.sub("", k.lstrip("+*&")) for k in _DISSECT_KEY.findall(pattern)]
        keys = [k for k in keys if k and not k.startswith("?")]
    else:
        keys = [a or b for a, b in _GROK_KEY.findall(pattern)]
    for key in keys:
        cmd.pipe.derive(key, f"{cmd.name.upper()} {cmd.source(node)}")


def _rename(cmd: _Command) -> None:
    for old, new in cmd.parse("rename_body"):
        cmd.pipe.derive(new, old)


def _completion(cmd: _Command) -> None:
    m = _COMPLETION_TARGET.match(cmd.body)
    target = m.group(1).strip("`") if m else "completion"
    cmd.pipe.derive(target, "COMPLETION")


def _neutral(cmd: _Command) -> None:
    """Understood, and nothing to record."""


def _unknown(cmd: _Command) -> None:
    text = f"{cmd.name.upper()} {cmd.body.strip()}".strip()
    cmd.pipe.add_filter(Opaque(text, Reason.UNSUPPORTED_COMMAND, cmd.name.upper()))


_HANDLERS: dict[str, Callable[[_Command], None]] = {
    **{n: _from for n in _SOURCES},
    **{n: _neutral for n in _NEUTRAL},
    "where": _where,
    "eval": _eval,
    "stats": _stats,
    "inline stats": _stats,
    "inlinestats": _stats,
    "dissect": _extract,
    "grok": _extract,
    "rename": _rename,
    "completion": _completion,
}


# -- conditions ---------------------------------------------------------------------------


class _Cond:
    """Boolean ES|QL nodes -> Expr."""

    def __init__(self, cmd: _Command, derived: frozenset[str] | None = None):
        self.cmd = cmd
        self.derived = cmd.pipe.derived if derived is None else derived

    def condition(self, n: N) -> Expr:
        """A condition with the fields made earlier in the query marked derived."""
        expr = self.cond(n)
        derived = self.derived
        if not derived:
            return expr
        return map_predicates(  # type: ignore[return-value]
            expr, lambda p: replace(p, kind="derived") if p.field_raw in derived else p
        )

    def case_test(self, lhs: N, test: Callable[[Any], bool]) -> Expr | None:
        """``x <test>`` for ``x = CASE(c1, v1, …, d)``: when the test holds for
        every value and not the default, it is ``c1 OR c2 …``; when it holds for
        the default only, ``NOT (c1 OR c2 …)``. Otherwise None (no exact reading)."""
        case = self.cmd.pipe.case(lhs.value) if lhs.kind == "field" else None
        if case is None:
            return None
        hits = [test(v) for v in case.values]
        if all(hits) and not test(case.default):
            return or_(*case.conditions)
        if not any(hits) and test(case.default):
            return Not(or_(*case.conditions))
        return None

    def cond(self, n: N) -> Expr:
        match n.kind:
            case "or":
                return or_(*(self.cond(a) for a in n.args))
            case "and":
                return and_(*(self.cond(a) for a in n.args))
            case "not":
                return Not(self.cond(n.args[0]))
            case "parens":
                return self.cond(n.args[0])
            case "compare":
                return self.compare(n)
            case "match_op":
                return self.field_const(n, n.args[0], n.args[1], Op.EQ, ":", fold=True)
            case "is_null" | "is_not_null":
                return self.null_check(n)
            case "in" | "not_in":
                return self.negate(n, self.in_list(n))
            case "like" | "not_like" | "rlike" | "not_rlike":
                return self.negate(n, self.like(n))
            case "call":
                return self.call(n)
            case "field":
                return Predicate(n.value, Op.EQ, True, "", True)
        return self.opaque(n, Reason.NOT_A_CONDITION, "expression")

    def opaque(self, n: N, reason: Reason, detail: str = "") -> Opaque:
        return Opaque(self.cmd.source(n), reason, detail)

    @staticmethod
    def negate(n: N, expr: Expr) -> Expr:
        return Not(expr) if n.kind.startswith("not_") else expr

    def computed(self, n: N, *sides: N) -> Opaque:
        """Why a comparison is not field-vs-constant, named after what computes."""
        for side in sides:
            call = _first_call(side)
            if call is not None:
                return self.opaque(n, Reason.COMPUTED_VALUE, f"{call}()")
        if all(_constant(s) is not None for s in sides):
            return self.opaque(n, Reason.CONSTANTS)
        return self.opaque(n, Reason.COMPUTED_VALUE, "arithmetic")

    def compare(self, n: N) -> Expr:
        lhs, op, rhs = n.args
        if _operand(lhs) is None and _operand(rhs) is not None:
            lhs, op, rhs = rhs, _FLIP[op], lhs
        const = _constant(rhs)
        if const is not None and op in _EQUALITY:
            expanded = self.case_test(lhs, lambda v: _EQUALITY[op](v, const[0]))
            if expanded is not None:
                return expanded
        left, right = _operand(lhs), _operand(rhs)
        if left is not None and right is not None:
            # field_ref: the comparison operator is the predicate's syntax
            sensitive = not (left[1] or right[1] or op == "=~")
            pred = Predicate(left[0], Op.FIELD_REF, right[0], op, sensitive)
            return Not(pred) if op == "!=" else pred
        if op == "!=":
            return Not(self.field_const(n, lhs, rhs, Op.EQ, "!="))
        return self.field_const(n, lhs, rhs, _COMPARE[op], op, fold=op == "=~")

    def field_const(self, n: N, lhs: N, rhs: N, op: Op, syntax: str, fold: bool = False) -> Expr:
        target, value = _operand(lhs), _constant(rhs)
        if target is None or value is None:
            return self.computed(n, lhs, rhs)
        sensitive = not (fold or target[1]) if op is Op.EQ or isinstance(value[0], str) else False
        return Predicate(target[0], op, value[0], syntax, sensitive)

    def null_check(self, n: N) -> Expr:
        is_null = n.kind == "is_null"
        expanded = self.case_test(n.args[0], lambda v: (v is None) == is_null)
        if expanded is not None:
            return expanded
        target = _operand(n.args[0], null_safe=True)
        if target is None:
            return self.computed(n, n.args[0])
        if n.kind == "is_null":
            return Predicate(target[0], Op.IS_NULL, None, "IS NULL")
        return Predicate(target[0], Op.EXISTS, True, "IS NOT NULL")

    def in_list(self, n: N) -> Expr:
        lhs, items = n.args
        if _constant(lhs) == (True,):  # `true IN (c1, c2)` is c1 OR c2
            return or_(*(self.cond(item) for item in items))
        consts = [_constant(i) for i in items]
        if all(c is not None for c in consts):
            members = {c[0] for c in consts}  # type: ignore[index]
            expanded = self.case_test(lhs, lambda v: v is not None and v in members)
            if expanded is not None:
                return expanded
        target = _operand(lhs)
        if target is None:
            return self.computed(n, lhs)
        out: list[Expr] = []
        for item in items:
            value, other = _constant(item), _operand(item)
            if value is not None:
                out.append(Predicate(target[0], Op.EQ, value[0], "IN", not target[1]))
            elif other is not None:
                out.append(Predicate(target[0], Op.FIELD_REF, other[0], "IN", not target[1]))
            else:
                out.append(self.computed(item, item))
        return or_(*out)

    def like(self, n: N) -> Expr:
        lhs, pattern = n.args
        target = _operand(lhs)
        patterns = pattern.args if pattern.kind == "pattern_list" else (pattern,)
        values = [_constant(p) for p in patterns]
        if target is None or any(v is None or not isinstance(v[0], str) for v in values):
            return self.computed(n, lhs, pattern)
        regex = n.kind.endswith("rlike")
        syntax = "RLIKE" if regex else "LIKE"
        out: list[Expr] = []
        for v in values:
            if regex:
                out.append(Predicate(target[0], Op.REGEX_MATCH, v[0], syntax, not target[1]))  # type: ignore[index]
            else:
                out.append(like_predicate(target[0], v[0], not target[1]))  # type: ignore[index]
        return or_(*out)

    def call(self, n: N) -> Expr:
        name, args = n.value, n.args
        if name == "kql" and args and _constant(args[0]) is not None:
            return self.kql(n, args[0])
        if name == "qstr":
            return self.opaque(n, Reason.FUNCTION, "QSTR() Lucene query string")
        target = _operand(args[0]) if args else None
        consts = [_constant(a) for a in args[1:] if a.kind != "map"]
        if target is None or not consts or any(c is None for c in consts):
            return self.opaque(n, Reason.FUNCTION, f"{name}()")
        syntax = f"{name}()"
        if name in _STRING_FUNCS:
            return Predicate(target[0], _STRING_FUNCS[name], consts[0][0], syntax, not target[1])  # type: ignore[index]
        if name == "cidr_match":
            return or_(*(Predicate(target[0], Op.CIDR, c[0], syntax) for c in consts))  # type: ignore[index]
        if name in _MATCH_FUNCS:
            return Predicate(target[0], Op.EQ, consts[0][0], syntax, name == "mv_contains")  # type: ignore[index]
        return self.opaque(n, Reason.FUNCTION, f"{name}()")

    def kql(self, n: N, arg: N) -> Expr:
        try:
            return kql.parse(str(arg.value))
        except QueryError as e:
            inner = str(arg.value)
            lines = inner.split("\n")[: (e.line or 1) - 1]
            at = sum(len(x) + 1 for x in lines) + (e.column or 1) - 1
            quote = 3 if self.cmd.body.startswith('"""', arg.start) else 1
            self.cmd.fail(f"in KQL(): {e.message}", arg.start + quote + at)


def like_predicate(field_raw: str, pattern: str, case_sensitive: bool) -> Predicate:
    """A LIKE pattern: ``*`` any run, ``?`` one character, ``\\`` escapes."""
    chars: list[tuple[str, bool]] = []
    it = iter(pattern)
    for ch in it:
        chars.append((next(it, "\\"), False) if ch == "\\" else (ch, ch in "*?"))
    op, value = wildcards.classify(wildcards.parts(chars))
    if op is Op.EXISTS:
        return Predicate(field_raw, Op.EXISTS, True, "LIKE")
    return Predicate(field_raw, op, value, "LIKE", case_sensitive)


def _operand(n: N, null_safe: bool = False) -> tuple[str, bool] | None:
    """``field``, ``TO_LOWER(field)``, ``field::type`` -> (field, case-folded)."""
    folded = False
    while True:
        if n.kind == "field":
            return n.value, folded
        if n.kind in ("cast", "parens"):
            n = n.args[0]
        elif n.kind == "call" and len(n.args) == 1 and n.value in _CASE_FOLDS | _TRANSPARENT:
            folded = folded or n.value in _CASE_FOLDS
            n = n.args[0]
        elif null_safe and n.kind == "call" and len(n.args) == 1 and n.args[0].kind == "field":
            n = n.args[0]  # one-field functions are null exactly when the field is
        else:
            return None


def _constant(n: N) -> tuple[Any] | None:
    """A literal's value in a 1-tuple (so that ``null`` is distinguishable)."""
    while n.kind == "parens":
        n = n.args[0]
    if n.kind == "lit":
        return (n.value,)
    if n.kind == "signed" and n.args[1].kind == "lit" and isinstance(n.args[1].value, int | float):
        return (-n.args[1].value if n.args[0] == "-" else n.args[1].value,)
    if _is_now(n):
        return ("NOW()",)
    if n.kind == "arith" and _is_now(n.args[0]) and n.args[1].kind == "lit":
        return (f"NOW() {n.value} {n.args[1].value}",)  # relative time: "NOW() - 1 hour"
    return None


def _is_now(n: N) -> bool:
    return n.kind == "call" and n.value == "now" and not n.args


def _first_call(n: N) -> str | None:
    if n.kind == "call":
        return str(n.value)
    for a in n.args:
        if isinstance(a, N) and (name := _first_call(a)):
            return name
    return None
