"""Evaluating a normalized predicate tree against one canonical event.

``compile_expr`` turns an ``Expr`` into a function of an ``Event`` returning
``True``, ``False`` or ``None`` (unknown), combined with Kleene's three-valued
logic: an ``Opaque`` part or an ``in_list`` whose list is not known is unknown,
so a rule that depends on one is never claimed as a match, yet a rule that fails
on its known parts is a definite non-match.

Semantics per operator (a field is multi-valued; a positive test holds when any
value passes it; a missing field fails every test but ``is_null``):

- strings compare case-insensitively unless the predicate is case-sensitive;
  numbers compare numerically when both sides read as numbers (``"0x1F"`` too);
- ``wildcard``: ``*`` any run, ``?`` one character, matching the whole value;
- ``regex_match``: searched (Sigma, SPL, YARA-L) or matched whole (EQL, ES|QL,
  KQL) as normalize says, through RE2 (linear time); a pattern RE2 cannot compile
  (look-arounds, back-references) runs on Python's ``re`` under a time limit, and
  is unknown where no limit can be set;
- ``cidr``: an IPv4/IPv6 address inside the network; ``gt``/``gte``/``lt``/``lte``:
  numeric; ``exists``: a non-null value; ``is_null``: missing, null or empty;
- ``keyword`` (field-less search terms): any string value of the event contains it;
  another field-less search (``regex _raw=…``, ``keywords|re``) holds when any
  string value passes it; other field-less tests are unknown;
- ``field_ref``: equal to a value of the other field;
- predicates of kind ``implied`` restate their source predicate: always true.
"""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from detcat.match.events import Event
from detcat.match.fuse import is_sure as _is_sure
from detcat.match.fuse import node_of
from detcat.match.fuse import sure as _sure
from detcat.match.patterns import REGEX_TIME_LIMIT, compiled_regex, re2_test, wildcard_regex
from detcat.model import And, Expr, Not, Op, Opaque, Or, Predicate, value_text

Test = Callable[[Event], Any]  # True, False, NULL or None (unknown)
# Resolves a field_ref's raw field name to the canonical names to read.
RefResolver = Callable[[str], tuple[str, ...]]


