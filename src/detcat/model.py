"""The shared model: every vendor's rules become these objects.

Everything below ``normalize/`` fills ``Predicate.field_raw`` in vendor terms;
``normalize/`` fills ``Predicate.field`` with the canonical (ECS) name. Layers
above speak only canonical terms.

Operators (``Op``) are the DESIGN.md set plus ``field_ref`` (compare a field with
another field; the value is the other field's raw name).

Values of op ``wildcard`` use ``*`` (any run) and ``?`` (one character) with no
escapes; a pattern that also needs a literal ``*``/``?`` is a ``regex_match``.
For ``contains``/``starts_with``/``ends_with`` the value is the literal text;
``exists`` has the value True and ``is_null`` None (normalization enforces it).
``field_ref`` compares with the field named by the value, the comparison in
``syntax`` (``==``, ``!=``, ``<``…).

``Predicate.kind`` says where a predicate comes from beyond the literal query:

- ``""``               written in the query
- ``"derived"``        the field is computed inside the query (EVAL, rex, GROK, …)
- ``"lookup:<name>"``  an indicator value resolved from a lookup table
- ``"implied"``        added by normalization (path ``ends_with \\x.exe`` implies
                       ``process.name eq x.exe``): the issues' *derived indicators*,
                       placed as ``And(original, implied)``; evaluation and field
                       histograms skip them, corpus reach counts them
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, NamedTuple, TypeAlias, TypeVar

from detcat.errors import DetcatError


class Op(StrEnum):
    EQ = "eq"
    CONTAINS = "contains"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    WILDCARD = "wildcard"
    REGEX_MATCH = "regex_match"
    IN_LIST = "in_list"
    CIDR = "cidr"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    EXISTS = "exists"
    IS_NULL = "is_null"
    KEYWORD = "keyword"
    FIELD_REF = "field_ref"


Value: TypeAlias = str | int | float | bool | None
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Predicate:
    """One comparison of one field with one scalar value."""

    field_raw: str | None  # as the vendor wrote it; None: field-less (see ``whole_event``)
    op: Op
    value: Value
    syntax: str = ""  # the source's own operator: "|endswith", ":", "like~", "IN"
    case_sensitive: bool = False
    field: str | None = None  # canonical name, filled by normalize/
    kind: str = ""  # see module docstring

    @property
    def whole_event(self) -> bool:
        """A field-less test: a keyword, or another test of the event's text as a
        whole (Sigma's ``keywords|re``, SPL's ``regex _raw=…``). It reads every
        string value of the event, not the field its canonical name says."""
        return self.field_raw is None


class Reason(StrEnum):
    """Why source text is ``Opaque``: a fixed vocabulary, so coverage reports can
    group; the variable part (a command or function name, a parser message) goes
    in ``Opaque.detail``."""

    SYNTAX_ERROR = "syntax error"  # the parser cannot read the text
    PARSER_FAILURE = "parser failure"  # a detcat bug, contained to this query
    UNSUPPORTED_LANGUAGE = "unsupported language"  # a query language detcat does not parse
    UNSUPPORTED_COMMAND = "unsupported command"  # a pipeline command that is not a filter
    NOT_EVENTS = "not events"  # searches metrics, lookup tables or models, not events
    UNSUPPORTED_SYNTAX = "unsupported syntax"  # a construct detcat does not model (XOR, …)
    UNSUPPORTED_MODIFIER = "unsupported modifier"  # a Sigma value modifier detcat does not model
    FUNCTION = "function"  # a function call that is not a test of a field
    COMPUTED_VALUE = "computed value"  # compares something computed: arithmetic, a result
    CONSTANTS = "constant comparison"  # compares constants with each other
    NOT_A_CONDITION = "not a condition"  # a field or value where a condition belongs
    NULL_ORDERING = "ordering with null"  # <, > with null: never true, never false
    NO_EVENT_FIELD = "no event field"  # tests a placeholder or variable, not an event field
    CROSS_EVENT = "cross-event"  # relates several events inside one condition
    UNRESOLVED_MACRO = "unresolved macro"  # undefined, malformed or cyclic macro
    UNRESOLVED_LOOKUP = "unresolved lookup"  # a lookup detcat cannot read
    PLACEHOLDER = "placeholder"  # a named value list inside other text
    EMPTY = "empty"  # nothing to test: an empty list or detection


@dataclass(frozen=True, slots=True)
class Opaque:
    """Source text a parser did not turn into predicates, why (``reason``, one of
    ``Reason``) and the particulars (``detail``: which command, function, error)."""

    text: str
    reason: Reason
    detail: str = ""

    def __post_init__(self) -> None:
        # Reason(...) rejects a reason outside the vocabulary: a parser bug.
        object.__setattr__(self, "reason", Reason(self.reason))

    def why(self) -> str:
        """``reason: detail``, or the reason alone."""
        return f"{self.reason}: {self.detail}" if self.detail else str(self.reason)


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Expr


Pred = Predicate
Expr: TypeAlias = And | Or | Not | Predicate | Opaque


def and_(*children: Expr) -> Expr:
    """An And that flattens nested Ands and collapses a single child."""
    flat: list[Expr] = []
    for c in children:
        flat.extend(c.children if isinstance(c, And) else (c,))
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def or_(*children: Expr) -> Expr:
    """An Or that flattens nested Ors and collapses a single child."""
    flat: list[Expr] = []
    for c in children:
        flat.extend(c.children if isinstance(c, Or) else (c,))
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


class StageRole(StrEnum):
    EVENTS = "events"  # filters raw events
    AGGREGATE = "aggregate"  # filters the output of an aggregation (stats, threshold)
    CORRELATION = "correlation"  # refers to other rules (Sigma correlation)


@dataclass(slots=True)
class Stage:
    """One filtering step of a rule: a sequence member, an event variable, a
    post-aggregation filter. ``negated`` marks a stage that must *not* occur
    (EQL ``![…]``, YARA-L ``!$e``)."""

    name: str = "main"
    expr: Expr | None = None
    role: StageRole = StageRole.EVENTS
    negated: bool = False
    join_keys: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)  # maxspan, threshold, by, rule refs…
    events: list[str] = field(default_factory=list)  # catalog event ids, filled by normalize/


@dataclass(slots=True)
class Problem:
    """Something wrong with an input file, recorded instead of aborting a build."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None
    vendor: str = ""
    rule_id: str = ""

    def __str__(self) -> str:
        pos = f":{self.line}" if self.line else ""
        pos += f":{self.column}" if self.line and self.column else ""
        return f"{self.path}{pos}: {self.message}"


