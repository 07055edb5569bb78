"""YARA-L 2.0 events section -> one ``Stage`` per event variable.

The syntax tree the parser (``yaral.py``) builds lives here too, because this
module is its main reader. Filters of an event variable become predicates on
UDM paths written without the variable; placeholders (``$x = $e.f``) and
comparisons between event variables are join keys (``Stage.join_keys`` /
``Stage.params["joins"]``). Single-value transforms compared with a literal are
derived predicates (``kind="derived"``); anything else stays ``Opaque``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from detcat.model import Expr, Not, Op, Opaque, Predicate, Reason, Stage, StageRole, and_, or_

MetaValue: TypeAlias = str | int | float | bool  # a literal's value; also meta and option values

# -- syntax tree ----------------------------------------------------------------
# Small nodes with source spans, so that Opaque nodes can quote the rule text.


@dataclass(frozen=True, slots=True)
class Node:
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Ref(Node):
    var: str  # "$e"
    path: str  # "target.process.file.full_path"; "" for placeholders and bare $e


@dataclass(frozen=True, slots=True)
class Lit(Node):
    value: MetaValue
    kind: str  # string | number | bool | regex | list | count | bare


@dataclass(frozen=True, slots=True)
class Call(Node):
    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Arith(Node):
    op: str
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Cmp(Node):
    quant: str  # "", "any", "all"
    left: Any
    op: str  # = != < <= > >= in
    right: Any
    nocase: bool
    mode: str = ""  # "", "regex", "cidr" for `in` lists


@dataclass(frozen=True, slots=True)
class Bool(Node):
    op: str  # and | or | not | absent | bare
    args: tuple[Any, ...]
    quant: str = ""
    nocase: bool = False


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
        case Cmp(left=left, right=right):
            return (left, right)
        case Call(args=args) | Arith(args=args) | Bool(args=args):
            return args
    return ()


def _refs(node: Any) -> list[Ref]:
    if isinstance(node, Ref):
        return [node]
    return [r for child in _children(node) for r in _refs(child)]


def _conjuncts(node: Any) -> list[Any]:
    """Lines are ANDed: `( a and $e.f = $x )` is the same as two lines."""
    if isinstance(node, Bool) and node.op == "and":
        return [leaf for arg in node.args for leaf in _conjuncts(arg)]
    return [node]


def _is_value(node: Any) -> bool:
    return isinstance(node, Lit) and node.kind in _VALUE_KINDS


def event_stages(statements: list[Any], text: str) -> list[Stage]:
    """The stages of an events section; ``text`` is the file the spans point into."""
    return _Events(statements, text).stages()


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
        return isinstance(node, Ref) and not node.path and node.var not in self.filters

    def _is_relation(self, node: Any) -> bool:
        """`$x = $e.f`, `$e1.f = $e2.f`, `re.capture($e.f, "…") = $x`: no literal side."""
        return (
            isinstance(node, Cmp)
            and node.op != "in"
            and bool(_refs(node.left))
            and bool(_refs(node.right))
            and not isinstance(node.left, Arith)
            and not isinstance(node.right, Arith)
        )

    def _field(self, node: Any, depth: int = 0) -> _Field | None:
        if isinstance(node, Ref):
            if node.path:
                return _Field(node.var, node.path)
            for bound in self.bindings.get(node.var, []) if depth < 4 else []:
                if (found := self._field(bound, depth + 1)) is not None:
                    return found
            return None
        if not isinstance(node, Call):
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
            case Ref(var=var, path=path) if path:
                return f"{var}.{path}" if keep_var else path
            case Ref(var=var):
                bound = self._field(node)
                return bound.path if bound and not keep_var else var
            case Lit(kind="string", value=value):
                return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
            case Lit(kind="regex", value=value):
                return f"/{value}/"
            case Call(name=name, args=args):
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
            expr = self._opaque(
                stmt, Reason.CROSS_EVENT, "expression spans several event variables"
            )
        owner = owners[0] if owners else (self.vars[0] if self.vars else "$e")
        self.filters.setdefault(owner, []).append(expr)

    def _relation(self, rel: Cmp) -> None:
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
    def _opaque(self, node: Any, reason: Reason, detail: str = "") -> Opaque:
        return Opaque(self.text[node.start : node.end], reason, detail)

    def _expr(self, node: Any) -> Expr:
        match node:
            case Bool(op="and", args=args):
                return and_(*(self._expr(a) for a in args))
            case Bool(op="or", args=args):
                return or_(*(self._expr(a) for a in args))
            case Bool(op="not", args=(arg,)):
                return Not(self._expr(arg))
            case Bool(op="bare", args=(Call() as call,)):
                return self._function(node, call, node.quant, node.nocase)
            case Call():
                return self._function(node, node, "", False)
            case Cmp(op="in"):
                return self._in_list(node)
            case Cmp():
                return self._compare(node)
        return self._opaque(node, Reason.NOT_A_CONDITION, "value")

    def _no_field(self, node: Any) -> tuple[Reason, str]:
        """Why ``node`` is not a field: (reason, detail)."""
        match node:
            case Arith():
                return Reason.COMPUTED_VALUE, "arithmetic"
            case Call(name=name):
                return Reason.COMPUTED_VALUE, f"{name}()"
            case Ref():
                return Reason.NO_EVENT_FIELD, "placeholder"
        return Reason.NO_EVENT_FIELD, ""

    def _compare(self, node: Cmp) -> Expr:
        left, right, op = node.left, node.right, node.op
        if _is_value(left) and not _is_value(right):
            left, right, op = right, left, _FLIP[op]
        if (same := _field_ref(node)) is not None:
            return same
        if not _is_value(right):
            if isinstance(left, Arith) or isinstance(right, Arith):
                return self._opaque(node, Reason.COMPUTED_VALUE, "arithmetic")
            return self._opaque(node, Reason.CROSS_EVENT, "variable comparison in a condition")
        if right.kind == "bare":
            return self._opaque(node, Reason.UNSUPPORTED_SYNTAX, "undelimited value")
        found = self._field(left)
        if found is None:
            return self._opaque(node, *self._no_field(left))
        return _predicate(found, op, right, node.nocase, node.quant) or self._opaque(
            node, Reason.UNSUPPORTED_SYNTAX, f"{right.kind} value with operator {op}"
        )

    def _function(self, node: Any, call: Call, quant: str, nocase: bool) -> Expr:
        op = _MATCH_FUNCS.get(call.name)
        if op is None:
            return self._opaque(node, Reason.FUNCTION, f"{call.name}()")
        if len(call.args) != 2 or not _is_value(call.args[1]):
            return self._opaque(node, Reason.COMPUTED_VALUE, f"{call.name}() pattern")
        found = self._field(call.args[0])
        if found is None:
            return self._opaque(node, *self._no_field(call.args[0]))
        syntax = f"{quant} {call.name}()" if quant else f"{call.name}()"
        sensitive = op != Op.CIDR and not (nocase or found.folded)
        value = call.args[1].value
        return Predicate(found.path, op, value, syntax, sensitive, kind=found.kind)

    def _in_list(self, node: Cmp) -> Expr:
        found = self._field(node.left)
        if found is None:
            return self._opaque(node, *self._no_field(node.left))
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


def _field_ref(node: Cmp) -> Expr | None:
    """`$e.a < $e.b`: two fields of the same event."""
    left, right = node.left, node.right
    if not (isinstance(left, Ref) and isinstance(right, Ref) and left.path and right.path):
        return None
    if left.var != right.var:
        return None
    syntax = f"{node.quant} {node.op}".strip()
    pred = Predicate(left.path, Op.FIELD_REF, right.path, syntax, not node.nocase)
    return Not(pred) if node.op == "!=" else pred


def _predicate(f: _Field, op: str, value: Lit, nocase: bool, quant: str) -> Expr | None:
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
