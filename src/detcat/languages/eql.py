"""Elastic EQL -> detcat stages.

``parse(text)`` returns one ``Stage`` per event query: a plain ``<category> where
<expr>`` is one stage named "main"; ``sequence``, ``sample`` and the legacy
``join`` give one stage per subquery ("sequence[1]", …, "until"; "sample[1]", …;
"join[1]", …) with their join keys.

Reading choices (the model asks for one; these are ours):

- ``field != null`` is ``exists`` (it is how EQL spells "the field is present"), not
  ``Not(is_null)``, so that it is not counted as an exclusion; ``== null`` is
  ``is_null``. ``not field == null`` stays ``Not(is_null)``.
- ``!=`` is ``Not(eq)`` and ``not in`` is ``Not(or_(eq…))``, with the syntax
  ``"!="`` / ``"not in"`` on the predicates.
- ``field_raw`` is the field's name: the optional-field mark ``?`` and the
  backquotes of escaped names are syntax, not part of the name.
- ``:``, ``like`` and ``like~`` classify ``*`` and ``?`` wildcards (both are EQL
  wildcards). A string's backslash escapes are consumed by the string syntax, so a
  ``*`` after a backslash (``"C:\\\\Users\\\\*"``) is still a wildcard: EQL has no
  escaped wildcard. ``==``, ``in`` and the functions other than ``wildcard()`` take
  their value literally.
- The legacy (Endgame) functions ``wildcard``, ``arrayContains``, ``match`` and
  ``matchLite`` come from a case-insensitive dialect and are read as such;
  Elasticsearch functions are case-sensitive unless written with ``~``;
  ``cidrMatch`` compares addresses, not text (``case_sensitive`` False).
- A comparison of two plain fields is ``field_ref`` (the value is the other field),
  also for ``startsWith(a, b)`` and the like, whose ``syntax`` names the function.
- Pipes (``| head 5``) do not filter events; their text is kept in every stage's
  ``params["pipes"]``.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from detcat.languages.eql_functions import call_expr, reason
from detcat.languages.eql_values import (
    NODE_TYPES,
    Call,
    Computed,
    Field,
    Group,
    Lit,
    Node,
    Tuple,
    classify,
    literal_list,
    source,
    unescape_string,
    unquote_field,
)
from detcat.languages.lalr import lalr
from detcat.model import (
    And,
    Expr,
    Not,
    Op,
    Opaque,
    Or,
    Predicate,
    QueryError,
    Reason,
    Stage,
    and_,
    depth_limited,
    map_predicates,
    or_,
    replace,
)

_GRAMMAR = Path(__file__).with_name("eql.lark")


@depth_limited
def parse(text: str) -> list[Stage]:
    """Parse one EQL query; raise ``QueryError`` for text that is not EQL."""
    token = source.set(text)
    try:
        return _parser().parse(text)  # type: ignore[no-any-return]
    except UnexpectedInput as exc:
        raise _query_error(exc, text) from None
    finally:
        source.reset(token)


@cache
def _parser() -> Lark:
    # Built on first use: importing detcat does no work. The callbacks run inside the
    # LALR parser, which is much faster than building a tree and transforming it.
    return lalr(
        _GRAMMAR.read_text(encoding="utf-8"),
        accelerate=True,
        lexer="contextual",
        transformer=_Builder(),
        maybe_placeholders=False,
    )


@cache
def list_item() -> re.Pattern[str]:
    """Reads the items of a LITERALS token with the grammar's own STRING and NUMBER."""
    terminal = _parser().get_terminal
    string = terminal("STRING").pattern.to_regexp()
    number = terminal("NUMBER").pattern.to_regexp()
    return re.compile(rf"(?P<s>{string})|(?P<n>-?{number})|//[^\n]*|/\*[^*]*\*+(?:[^/*][^*]*\*+)*/")


def _query_error(exc: UnexpectedInput, text: str) -> QueryError:
    if isinstance(exc, UnexpectedEOF) or (
        isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    ):
        line = text.count("\n") + 1
        return QueryError("unexpected end of query", line, len(text) - text.rfind("\n"))
    if isinstance(exc, UnexpectedCharacters):
        return QueryError(f"unexpected character {exc.char!r}", exc.line, exc.column)
    if isinstance(exc, UnexpectedToken):
        expected = ", ".join(sorted({_spell(name) for name in exc.expected})[:12])
        message = f"unexpected {exc.token.value!r}, expected one of: {expected}"
        return QueryError(message, exc.line, exc.column)
    return QueryError(str(exc).splitlines()[0], exc.line, exc.column)


_TERMINALS = {
    "$END": "end of query",
    "EQUALS": "'=='",
    "COMP_OP": "comparison",
    "SIGN": "arithmetic",
    "MUL_OP": "arithmetic",
    "LITERALS": "list",
    "INSENSITIVE_NAME": "function~",
}


