"""Google SecOps (Chronicle) rules: meta -> Rule fields as tables, then the real
corpus (chronicle/detection-rules) measured: parse rate, coverage, techniques."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from detcat.model import Opaque, Problem, Rule, opaques, predicates
from detcat.sources import chronicle

GOOD = """rule demo_rule {
  meta:
    author = "Google Cloud Security"
    rule_name = "Demo Rule"
    description = "A demo"
    severity = "HIGH"
    type = "Alert"
    false_positives = "Admins"
    reference = "https://a.example, https://b.example"
    mitre_attack_tactic = "Execution, Persistence"
    mitre_attack_technique = "Command and Scripting Interpreter: PowerShell"
    mitre_attack_url = "https://attack.mitre.org/versions/v14/techniques/T1059/001/"
  events:
    $e.metadata.event_type = "PROCESS_LAUNCH"
    not $e.metadata.event_type = "FILE_CREATION"
  condition:
    $e
}
"""

# -- meta -> rule ---------------------------------------------------------------------

URL = "https://attack.mitre.org/"
TECHNIQUES = [
    ([("technique", "T1003.001")], ["T1003.001"], []),
    ([("technique", "T1003.001, t1059")], ["T1003.001", "T1059"], []),
    ([("mitre_attack_url", URL + "techniques/T1078/004/")], ["T1078.004"], []),
    ([("mitre_attack_url", URL + "versions/v14/techniques/T1562/")], ["T1562"], []),
    ([("mitre_attack_technique", "T1110.003")], ["T1110.003"], []),
    (
        [("mitre_attack_technique", "Valid Accounts: Cloud Accounts")],
        [],
        ["Valid Accounts: Cloud Accounts"],
    ),
    (
        [("mitre_attack_technique", "Brute Force, Valid Accounts")],
        [],
        ["Brute Force", "Valid Accounts"],
    ),
    ([("mitre_attack_technique", "")], [], []),
    ([("mitre", "Execution, t1204, t1059")], ["T1204", "T1059"], []),
    ([("mitre", "defense_evasion")], [], []),
    # tactic ids are not technique ids; ATT&CK software pages are not techniques
    ([("tactic", "TA0008"), ("reference", URL + "software/S0070/")], [], []),
    ([("technique", "T1219"), ("mitre_attack_url", URL + "techniques/T1219/")], ["T1219"], []),
]


@pytest.mark.parametrize(("meta", "ids", "names"), TECHNIQUES)
def test_technique_spellings(meta: list[tuple[str, str]], ids: list[str], names: list[str]) -> None:
    assert chronicle.techniques(meta) == (ids, names)


def read_text(tmp_path: Path, files: dict[str, str | bytes]) -> list[Rule | Problem]:
    for rel, text in files.items():
        path = tmp_path / "rules" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode() if isinstance(text, str) else text)
    return list(chronicle.read(tmp_path))


def test_rule_fields(tmp_path: Path) -> None:
    (rule,) = read_text(tmp_path, {"community/demo.yaral": "// header\n" + GOOD})
    assert isinstance(rule, Rule)
    assert (rule.vendor, rule.id, rule.title, rule.language) == (
        "chronicle",
        "demo_rule",
        "Demo Rule",
        "yaral",
    )
    assert (rule.author, rule.description, rule.severity, rule.type) == (
        "Google Cloud Security",
        "A demo",
        "high",
        "alert",
    )
    assert rule.references == ["https://a.example", "https://b.example"]
    assert rule.techniques == ["T1059.001"]
    assert rule.context["technique_names"] == ["Command and Scripting Interpreter: PowerShell"]
    assert rule.context["event_types"] == ["PROCESS_LAUNCH"]  # not the excluded one
    assert rule.extra["false_positives"] == ["Admins"]
    assert rule.extra["tactics"] == ["Execution", "Persistence"]
    assert rule.query == GOOD.strip() and rule.source_path == "rules/community/demo.yaral"
    assert rule.upstream_url == chronicle.UPSTREAM + "rules/community/demo.yaral"
    assert rule.fully_parsed and not rule.problems


def test_malformed_rule_is_a_problem_and_the_build_goes_on(tmp_path: Path) -> None:
    broken = GOOD.replace('= "PROCESS_LAUNCH"', '= "PROCESS_LAUNCH')  # unterminated string
    found = read_text(
        tmp_path,
        {
            "community/a_broken.yaral": broken,
            "community/b_good.yaral": GOOD,
            "community/c_bytes.yaral": b"\xff\xfe",
        },
    )
    bad, good, unreadable = found
    assert isinstance(bad, Rule) and isinstance(good, Rule) and isinstance(unreadable, Problem)
    (problem,) = bad.problems
    line = next(i for i, t in enumerate(broken.splitlines(), 1) if t.endswith('"PROCESS_LAUNCH'))
    column = broken.splitlines()[line - 1].index('"') + 1
    assert (problem.path, problem.line, problem.column) == (
        "rules/community/a_broken.yaral",
        line,
        column,
    )
    assert "unterminated string" in problem.message
    assert (bad.id, bad.techniques) == ("demo_rule", ["T1059.001"])  # meta still read
    assert [type(s.expr) for s in bad.stages] == [Opaque] and not bad.fully_parsed
    assert good.fully_parsed and unreadable.path == "rules/community/c_bytes.yaral"


def test_a_parser_bug_costs_one_file_not_the_vendor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = chronicle.parse_rules

    def flaky(text: str) -> list[object]:
        if "bug_rule" in text:
            raise RecursionError("boom")
        return real(text)

    monkeypatch.setattr(chronicle, "parse_rules", flaky)
    files = {"a.yaral": GOOD.replace("demo_rule", "bug_rule"), "b.yaral": GOOD}
    bug, good = read_text(tmp_path, files)
    assert isinstance(bug, Rule) and isinstance(good, Rule)
    assert [p.message for p in bug.problems] == ["yaral parser failed: RecursionError: boom"]
    assert bug.id == "bug_rule" and good.fully_parsed


def test_deprecated_rules_only_on_request(tmp_path: Path) -> None:
    files = {"community/a.yaral": GOOD, "_deprecated/old/b.yaral": GOOD.replace("demo_rule", "old")}
    assert [r.id for r in read_text(tmp_path, files)] == ["demo_rule"]
    found = list(chronicle.read(tmp_path, include_deprecated=True))
    assert [(r.id, r.status) for r in found] == [("old", "deprecated"), ("demo_rule", "")]


# -- the corpus ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(corpora: Path) -> list[Rule | Problem]:
    return list(chronicle.read(corpora / "chronicle"))


def _rules(found: list[Rule | Problem]) -> list[Rule]:
    return [r for r in found if isinstance(r, Rule)]


def test_every_community_rule_parses(corpus: list[Rule | Problem], corpora: Path) -> None:
    files = [
        p
        for p in (corpora / "chronicle" / "rules").rglob("*.yaral")
        if "_deprecated" not in p.parts
    ]
    rules = _rules(corpus)
    assert len(rules) == len(files) == 348
    assert [p for r in corpus for p in ([r] if isinstance(r, Problem) else r.problems)] == []


def test_coverage_at_least_98_percent(corpus: list[Rule | Problem]) -> None:
    rules = _rules(corpus)
    full = sum(r.fully_parsed for r in rules)
    reasons = Counter(o.reason for r in rules for s in r.stages for o in opaques(s.expr))
    report = f"{full}/{len(rules)} fully parsed; opaque reasons: {dict(reasons)}"
    assert full / len(rules) >= 0.98, report
    for r in rules:  # every opaque node quotes its own rule
        assert all(o.text in r.query for s in r.stages for o in opaques(s.expr)), r.id


def test_predicates_speak_udm_paths(corpus: list[Rule | Problem]) -> None:
    rules = _rules(corpus)
    assert all(predicates(s.expr) for r in rules for s in r.stages if s.expr is not None)
    preds = [p for r in rules for s in r.stages for p in predicates(s.expr)]
    assert not [p for p in preds if not p.field_raw or p.field_raw.startswith("$")]
    roots = Counter(p.field_raw.split(".")[0].split("[")[0] for p in preds if not p.kind)
    udm_roots = {"metadata", "principal", "target", "src", "observer", "intermediary", "about"}
    udm_roots |= {"network", "security_result", "extensions", "additional", "extracted", "graph"}
    assert set(roots) <= udm_roots, roots


_META = re.compile(r"\bmeta:(.*?)\bevents:", re.DOTALL)
_MENTIONS = (
    re.compile(
        r"^\s*\w*(technique|mitre)\w*\s*=\s*\"[^\"\n]*\bT\d{4}", re.IGNORECASE | re.MULTILINE
    ),
    re.compile(r"attack\.mitre\.org/(versions/\w+/)?techniques/T\d{4}", re.IGNORECASE),
    re.compile(r"^\s*mitre_attack_technique\s*=\s*\"[^\"\s]", re.MULTILINE),
)


def test_a_technique_for_every_rule_that_names_one(corpus: list[Rule | Problem]) -> None:
    rules = _rules(corpus)
    meta = {r.id: _META.search(r.query).group(1) for r in rules}  # type: ignore[union-attr]
    naming = {r.id for r in rules if any(m.search(meta[r.id]) for m in _MENTIONS)}
    found = {r.id for r in rules if r.techniques or r.context.get("technique_names")}
    assert naming == found
    assert len(found) > 250  # a real share of the corpus names techniques


def test_technique_names_map_through_attack(corpus: list[Rule | Problem], corpora: Path) -> None:
    bundle = json.loads((corpora / "attack" / "enterprise-attack.json").read_text(encoding="utf-8"))
    ids = {
        o["id"]: ref["external_id"]
        for o in bundle["objects"]
        if o.get("type") == "attack-pattern" and not o.get("revoked")
        for ref in o.get("external_references", [])
        if ref.get("source_name") == "mitre-attack"
    }
    by_id = {ids[o["id"]]: o["name"] for o in bundle["objects"] if o.get("id") in ids}
    names = {
        (by_id[t.split(".")[0]] + ": " + n if "." in t else n).lower(): t for t, n in by_id.items()
    }
    rules = _rules(corpus)
    named = [r for r in rules if r.context.get("technique_names")]
    mapped = {
        r.id: {names.get(n.lower()) for n in r.context["technique_names"]} - {None} for r in named
    }
    # every rule that names techniques only by name gets an id through ATT&CK
    assert all(mapped[r.id] for r in named if not r.techniques)
    # where a rule gives both, the name and the id agree for most (ATT&CK renames the rest)
    both = [r for r in named if r.techniques and mapped[r.id]]
    agree = sum(bool(mapped[r.id] & set(r.techniques)) for r in both)
    assert agree / len(both) > 0.9, f"{agree}/{len(both)}"


def test_t1219_has_two_chronicle_rules(corpus: list[Rule | Problem]) -> None:
    hits = [r.id for r in _rules(corpus) if any(t.split(".")[0] == "T1219" for t in r.techniques)]
    assert len(hits) == 2, hits


def test_event_types_are_what_the_rules_compare_with(corpus: list[Rule | Problem]) -> None:
    compared = re.compile(r"\.metadata\.event_type\s*=\s*\"(\w+)\"")
    rules = _rules(corpus)
    for r in rules:
        assert set(r.context["event_types"]) <= set(compared.findall(r.query)), r.id
    with_types = sum(bool(r.context["event_types"]) for r in rules)
    assert with_types >= 0.8 * sum(bool(compared.search(r.query)) for r in rules)


def test_upstream_links_point_at_the_source_file(
    corpus: list[Rule | Problem], corpora: Path
) -> None:
    for r in _rules(corpus):
        assert r.upstream_url == chronicle.UPSTREAM + r.source_path
        assert (corpora / "chronicle" / r.source_path).is_file()


def test_deprecated_corpus_reads_with_problems_recorded(corpora: Path) -> None:
    root = corpora / "chronicle"
    everything = _rules(list(chronicle.read(root, include_deprecated=True)))
    deprecated = [r for r in everything if r.status == "deprecated"]
    files = list((root / "rules" / "_deprecated").rglob("*.yaral"))
    assert len(everything) - len(deprecated) == 348 and len(deprecated) == len(files)
    broken = [r for r in deprecated if r.problems]
    for r in broken:  # a syntax error keeps the rule, positioned, with an opaque stage
        assert all(p.line and p.column and p.path == r.source_path for p in r.problems)
        assert not r.fully_parsed and r.has_query
    assert len(broken) / len(deprecated) < 0.01