@dataclass(slots=True)
class Rule:
    vendor: str  # sigma | elastic | splunk | chronicle
    id: str  # the vendor's own id
    title: str
    source_path: str  # relative to the vendor's root
    language: str  # sigma | kql | eql | esql | spl | yaral | none
    query: str = ""  # raw query text as written
    description: str = ""
    author: str = ""
    status: str = ""
    severity: str = ""
    type: str = ""  # vendor rule type: eql, threshold, TTP, …
    references: list[str] = field(default_factory=list)
    techniques: list[str] = field(default_factory=list)  # "T1219", "T1219.002"
    tags: list[str] = field(default_factory=list)
    stages: list[Stage] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # Vendor facts that normalize/ uses to infer events and field meaning:
    # Sigma logsource, Elastic index patterns, Splunk data sources, …
    context: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # other vendor metadata
    upstream_url: str = ""
    # The sources folder the rule came from: "public", or a private one ("mycompany").
    collection: str = "public"

    @property
    def has_query(self) -> bool:
        return any(s.expr is not None for s in self.stages)

    @property
    def fully_parsed(self) -> bool:
        """A query and not a single Opaque node anywhere."""
        return self.has_query and not any(opaques(s.expr) for s in self.stages)


class QueryError(DetcatError):
    """A query a parser cannot read at all; position is 1-based when known."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


# -- walking trees ---------------------------------------------------------


class Leaf(NamedTuple):
    """A predicate or opaque node with its position in the tree (a named tuple:
    every walk of every rule makes one per leaf, and a tuple is made fastest)."""

    node: Predicate | Opaque
    negated: bool  # under an odd number of Nots
    exclusion: bool  # under a Not that is the root or a direct child of the root And


def leaves(expr: Expr | None) -> list[Leaf]:
    """Every predicate and opaque node in source order, with its negation state.
    Iterative: generator recursion costs a frame per level per leaf."""
    if expr is None:
        return []
    top = expr.children if isinstance(expr, And) else (expr,)
    out: list[Leaf] = []
    # (node, negated, exclusion); reversed pushes keep source order.
    stack = [(c, False, isinstance(c, Not)) for c in reversed(top)]
    while stack:
        node, negated, excl = stack.pop()
        if isinstance(node, (And, Or)):
            stack.extend((c, negated, excl) for c in reversed(node.children))
        elif isinstance(node, Not):
            stack.append((node.child, not negated, excl))
        else:
            out.append(Leaf(node, negated, excl))
    return out


def predicates(expr: Expr | None) -> list[Predicate]:
    return [lf.node for lf in leaves(expr) if isinstance(lf.node, Predicate)]


def opaques(expr: Expr | None) -> list[Opaque]:
    return [lf.node for lf in leaves(expr) if isinstance(lf.node, Opaque)]


def exclusions(expr: Expr | None) -> list[Predicate]:
    return [lf.node for lf in leaves(expr) if lf.exclusion and isinstance(lf.node, Predicate)]


def value_text(value: Any) -> str:
    """A predicate or event value as text: booleans as ``true``/``false`` (as rule
    languages spell them), None as the empty string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def positive_values(expr: Expr | None, want: Callable[[Predicate], bool]) -> list[Any]:
    """Values of the ``eq`` predicates selected by ``want`` that are not negated
    (what a stage requires of those fields), in order, without repeats."""
    out: list[Any] = []
    for lf in leaves(expr):
        node = lf.node
        if isinstance(node, Predicate) and not lf.negated and node.op is Op.EQ and want(node):
            out.append(node.value)
    return list(dict.fromkeys(out))


