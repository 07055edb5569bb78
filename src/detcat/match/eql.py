"""Evaluating the EQL that detcat's model keeps as text: computed comparisons.

The EQL parser turns field tests into predicates; what it cannot express that way
stays text — an ``Opaque`` condition (``add(serial_event_id, 1) == 2``,
``startsWith("explorer.exe", file_name)``, ``pid * 2 > 10``) or the computed side
of a *derived* predicate (``length(process.command_line) > 50`` has the field
``length(process.command_line)``). Here that text is read once, with the EQL
grammar itself, into closures over an event (compiled when a stage is first
used; never re-parsed per event).

Semantics are Elasticsearch's (see ``match.eql_functions`` for the functions):

- a value is the list of a field's values: a function of a multi-valued field
  applies to each value, and a comparison holds when one combination does;
- a missing field is null; a function of null, and a comparison with null, are
  null, which never matches (``where`` drops it) and stays null under ``not``
  (the ``NULL`` result of ``match.evaluate``); ``x == null`` / ``x != null``
  test nullness;
- ``==`` compares strings case-sensitively, numbers numerically; a string
  compared with a number is a type error for Elasticsearch: unknown;
- ``<``/``<=``/``>``/``>=`` order numbers, or strings by code point;
- arithmetic ``+ - * / %`` as the functions ``add`` … ``modulo``.

Lineage (``descendant of``, ``child of``, ``event of``, legacy EQL only) asks the
stream's process tree (``match.lineage``), which tests each clause's subquery on
every event; the clauses a stage's filter holds are listed in its dialect's
``lineage``. Unknown (never a false "no"): ``arrayCount`` and other functions
Elasticsearch does not define, a field indexed past an array of objects.

Some legacy EQL that Elasticsearch rejects is read as the legacy ``eql`` package
reads it: an array index (``list[0]``, the n-th value), a bare field as a
condition (its truthiness), ``safe(x)`` (null where x is an error) and
``arraySearch(array, alias, condition)`` (over the document's array items).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import LarkError

from detcat.languages.eql import list_item
from detcat.languages.eql_values import literal_list, unescape_string, unquote_field
from detcat.languages.lalr import lalr
from detcat.match import eql_functions as fn
from detcat.match.eql_functions import Undetermined
from detcat.match.evaluate import NULL, Dialect, Test, all_of, any_of, negate
from detcat.match.events import Event
from detcat.match.lineage import UNSETTLED, Clause, answer
from detcat.match.patterns import compiled_regex, wildcard_regex
from detcat.model import Op, Opaque, Predicate, Reason

# A value: the candidates an expression takes on an event (empty: null).
Values = Callable[[Event], list[Any]]
Resolve = Callable[[str], tuple[str, ...]]  # raw field name -> canonical names

_COMBINATIONS = 256  # most argument combinations one call evaluates (multi-valued fields)
_INDEX = re.compile(r"^(.*?)((?:\[[0-9]+\])+)$")


class NotEvaluated(Exception):
    """A construct this module does not evaluate; its message is the reason."""


@cache
def _parser() -> Lark:
    grammar = (Path(__file__).parents[1] / "languages" / "eql.lark").read_text(encoding="utf-8")
    return lalr(grammar, lexer="contextual", maybe_placeholders=False)


def _expression(text: str) -> Tree[Token]:
    try:
        tree = _parser().parse(f"any where {text}")
    except LarkError:
        raise NotEvaluated("not an EQL expression") from None
    return tree.children[0].children[1]  # start -> event_query -> (category, expr)


def eql_dialect(d: Dialect) -> Dialect:
    """``d`` with EQL's computed conditions and values: an ``Opaque`` condition
    and a derived predicate are evaluated when this module can read them."""
    resolve = d.refs or (lambda raw: (raw,))

    def opaque(o: Opaque) -> Test | None:
        if o.reason in (Reason.SYNTAX_ERROR, Reason.PARSER_FAILURE):
            return None  # not an expression at all: the query could not be read
        try:
            clauses: list[Clause] = []
            test = compile_condition(o.text, resolve, clauses)
        except NotEvaluated:
            return None
        d.lineage += clauses
        d.unknowns += [(_answers(c), UNSETTLED) for c in clauses if not c.nested]
        return test

    def derived(p: Predicate) -> Test | None:
        try:
            values = compile_value(p.field_raw or "", resolve)
        except NotEvaluated:
            return None
        return _derived_test(p, values)

    d.opaque, d.derived = opaque, derived
    return d


def _answers(clause: Clause) -> Test:
    return lambda ev: answer(clause, ev)


_OPS = {Op.EQ: "==", Op.GT: ">", Op.GTE: ">=", Op.LT: "<", Op.LTE: "<="}


def _derived_test(p: Predicate, values: Values) -> Test | None:
    """``length(f) > 3``: the comparison of a computed value with a constant."""
    if p.op is Op.EXISTS:
        return lambda ev: _guard(lambda: bool(values(ev)))
    if p.op is Op.IS_NULL:
        return lambda ev: _guard(lambda: not values(ev))
    symbol = _OPS.get(p.op)
    if symbol is None:
        return None
    want = [p.value]
    return lambda ev: _guard(lambda: compare(symbol, values(ev), want))


def compile_condition(
    text: str, resolve: Resolve, lineage: list[Clause] | None = None
) -> Callable[[Event], Any]:
    """A condition written in EQL, as a test returning True, False, NULL or None;
    its lineage clauses, inner ones first, are added to ``lineage``."""
    compiler = _Compiler(resolve)
    test = compiler.condition(_expression(text))
    if lineage is not None:
        lineage.extend(compiler.clauses)
    return test


def compile_value(text: str, resolve: Resolve) -> Values:
    """An EQL value expression (``length(process.name)``) as its candidate values."""
    return _Compiler(resolve).value(_expression(text))


# -- comparisons --------------------------------------------------------------------------


def _comparable(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return True
    return isinstance(a, str) and isinstance(b, str)


_ORDER = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def compare(op: str, left: list[Any], right: list[Any]) -> bool | None | object:
    """Any pair of candidates satisfying ``op``; NULL when a side is null."""
    if not left or not right:
        return NULL
    cmp = _ORDER[op]
    unknown = False
    for a, b in itertools.product(left, right):
        if not _comparable(a, b):
            unknown = True  # a type error for Elasticsearch
        elif cmp(a, b):
            return True
    return None if unknown else False


def _truth(values: list[Any]) -> bool | None | object:
    if not values:
        return NULL
    if any(v is True for v in values):
        return True
    if all(v is False for v in values):
        return False
    return None  # not a boolean: Elasticsearch rejects the query


# -- the compiler ----------------------------------------------------------------------------


class _Compiler:
    def __init__(self, resolve: Resolve):
        self.resolve = resolve
        # arraySearch aliases in scope: name -> a one-item cell holding the array
        # item the condition is being tested on.
        self.aliases: dict[str, list[Any]] = {}
        self.clauses: list[Clause] = []  # lineage, inner clauses first
        self.depth = 0  # lineage subqueries being compiled

    # -- conditions --------------------------------------------------------------------

    def condition(self, node: Tree[Token] | Token) -> Callable[[Event], Any]:
        if not isinstance(node, Tree):
            raise NotEvaluated(f"{node!s} is not a condition")
        kind = node.data
        if kind == "or_":
            return any_of([self.condition(c) for c in node.children])
        if kind == "and_":
            return all_of([self.condition(c) for c in node.children])
        if kind == "not_":
            return negate(self.condition(node.children[-1]))
        if kind == "compare":
            return self._compare(*node.children)
        if kind in ("in_", "not_in"):
            return self._in(node)
        if kind == "string_op":
            return self._string_op(*node.children)
        if kind == "paren" and len(node.children) == 3:
            return self.condition(node.children[1])
        if kind in ("call", "boolean"):
            values = self.value(node)
            return lambda ev: _guard(lambda: _truth(values(ev)))
        if kind == "field":
            return self._truthiness(node.children[0].value)
        if kind == "lineage":
            return self._lineage(*node.children)
        raise NotEvaluated(f"{kind} used as a condition")

    def _lineage(self, kind: Token, subquery: Tree[Token]) -> Callable[[Event], Any]:
        """``descendant of [file where …]``: the stream's process tree answers."""
        bracket, query = subquery.children[0], subquery.children[1]
        if not isinstance(bracket, Token) or bracket.type != "LSQB":
            raise NotEvaluated("a missing-event subquery ![…] in lineage")
        assert isinstance(query, Tree)
        category_node, expr = query.children
        category = _category(category_node.children[0])  # type: ignore[union-attr]
        self.depth += 1
        try:
            test = self.condition(expr)
        finally:
            self.depth -= 1
        clause = Clause(kind.value.lower(), all_of([category, test]), nested=self.depth > 0)
        self.clauses.append(clause)
        return _answers(clause)

    def _compare(self, left: Any, op: Token, right: Any) -> Callable[[Event], Any]:
        symbol = "==" if op.value == "=" else op.value
        if _is_null(right) or _is_null(left):
            other = self.value(left if _is_null(right) else right)
            if symbol not in ("==", "!="):
                return lambda ev: NULL
            want_null = symbol == "=="
            return lambda ev: _guard(lambda: (not other(ev)) == want_null)
        a, b = self.value(left), self.value(right)
        return lambda ev: _guard(lambda: compare(symbol, a(ev), b(ev)))

    def _in(self, node: Tree[Token]) -> Callable[[Event], Any]:
        left, op = node.children[0], node.children[-2]
        items = [self.value(i) for i in self._items(node.children[-1])]
        target = self.value(left)
        insensitive = op.value.endswith("~")

        def run(ev: Event) -> Any:
            got = target(ev)
            if not got:
                return NULL
            if insensitive:
                got = [g.lower() if isinstance(g, str) else g for g in got]
            result: Any = False
            for item in items:
                vals = item(ev)
                if insensitive:
                    vals = [v.lower() if isinstance(v, str) else v for v in vals]
                r = compare("==", got, vals) if vals else False
                if r is True:
                    return True
                if r is None:
                    result = None
            return result

        test = lambda ev: _guard(lambda: run(ev))  # noqa: E731
        return negate(test) if node.data == "not_in" else test

    def _string_op(self, left: Any, op: Token, right: Any) -> Callable[[Event], Any]:
        insensitive = op.value in (":", "like~", "regex~")
        regex = op.value.startswith("regex")
        patterns = []
        for item in self._items(right):
            pattern = _string_constant(item)
            if pattern is None:
                raise NotEvaluated(f"{op.value} with a pattern that is not a string")
            text = pattern if regex else wildcard_regex(pattern)
            patterns.append(compiled_regex(text, not insensitive, True))
        target = self.value(left)

        def run(ev: Event) -> Any:
            got = target(ev)
            if not got:
                return NULL
            unknown = False
            for g in got:
                if not isinstance(g, str):
                    unknown = True
                    continue
                for p in patterns:
                    r = p(g)
                    if r:
                        return True
                    unknown = unknown or r is None
            return None if unknown else False

        return lambda ev: _guard(lambda: run(ev))

    def _items(self, node: Any) -> list[Any]:
        if isinstance(node, Tree) and node.data == "paren":
            return [c for c in node.children if isinstance(c, Tree)]
        if isinstance(node, Tree) and node.data == "literals":
            token = node.children[0]
            return [("lit", lit.value) for lit in literal_list(token.value, 0, list_item())]
        return [node]

    # -- values ----------------------------------------------------------------------------

    def value(self, node: Any) -> Values:
        if isinstance(node, tuple):  # an item of a literal list
            constant = [] if node[1] is None else [node[1]]
            return lambda ev: constant
        kind = node.data
        if kind in ("string", "number", "boolean", "null"):
            constant = _constant(node.children[0])
            return lambda ev: constant
        if kind == "field":
            return self._field(node.children[0].value)
        if kind == "signed":
            sign, inner = node.children
            values = self.value(inner)
            if sign.value == "+":
                return values
            return lambda ev: [fn.subtract(0, v) for v in values(ev)]
        if kind == "arith":
            left, op, right = node.children
            return self._apply(fn.ARITHMETIC[op.value], [left, right], False)
        if kind == "call":
            return self._call(node)
        if kind == "paren" and len(node.children) == 3:
            inner = node.children[1]
            if isinstance(inner, Tree) and inner.data in _VALUE_NODES:
                return self.value(inner)
            test = self.condition(inner)
            return lambda ev: _as_values(test(ev))
        if kind in ("compare", "in_", "not_in", "string_op", "and_", "or_", "not_", "lineage"):
            test = self.condition(node)
            return lambda ev: _as_values(test(ev))
        raise NotEvaluated(f"{kind} used as a value")

    def _truthiness(self, token: str) -> Callable[[Event], Any]:
        """A bare field as a condition, read as the legacy ``eql`` package reads it
        (Python truthiness; Elasticsearch rejects a non-boolean one), as an array
        index is: absent is null."""
        values = self._raw(token)

        def run(ev: Event) -> Any:
            got = values(ev)
            if not got:
                return NULL
            return bool(got[0]) if len(got) == 1 else True

        return run

    def _raw(self, token: str) -> Values:
        """A field's values as the document holds them (objects kept whole), read from
        the arraySearch item when the field starts with an alias in scope."""
        raw = unquote_field(token)
        alias = self._alias(raw)
        if alias is not None:
            cell, rest = alias
            return lambda ev: list(_walk(cell[0], rest))
        parts, flat = raw.split("."), self._field(token)
        return lambda ev: list(_walk(ev.doc, parts)) or flat(ev)

    def _alias(self, raw: str) -> tuple[list[Any], list[str]] | None:
        """The cell of the alias ``raw`` starts with, and the path after it."""
        for name in sorted(self.aliases, key=len, reverse=True):
            if raw == name or raw.startswith(f"{name}."):
                return self.aliases[name], raw[len(name) + 1 :].split(".") if raw != name else []
        return None

    def _field(self, token: str) -> Values:
        raw = unquote_field(token)
        if self._alias(raw) is not None:
            values = self._raw(token)
            return lambda ev: [v for v in values(ev) if not isinstance(v, dict)]
        index = _INDEX.match(raw)
        if index is None:
            names = self.resolve(raw)
            if len(names) == 1:
                name = names[0]
                return lambda ev: [v for v in ev.get(name) or () if v is not None]
            return lambda ev: [v for n in names for v in ev.get(n) or () if v is not None]
        base, steps = index.group(1), [int(i) for i in re.findall(r"\[([0-9]+)\]", index.group(2))]
        if len(steps) != 1:
            raise NotEvaluated("an index into nested arrays")
        names, at = self.resolve(base), steps[0]

        def pick(ev: Event) -> list[Any]:
            values = [v for n in names for v in ev.get(n) or ()]
            return [values[at]] if at < len(values) and values[at] is not None else []

        return pick

    def _call(self, node: Tree[Token]) -> Values:
        name_token = node.children[0]
        args = [c for c in node.children[1:] if isinstance(c, Tree)]
        insensitive = name_token.value.endswith("~")
        name = name_token.value.rstrip("~")
        if name.lower() in _LEGACY and not insensitive:
            return _LEGACY[name.lower()](self, args)
        entry = fn.FUNCTIONS.get(name.lower())
        if entry is None:
            raise NotEvaluated(
                f"function {name}() is not an Elasticsearch EQL function detcat evaluates"
            )
        function, least, most, has_tilde = entry
        if not least <= len(args) <= most:
            raise NotEvaluated(f"function {name}() with {len(args)} arguments")
        if insensitive and not has_tilde:
            raise NotEvaluated(f"function {name}~() has no case-insensitive form")
        call = (lambda *a: function(*a, insensitive=True)) if insensitive else function
        return self._apply(call, args, name.lower() in fn.NULL_AWARE)

    def _apply(self, call: Callable[..., Any], args: list[Any], null_aware: bool) -> Values:
        compiled = [self.value(a) for a in args]

        def run(ev: Event) -> list[Any]:
            candidates = []
            for a in compiled:
                got = a(ev)
                if not got:
                    if not null_aware:
                        return []
                    got = [None]
                candidates.append(got)
            out = []
            for n, combo in enumerate(itertools.product(*candidates)):
                if n >= _COMBINATIONS:
                    raise Undetermined("too many values to combine")
                r = call(*combo)
                if r is not None:
                    out.append(r)
            return out

        return run

    def _safe(self, args: list[Any]) -> Values:
        """Legacy ``safe(x)``: x, or null where evaluating it is an error."""
        if len(args) != 1:
            raise NotEvaluated(f"function safe() with {len(args)} arguments")
        inner = self.value(args[0])

        def run(ev: Event) -> list[Any]:
            try:
                return inner(ev)
            except fn.EvaluationError:
                return []

        return run

    def _array_search(self, args: list[Any]) -> Values:
        """Legacy ``arraySearch(array, alias, condition)``: whether the condition
        holds for an item of the array, the alias naming the item."""
        if len(args) != 3 or not all(a.data == "field" for a in args[:2]):
            raise NotEvaluated("arraySearch() needs an array field, an alias and a condition")
        array = self._raw(args[0].children[0].value)
        alias = unquote_field(args[1].children[0].value)
        cell: list[Any] = [None]
        outer, self.aliases = self.aliases, {**self.aliases, alias: cell}
        try:
            test = self.condition(args[2])
        finally:
            self.aliases = outer

        def run(ev: Event) -> list[Any]:
            unknown = False
            for item in array(ev):
                cell[0] = item
                r = test(ev)
                if r is True:
                    return [True]
                unknown = unknown or r is None
            if unknown:
                raise Undetermined("arraySearch(): the condition is unknown on an item")
            return [False]

        return run


