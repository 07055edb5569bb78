"""elastic/detection-rules TOML -> Rule.

Small rule files written here pin each behaviour (metadata, Kibana filters,
rule types, problems); the corpus tests read the real repository.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import pytest

from detcat.model import (
    And,
    Not,
    Op,
    Opaque,
    Predicate,
    Problem,
    Rule,
    Stage,
    StageRole,
    and_,
    exclusions,
    opaques,
    or_,
    predicates,
)
from detcat.sources import elastic

HEADER = """\
[metadata]
creation_date = "2024/01/01"
integration = ["endpoint"]
maturity = "production"
updated_date = "2025/01/01"

[rule]
author = ["Elastic", "Someone"]
description = "d"
name = "A rule"
risk_score = 47
rule_id = "{rule_id}"
severity = "medium"
tags = ["Domain: Endpoint", "OS: Windows"]
"""

THREAT = """
[[rule.threat]]
framework = "MITRE ATT&CK"
[[rule.threat.technique]]
id = "T1219"
name = "Remote Access Tools"
reference = "https://attack.mitre.org/techniques/T1219/"
[[rule.threat.technique.subtechnique]]
id = "T1219.002"
name = "Remote Desktop Software"
reference = "https://attack.mitre.org/techniques/T1219/002/"
[rule.threat.tactic]
id = "TA0011"
name = "Command and Control"
reference = "https://attack.mitre.org/tactics/TA0011/"

[[rule.threat]]
framework = "Other"
[[rule.threat.technique]]
id = "X1"
name = "not ATT&CK"
reference = "x"
"""


def write(root: Path, rel: str, body: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER.format(rule_id=path.stem) + textwrap.dedent(body), encoding="utf-8")
    return path


def read_one(root: Path, rel: str, body: str) -> Rule:
    rule = elastic.read_file(write(root, rel, body), root)
    assert isinstance(rule, Rule)
    return rule


def kq(field: str, op: Op, value: object) -> Predicate:
    return Predicate(field, op, value, ":")  # type: ignore[arg-type]


EVENT_PROCESS = kq("event.category", Op.EQ, "process")

KQL_RULE = (
    '''
    type = "query"
    language = "kuery"
    index = ["logs-endpoint.events.process-*", "winlogbeat-*"]
    references = ["https://example.com"]
    query = """
    event.category:process and process.name:(anydesk.exe or *teamviewer*)
    """
    '''
    + THREAT
)


def test_metadata_and_query(tmp_path: Path) -> None:
    rule = read_one(tmp_path, "rules/windows/c2_rmm.toml", KQL_RULE)
    assert (rule.vendor, rule.id, rule.title, rule.language, rule.type) == (
        "elastic",
        "c2_rmm",
        "A rule",
        "kql",
        "query",
    )
    assert (rule.severity, rule.status, rule.author) == ("medium", "production", "Elastic, Someone")
    assert rule.references == ["https://example.com"]
    assert rule.tags == ["Domain: Endpoint", "OS: Windows"]
    assert rule.techniques == ["T1219", "T1219.002"]  # the "Other" framework is left out
    assert rule.source_path == "rules/windows/c2_rmm.toml"
    assert rule.upstream_url == (
        "https://github.com/elastic/detection-rules/blob/main/rules/windows/c2_rmm.toml"
    )
    assert rule.context == {
        "index": ["logs-endpoint.events.process-*", "winlogbeat-*"],
        "building_block": False,
        "rule_type": "query",
        "integration": ["endpoint"],
    }
    assert (rule.extra["risk_score"], rule.extra["maturity"]) == (47, "production")
    names = or_(
        kq("process.name", Op.EQ, "anydesk.exe"), kq("process.name", Op.CONTAINS, "teamviewer")
    )
    assert rule.stages == [Stage(expr=and_(EVENT_PROCESS, names))]
    assert rule.fully_parsed and not rule.problems


FILTERS = """
    type = "query"
    language = "kuery"
    query = "event.category:process"

    [[rule.filters]]
    [rule.filters.meta]
    negate = true
    [rule.filters.query.wildcard."file.path"]
    case_insensitive = true
    value = "?:\\\\\\\\Program Files\\\\\\\\*.exe"

    [[rule.filters]]
    [rule.filters.meta]
    negate = true
    disabled = false
    [rule.filters.query.exists]
    field = "process.pe.original_file_name"

    [[rule.filters]]
    [rule.filters.meta]
    disabled = true
    [rule.filters.query.match_phrase]
    "host.name" = "ignored"

    [[rule.filters]]
    "$state" = { store = "appState" }
    exists = { field = "user.name" }
    [rule.filters.meta]
    negate = false

    [[rule.filters]]
    [rule.filters.meta]
    negate = true
    [[rule.filters.query.bool.should]]
    match_phrase = { "user.id" = "S-1-5-18" }
    [[rule.filters.query.bool.should]]
    term = { "user.id" = { value = "S-1-5-19" } }
    [rule.filters.query.bool.must_not.range."event.severity"]
    gte = 3
    lt = 5

    [[rule.filters]]
    [rule.filters.meta]
    negate = false
    [rule.filters.query.query_string]
    query = "a:b"
