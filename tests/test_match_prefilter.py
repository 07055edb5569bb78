"""The matcher's literal prefilter (``match.needs``, ``match.prefilter``) as a
specification: the literals a pattern requires, the clauses a predicate tree
needs, the stages that can never hold; and the property everything rests on:
``Matcher.match`` (routes and prefilter) answers exactly as
``Matcher.match_reference`` (every admitted stage evaluated) on any tree and any
event, three-valued logic, negations, missing fields and case folding included.
The same equality on the real catalog is in ``tests/fidelity/test_match_equality.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from detcat.match import Matcher, RulePlan, StagePlan
from detcat.match.events import canonical_event
from detcat.match.needs import (
    ALL_TEXT,
    can_hold,
    clauses,
    regex_literals,
    selective,
    wildcard_pieces,
)
from detcat.model import And, Expr, Not, Op, Opaque, Or, Predicate, StageRole


def P(field: str | None, op: Op, value: Any, cased: bool = False, kind: str = "") -> Predicate:
    return Predicate(field, op, value, case_sensitive=cased, field=field, kind=kind)


# (pattern, literals one of which every match contains; None: none known)
REGEXES = [
    (r"\\a\.exe|\\b\.exe", ["\\a.exe", "\\b.exe"]),  # one per top-level branch
    (r"abc{2}def", ["def"]),  # "ab" and "def" are required: the longest
    (r"ab+c", ["ab"]),  # b at least once: the run ends after it
    (r"(?i)FOO.*bar", ["foo"]),  # folded; the flag group is skipped
    (r"foo(bar)?bazz", ["bazz"]),  # an optional group is skipped
    (r"a\x41bc", ["a"]),  # an escape with an argument ends the reading
    (r"\d+abc", ["abc"]),
    (r"[[:alpha:]]xyz]", ["xyz"]),  # a POSIX class inside a class
    (r"[]a]bc", ["bc"]),  # "]" first in a class is a member
    (r"a|.*", None),  # a branch without a literal: nothing is required
    (r"(?=a)bcd", None),  # RE2 refuses it (Python's re runs it): not read
    ("caf\u00e9s", ["caf"]),  # ASCII only: simple and full case folding agree there
    (r"x*", None),
]


@pytest.mark.parametrize(("pattern", "literals"), REGEXES)
def test_regex_literals(pattern: str, literals: list[str] | None) -> None:
    assert regex_literals(pattern) == literals


@pytest.mark.parametrize(
    ("pattern", "pieces"),
    [("*\\foo*.ex?e", ["\\foo", ".ex", "e"]), ("*", []), ("A*ß*B", ["a", "b"])],
)
def test_wildcard_pieces(pattern: str, pieces: list[str]) -> None:
    assert wildcard_pieces(pattern) == pieces


NAME, CMD = "process.name", "process.command_line"

# (tree, its clauses: each a set of (field, literal or None for presence))
CLAUSES: list[tuple[Expr, list[set[tuple[str, str | None]]]]] = [
    (P(NAME, Op.EQ, "CMD.exe"), [{(NAME, "cmd.exe")}]),
    (P(NAME, Op.EQ, "4688"), [{(NAME, None)}]),  # numeric: "0x1250" equals it too
    (P(NAME, Op.ENDS_WITH, "x"), [{(NAME, None)}]),  # one ASCII character: the field
    (P(CMD, Op.CONTAINS, "\u0410"), [{(CMD, "\u0430")}]),  # a Cyrillic letter is enough
    (P(NAME, Op.IS_NULL, None), []),  # true on a missing field
    (P(NAME, Op.EXISTS, True), [{(NAME, None)}]),
    (P(None, Op.KEYWORD, "WhoAmI"), [{(ALL_TEXT, "whoami")}]),
    (P(None, Op.KEYWORD, "*"), []),
    (P(None, Op.REGEX_MATCH, "whoami|hostname"), [{(ALL_TEXT, "whoami"), (ALL_TEXT, "hostname")}]),
    (P(None, Op.CONTAINS, "WhoAmI"), [{(ALL_TEXT, "whoami")}]),
    (P(None, Op.STARTS_WITH, "whoami"), []),  # field-less and no search: unknown
    (Not(P(NAME, Op.EQ, "cmd.exe")), []),
    (P(NAME, Op.EQ, "cmd.exe", kind="implied"), []),
    (P("splunk:x", Op.EQ, "abc", kind="derived"), []),  # computed: maybe unknown
    (Opaque("len(x) > 3", "computed value"), []),
    (
        And((P(NAME, Op.EQ, "cmd.exe"), P(CMD, Op.CONTAINS, "/c"))),
        [{(NAME, "cmd.exe")}, {(CMD, "/c")}],
    ),
    (
        Or((P(NAME, Op.EQ, "cmd.exe"), P(CMD, Op.WILDCARD, "*whoami*"))),
        [{(NAME, "cmd.exe"), (CMD, "whoami")}],
    ),
    (Or((P(NAME, Op.EQ, "cmd.exe"), Not(P(CMD, Op.EQ, "x")))), []),  # a branch needs nothing
]


@pytest.mark.parametrize(("expr", "expected"), CLAUSES)
def test_clauses(expr: Expr, expected: list[set[tuple[str, str | None]]]) -> None:
    assert [set(c) for c in clauses(expr)] == expected


OPAQUE = Opaque("mstats count(x)", "not events", "mstats: metrics")

# (tree, whether it may be true on some event) for a language without its own
# evaluator of Opaque parts
HOLDS = [
    (OPAQUE, False),
    (Not(OPAQUE), False),
    (And((P(NAME, Op.EQ, "a"), OPAQUE)), False),
    (Or((P(NAME, Op.EQ, "a"), OPAQUE)), True),
    (Not(And((P(NAME, Op.EQ, "a"), OPAQUE))), True),  # not(False and unknown) = True
    (P("splunk:x", Op.EQ, "a", kind="derived"), False),
    (P(NAME, Op.EQ, "a", kind="implied"), True),
]


@pytest.mark.parametrize(("expr", "expected"), HOLDS)
def test_can_hold(expr: Expr, expected: bool) -> None:
    assert can_hold(expr, None, evaluated=False) is expected
    assert can_hold(expr, None, evaluated=True)  # EQL evaluates Opaque conditions


# -- the property: prefiltered == reference ------------------------------------------------

FIELDS = [NAME, CMD]
# Few words, some with letters whose case folding is tricky (Kelvin sign, long s,
# sharp s, dotted I): values are made of one or two, so predicates and events meet.
WORDS = ["ab", "AB", "k\u212a", "\u017fS", "\u00df", "\u0130i", "x\\y", "", "1"]
WORD = st.sampled_from(WORDS)
TEXT = st.one_of(
    st.lists(WORD, min_size=1, max_size=2).map("".join),
    st.text(alphabet="aAbB.\\/ Ks\u212a\u017f\u00df\u0130i1-", max_size=6),
)
REGEX = st.sampled_from(
    [
        "a.b",
        "ab+",
        "(?i)AB",
        "a|bk",
        "[ab]s",
        "^a",
        "b$",
        r"a\.b",
        "k{2}s",
        "(a)b",
        r"\d+a",
        "(?=a)b",
        "K",
        "ss",
        "İi",
    ]  # fmt: skip
)


_STRING_OPS = [Op.EQ, Op.CONTAINS, Op.STARTS_WITH, Op.ENDS_WITH, Op.WILDCARD, Op.KEYWORD]


@st.composite
def predicates(draw: st.DrawFn) -> Predicate:
    # string tests twice as often: they are most of the rules, and the literals
    op = draw(st.sampled_from([*[o for o in Op if o is not Op.FIELD_REF], *_STRING_OPS]))
    field = None if op is Op.KEYWORD else draw(st.sampled_from([*FIELDS, *FIELDS, None]))
    value: Any = draw(WORD)
    if op is Op.REGEX_MATCH:
        value = draw(REGEX)
    elif op is Op.WILDCARD:
        value = draw(st.lists(st.sampled_from(["*", "?", *WORDS]), max_size=4).map("".join))
    elif op in (Op.GT, Op.GTE, Op.LT, Op.LTE):
        value = draw(st.sampled_from([1, "0x1", "a"]))
    elif op is Op.EQ and draw(st.booleans()):
        value = draw(st.sampled_from([1, "1", "0x1", 1.0]))
    elif op is Op.CIDR:
        value = "10.0.0.0/8"
    kind = draw(st.sampled_from(["", "", "", "", "", "implied", "derived", "lookup:x"]))
    return Predicate(field, op, value, case_sensitive=draw(st.booleans()), field=field, kind=kind)


TREES = st.recursive(
    st.one_of(*[predicates()] * 6, st.just(OPAQUE)),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda c: And(tuple(c))),
        st.lists(inner, min_size=1, max_size=4).map(lambda c: Or(tuple(c))),
        inner.map(Not),
    ),
    max_leaves=5,
)
VALUE = st.one_of(TEXT, st.integers(0, 2), st.just("10.1.2.3"), st.none())
EVENTS = st.lists(
    st.dictionaries(
        st.sampled_from(FIELDS), st.one_of(VALUE, st.lists(VALUE, max_size=3)), min_size=1
    ),
    min_size=1,
    max_size=4,
)


def one_rule(trees: list[Expr], language: str) -> RulePlan:
    rule = RulePlan("sigma", "r", "r", language)
    for i, tree in enumerate(trees):
        rule.stages.append(StagePlan(rule, f"s{i}", StageRole.EVENTS, False, {}, tree, frozenset()))
    return rule


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    trees=st.lists(TREES, min_size=1, max_size=2),
    docs=EVENTS,
    language=st.sampled_from(["sigma", "eql"]),
)
# found by the property: a field-less search in a language whose regexes match whole
@example(trees=[P(None, Op.CONTAINS, "ab")], docs=[{NAME: "xaby"}, {NAME: ""}], language="eql")
def test_prefiltered_matcher_equals_the_reference(
    trees: list[Expr], docs: list[dict[str, Any]], language: str
) -> None:
    matcher = Matcher([one_rule(trees, language)])
    fast, reference = matcher.stream(), matcher.stream()
    for i, doc in enumerate(docs):
        event = canonical_event(f"e{i}", doc)
        assert fast.match(event).to_json() == reference.match_reference(event).to_json()


# Cases a wrong prefilter would get wrong: (why, trees of one rule, events in order).
# The first event builds the route; each must answer as the reference does.
EDGES: list[tuple[str, list[Expr], list[dict[str, Any]]]] = [
    (
        "is_null holds on a missing field",
        [And((P("user.name", Op.IS_NULL, None), P(NAME, Op.EQ, "ab")))],
        [{NAME: "AB"}, {NAME: "ab", "user.name": ""}],
    ),
    ("a negation holds where its literal is absent", [Not(P(NAME, Op.EQ, "ab"))], [{NAME: "x"}]),
    (
        "case-sensitive values fold into the prefilter's literals",
        [P(NAME, Op.CONTAINS, "AB", cased=True)],
        [{NAME: "xABx"}, {NAME: "xabx"}],
    ),
    ("the Kelvin sign folds to k", [P(NAME, Op.WILDCARD, "*k*")], [{NAME: "\u212a"}]),
    ("the long s folds to s", [P(NAME, Op.REGEX_MATCH, "s")], [{NAME: "\u017f"}]),
    ("sharp s folds to ss", [P(NAME, Op.CONTAINS, "\u00df")], [{NAME: "SS"}, {NAME: "\u00df"}]),
    ("a regex RE2 refuses", [P(NAME, Op.REGEX_MATCH, "(?<=a)bc")], [{NAME: "abc"}]),
    ("one of several values", [P(NAME, Op.EQ, "ab")], [{NAME: ["x", "ab"]}]),
    ("a keyword reads every value", [P(None, Op.KEYWORD, "whoami")], [{CMD: "a WhoAmI b"}]),
    ("so does a field-less regex", [P(None, Op.REGEX_MATCH, "who.mi")], [{CMD: "a whoami b"}]),
    ("a number equals its hex spelling", [P(NAME, Op.EQ, "16")], [{NAME: "0x10"}]),
    (
        "an unknown part of a possible match",
        [And((P(NAME, Op.EQ, "ab"), Opaque("x", "computed value")))],
        [{NAME: "ab"}],
    ),
    (
        "an opaque part beside an implied predicate stays unknown",
        [And((OPAQUE, P(NAME, Op.EQ, "ab", kind="implied")))],
        [{NAME: "ab"}],
    ),
    (
        "a multi-stage rule reports the stages that hold",
        [P(NAME, Op.EQ, "ab"), P(CMD, Op.CONTAINS, "whoami")],
        [{NAME: "ab"}, {CMD: "whoami"}],
    ),
]


@pytest.mark.parametrize(("why", "trees", "docs"), EDGES, ids=[e[0] for e in EDGES])
def test_prefilter_edges_answer_as_the_reference(
    why: str, trees: list[Expr], docs: list[dict[str, Any]]
) -> None:
    matcher = Matcher([one_rule(trees, "sigma")])
    fast, reference = matcher.stream(), matcher.stream()
    answers = []
    for i, doc in enumerate(docs):
        event = canonical_event(f"e{i}", doc)
        got = fast.match(event).to_json()
        assert got == reference.match_reference(event).to_json(), why
        answers.append(got)
    assert any(len(a) > 2 or a["matches"] for a in answers), f"{why}: nothing to compare"


# (tree, whether it holds only on a value it checks): a multi-stage rule without an
# engine reports a stage that holds as partial only when it is selective.
SELECTIVE = [
    (P(NAME, Op.EQ, "cmd.exe"), True),
    (P(NAME, Op.EXISTS, True), False),  # Splunk's `Processes.process_name=*`
    (P(NAME, Op.IS_NULL, None), False),
    (Not(P("user.name", Op.EQ, "unknown")), False),  # `user!=unknown`
    (P(NAME, Op.EQ, "process", kind="implied"), False),  # EQL's `process where true`
    (P(None, Op.KEYWORD, "whoami"), True),
    (And((P(NAME, Op.EXISTS, True), P(CMD, Op.CONTAINS, "/c"))), True),
    (Or((P(NAME, Op.EQ, "a"), P(CMD, Op.EXISTS, True))), False),  # a branch checks no value
    (Or((P(NAME, Op.EQ, "a"), P(CMD, Op.CONTAINS, "b"))), True),
    (And((P(NAME, Op.EQ, "a"), OPAQUE)), True),
    (None, False),
]


@pytest.mark.parametrize(("expr", "expected"), SELECTIVE)
def test_selective(expr: Expr | None, expected: bool) -> None:
    assert selective(expr) is expected
