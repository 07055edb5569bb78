"""The ``eql`` package's own test suite through detcat's matcher.

``eql/etc/test_queries.toml`` holds queries with the ids of the events of
``eql/etc/test_data.json`` each must return (the data of a test dependency, read
where it is installed). Each query becomes an Elastic EQL rule, built and
normalized as the catalog builds one, and the events run through one ``Matcher``
in the file's order, as ``detcat match`` streams them:

- the test events' fields move under one namespace (``eqltest.process_name``), as
  the queries' fields do, so both are read raw, like an ECS event's unmapped
  fields; ``event_type`` becomes ``event.category`` (what ``process where`` tests);
  the process identity fields stay at the top as well, where the legacy engine
  reads them (``pid``, ``unique_pid`` …: ``data/process_identity.toml``);
- the data is a complete capture (the legacy engine's assumption: an event not in
  it did not happen), so the stream is declared complete: lineage may say "no";
- a single-event query is *exact* when the events it matches are the expected ones
  and it is undetermined on none; *undetermined* when it is undetermined on
  events and matches no unexpected one while missing no expected one outside them;
  otherwise *wrong*. A sequence or join is exact when its detections, in order,
  are the expected ids.

No query may be wrong. The queries left out, and the ones detcat cannot settle,
are listed below with the reason.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from lark import Lark, Token, Tree

from detcat.languages.lalr import lalr
from detcat.match import Matcher, RulePlan
from detcat.match.events import Event, canonical_event
from detcat.normalize import normalize_rule
from detcat.sources.elastic import build_rule

eql = pytest.importorskip("eql")

ETC = Path(eql.__file__).parent / "etc"
NAMESPACE = "eqltest"
GRAMMAR = Path(__file__).parents[2] / "src" / "detcat" / "languages" / "eql.lark"


@dataclass(frozen=True)
class Case:
    query: str
    expected: list[int]
    flags: frozenset[str]

    @property
    def multi_event(self) -> bool:
        return self.query.startswith(("sequence", "join"))


# Left out: (name, test, why), tried in order. Each leaves out at least one query.
EXCLUDED: list[tuple[str, Callable[[Case], bool], str]] = [
    (
        "pipes",
        lambda c: "|" in _code(c.query),
        "pipes (head, tail, filter, unique, count, sort) shape the result set; they are "
        "not event filters, and detcat matches events",
    ),
    (
        "legacy case modes",
        lambda c: bool(c.flags & {"case_sensitive", "case_insensitive"}),
        "run by the legacy engine in one global case mode; Elasticsearch decides case "
        "per operator (== sensitive, : insensitive, ~ forms)",
    ),
    (
        "wildcards through ==",
        lambda c: _wildcard_equality(c.query),
        "legacy `==` reads * as a wildcard; Elasticsearch's == compares literally "
        "(wildcards are : and like)",
    ),
]

# Queries detcat answers "undetermined" for: (a text the query contains, why).
UNDETERMINED: list[tuple[str, str]] = [
    ("length(unique_pid)", "length() of a number: a type error for Elasticsearch"),
]


_STRINGS = re.compile(r"\?\"[^\"]*\"|\?'[^']*'|\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'")


def _code(query: str) -> str:
    """The query without its string literals (a pipe inside a string is no pipe)."""
    return _STRINGS.sub('""', query)


def _wildcard_equality(query: str) -> bool:
    for node in _tree(query).find_data("compare"):
        _, op, right = node.children
        string = isinstance(right, Tree) and right.data == "string"
        if op.value in ("==", "=") and string and "*" in right.children[0].value:
            return True
    return False


@cache
def _parser() -> Lark:
    return lalr(GRAMMAR.read_text(encoding="utf-8"), lexer="contextual", maybe_placeholders=False)


@cache
def _tree(query: str) -> Tree[Token]:
    return _parser().parse(query)


def namespaced(query: str) -> str:
    """Every field of the query under NAMESPACE (found with detcat's own grammar)."""
    tokens = [n.children[0] for n in _tree(query).find_data("field")]
    out, last = [], 0
    for t in sorted(tokens, key=lambda t: t.start_pos):
        prefix = "?" if t.value.startswith("?") else ""
        out += [query[last : t.start_pos], f"{prefix}{NAMESPACE}.{t.value.lstrip('?')}"]
        last = t.end_pos
    return "".join(out) + query[last:]


def cases() -> list[Case]:
    doc = tomllib.loads((ETC / "test_queries.toml").read_text(encoding="utf-8"))
    return [
        Case(q["query"].strip(), list(q["expected_event_ids"]), frozenset(q) - {"query"})
        for q in doc["queries"]
    ]


# The legacy engine's process identity and life (its pid_key, ppid_key, subtype).
IDENTITY = ("pid", "ppid", "unique_pid", "unique_ppid", "subtype")


def events() -> list[Event]:
    data = json.loads((ETC / "test_data.json").read_text(encoding="utf-8"))
    return [
        canonical_event(
            str(d["serial_event_id"]),
            {NAMESPACE: d, "event": {"category": d["event_type"]}}
            | {k: d[k] for k in IDENTITY if k in d},
        )
        for d in data
    ]


def matcher(case: Case, complete: bool = True) -> Matcher:
    rule = build_rule(
        {"rule_id": "q", "name": case.query, "type": "eql", "language": "eql",
         "query": namespaced(case.query)}, {}, "eql_suite.toml")  # fmt: skip
    assert not rule.problems, rule.problems
    normalize_rule(rule)
    return Matcher([RulePlan.from_rule(rule)]).stream(complete)


def single_outcome(case: Case, evs: list[Event], complete: bool = True) -> str:
    m = matcher(case, complete)
    yes, unknown = set(), set()
    for ev in evs:
        r = m.match(ev)
        yes |= {int(ev.label)} if r.matches else set()
        unknown |= {int(ev.label)} if r.undetermined else set()
    want = set(case.expected)
    if yes == want and not unknown:
        return "exact"
    return "undetermined" if yes <= want <= yes | unknown and unknown else "wrong"


def sequence_outcome(case: Case, evs: list[Event]) -> str:
    m = matcher(case)
    found: list[int] = []
    unknown = False
    for ev in evs:
        r = m.match(ev)
        found += [int(x) for d in r.matches for x in d["events"]]
        unknown = unknown or any("events" in d for d in r.undetermined)
    if found == case.expected and not unknown:
        return "exact"
    want = case.expected
    return "undetermined" if unknown and found == want[: len(found)] else "wrong"


def excluded_by(case: Case) -> str | None:
    return next((name for name, test, _ in EXCLUDED if test(case)), None)


def kept() -> list[Case]:
    return [c for c in cases() if excluded_by(c) is None]


def expected_undetermined(case: Case) -> str | None:
    return next((why for text, why in UNDETERMINED if text in case.query), None)


def test_every_exclusion_leaves_out_a_query() -> None:
    all_cases = cases()
    assert len(all_cases) == 241
    reasons = {excluded_by(c) for c in all_cases}
    assert reasons == {name for name, _, _ in EXCLUDED} | {None}
    assert len([c for c in kept() if not c.multi_event]) == 84
    assert len([c for c in kept() if c.multi_event]) == 37


@pytest.mark.parametrize("kind", ["single", "multi"])
def test_eql_suite(kind: str) -> None:
    evs = events()
    chosen = [c for c in kept() if c.multi_event == (kind == "multi")]
    outcome = sequence_outcome if kind == "multi" else single_outcome
    results = {c.query: outcome(c, evs) for c in chosen}
    wrong = [q for q, r in results.items() if r == "wrong"]
    assert not wrong, f"{len(wrong)} wrong answers:\n" + "\n---\n".join(wrong)
    for case in chosen:
        want = "undetermined" if expected_undetermined(case) else "exact"
        assert results[case.query] == want, case.query


LINEAGE = ("descendant of", "child of", "event of")


def test_lineage_without_completeness_says_yes_or_undetermined() -> None:
    """Not declared complete, the same stream gets no "no" from lineage: each lineage
    query finds only expected events and is undetermined on the others it may hold
    (exact when every event its other conditions admit is a "yes")."""
    evs = events()
    chosen = [c for c in kept() if not c.multi_event and any(w in c.query for w in LINEAGE)]
    assert len(chosen) == 9
    results = [single_outcome(c, evs, complete=False) for c in chosen]
    assert sorted(results) == ["exact"] * 5 + ["undetermined"] * 4