"""


def test_kibana_filters(tmp_path: Path) -> None:
    rule = read_one(tmp_path, "rules/filters.toml", FILTERS)
    (stage,) = rule.stages
    assert stage.expr == and_(
        EVENT_PROCESS,
        Not(Predicate("file.path", Op.WILDCARD, "?:\\Program Files\\*.exe", "wildcard", False)),
        Not(Predicate("process.pe.original_file_name", Op.EXISTS, True, "exists")),
        Predicate("user.name", Op.EXISTS, True, "exists"),
        Not(
            and_(
                or_(
                    Predicate("user.id", Op.EQ, "S-1-5-18", "match_phrase"),
                    Predicate("user.id", Op.EQ, "S-1-5-19", "term", True),
                ),
                Not(
                    and_(
                        Predicate("event.severity", Op.GTE, 3, "range"),
                        Predicate("event.severity", Op.LT, 5, "range"),
                    )
                ),
            )
        ),
        Opaque(
            '{"query_string": {"query": "a:b"}}', "unsupported syntax", "Kibana filter query_string"
        ),
    )
    excluded = {(p.field_raw, p.op) for p in exclusions(stage.expr)}
    assert ("file.path", Op.WILDCARD) in excluded
    assert ("process.pe.original_file_name", Op.EXISTS) in excluded
    assert ("user.name", Op.EXISTS) not in excluded


def test_threshold(tmp_path: Path) -> None:
    rule = read_one(
        tmp_path,
        "rules/threshold.toml",
        """
        type = "threshold"
        language = "kuery"
        query = "event.category:authentication"

        [rule.threshold]
        field = ["host.id", "user.name"]
        value = 25
        [[rule.threshold.cardinality]]
        field = "source.ip"
        value = 5
        """,
    )
    assert rule.stages == [
        Stage(expr=kq("event.category", Op.EQ, "authentication")),
        Stage(
            "threshold",
            # the real condition: the count and the cardinality bound, not params only
            And(
                (
                    Predicate("_count", Op.GTE, 25, "threshold"),
                    Predicate("cardinality(source.ip)", Op.GTE, 5, "cardinality", kind="derived"),
                )
            ),
            StageRole.AGGREGATE,
            params={
                "by": ["host.id", "user.name"],
                "threshold": 25,
                "cardinality": [{"field": "source.ip", "value": 5}],
                "window": "now-6m",  # Kibana's default look-back
            },
        ),
    ]
    assert rule.extra["threshold"]["value"] == 25


def test_new_terms(tmp_path: Path) -> None:
    rule = read_one(
        tmp_path,
        "rules/new_terms.toml",
        """
        type = "new_terms"
        language = "kuery"
        query = "event.category:process"

        [rule.new_terms]
        field = "new_terms_fields"
        value = ["host.id", "process.command_line"]
        [[rule.new_terms.history_window_start]]
        field = "history_window_start"
        value = "now-14d"
        """,
    )
    assert rule.stages == [
        Stage(expr=EVENT_PROCESS),
        Stage(
            "new_terms",
            None,
            StageRole.AGGREGATE,
            params={
                "new_terms_fields": ["host.id", "process.command_line"],
                "history_window_start": "now-14d",
            },
        ),
    ]


def test_threat_match(tmp_path: Path) -> None:
    rule = read_one(
        tmp_path,
        "rules/threat_match.toml",
        """
        type = "threat_match"
        language = "kuery"
        query = "file.hash.*:*"
        threat_index = ["filebeat-*"]
        threat_indicator_path = "threat.indicator"
        threat_language = "kuery"
        threat_query = "@timestamp >= now-30d"

        [[rule.threat_mapping]]
        [[rule.threat_mapping.entries]]
        field = "file.hash.md5"
        type = "mapping"
        value = "threat.indicator.file.hash.md5"

        [[rule.threat_mapping]]
        [[rule.threat_mapping.entries]]
        field = "source.ip"
        type = "mapping"
        value = "threat.indicator.ip"
        [[rule.threat_mapping.entries]]
        field = "source.port"
        type = "mapping"
        value = "threat.indicator.port"
        """,
    )

    def lookup(field: str, indicator: str) -> Predicate:
        return Predicate(field, Op.IN_LIST, indicator, "threat_mapping", kind="lookup:threat_match")

    assert rule.stages == [
        Stage(
            expr=and_(
                kq("file.hash.*", Op.EXISTS, True),
                or_(
                    lookup("file.hash.md5", "threat.indicator.file.hash.md5"),
                    and_(
                        lookup("source.ip", "threat.indicator.ip"),
                        lookup("source.port", "threat.indicator.port"),
                    ),
                ),
            )
        )
    ]
    assert rule.extra["threat_index"] == ["filebeat-*"]
    assert rule.extra["threat_query"] == "@timestamp >= now-30d"


def test_machine_learning_has_no_query(tmp_path: Path) -> None:
    rule = read_one(
        tmp_path,
        "rules/ml.toml",
        """
        type = "machine_learning"
        anomaly_threshold = 75
        machine_learning_job_id = ["v3_rare_process"]
        """,
    )
    assert (rule.language, rule.stages, rule.problems) == ("none", [], [])
    assert rule.extra["machine_learning_job_id"] == ["v3_rare_process"]
    assert rule.extra["anomaly_threshold"] == 75


def test_esql_and_eql_rules(tmp_path: Path) -> None:
    esql_rule = read_one(
        tmp_path,
        "rules/esql.toml",
        '''
        type = "esql"
        language = "esql"
        query = """
        FROM logs-endpoint.events.process-* | WHERE process.name == "cmd.exe"
        | STATS n = COUNT(*) BY host.id | WHERE n > 3
        """
        ''',
    )
    assert [s.role for s in esql_rule.stages] == [StageRole.EVENTS, StageRole.AGGREGATE]
    assert esql_rule.stages[0].params["from"] == ["logs-endpoint.events.process-*"]
    eql_rule = read_one(
        tmp_path,
        "rules/eql.toml",
        '''
        type = "eql"
        language = "eql"
        query = """
        sequence by host.id with maxspan=1m
          [process where process.name == "a.exe"]
          [network where destination.port == 443]
        """
        ''',
    )
    assert len(eql_rule.stages) == 2 and eql_rule.fully_parsed
    assert eql_rule.stages[0].join_keys == ["host.id"]


def test_lucene_is_opaque(tmp_path: Path) -> None:
    rule = read_one(
        tmp_path, "rules/lucene.toml", 'type = "query"\nlanguage = "lucene"\nquery = "a:b AND c"\n'
    )
    assert rule.stages == [Stage(expr=Opaque("a:b AND c", "unsupported language", "lucene"))]
    assert rule.has_query and not rule.fully_parsed and not rule.problems


def test_query_error_is_a_problem_with_file_position(tmp_path: Path) -> None:
    rule = read_one(
        tmp_path,
        "rules/broken.toml",
        '''
        type = "query"
        language = "kuery"
        query = """
        event.category:process and
          process.name:(a or
        """
        ''',
    )
    (problem,) = rule.problems
    # the query starts on line 19 of the file; the error is at the end of its line 2
    assert (problem.path, problem.line, problem.column) == ("rules/broken.toml", 20, 21)
    assert problem.message == "KQL: unexpected end of query"
    assert (problem.vendor, problem.rule_id) == ("elastic", "broken")
    assert rule.stages == [
        Stage(expr=Opaque(rule.query, "syntax error", "KQL: unexpected end of query"))
    ]


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ('[rule]\nname = "x\nquery = "a"\n', 2, 10, "TOML: Illegal character '\\n'"),
        ('[rule]\nname = "x"\nquery = """a:b\n', 4, 1, "TOML: Unterminated string"),
    ],
)
def test_malformed_toml_is_a_problem(
    tmp_path: Path, text: str, line: int, column: int, message: str
) -> None:
    path = tmp_path / "rules" / "bad.toml"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    assert elastic.read_file(path, tmp_path) == Problem(
        "rules/bad.toml", message, line, column, "elastic"
    )