class _Null:
    """SQL's null: a comparison with a missing value in EQL. It never matches, and
    unlike False it stays null under ``not`` (Kleene logic with null as the middle
    value; ``None``, unknown, outranks it)."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NULL"


NULL: Any = _Null()


@dataclass
class Dialect:
    """What one rule's language adds to the evaluation of its predicate tree:
    conditions kept as text (``Opaque``) and computed values (derived predicates)
    it can evaluate, and where each unknown answer comes from (``explain``)."""

    full_match: bool = False
    refs: RefResolver | None = None
    opaque: Callable[[Opaque], Test | None] | None = None
    derived: Callable[[Predicate], Test | None] | None = None
    computed: dict[str, Any] = field(default_factory=dict)  # the stage's params["derived"]
    # Leaves that may answer unknown, with the reason to give when they do.
    unknowns: list[tuple[Test, str]] = field(default_factory=list)
    # EQL lineage clauses (``match.lineage``) the filter asks the stream's process tree
    lineage: list[Any] = field(default_factory=list)

    def explain(self, ev: Event) -> list[str]:
        """Why the stage is unknown on ``ev``: the reasons of its unknown leaves."""
        return sorted({why for test, why in self.unknowns if test(ev) is None})


def compile_expr(
    expr: Expr | None,
    full_match: bool,
    refs: RefResolver | None = None,
    dialect: Dialect | None = None,
) -> Test:
    d = dialect or Dialect(full_match, refs)
    if expr is None:
        return _const(None)
    return _compile(expr, d)


def _compile(expr: Expr, d: Dialect) -> Test:
    match e := _essential(expr):
        case And(children):
            return all_of([_compile(c, d) for c in children])
        case Or(children):
            return _any_of(children, d)
        case Not(child):
            return negate(_compile(child, d))
        case Opaque():
            return _unknown_unless(d.opaque(e) if d.opaque else None, e.why(), d)
        case Predicate() as p:
            return compile_predicate(p, d.full_match, d.refs, d)
    raise TypeError(f"not an Expr: {expr!r}")


def _essential(expr: Expr) -> Expr:
    """An And without its implied predicates, which restate a sibling and are always
    true (``Image|endswith: \\x.exe`` implies ``process.name: x.exe``): Sigma's
    ``1 of sel_*`` over such pairs then groups as one value list (``_any_of``)."""
    if isinstance(expr, And):
        kept = tuple(c for c in expr.children if not _implied(c))
        if kept and len(kept) < len(expr.children):
            return kept[0] if len(kept) == 1 else And(kept)
    return expr


def _implied(e: Expr) -> bool:
    return isinstance(e, Predicate) and e.kind == "implied"


def _unknown_unless(test: Test | None, reason: str, d: Dialect) -> Test:
    """``test``, or unknown when there is none; either way a possible unknown leaf."""
    test = test or _const(None)
    d.unknowns.append((test, reason))
    return test


def negate(inner: Test) -> Test:
    if _is_sure(inner):
        return _sure(lambda ev: not inner(ev), ("not", node_of(inner)))
    return lambda ev: r if (r := inner(ev)) is None or r is NULL else not r


def _const(value: bool | None) -> Test:
    return lambda ev: value


def all_of(tests: list[Test]) -> Test:
    return _short_circuit(tests, decisive=False)


def any_of(tests: list[Test]) -> Test:
    return _short_circuit(tests, decisive=True)


def _short_circuit(tests: list[Test], decisive: bool) -> Test:
    """Three-valued And (``decisive=False``) or Or (``True``): the first test giving
    the decisive value settles it; otherwise unknown (None), else NULL, else the
    other truth value."""
    if all(map(_is_sure, tests)):
        node = ("or" if decisive else "and", [node_of(t) for t in tests])
        return _sure(_two_valued(tests, decisive), node)

    def run(ev: Event) -> Any:
        result: Any = not decisive
        for t in tests:
            r = t(ev)
            if r is decisive:
                return decisive
            if r is None:
                result = None
            elif r is NULL and result is not None:
                result = NULL
        return result

    return run


def _two_valued(tests: list[Test], decisive: bool) -> Test:
    """And / Or of tests that answer only True or False."""
    if decisive:

        def any_holds(ev: Event) -> bool:
            for t in tests:  # noqa: SIM110 (a loop: no generator made per call)
                if t(ev):
                    return True
            return False

        return any_holds

    def all_hold(ev: Event) -> bool:
        for t in tests:  # noqa: SIM110 (a loop: no generator made per call)
            if not t(ev):
                return False
        return True

    return all_hold


_GROUPABLE = (Op.EQ, Op.STARTS_WITH, Op.ENDS_WITH, Op.CONTAINS, Op.WILDCARD)


def _any_of(children: tuple[Expr, ...], d: Dialect) -> Test:
    """An Or, with its value lists (``Image|endswith: [50 names]``) tested as one:
    a set, a tuple for startswith/endswith, one RE2 alternation for substrings and
    for wildcards (which RE2 always compiles: never unknown)."""
    groups: dict[tuple[str, Op, bool], list[str]] = defaultdict(list)
    tests: list[Test] = []
    for c in map(_essential, children):
        if _groupable(c):
            key = (c.field, c.op, c.case_sensitive)  # type: ignore[union-attr]
            value = str(c.value)  # type: ignore[union-attr]
            groups[key].append(value if c.op is Op.WILDCARD else _fold(value, key[2]))  # type: ignore[union-attr]
        else:
            tests.append(_compile(c, d))
    for (name, op, cased), values in groups.items():
        tests.append(_value_set(name, op, cased, values))
    return tests[0] if len(tests) == 1 else any_of(tests)


def _groupable(e: Expr) -> bool:
    return (
        isinstance(e, Predicate)
        and e.op in _GROUPABLE
        and e.kind not in ("implied", "derived")  # evaluated as written (lookups too)
        and bool(e.field)
        and isinstance(e.value, str)
        and not (e.op is Op.EQ and number(e.value) is not None)
    )


def _value_set(name: str, op: Op, cased: bool, values: list[str]) -> Test:
    fold = not cased
    if op is Op.EQ:
        members = frozenset(values)
        return _sure(
            lambda ev: not members.isdisjoint((ev.folded if fold else ev.plain)[name]),
            ("disjoint", members, fold, name),
        )
    if op is Op.STARTS_WITH or op is Op.ENDS_WITH:
        return _sure(_affixes(name, fold, tuple(values), op is Op.STARTS_WITH))
    if op is Op.WILDCARD:
        return _wildcards(name, cased, values)
    if len(values) <= 3:

        def contains_one(ev: Event) -> bool:
            for t in (ev.folded if fold else ev.plain)[name]:
                for v in values:  # noqa: SIM110 (loops: no generator made per call)
                    if v in t:
                        return True
            return False

        return _sure(contains_one)
    import re2

    options = re2.Options()
    options.never_capture = True
    search = re2_test(re2.compile("|".join(re2.escape(v) for v in values), options), False)
    return _sure(lambda ev: any(map(search, (ev.folded if fold else ev.plain)[name])))


def _affixes(name: str | None, fold: bool, affixes: tuple[str, ...], starts: bool) -> Test:
    """A value starting (ending) with one of ``affixes``: one loop, no call per value."""
    if starts:

        def any_start(ev: Event) -> bool:
            for t in (ev.folded if fold else ev.plain)[name]:  # noqa: SIM110 (no generator per call)
                if t.startswith(affixes):
                    return True
            return False

        return any_start

    def any_end(ev: Event) -> bool:
        for t in (ev.folded if fold else ev.plain)[name]:  # noqa: SIM110
            if t.endswith(affixes):
                return True
        return False

    return any_end


def _wildcards(name: str, cased: bool, values: list[str]) -> Test:
    """Wildcard patterns of one field as one RE2 alternation; each on its own (and
    maybe unknown) if RE2 refuses the alternation (too large)."""
    import re2

    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = cased
    options.dot_nl = True
    options.never_capture = True
    try:
        rx = re2.compile("|".join(f"(?:{wildcard_regex(v)})" for v in values), options)
    except re2.error:
        tests = [compiled_regex(wildcard_regex(v), cased, True) for v in values]
        return any_of([_three_valued(t, lambda ev: ev.plain[name]) for t in tests])
    fullmatch = re2_test(rx, True)
    return _sure(lambda ev: any(map(fullmatch, ev.plain[name])))


# -- predicates -------------------------------------------------------------------------


def compile_predicate(
    p: Predicate, full_match: bool, refs: RefResolver | None = None, d: Dialect | None = None
) -> Test:
    d = d or Dialect(full_match, refs)
    if p.kind == "implied":
        return _sure(_const(True))
    if p.kind == "derived" and not _resolved(p, d):
        # A value the query computes (``length(f)``, an EVAL'd field): evaluated
        # when the language can, never read as a field the event does not have.
        test = d.derived(p) if d.derived else None
        return _unknown_unless(test, f"computed value {p.field_raw} not evaluated", d)
    if p.op is Op.KEYWORD:
        return _sure(_keyword(p))
    if p.whole_event:
        return _whole_event(p, d)
    if p.op is Op.IN_LIST:
        # The list is the deployer's: its members are unknown, but a missing field
        # is in no list.
        test: Test = lambda ev: None if ev.get(p.field) else False  # noqa: E731
        return _unknown_unless(test, f"members of the deployer's list {p.value!r} unknown", d)
    if p.op is Op.IS_NULL:
        return _sure(lambda ev: all(v is None or v == "" for v in ev.get(p.field) or ()))
    if p.op is Op.EXISTS:
        return _sure(lambda ev: any(v is not None for v in ev.get(p.field) or ()))
    if p.op is Op.FIELD_REF:
        return _sure(_field_ref(p, refs))
    if p.op is Op.EQ and number(p.value) is not None:
        return _sure(_numeric_equals(p))
    text_test = _text_test(p, full_match)
    if text_test is None:
        return _unknown_unless(None, f"operator {p.op} on {p.value!r} not evaluated", d)
    name = p.field
    if p.op in (Op.WILDCARD, Op.REGEX_MATCH):
        # A regex RE2 cannot run may hit the time limit (or have none): unknown.
        if _is_sure(text_test):  # RE2 runs it: never unknown
            return _sure(lambda ev: any(map(text_test, ev.plain[name])))
        test = _three_valued(text_test, lambda ev: ev.plain[name])
        return _unknown_unless(test, regex_reason(p), d)
    fold = not p.case_sensitive
    if p.op in _STRING_LEAVES:
        return _sure(_string_leaf(p.op, _fold(value_text(p.value), p.case_sensitive), name, fold))
    return _sure(lambda ev: any(map(text_test, (ev.folded if fold else ev.plain)[name])))


_STRING_LEAVES = (Op.EQ, Op.CONTAINS, Op.STARTS_WITH, Op.ENDS_WITH)


def _string_leaf(op: Op, want: str, name: str | None, fold: bool) -> Test:
    """The commonest leaves as one loop each (the same tests as ``_text_test``):
    no call per value, where most predicates are spent."""
    if op is Op.EQ:
        node = ("in", want, fold, name)
        return _sure(lambda ev: want in (ev.folded if fold else ev.plain)[name], node)

    if op is Op.CONTAINS:

        def contains(ev: Event) -> bool:
            for t in (ev.folded if fold else ev.plain)[name]:  # noqa: SIM110 (no generator per call)
                if want in t:
                    return True
            return False

        return contains
    return _affixes(name, fold, (want,), op is Op.STARTS_WITH)


def _resolved(p: Predicate, d: Dialect) -> bool:
    """A derived predicate normalize traced to a source field (a rename, a case
    fold: ``Esql.x = TO_LOWER(url.original)``) is a plain test of that field."""
    from detcat.normalize.values import lookup_name

    return lookup_name(p, d.computed)[0] != p.field_raw


def regex_reason(p: Predicate) -> str:
    """Why a regex test may be unknown: only patterns RE2 refuses run on Python's
    backtracking engine, under a time limit (none outside the main thread)."""
    pattern = wildcard_regex(str(p.value)) if p.op is Op.WILDCARD else str(p.value)
    try:
        re.compile(pattern)
    except re.error as e:
        return f"regex {p.value!r} cannot be compiled (RE2 nor Python's re: {e})"
    return (
        f"regex {p.value!r} needs backtracking (look-around or back-reference) and ran "
        f"out of its {REGEX_TIME_LIMIT:g} s time limit (or ran outside the main thread, "
        "where no limit can be set)"
    )


def _three_valued(test: Callable[[str], bool | None], read: Callable[[Event], list[str]]) -> Test:
    """``test`` held by any of the texts ``read`` gives; unknown when it is unknown
    on one and holds on none (only for regexes RE2 cannot run: off the hot path)."""

    def run(ev: Event) -> bool | None:
        unknown = False
        for t in read(ev):
            r = test(t)
            if r:
                return True
            unknown = unknown or r is None
        return None if unknown else False

    return run


def _text_test(p: Predicate, full_match: bool) -> Callable[[str], bool | None] | None:
    """A test of one value's text (already case-folded for case-insensitive string
    operators; regex engines fold themselves)."""
    want = _fold(value_text(p.value), p.case_sensitive)
    match p.op:
        case Op.EQ:
            return want.__eq__
        case Op.CONTAINS:
            return lambda t: want in t
        case Op.STARTS_WITH:
            return lambda t: t.startswith(want)
        case Op.ENDS_WITH:
            return lambda t: t.endswith(want)
        case Op.WILDCARD:
            return compiled_regex(wildcard_regex(str(p.value)), p.case_sensitive, True)
        case Op.REGEX_MATCH:
            return compiled_regex(str(p.value), p.case_sensitive, full_match)
        case Op.CIDR:
            return _cidr(str(p.value))
        case Op.GT | Op.GTE | Op.LT | Op.LTE:
            return _compare(p.op, p.value, p.case_sensitive)
    return None


def _numeric_equals(p: Predicate) -> Test:
    """``EventID: 4688`` holds for 4688, "4688" and 4688.0 alike."""
    want, name = number(p.value), p.field
    text = _fold(value_text(p.value), p.case_sensitive)

    def run(ev: Event) -> bool:
        if text in ev.folded[name]:  # spelled as written: no number read
            return True
        return any(number(v) == want for v in ev.get(name) or ())

    return run


def _fold(text: str, case_sensitive: bool) -> str:
    return text if case_sensitive else text.casefold()


def number(v: Any) -> float | None:
    """A value read as a number: ints, floats, numeric strings, ``0x`` hex."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return float(v)
    text = str(v).strip()
    try:
        return float(int(text, 16)) if text[:2].lower() == "0x" else float(text)
    except ValueError:
        return None