def _spell(terminal: str) -> str:
    """A terminal as a reader knows it: "'and'", "'('", "field", "string"."""
    if terminal in _TERMINALS:
        return _TERMINALS[terminal]
    try:
        pattern = _parser().get_terminal(terminal).pattern
    except KeyError:
        return terminal.lower()
    return repr(pattern.value) if pattern.type == "str" else terminal.lower()


# -- query structure ---------------------------------------------------------


class _Query(NamedTuple):
    category: str
    expr: Expr


class _Subquery(NamedTuple):
    query: _Query
    missing: bool  # written ![…]
    end: int


class _Sub(NamedTuple):
    """A subquery with its own ``by`` keys and ``with runs``."""

    query: _Query
    negated: bool
    keys: list[str]
    params: dict[str, Any]


class _Keys(NamedTuple):
    keys: list[str]


class _MaxSpan(NamedTuple):
    span: str


class _Until(NamedTuple):
    sub: _Sub


class _Pipe(NamedTuple):
    start: int


def _stage(name: str, sub: _Sub, keys: list[str], params: dict[str, Any]) -> Stage:
    return Stage(
        name=name,
        expr=sub.query.expr,
        negated=sub.negated,
        join_keys=keys + sub.keys,
        params={"category": sub.query.category, **params, **sub.params},
    )


def _header(items: tuple[Any, ...]) -> tuple[list[str], dict[str, Any], list[_Sub]]:
    """The shared keys, maxspan and subqueries of a sequence or sample."""
    keys: list[str] = []
    params: dict[str, Any] = {}
    subs: list[_Sub] = []
    for item in items:
        if isinstance(item, _Keys):
            keys.extend(item.keys)
        elif isinstance(item, _MaxSpan):
            params["maxspan"] = item.span
        elif isinstance(item, _Sub):
            subs.append(item)
    return keys, params, subs