def test_folders(tmp_path: Path) -> None:
    write(tmp_path, "rules/windows/a.toml", KQL_RULE)
    write(tmp_path, "rules/_deprecated/old.toml", KQL_RULE)
    write(tmp_path, "rules_building_block/bb.toml", 'building_block_type = "default"\n' + KQL_RULE)
    active = {r.id: r for r in elastic.Elastic().read(tmp_path) if isinstance(r, Rule)}
    assert sorted(active) == ["a", "bb"]
    assert active["bb"].context["building_block"] is True
    assert active["bb"].extra["building_block_type"] == "default"
    every = [
        r.id
        for r in elastic.Elastic().read(tmp_path, include_deprecated=True)
        if isinstance(r, Rule)
    ]
    assert sorted(every) == ["a", "bb", "old"]


# -- corpus -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(corpora: Path) -> list[Rule | Problem]:
    return list(elastic.Elastic().read(corpora / "elastic"))


def test_corpus_every_active_rule_loads(corpora: Path, corpus: list[Rule | Problem]) -> None:
    files = elastic.rule_files(corpora / "elastic")
    rules = [r for r in corpus if isinstance(r, Rule)]
    assert len(rules) == len(files) == 2068
    problems = [p for p in corpus if isinstance(p, Problem)] + [
        p for r in rules for p in r.problems
    ]
    assert problems == []
    languages = Counter(r.language for r in rules)
    ml = [r for r in rules if r.type == "machine_learning"]
    assert languages["none"] == len(ml) and all(not r.stages for r in ml)
    assert sum(1 for r in rules if r.query) == len(rules) - len(ml)