def _keyword(p: Predicate) -> Test:
    text = value_text(p.value)
    if "*" in text or "?" in text:
        search = compiled_regex("(?s)" + wildcard_regex(text), p.case_sensitive, False)
        return lambda ev: any(search(v) for v in ev.text)
    return _in_text(text, p.case_sensitive)


def _in_text(text: str, case_sensitive: bool) -> Test:
    """Some string value of the event contains ``text``."""
    w, fold = _fold(text, case_sensitive), not case_sensitive
    return lambda ev: any(w in v for v in ev.all_text(fold))


def _whole_event(p: Predicate, d: Dialect) -> Test:
    """A field-less test other than a keyword: a search (``contains``, a regex)
    holds when a string value of the event passes it, as a keyword does; other
    tests of the raw text as a whole (anchored, numeric) have no such reading."""
    if p.op is Op.CONTAINS:
        return _sure(_in_text(value_text(p.value), p.case_sensitive))
    if p.op is not Op.REGEX_MATCH:
        return _unknown_unless(None, f"{p.op} on the event's whole text not evaluated", d)
    test = _text_test(p, d.full_match)  # regex engines fold themselves: the plain texts
    assert test is not None
    if _is_sure(test):
        return _sure(lambda ev: any(map(test, ev.text)))
    return _unknown_unless(_three_valued(test, lambda ev: ev.text), regex_reason(p), d)