def map_predicates(expr: Expr | None, fn: Any) -> Expr | None:
    """Rebuild a tree with ``fn(predicate) -> Expr`` applied to every predicate.
    Iterative, like every walk here: a tree's depth must never be bounded by
    Python's stack (``MAX_DEPTH`` bounds what the catalog keeps)."""
    return _rebuild(expr, fn, lambda o: o, And, Or, Not)


def _rebuild(root: Any, leaf: Any, opaque: Any, and_: Any, or_: Any, not_: Any) -> Any:
    """Post-order rebuild of an Expr tree without recursion: each And/Or/Not is
    replaced by ``and_(children)``/``or_(children)``/``not_(child)`` of its rebuilt
    children, each Predicate by ``leaf(p)``, each Opaque by ``opaque(o)``."""
    if root is None:
        return None
    done: list[Any] = []  # rebuilt values, consumed by their parent
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if isinstance(node, (And, Or)):
            if not expanded:
                stack.append((node, True))
                stack.extend((c, False) for c in reversed(node.children))
                continue
            n = len(node.children)
            kids = tuple(done[len(done) - n :]) if n else ()
            del done[len(done) - n :]
            done.append((and_ if isinstance(node, And) else or_)(kids))
        elif isinstance(node, Not):
            if not expanded:
                stack += [(node, True), (node.child, False)]
                continue
            done.append(not_(done.pop()))
        elif isinstance(node, Predicate):
            done.append(leaf(node))
        elif isinstance(node, Opaque):
            done.append(opaque(node))
        else:
            raise TypeError(f"not an Expr: {node!r}")
    return done[0]


MAX_DEPTH = 100
"""How deeply a query may nest (And/Or/Not levels). Parsers read any depth, but
pickling a tree between processes recurses in C (about 300 levels break it), and
no real rule comes near: the deepest in the four public corpora nests 8 levels."""