def test_corpus_coverage(corpus: list[Rule | Problem]) -> None:
    """Share of rules with a query that parse with no Opaque part, and why the
    others do not: every remaining Opaque is a comparison of a computed value."""
    rules = [r for r in corpus if isinstance(r, Rule) and r.query]
    by_language = Counter(r.language for r in rules)
    full = Counter(r.language for r in rules if r.fully_parsed)
    reasons = Counter(o.reason for r in rules for s in r.stages for o in opaques(s.expr))
    assert full["kql"] == by_language["kql"]
    assert full["esql"] / by_language["esql"] >= 0.97
    assert sum(full.values()) / len(rules) >= 0.985, reasons
    assert all("computed value" in reason for reason in reasons), reasons


def test_corpus_t1219(corpus: list[Rule | Problem]) -> None:
    """Remote access tools: the rules, their RMM indicators and exclusions."""
    rules = [r for r in corpus if isinstance(r, Rule) and "T1219" in r.techniques]
    assert Counter(r.language for r in rules) == {"eql": 11, "kql": 5, "esql": 3}
    preds = [p for r in rules for s in r.stages for p in predicates(s.expr)]
    names = {
        str(p.value).lower()
        for p in preds
        if p.field_raw and p.field_raw.startswith(("process.name", "process.pe.original_file_name"))
    }
    assert {"anydesk.exe", "teamviewer.exe", "screenconnect.clientservice.exe"} <= names
    assert {"rustdesk.exe", "client32.exe", "tvnserver.exe"} <= names
    domains = {str(p.value) for p in preds if p.field_raw == "parent_domain"}
    assert {"anydesk.com", "teamviewer.com", "screenconnect.com"} <= domains
    excluded = {
        (p.field_raw, str(p.value)) for r in rules for s in r.stages for p in exclusions(s.expr)
    }
    assert ("process.name", "chrome.exe") in excluded  # browsers resolve RMM domains too