def _field_ref(p: Predicate, refs: RefResolver | None) -> Test:
    names = refs(str(p.value)) if refs else (str(p.value),)

    def run(ev: Event) -> bool:
        mine = {_fold(value_text(v), p.case_sensitive) for v in ev.get(p.field) or ()}
        other = {_fold(value_text(v), p.case_sensitive) for n in names for v in ev.get(n) or ()}
        return bool(mine & other)

    return run


def _cidr(value: str) -> Callable[[str], bool]:
    try:
        net = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return lambda v: False

    def test(v: str) -> bool:
        try:
            return ipaddress.ip_address(v.strip()) in net
        except ValueError:
            return False

    return test


_COMPARE = {
    Op.GT: lambda a, b: a > b,
    Op.GTE: lambda a, b: a >= b,
    Op.LT: lambda a, b: a < b,
    Op.LTE: lambda a, b: a <= b,
}


def _compare(op: Op, want: Any, case_sensitive: bool) -> Callable[[str], bool]:
    """Numbers order numerically; a string bound orders text by code point
    (``process_name >= "System"``), folded unless case-sensitive."""
    bound = number(want)
    cmp = _COMPARE[op]
    if bound is None:
        text = _fold(value_text(want), case_sensitive)
        return lambda v: number(v) is None and cmp(v, text)
    return lambda v: (got := number(v)) is not None and cmp(got, bound)