def depth(expr: Expr | None) -> int:
    """The number of And/Or/Not levels above the deepest leaf (iterative)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(expr, 0)] if expr is not None else []
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if isinstance(node, (And, Or)):
            stack.extend((c, d + 1) for c in node.children)
        elif isinstance(node, Not):
            stack.append((node.child, d + 1))
    return deepest


def check_depth(expr: Expr | None, limit: int = MAX_DEPTH) -> None:
    """Raise ``QueryError`` when ``expr`` nests deeper than ``limit``."""
    if (d := depth(expr)) > limit:
        raise QueryError(f"query nested {d} levels deep; detcat reads at most {limit}")


def depth_limited(parse: F) -> F:
    """A parser entry point that reports over-deep input as a ``QueryError``.
    Parsers build trees by recursion, which Python stops near 1,000 frames:
    such a query (``not not not …`` hundreds deep) is a problem of the query,
    not a crash; anything shallower is bounded by ``check_depth``."""

    @functools.wraps(parse)
    def parse_bounded(*args: Any, **kwargs: Any) -> Any:
        try:
            return parse(*args, **kwargs)
        except RecursionError:
            message = f"query nested too deeply: detcat reads at most {MAX_DEPTH} levels"
            raise QueryError(message) from None

    return parse_bounded  # type: ignore[return-value]


# -- JSON ---------------------------------------------------------------------


def _predicate_json(p: Predicate) -> dict[str, Any]:
    d = {
        "field": p.field,
        "field_raw": p.field_raw,
        "op": str(p.op),
        "value": p.value,
        "syntax": p.syntax,
        "case_sensitive": p.case_sensitive,
    }
    if p.kind:
        d["kind"] = p.kind
    return d


def expr_to_json(expr: Expr | None) -> Any:
    return _rebuild(
        expr,
        _predicate_json,
        lambda o: {"opaque": o.text, "reason": str(o.reason), "detail": o.detail},
        lambda kids: {"and": list(kids)},
        lambda kids: {"or": list(kids)},
        lambda kid: {"not": kid},
    )


def expr_from_json(d: Any, shared: dict[Any, Predicate | Opaque] | None = None) -> Expr | None:
    """The inverse of ``expr_to_json`` (iterative, like it). ``shared``: leaves
    already made, by their JSON; a caller reading many trees passes one dict, so
    that the same predicate in a thousand rules is one object, made once."""
    if d is None:
        return None
    if shared is None:
        shared = {}
    done: list[Expr] = []
    stack: list[tuple[Any, bool]] = [(d, False)]
    while stack:
        node, expanded = stack.pop()
        key = "and" if "and" in node else "or" if "or" in node else "not" if "not" in node else None
        if key is None:
            leaf_key = _leaf_key(node)
            leaf = shared.get(leaf_key) if leaf_key else None
            if leaf is None:
                leaf = _leaf_from_json(node)
                if leaf_key:
                    shared[leaf_key] = leaf
            done.append(leaf)
        elif not expanded:
            kids = [node["not"]] if key == "not" else node[key]
            stack.append((node, True))
            stack.extend((c, False) for c in reversed(kids))
        elif key == "not":
            done.append(Not(done.pop()))
        else:
            n = len(node[key])
            kids = tuple(done[len(done) - n :]) if n else ()
            del done[len(done) - n :]
            done.append(And(kids) if key == "and" else Or(kids))
    return done[0]


def _leaf_key(d: dict[str, Any]) -> tuple[Any, ...]:
    """A leaf's JSON as a key: its items and the value's type (``1`` and ``true``
    are equal keys in Python, not equal predicates); () for a value that is no
    good key (a list; a float, whose ``-0.0`` equals ``0.0``)."""
    value = d.get("value")
    cls = value.__class__
    return (*d.items(), cls) if cls in _KEY_TYPES else ()


_KEY_TYPES = frozenset({str, int, bool, type(None)})
_OPS = {op.value: op for op in Op}


def _leaf_from_json(d: dict[str, Any]) -> Predicate | Opaque:
    if "opaque" in d:
        return Opaque(d["opaque"], d["reason"], d.get("detail", ""))
    return Predicate(
        field_raw=d["field_raw"],
        op=_OPS.get(d["op"]) or Op(d["op"]),
        value=d["value"],
        syntax=d.get("syntax", ""),
        case_sensitive=d.get("case_sensitive", False),
        field=d.get("field"),
        kind=d.get("kind", ""),
    )


def stage_to_json(stage: Stage) -> dict[str, Any]:
    return {
        "name": stage.name,
        "role": str(stage.role),
        "negated": stage.negated,
        "join_keys": stage.join_keys,
        "params": stage.params,
        "events": stage.events,
        "expr": expr_to_json(stage.expr),
    }


__all__ = [
    "And",
    "Expr",
    "Leaf",
    "Not",
    "Op",
    "Opaque",
    "Or",
    "Pred",
    "Predicate",
    "Problem",
    "QueryError",
    "Rule",
    "Stage",
    "StageRole",
    "and_",
    "exclusions",
    "expr_from_json",
    "expr_to_json",
    "MAX_DEPTH",
    "check_depth",
    "depth",
    "depth_limited",
    "leaves",
    "map_predicates",
    "opaques",
    "or_",
    "predicates",
    "replace",
    "stage_to_json",
]
