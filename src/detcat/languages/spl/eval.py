"""The SPL eval language (``| where``, ``| eval``) -> ``Expr``.

Comparisons are case-sensitive unless a side is read through lower()/upper();
match(), like(), in(), cidrmatch(), isnull()/isnotnull() and searchmatch()
become predicates; a comparison with a computed value (len(), mvcount(),
arithmetic …) becomes an ``Opaque`` naming what was computed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lark import Token, Tree

from detcat.languages.spl.computed import program, record
from detcat.languages.spl.expr import (
    CASE_FOLDS,
    FLIPPED,
    ORDERING,
    Builder,
    Cases,
    Conjunct,
    FieldRef,
    Scope,
    SearchBuilder,
    classify,
    eval_string,
    like_chars,
    number,
    parse_tree,
    predicate,
    unquote,
)
from detcat.model import Expr, Not, Op, Opaque, Reason, Value, and_, opaques, or_


@dataclass(slots=True)
class _Operand:
    kind: str  # "field" | "lit" | "null" | "time" | "computed"
    ref: FieldRef | None = None
    ci: bool = False
    value: Value = None
    why: str = ""  # for "computed": what is computed (the Opaque detail)


def _fields(node: Tree | Token) -> list[str]:
    """Field names an eval subtree reads (function names excluded)."""
    if isinstance(node, Token):
        return [unquote(str(node))[0]] if node.type in ("EFIELD", "QFIELD") else []
    kids = node.children[1:] if node.data == "e_func" else node.children
    return [name for kid in kids for name in _fields(kid)]


def _call(node: Tree) -> tuple[str, list[Any]]:
    args = node.children[1].children if len(node.children) > 1 else []
    return str(node.children[0]).lower(), args


def _literal(token: Token) -> Value:
    if token.type == "STRING":
        return eval_string(str(token))
    num = number(str(token))
    return num if num is not None else float(str(token))


_ARITHMETIC = "arithmetic expression"


class EvalBuilder(Builder):
    """Boolean eval expressions (``| where``) -> Expr; comparisons are case-sensitive
    unless a side is read through lower()/upper()."""

    def build(self, node: Tree | Token) -> Expr:
        if isinstance(node, Token):
            return self.opaque(node, Reason.NOT_A_CONDITION, "value")
        match node.data:
            case "e_or":
                return or_(*(self.build(c) for c in node.children))
            case "e_and":
                return and_(*(self.build(c) for c in node.children))
            case "e_neg":
                return Not(self.build(node.children[0]))
            case "e_xor":
                return self.opaque(node, Reason.UNSUPPORTED_SYNTAX, "XOR")
            case "e_compare":
                return self.compare(node)
            case "e_like":
                return self.like(node, node.children[0], node.children[2], "LIKE")
            case "e_in":
                args = node.children[2].children if len(node.children) > 2 else []
                return self.in_(node, node.children[0], args, "IN")
            case "e_func":
                return self.call(node)
        return self.opaque(node, Reason.NOT_A_CONDITION, "arithmetic expression")

    def touch(self, node: Tree | Token) -> None:
        """Record the fields a subtree reads (they place it in its stage)."""
        for name in _fields(node):
            self.ref(name)

    def __init__(self, text: str, scope: Scope, src: str, offset: int, at: int | None = None):
        super().__init__(text, scope, src, offset)
        # With ``at`` (the pipeline's count of value changes, ``spl.computed``): the
        # programs of the conditions kept Opaque for a computed value, by text; a
        # text met twice with two meanings gets None.
        self.at = at
        self.conditions: dict[str, Any] = {}

    def opaque(self, node: Tree | Token, reason: Reason, detail: str = "") -> Opaque:
        self.touch(node)
        o = Opaque(self.source(node), reason, detail)
        if reason is Reason.COMPUTED_VALUE and self.at is not None:
            record(self.conditions, o.text, program(node, self.scope, self.at))
        return o

    def operand(self, node: Tree | Token) -> _Operand:
        if isinstance(node, Token):
            if node.type in ("EFIELD", "QFIELD"):
                ref = self.ref(unquote(str(node))[0])
                return _Operand("field", ref, ref.ci)
            return _Operand("lit", value=_literal(node))
        first = node.children[0]
        if node.data == "e_minus" and isinstance(first, Token) and first.type == "NUMBER":
            return _Operand("lit", value=-_literal(first))  # type: ignore[operator]
        if node.data == "e_func":
            return self.call_operand(node)
        self.touch(node)
        if node.data in ("e_sum", "e_prod", "e_minus"):
            return _Operand("computed", why=_ARITHMETIC)
        return _Operand("computed", why="boolean expression as a value")

    def call_operand(self, node: Tree) -> _Operand:
        name, args = _call(node)
        if name in CASE_FOLDS and len(args) == 1:
            inner = self.operand(args[0])
            if inner.kind == "field":
                return _Operand("field", inner.ref, True)
            if inner.kind == "computed":
                return inner
            return _Operand("lit", value=inner.value)
        if not args and name == "null":
            return _Operand("null")
        if when := _relative_time(name, args):
            return _Operand("time", value=when)
        if not args and name in ("true", "false"):
            return _Operand("lit", value=name == "true")
        self.touch(node)
        return _Operand("computed", why=f"{name}()")

    def compare(self, node: Tree) -> Expr:
        left, op_tok, right = node.children
        op = str(op_tok)
        lhs, rhs = self.operand(left), self.operand(right)
        if lhs.kind != "field" and rhs.kind == "field":
            lhs, rhs, op = rhs, lhs, FLIPPED[op]
        for side in (lhs, rhs):
            if side.kind == "computed":
                return self.opaque(node, Reason.COMPUTED_VALUE, side.why)
        if lhs.kind != "field":
            return Opaque(self.source(node), Reason.CONSTANTS)
        if rhs.kind == "null":
            pred = predicate(lhs.ref, Op.EXISTS if op == "!=" else Op.IS_NULL, None, op)
            return (
                pred if op in ("=", "==", "!=") else Opaque(self.source(node), Reason.NULL_ORDERING)
            )
        if rhs.kind == "field":
            # field_ref compares two fields; ``syntax`` says how ("==", ">", …).
            assert rhs.ref is not None
            pred = predicate(lhs.ref, Op.FIELD_REF, rhs.ref.raw, op, not (lhs.ci or rhs.ci))
            return Not(pred) if op == "!=" else pred
        if rhs.kind == "time":  # a time relative to the search: the value is its spec
            op_ = Op.EQ if op in ("=", "==", "!=") else ORDERING[op]
            pred = predicate(lhs.ref, op_, rhs.value, "relative_time()")
            return Not(pred) if op == "!=" else pred
        if op in ("=", "==", "!=") and lhs.ref is not None:
            test = self.cases(lhs.ref, rhs.value, ci=lhs.ci)
            if test is not None:
                return Not(test) if op == "!=" else test
        cs = not lhs.ci and isinstance(rhs.value, str)
        if op == "!=":
            return Not(predicate(lhs.ref, Op.EQ, rhs.value, op, cs))
        return predicate(lhs.ref, ORDERING.get(op, Op.EQ), rhs.value, op, cs)

    def subject(self, node: Tree, arg: Any, fn: str) -> _Operand | Opaque:
        """The field a function such as match() tests, or an Opaque saying why not."""
        subj = self.operand(arg)
        if subj.kind == "field":
            return subj
        if subj.kind == "computed":
            return self.opaque(node, Reason.COMPUTED_VALUE, subj.why)
        return Opaque(self.source(node), Reason.CONSTANTS, f"{fn}() of a constant")

    def call(self, node: Tree) -> Expr:
        name, args = _call(node)
        handler = _CALLS.get(name)
        if handler is None:
            if name in ("if", "case"):
                return self.opaque(node, Reason.COMPUTED_VALUE, "if()/case()")
            return self.opaque(node, Reason.FUNCTION, f"{name}()")
        return handler(self, node, args)

    def match(self, node: Tree, args: list[Any]) -> Expr:
        if len(args) != 2 or not _is_string(args[1]):
            return self.opaque(node, Reason.COMPUTED_VALUE, "match() pattern")
        subj = self.subject(node, args[0], "match")
        if isinstance(subj, Opaque):
            return subj
        regex = eval_string(str(args[1]))
        cs = not subj.ci and not regex.startswith("(?i)")
        return predicate(subj.ref, Op.REGEX_MATCH, regex, "match()", cs)

    def like_call(self, node: Tree, args: list[Any]) -> Expr:
        if len(args) != 2:
            return self.opaque(node, Reason.COMPUTED_VALUE, "like() pattern")
        return self.like(node, args[0], args[1], "like()")

    def like(self, node: Tree, arg: Any, pattern: Any, syntax: str) -> Expr:
        if not _is_string(pattern):
            return self.opaque(node, Reason.COMPUTED_VALUE, "like() pattern")
        subj = self.subject(node, arg, "like")
        if isinstance(subj, Opaque):
            return subj
        op, value = classify(like_chars(eval_string(str(pattern))))
        return predicate(subj.ref, op, value, syntax, not subj.ci)

    def null_test(self, node: Tree, args: list[Any]) -> Expr:
        name, _ = _call(node)
        if len(args) != 1:
            return self.opaque(node, Reason.FUNCTION, f"{name}() with {len(args)} arguments")
        subj = self.subject(node, args[0], name)
        if isinstance(subj, Opaque):
            return subj
        if subj.ref is not None and subj.ref.present is not None:
            return subj.ref.present if name == "isnotnull" else Not(subj.ref.present)
        return predicate(subj.ref, Op.IS_NULL if name == "isnull" else Op.EXISTS, None, f"{name}()")

    def cidrmatch(self, node: Tree, args: list[Any]) -> Expr:
        if len(args) != 2 or not _is_string(args[0]):
            return self.opaque(node, Reason.COMPUTED_VALUE, "cidrmatch() range")
        subj = self.subject(node, args[1], "cidrmatch")
        if isinstance(subj, Opaque):
            return subj
        return predicate(subj.ref, Op.CIDR, eval_string(str(args[0])), "cidrmatch()")

    def in_call(self, node: Tree, args: list[Any]) -> Expr:
        if not args:
            return self.opaque(node, Reason.EMPTY, "in()")
        return self.in_(node, args[0], args[1:], "in()")

    def in_(self, node: Tree, arg: Any, items: list[Any], syntax: str) -> Expr:
        """``f IN ("a", g)``: a literal member is an eq, a field member a field_ref
        (membership in a multivalue field)."""
        if not items or not all(isinstance(i, Token) for i in items):
            return self.opaque(node, Reason.COMPUTED_VALUE, "IN list members")
        subj = self.subject(node, arg, "in")
        if isinstance(subj, Opaque):
            return subj
        preds = []
        for item in items:
            member = self.operand(item)
            if member.kind == "field" and member.ref is not None:
                cs = not (subj.ci or member.ci)
                preds.append(predicate(subj.ref, Op.FIELD_REF, member.ref.raw, syntax, cs))
            else:
                cs = not subj.ci and isinstance(member.value, str)
                preds.append(predicate(subj.ref, Op.EQ, member.value, syntax, cs))
        return or_(*preds)

    def searchmatch(self, node: Tree, args: list[Any]) -> Expr:
        if len(args) != 1 or not _is_string(args[0]):
            return self.opaque(node, Reason.COMPUTED_VALUE, "searchmatch() search")
        token: Token = args[0]
        text = eval_string(str(token))
        offset = self.offset + (token.start_pos or 0) + 1
        inner = SearchBuilder(text, self.scope, self.src, offset)
        tree = parse_tree(text, "search", self.src, offset)
        parts = inner.conjuncts(tree, "s_and", inner.build)
        for part in parts:
            self.refs.extend(part.refs)
        return (
            and_(*(p.expr for p in parts)) if parts else Opaque(text, Reason.EMPTY, "searchmatch()")
        )


def _two_way(name: str, args: list[Any]) -> tuple[Any, Value, Value] | None:
    """(condition, value if true, value otherwise) of a two-way conditional with
    constant results: ``if(c, a, b)``, ``case(c, a)``, ``case(c, a, true(), b)``."""
    if name == "if" and len(args) == 3 and _is_literal(args[1]) and _is_literal(args[2]):
        return args[0], _literal(args[1]), _literal(args[2])
    if name != "case" or len(args) not in (2, 4) or not _is_literal(args[1]):
        return None
    if len(args) == 2:
        return args[0], _literal(args[1]), None
    otherwise = args[2]
    is_true = isinstance(otherwise, Tree) and otherwise.data == "e_func"
    if is_true and _call(otherwise) == ("true", []) and _is_literal(args[3]):
        return args[0], _literal(args[1]), _literal(args[3])
    return None


def _is_field(node: Any) -> bool:
    return isinstance(node, Token) and node.type in ("EFIELD", "QFIELD")


def _is_literal(node: Any) -> bool:
    return isinstance(node, Token) and node.type in ("STRING", "NUMBER")


def _is_string(node: Any) -> bool:
    return isinstance(node, Token) and node.type == "STRING"


def _relative_time(name: str, args: list[Any]) -> str | None:
    """``now()`` -> "now"; ``relative_time(now(), "-70m@m")`` -> "-70m@m"."""
    if name == "now" and not args:
        return "now"
    if name == "relative_time" and len(args) == 2 and _is_string(args[1]):
        first = args[0]
        if isinstance(first, Tree) and first.data == "e_func" and _call(first) == ("now", []):
            return eval_string(str(args[1]))
    return None


_CALLS: dict[str, Callable[[EvalBuilder, Tree, list[Any]], Expr]] = {
    "match": EvalBuilder.match,
    "like": EvalBuilder.like_call,
    "isnull": EvalBuilder.null_test,
    "isnotnull": EvalBuilder.null_test,
    "cidrmatch": EvalBuilder.cidrmatch,
    "in": EvalBuilder.in_call,
    "searchmatch": EvalBuilder.searchmatch,
}


def where_conjuncts(
    text: str, scope: Scope, src: str, offset: int, at: int | None = None
) -> list[Conjunct]:
    """The top-level AND members of a ``| where`` expression (with ``at``: each with
    the programs of its conditions on computed values, see ``EvalBuilder``)."""
    tree = parse_tree(text, "eval", src, offset)
    b = EvalBuilder(text, scope, src, offset, at)
    out = b.conjuncts(tree, "e_and", b.build)
    for c in out:
        c.conditions = {o.text: b.conditions[o.text] for o in opaques(c.expr)
                        if o.text in b.conditions}  # fmt: skip
    return out


@dataclass(slots=True)
class Assignment:
    """``| eval target=expr``: a copy of one field (perhaps case-folded) or a
    value derived from ``refs`` (by a condition, for ``if(cond, "a", "b")``)."""

    target: str
    source: FieldRef | None
    ci: bool
    refs: list[FieldRef]
    cases: Cases | None = None


def eval_assignments(text: str, src: str, offset: int) -> list[tuple[str, Tree | Token]]:
    """The (target, expression) pairs of an ``| eval`` command, in order."""
    tree = parse_tree(text, "evals", src, offset)
    return [(unquote(str(a.children[0]))[0], a.children[2]) for a in tree.children]


def analyze_assignment(
    target: str, expr: Tree | Token, scope: Scope, text: str, src: str, offset: int
) -> Assignment:
    """Resolve what ``target`` will mean; call it when earlier assignments are
    defined. ``text`` is the eval command's text (at ``offset`` of ``src``)."""
    if _is_field(expr):
        ref = scope.resolve(unquote(str(expr))[0])
        return Assignment(target, ref, False, [ref])
    if isinstance(expr, Tree) and expr.data == "e_func":
        name, args = _call(expr)
        if name in CASE_FOLDS and len(args) == 1 and _is_field(args[0]):
            ref = scope.resolve(unquote(str(args[0]))[0])
            return Assignment(target, ref, True, [ref])
        if branches := _two_way(name, args):
            b = EvalBuilder(text, scope, src, offset)
            cond = b.build(branches[0])
            if not opaques(cond):  # otherwise x stays a plain derived field
                cases = Cases(cond, branches[1], branches[2], tuple(b.refs))
                return Assignment(target, None, False, b.refs, cases)
    return Assignment(target, None, False, [scope.resolve(n) for n in _fields(expr)])
