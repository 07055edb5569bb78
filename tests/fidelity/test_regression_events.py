"""SigmaHQ's regression data: every positive test event must fire its own rule
through ``detcat match`` on the full corpus catalog, and no event may crash or
hang the matcher (every rule of every vendor is evaluated on every event)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from detcat.match import Matcher
from detcat.match.reading import read_events
from detcat.store import connect


@dataclass(frozen=True)
class RegressionTest:
    rule_id: str
    title: str
    events: Path
    match_count: int  # events of the file the rule must fire on (info.yml; default 1)


def regression_tests(sigma_root: Path) -> list[RegressionTest]:
    out = []
    for info in sorted((sigma_root / "regression_data").rglob("info.yml")):
        doc = yaml.safe_load(info.read_text(encoding="utf-8"))
        rule = doc["rule_metadata"][0]
        for test in doc.get("regression_tests_info") or []:
            events = info.parent / (Path(test["path"]).stem + ".json")
            count = int(test.get("match_count") or 1)
            out.append(RegressionTest(str(rule["id"]), rule.get("title", ""), events, count))
    return out


@pytest.fixture(scope="module")
def matcher(corpus_db: Path) -> Matcher:
    return Matcher.from_catalog(connect(corpus_db))


def test_every_regression_event_fires_its_rule(corpora: Path, matcher: Matcher) -> None:
    tests = regression_tests(corpora / "sigma")
    assert len(tests) >= 100, f"expected the regression data, found {len(tests)} tests"
    failures = []
    for t in tests:
        results = [matcher.match(ev) for ev in read_events(t.events)]
        fired = sum(any(m["id"] == t.rule_id for m in r.matches) for r in results)
        if fired < t.match_count:
            unknown = [u for r in results for u in r.undetermined if u["id"] == t.rule_id]
            failures.append(
                f"{t.rule_id} {t.title}: fired on {fired} of {len(results)} events "
                f"(needs {t.match_count}) {t.events}"
                + (f" undetermined: {unknown[0]}" if unknown else "")
            )
    assert not failures, f"{len(failures)}/{len(tests)} regression tests failed:\n" + "\n".join(
        failures
    )


def test_every_event_is_evaluated_against_every_vendor(corpora: Path, matcher: Matcher) -> None:
    """No crash, no hang: each event meets rules of all four vendors' catalogs."""
    files = sorted((corpora / "sigma" / "regression_data").rglob("*.json"))
    vendors = {r.vendor for r in matcher.rules}
    assert vendors == {"sigma", "elastic", "splunk", "chronicle"}
    labels = []
    for f in files:
        for ev in read_events(f):
            labels.append(matcher.match(ev).event)
    assert len(labels) >= len(files) and len(set(labels)) == len(labels)
