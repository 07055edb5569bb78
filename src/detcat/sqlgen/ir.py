"""The intermediate form between the predicate model and SQL.

Events reach SQL as one row each (see ``sqlgen.columns``): a field's values are
kept *joined* in one string, each value between two separators (``SEP``), so
``eq``, ``starts_with``, ``ends_with`` and ``contains`` of any value become one
substring test of the row (``\\x1fcmd.exe\\x1f``, ``\\x1fC:\\``, ``.exe\\x1f``);
a row whose values contain ``SEP`` itself is left to the Python matcher.

Every leaf is two-valued (true or false, never SQL's null): a missing field
fails a positive test as in ``match.evaluate``, so ``NOT`` of it holds instead of
dropping the row (``NOT (NULL = 'x')`` is NULL in SQL). The third value, *unknown*,
is ``Unknown`` only (an ``Opaque`` part, a deployer's list), emitted as NULL so
that SQL's AND/OR/NOT give exactly the matcher's Kleene logic. A leaf SQL cannot
express exactly is ``Python``: the rule then runs on the Python matcher, on the
rows its SQL *prefilter* keeps (``Python`` read as unknown; a row where the rule
may hold is never false there, Kleene logic being monotone).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

SEP = "\x1f"  # ASCII unit separator: between the values of a field in a joined column


class Variant(StrEnum):
    """The columns one canonical field may have in an event row."""

    TEXT = ""  # values as text, joined (the field's own column; also its presence)
    FOLD = "#cf"  # values case-folded (str.casefold), joined
    LIST = "#list"  # values as text, a list (regular expressions test each value)
    NUM = "#num"  # values read as numbers (match.evaluate.number), a list
    IP = "#ip"  # values read as IP addresses, a list of ``ip_key`` strings
    KEY = "#key"  # values as group keys of stateful rules, a list of ``key_text`` strings


@dataclass(frozen=True, slots=True)
class Col:
    field: str
    variant: Variant = Variant.TEXT

    @property
    def name(self) -> str:
        return self.field + self.variant


# Row columns that are not fields.
TEXT_ALL = Col("_text")  # every string value of the document, joined (keywords)
TEXT_ALL_FOLD = Col("_text", Variant.FOLD)
NONNULL = "_nonnull"  # names of the fields (tested by `exists`) with a non-null value
SCOPES = "_scopes"  # the event's log-source scopes, sorted and joined by SEP


# -- nodes ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Const:
    value: bool


@dataclass(frozen=True, slots=True)
class Unknown:
    """The matcher's unknown (None): SQL's NULL."""

    reason: str


@dataclass(frozen=True, slots=True)
class Python:
    """A test SQL cannot express exactly: the rule runs on the Python matcher."""

    reason: str


@dataclass(frozen=True, slots=True)
class Has:
    """The joined column contains ``needle`` (which holds no SEP but the ones the
    lowering put there)."""

    col: Col
    needle: str


@dataclass(frozen=True, slots=True)
class Regex:
    """``pattern`` (RE2 syntax) found in the joined column (``each`` False), or
    found in / matching whole (``full``) one value of the list column. ``flags``:
    ``i`` case-insensitive, ``s`` dot matches newline (emitters spell them).
    ``literals``: case-folded texts one of which every match contains (the
    matcher's ``match.needs``), or none known: the route plan's gate (``sqlgen.
    plan``) tests them on the field's folded column before the regex runs."""

    col: Col
    pattern: str
    flags: str = ""
    each: bool = False
    full: bool = False
    literals: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NumCmp:
    """Some value, read as a number, compares with ``bound`` (op: eq gt gte lt lte)."""

    col: Col
    op: str
    bound: float


@dataclass(frozen=True, slots=True)
class IpIn:
    """Some value is an address in ``[lo, hi]`` (``ip_key`` strings)."""

    col: Col
    lo: str
    hi: str


@dataclass(frozen=True, slots=True)
class AllEmpty:
    """Every value is null or empty (also: the field is missing)."""

    col: Col


@dataclass(frozen=True, slots=True)
class NonNull:
    """The field has a non-null value (``_nonnull`` lists it)."""

    field: str


@dataclass(frozen=True, slots=True)
class Present:
    """The row has the field, even empty (the matcher's candidate test)."""

    col: Col


@dataclass(frozen=True, slots=True)
class SameValue:
    """Some value of ``col`` equals some value of one of ``others`` (joined
    columns of one variant: a field reference)."""

    col: Col
    others: tuple[Col, ...]


@dataclass(frozen=True, slots=True)
class ScopesIn:
    """The event's joined scopes are one of ``values``."""

    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class All:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Any_:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Neg:
    child: Node


Leaf = Has | Regex | NumCmp | IpIn | AllEmpty | NonNull | Present | SameValue | ScopesIn
Node = Const | Unknown | Python | Leaf | All | Any_ | Neg

TRUE, FALSE = Const(True), Const(False)
LEAVES = (Has, Regex, NumCmp, IpIn, AllEmpty, NonNull, Present, SameValue, ScopesIn)


# -- building with constant folding ------------------------------------------------------


def all_(children: list[Node]) -> Node:
    """Kleene AND, folded: false wins, true drops out, nested ANDs flatten."""
    out: list[Node] = []
    for c in children:
        if c == FALSE:
            return FALSE
        if c == TRUE:
            continue
        out.extend(c.children if isinstance(c, All) else (c,))
    return TRUE if not out else out[0] if len(out) == 1 else All(tuple(dict.fromkeys(out)))


def any_(children: list[Node]) -> Node:
    """Kleene OR, folded: true wins, false drops out, nested ORs flatten."""
    out: list[Node] = []
    for c in children:
        if c == TRUE:
            return TRUE
        if c == FALSE:
            continue
        out.extend(c.children if isinstance(c, Any_) else (c,))
    return FALSE if not out else out[0] if len(out) == 1 else Any_(tuple(dict.fromkeys(out)))


def neg(child: Node) -> Node:
    if isinstance(child, Const):
        return Const(not child.value)
    if isinstance(child, Unknown | Python):
        return child  # NOT unknown is unknown
    if isinstance(child, Neg):
        return child.child
    return Neg(child)


def walk(node: Node) -> list[Node]:
    """Every node of the tree (iterative; trees are as deep as rules nest)."""
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        out.append(n)
        if isinstance(n, All | Any_):
            stack.extend(n.children)
        elif isinstance(n, Neg):
            stack.append(n.child)
    return out


def python_reasons(node: Node) -> list[str]:
    return sorted({n.reason for n in walk(node) if isinstance(n, Python)})


def can_be_unknown(node: Node) -> bool:
    return any(isinstance(n, Unknown | Python) for n in walk(node))


def columns(node: Node) -> set[str]:
    """The row columns a tree reads."""
    out: set[str] = set()
    for n in walk(node):
        if isinstance(n, NonNull):
            out.add(NONNULL)
        elif isinstance(n, ScopesIn):
            out.add(SCOPES)
        elif isinstance(n, SameValue):
            out.update(c.name for c in (n.col, *n.others))
        elif isinstance(n, LEAVES):
            out.add(n.col.name)  # type: ignore[union-attr]
    return out


def rebuild(node: Node, leaf: object) -> Node:
    """The tree with ``leaf(n)`` for every leaf, folded again (post-order, iterative)."""
    done: list[Node] = []
    stack: list[tuple[Node, bool]] = [(node, False)]
    while stack:
        n, expanded = stack.pop()
        if isinstance(n, All | Any_ | Neg) and not expanded:
            stack.append((n, True))
            kids = n.children if isinstance(n, All | Any_) else (n.child,)
            stack.extend((c, False) for c in reversed(kids))
        elif isinstance(n, All | Any_):
            k = len(n.children)
            kids = done[len(done) - k :]
            del done[len(done) - k :]
            done.append(all_(kids) if isinstance(n, All) else any_(kids))
        elif isinstance(n, Neg):
            done.append(neg(done.pop()))
        else:
            done.append(leaf(n))  # type: ignore[operator]
    return done[0]


def prefilter(node: Node) -> Node:
    """The tree with every ``Python`` leaf read as unknown: where the rule may hold,
    this is true or unknown (never false), so ``IS NOT FALSE`` keeps those rows."""
    return rebuild(node, lambda n: Unknown(n.reason) if isinstance(n, Python) else n)


def bind(node: Node, present: set[str]) -> Node:
    """The tree for rows that have only the ``present`` columns: a test of a column
    no row has is the matcher's answer for a missing field (false; ``is_null`` true)."""

    def leaf(n: Node) -> Node:
        if isinstance(n, NonNull):
            return n if NONNULL in present else FALSE
        if isinstance(n, ScopesIn):
            return n
        if isinstance(n, SameValue):
            others = tuple(c for c in n.others if c.name in present)
            return SameValue(n.col, others) if others and n.col.name in present else FALSE
        if isinstance(n, LEAVES) and n.col.name not in present:  # type: ignore[union-attr]
            return TRUE if isinstance(n, AllEmpty) else FALSE
        return n

    return rebuild(node, leaf)
