"""The matcher's routes and literal prefilter change no answer: on SigmaHQ's
regression events, ``Matcher.match`` gives the same matches, partials and
undetermined rules as ``Matcher.match_reference`` (every stage the event's log
source admits, evaluated), event by event, over

- the whole catalog (every vendor's rules);
- each round-trip target's rules: the Windows Sigma rules as pySigma's backends
  write them (SPL, EQL, ES|QL), parsed back by detcat — the same detections in
  each language's own shapes. Not YARA-L's: its stages name UDM events
  (``udm:PROCESS_LAUNCH``), which a Sysmon event is not, so none answers and the
  comparison would compare nothing.

The property over arbitrary trees and events is in ``tests/test_match_prefilter.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fidelity_oracle import TARGETS, Conversion

from detcat.match import Matcher, RulePlan
from detcat.match.events import canonical_event
from detcat.match.reading import read_documents
from detcat.model import QueryError
from detcat.parse import parse_rules
from detcat.store import connect

Documents = list[tuple[str, dict[str, Any]]]


@pytest.fixture(scope="module")
def documents(corpora: Path) -> Documents:
    files = sorted((corpora / "sigma" / "regression_data").rglob("*.json"))
    return [doc for f in files for doc in read_documents(f)]


def differences(matcher: Matcher, docs: Documents) -> list[str]:
    """Events on which the two paths answer differently (each path its own stream,
    fed the events in order, as ``detcat match`` does)."""
    fast, reference = matcher.stream(), matcher.stream()
    out = []
    for label, doc in docs:
        event = canonical_event(label, doc)
        got, want = fast.match(event).to_json(), reference.match_reference(event).to_json()
        if got != want:
            out.append(f"{label}:\n  match:     {got}\n  reference: {want}")
    return out


def answered(matcher: Matcher, docs: Documents) -> int:
    """Events some rule answers (so the comparison compares something)."""
    stream = matcher.stream()
    results = [stream.match(canonical_event(label, doc)) for label, doc in docs]
    return sum(bool(r.matches or r.partial or r.undetermined) for r in results)


def test_whole_catalog_answers_as_the_reference(corpus_db: Path, documents: Documents) -> None:
    matcher = Matcher.from_catalog(connect(corpus_db))
    assert len(documents) >= 116
    found = differences(matcher, documents)
    assert not found, f"{len(found)} events differ:\n" + "\n".join(found[:5])
    assert answered(matcher, documents) > len(documents) // 2


def target_rules(target: str, conversions: dict[str, Conversion]) -> list[RulePlan]:
    language = TARGETS[target].language
    out = []
    for conv in conversions.values():
        for query in conv.queries:
            try:
                rules = parse_rules(language, query)
            except QueryError:
                continue  # the round-trip test counts these
            out.extend(RulePlan.from_rule(r) for r in rules)
    return out


ROUND_TRIP_TARGETS = sorted(t for t, target in TARGETS.items() if target.language != "yaral")


@pytest.mark.parametrize("target", ROUND_TRIP_TARGETS)
def test_round_trip_rules_answer_as_the_reference(
    target: str, conversions: Callable[[str], dict[str, Conversion]], documents: Documents
) -> None:
    rules = target_rules(target, conversions(target))
    assert len(rules) > 1000, f"{target}: only {len(rules)} rules read back"
    matcher = Matcher(rules)
    found = differences(matcher, documents)
    assert not found, f"{target}: {len(found)} events differ:\n" + "\n".join(found[:5])
    assert answered(matcher, documents) > len(documents) // 2