_LEGACY: dict[str, Callable[[_Compiler, list[Any]], Values]] = {
    "safe": _Compiler._safe,
    "arraysearch": _Compiler._array_search,
}


def _walk(node: Any, parts: list[str]) -> Iterator[Any]:
    """The values at a dotted path of a document, through arrays (a key may itself
    hold dots, as flat documents spell ``process.name``)."""
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, parts)
        return
    if not parts:
        if node is not None:
            yield node
        return
    if not isinstance(node, dict):
        return
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key in node:
            yield from _walk(node[key], parts[i:])
            return


_VALUE_NODES = frozenset(
    {"string", "number", "boolean", "null", "field", "signed", "arith", "call"}
)


def _category(token: Token) -> Callable[[Event], Any]:
    """``process where``: the event's ``event.category`` (unknown when it has none)."""
    name = str(_constant(token)[0]) if token.type == "STRING" else token.value
    if name == "any":
        return lambda ev: True

    def test(ev: Event) -> bool | None:
        got = ev.fields.get("event.category")
        return None if not got else name in got

    return test


def _string_constant(node: Any) -> str | None:
    if isinstance(node, tuple):
        return node[1] if isinstance(node[1], str) else None
    if isinstance(node, Tree) and node.data == "string":
        return str(_constant(node.children[0])[0])
    return None


def _is_null(node: Any) -> bool:
    return isinstance(node, Tree) and node.data == "null"


def _constant(token: Token) -> list[Any]:
    t = token.type
    if t == "STRING":
        return [unescape_string(token.value)]
    if t == "NUMBER":
        text = token.value
        return [int(text) if text.isdigit() else float(text)]
    if t in ("TRUE", "FALSE"):
        return [t == "TRUE"]
    return []


def _as_values(result: Any) -> list[Any]:
    if result is True or result is False:
        return [result]
    if result is None:
        raise Undetermined("unknown condition used as a value")
    return []  # NULL


def _guard(run: Callable[[], Any]) -> Any:
    """A test whose evaluation Elasticsearch would fail (a type error, a division by
    zero) or that detcat cannot settle: unknown."""
    try:
        return run()
    except (Undetermined, TypeError, ValueError, OverflowError):
        return None