@v_args(inline=True)
class _Builder(Transformer):  # type: ignore[type-arg]
    """LALR callbacks, one per grammar rule (or alias), building model objects."""

    # -- structure -----------------------------------------------------------

    def start(self, query: Any, *pipes: _Pipe) -> list[Stage]:
        stages = query if isinstance(query, list) else [_main(query)]
        if pipes:
            text = source.get()
            bounds = [p.start for p in pipes] + [len(text)]
            texts = [text[a + 1 : b].strip() for a, b in zip(bounds, bounds[1:], strict=False)]
            for stage in stages:
                stage.params["pipes"] = texts
        return stages

    def event_query(self, category: str, expr: Any) -> _Query:
        return _Query(category, as_bool(expr))

    def category(self, tok: Token) -> str:
        return unescape_string(tok.value) if tok.type == "STRING" else tok.value

    def sequence(self, *items: Any) -> list[Stage]:
        keys, params, subs = _header(items)
        stages = [_stage(f"sequence[{i}]", s, keys, params) for i, s in enumerate(subs, 1)]
        until = [i.sub for i in items if isinstance(i, _Until)]
        stages += [_stage("until", s._replace(negated=True), keys, params) for s in until]
        return stages

    def sample(self, *items: Any) -> list[Stage]:
        keys, params, subs = _header(items)
        return [_stage(f"sample[{i}]", s, keys, params) for i, s in enumerate(subs, 1)]

    def join(self, *items: Any) -> list[Stage]:
        keys, params, subs = _header(items)
        stages = [_stage(f"join[{i}]", s, keys, params) for i, s in enumerate(subs, 1)]
        until = [i.sub for i in items if isinstance(i, _Until)]
        return stages + [_stage("until", s._replace(negated=True), keys, params) for s in until]

    def maxspan(self, _eq: Token, number: Token, unit: Token | None = None) -> _MaxSpan:
        return _MaxSpan(number.value + (unit.value if unit else ""))

    def until(self, sub: _Sub) -> _Until:
        return _Until(sub)

    def subquery_by(self, sub: _Subquery, *options: Any) -> _Sub:
        keys: list[str] = []
        params: dict[str, Any] = {}
        for option in options:
            if isinstance(option, _Keys):
                keys.extend(option.keys)
            else:
                params.update(option)
        return _Sub(sub.query, sub.missing, keys, params)

    def runs(self, _eq: Token, number: Token) -> dict[str, Any]:
        return {"runs": int(number.value)}

    def fork(self, _eq: Token | None = None, value: Token | None = None) -> dict[str, Any]:
        return {"fork": value is None or value.type == "TRUE"}

    def subquery(self, open_: Token, query: _Query, close: Token) -> _Subquery:
        return _Subquery(query, open_.type == "MISSING", close.end_pos)  # type: ignore[arg-type]

    def by_clause(self, *values: Node) -> _Keys:
        return _Keys([v.raw if isinstance(v, Field) else v.text() for v in values])

    def pipe(self, tok: Token, *_args: Any) -> _Pipe:
        return _Pipe(tok.start_pos)  # type: ignore[arg-type]

    # -- conditions ----------------------------------------------------------

    def or_(self, left: Any, right: Any) -> Expr:
        return or_(as_bool(left), as_bool(right))

    def and_(self, left: Any, right: Any) -> Expr:
        return and_(as_bool(left), as_bool(right))

    def not_(self, _not: Token, child: Any) -> Expr:
        return Not(as_bool(child))

    def compare(self, left: Node, op: Token, right: Node) -> Expr:
        return _indexed(left, _compare(left, "==" if op.value == "=" else op.value, right))

    def string_op(self, left: Node, op: Token, right: Node) -> Expr:
        return _indexed(left, _string_op(left, op.value, right))

    def in_(self, left: Node, op: Token, values: Node) -> Expr:
        return _indexed(left, _in(left, op.value, values))

    def not_in(self, left: Node, _not: Token, op: Token, values: Node) -> Expr:
        expr = _indexed(left, _in(left, "not " + op.value, values))
        return expr if isinstance(expr, Opaque) else Not(expr)

    # -- values --------------------------------------------------------------

    def arith(self, left: Node, _op: Token, right: Node) -> Computed:
        return Computed(left.start, right.end, Reason.COMPUTED_VALUE, "arithmetic expression")

    def signed(self, sign: Token, node: Node) -> Node:
        start: int = sign.start_pos  # type: ignore[assignment]
        if isinstance(node, Lit) and isinstance(node.value, int | float):
            return Lit(-node.value if sign.value == "-" else node.value, start, node.end)
        return Computed(start, node.end, Reason.COMPUTED_VALUE, "arithmetic expression")

    def string(self, tok: Token) -> Lit:
        return Lit(unescape_string(tok.value), tok.start_pos, tok.end_pos)  # type: ignore[arg-type]

    def number(self, tok: Token) -> Lit:
        text = tok.value
        value = int(text) if text.isdigit() else float(text)
        return Lit(value, tok.start_pos, tok.end_pos)  # type: ignore[arg-type]

    def boolean(self, tok: Token) -> Lit:
        return Lit(tok.type == "TRUE", tok.start_pos, tok.end_pos)  # type: ignore[arg-type]

    def null(self, tok: Token) -> Lit:
        return Lit(None, tok.start_pos, tok.end_pos)  # type: ignore[arg-type]

    def field(self, tok: Token) -> Field:
        return Field(unquote_field(tok.value), tok.start_pos, tok.end_pos)  # type: ignore[arg-type]

    def literals(self, tok: Token) -> Node:
        items = literal_list(tok.value, tok.start_pos, list_item())  # type: ignore[arg-type]
        return items[0] if len(items) == 1 else Tuple(items, tok.start_pos, tok.end_pos)  # type: ignore[arg-type]

    def call(self, name: Token, _lpar: Token, *rest: Any) -> Call:
        spelled = name.value.rstrip("~")
        end: int = rest[-1].end_pos
        return Call(spelled, spelled != name.value, rest[:-1], name.start_pos, end)  # type: ignore[arg-type]

    def lineage(self, kind: Token, sub: _Subquery) -> Computed:
        return Computed(kind.start_pos, sub.end, Reason.CROSS_EVENT, f"{kind.value} of subquery")  # type: ignore[arg-type]

    def paren(self, lpar: Token, *rest: Any) -> Node:
        items, end = rest[:-1], rest[-1].end_pos
        if len(items) > 1:
            return Tuple(items, lpar.start_pos, end)  # type: ignore[arg-type]
        if isinstance(items[0], NODE_TYPES):
            return items[0]  # type: ignore[no-any-return]
        return Group(items[0], lpar.start_pos, end)  # type: ignore[arg-type]


def _main(query: _Query) -> Stage:
    return Stage(name="main", expr=query.expr, params={"category": query.category})


# -- conditions ----------------------------------------------------------------

_MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_ORDER = {"<": Op.LT, "<=": Op.LTE, ">": Op.GT, ">=": Op.GTE}


def as_bool(node: Any) -> Expr:
    """An operand standing alone as a condition (``where true``, ``startsWith(…)``)."""
    if isinstance(node, And | Or | Not | Predicate | Opaque):
        return node
    if isinstance(node, Group):
        return node.expr
    if isinstance(node, Call):
        return call_expr(node)
    if isinstance(node, Lit) and isinstance(node.value, bool):
        # An empty And is true and an empty Or false: both vanish inside and_/or_.
        return And(()) if node.value else Or(())
    if isinstance(node, Computed):
        return Opaque(node.text(), node.reason, node.detail)
    kind = "field" if isinstance(node, Field) else "value"
    return Opaque(node.text(), Reason.NOT_A_CONDITION, f"bare {kind}")


def _text(a: Node, b: Node) -> str:
    """The source of a comparison, whichever order its operands were written in."""
    return source.get()[min(a.start, b.start) : max(a.end, b.end)]


def _compare(left: Node, op: str, right: Node) -> Expr:
    if isinstance(left, Lit) and isinstance(right, Field | Call):
        left, right, op = right, left, _MIRROR[op]
    if isinstance(left, Call) and isinstance(right, Lit) and _of_one_field(left):
        return _derived(_compare_value(Field(left.text(), left.start, left.end), op, right))
    if not isinstance(left, Field):
        return Opaque(_text(left, right), *reason(right if isinstance(left, Lit) else left))
    if isinstance(right, Lit):
        return _compare_value(left, op, right)
    if isinstance(right, Field):
        ref = Predicate(left.raw, Op.FIELD_REF, right.raw, op, True)
        return Not(ref) if op == "!=" else ref
    if isinstance(right, Tuple) and op in ("==", "!="):
        eqs = or_(*(_item(left.raw, item, op, True, right) for item in right.items))
        return Not(eqs) if op == "!=" else eqs
    return Opaque(_text(left, right), *reason(right))


def _of_one_field(call: Call) -> bool:
    """``length(f)``, ``substring(f, 0, 3)``: a function of one field and constants."""
    fields = [a for a in call.args if isinstance(a, Field)]
    return len(fields) == 1 and all(isinstance(a, Field | Lit) for a in call.args)


def _derived(expr: Expr) -> Expr:
    """A comparison of a value computed from one field (``length(f) > 3``): a
    predicate on the expression, marked derived, rather than Opaque."""
    return map_predicates(expr, lambda p: replace(p, kind="derived"))  # type: ignore[return-value]


def _indexed(left: Node, expr: Expr) -> Expr:
    """A test of an array item (``args[0] == "x"``, legacy EQL that Elasticsearch
    rejects) is not a test of the field's values: derived."""
    return _derived(expr) if isinstance(left, Field) and "[" in left.raw else expr


def _compare_value(left: Field, op: str, lit: Lit) -> Expr:
    field, value = left.raw, lit.value
    if op in _ORDER:
        if value is None:
            return Opaque(_text(left, lit), Reason.NULL_ORDERING)
        return Predicate(field, _ORDER[op], value, op, True)
    if value is None:
        return Predicate(field, Op.IS_NULL if op == "==" else Op.EXISTS, None, op, True)
    eq = Predicate(field, Op.EQ, value, op, True)
    return Not(eq) if op == "!=" else eq


def _item(field: str, item: Any, syntax: str, case_sensitive: bool, within: Node) -> Expr:
    """One value of a list (``in``, ``== (…)``): an equality, or a field reference."""
    if isinstance(item, Lit):
        op = Op.IS_NULL if item.value is None else Op.EQ
        return Predicate(field, op, item.value, syntax, case_sensitive)
    if isinstance(item, Field):
        return Predicate(field, Op.FIELD_REF, item.raw, syntax, case_sensitive)
    if isinstance(item, NODE_TYPES):
        return Opaque(item.text(), *reason(item))
    return Opaque(within.text(), Reason.COMPUTED_VALUE, "boolean expression as a value")


def _in(left: Node, op: str, values: Node) -> Expr:
    if not isinstance(left, Field):
        return Opaque(_text(left, values), *reason(left))
    case_sensitive = not op.endswith("~")
    items = values.items if isinstance(values, Tuple) else (values,)
    return or_(*(_item(left.raw, item, op, case_sensitive, values) for item in items))


def _string_op(left: Node, op: str, right: Node) -> Expr:
    if not isinstance(left, Field):
        return Opaque(_text(left, right), *reason(left))
    case_sensitive = op in ("like", "regex")
    items = right.items if isinstance(right, Tuple) else (right,)
    return or_(*(_pattern(left.raw, op, item, case_sensitive, right) for item in items))


def _pattern(field: str, op: str, item: Any, case_sensitive: bool, within: Node) -> Expr:
    """One pattern of ``:``, ``like``, ``regex`` (and their ``~`` forms)."""
    if isinstance(item, Lit) and isinstance(item.value, str):
        if op.startswith("regex"):
            return Predicate(field, Op.REGEX_MATCH, item.value, op, case_sensitive)
        kind, value = classify(item.value)
        return Predicate(field, kind, value, op, case_sensitive)
    return _item(field, item, op, case_sensitive, within)


__all__ = ["parse"]
