"""ES|QL -> stages, as tables: each query with the tree or stages it must give.

``WHERE`` conditions are read inside ``FROM logs-* | WHERE …``; the stage
tests cover the pipeline (FROM, STATS, INLINE STATS, EVAL/DISSECT/GROK/RENAME
derived fields, CASE expansion). The cross-language table reads one canonical
predicate tree from its KQL, ES|QL and EQL spellings.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from detcat.languages import eql, esql, kql
from detcat.model import (
    And,
    Expr,
    Not,
    Op,
    Opaque,
    Predicate,
    QueryError,
    Stage,
    StageRole,
    and_,
    map_predicates,
    opaques,
    or_,
    predicates,
    replace,
)


def p(field: str, op: Op, value: Any, syntax: str, case_sensitive: bool = True) -> Predicate:
    return Predicate(field, op, value, syntax, case_sensitive)


def where(condition: str) -> Expr | None:
    stages = esql.parse(f"FROM logs-*\n| WHERE {condition}")
    assert len(stages) == 1
    return stages[0].expr


EQ, CONTAINS, STARTS, ENDS, WILD = Op.EQ, Op.CONTAINS, Op.STARTS_WITH, Op.ENDS_WITH, Op.WILDCARD

CONDITIONS: list[tuple[str, Expr]] = [
    # comparisons: == and != are case-sensitive, =~ is not
    ('process.name == "cmd.exe"', p("process.name", EQ, "cmd.exe", "==")),
    ('"cmd.exe" == process.name', p("process.name", EQ, "cmd.exe", "==")),
    ('process.name != "cmd.exe"', Not(p("process.name", EQ, "cmd.exe", "!="))),
    ('process.name =~ "CMD.exe"', p("process.name", EQ, "CMD.exe", "=~", False)),
    ('TO_LOWER(process.name) == "cmd.exe"', p("process.name", EQ, "cmd.exe", "==", False)),
    ('to_upper(process.name) != "CMD.EXE"', Not(p("process.name", EQ, "CMD.EXE", "!=", False))),
    ('process.name::keyword == "a"', p("process.name", EQ, "a", "==")),
    ('`weird name` == "a"', p("weird name", EQ, "a", "==")),
    ('x == "tab\\there"', p("x", EQ, "tab\there", "==")),
    ("event.code > 4000", p("event.code", Op.GT, 4000, ">", False)),
    ("1000 < event.code", p("event.code", Op.GT, 1000, ">", False)),
    ("x.ratio >= -0.5", p("x.ratio", Op.GTE, -0.5, ">=", False)),
    ("TO_DOUBLE(x.confidence) > 0.7", p("x.confidence", Op.GT, 0.7, ">", False)),
    ("@timestamp >= NOW() - 1 hour", p("@timestamp", Op.GTE, "NOW() - 1 hour", ">=")),
    ("@timestamp < NOW() - 5m", p("@timestamp", Op.LT, "NOW() - 5m", "<")),
    ("flag", p("flag", EQ, True, "")),
    # two fields: field_ref, the operator in the syntax
    ("source.ip == destination.ip", p("source.ip", Op.FIELD_REF, "destination.ip", "==")),
    ("a.first < b.last", p("a.first", Op.FIELD_REF, "b.last", "<")),
    ("a != b", Not(p("a", Op.FIELD_REF, "b", "!="))),
    # IN lists: one predicate per value
    ('x IN ("a", "b")', or_(p("x", EQ, "a", "IN"), p("x", EQ, "b", "IN"))),
    ('x NOT IN ("a", // one\n "b")', Not(or_(p("x", EQ, "a", "IN"), p("x", EQ, "b", "IN")))),
    ("x IN (1, -2)", or_(p("x", EQ, 1, "IN"), p("x", EQ, -2, "IN"))),
    (
        'TO_LOWER(x) IN ("a", y)',
        or_(p("x", EQ, "a", "IN", False), p("x", Op.FIELD_REF, "y", "IN", False)),
    ),
    # LIKE: * and ? wild, backslash escapes (after the string's own escapes)
    ('cmd LIKE "*-enc*"', p("cmd", CONTAINS, "-enc", "LIKE")),
    ('cmd LIKE "powershell*"', p("cmd", STARTS, "powershell", "LIKE")),
    ('cmd LIKE "*.ps1"', p("cmd", ENDS, ".ps1", "LIKE")),
    ('cmd LIKE "a?c"', p("cmd", WILD, "a?c", "LIKE")),
    ('cmd LIKE "a*b*"', p("cmd", WILD, "a*b*", "LIKE")),
    ('cmd LIKE "a\\\\*"', p("cmd", EQ, "a*", "LIKE")),
    # a literal * or ? beside a wildcard: a regex (wildcard values have no escapes)
    ('cmd LIKE "a\\\\*b*c"', p("cmd", Op.REGEX_MATCH, "^a\\*b.*c$", "LIKE")),
    ('cmd LIKE "*a\\\\?b?"', p("cmd", Op.REGEX_MATCH, "^.*a\\?b.$", "LIKE")),
    ('cmd LIKE "*a\\\\?b*"', p("cmd", CONTAINS, "a?b", "LIKE")),
    ('path LIKE "C:\\\\\\\\Windows\\\\\\\\*"', p("path", STARTS, "C:\\Windows\\", "LIKE")),
    ('path LIKE """c:\\\\windows\\\\*.exe"""', p("path", WILD, "c:\\windows\\*.exe", "LIKE")),
    ('TO_LOWER(cmd) LIKE "*x*"', p("cmd", CONTAINS, "x", "LIKE", False)),
    ('cmd LIKE "*"', p("cmd", Op.EXISTS, True, "LIKE", False)),
    ('cmd NOT LIKE "*a"', Not(p("cmd", ENDS, "a", "LIKE"))),
    ('cmd LIKE ("a*", "*b")', or_(p("cmd", STARTS, "a", "LIKE"), p("cmd", ENDS, "b", "LIKE"))),
    # RLIKE: the pattern as written
    ('url RLIKE ".*evil\\\\.com.*"', p("url", Op.REGEX_MATCH, ".*evil\\.com.*", "RLIKE")),
    ('url NOT RLIKE """\\d+"""', Not(p("url", Op.REGEX_MATCH, "\\d+", "RLIKE"))),
    # null checks
    ("x IS NULL", p("x", Op.IS_NULL, None, "IS NULL", False)),
    ("x IS NOT NULL", p("x", Op.EXISTS, True, "IS NOT NULL", False)),
    ("MV_FIRST(x) IS NULL", p("x", Op.IS_NULL, None, "IS NULL", False)),
    # functions that compare a field with constants
    ('starts_with(x, "ab")', p("x", STARTS, "ab", "starts_with()")),
    ('ends_with(TO_LOWER(x), ".exe")', p("x", ENDS, ".exe", "ends_with()", False)),
    (
        'cidr_match(TO_IP(source.ip), "10.0.0.0/8", "::1")',
        or_(
            p("source.ip", Op.CIDR, "10.0.0.0/8", "cidr_match()", False),
            p("source.ip", Op.CIDR, "::1", "cidr_match()", False),
        ),
    ),
    (
        'match(process.name, "svchost.exe", {"fuzziness": 1})',
        p("process.name", EQ, "svchost.exe", "match()", False),
    ),
    ('process.name : "cmd.exe"', p("process.name", EQ, "cmd.exe", ":", False)),
    ('mv_contains(tags, "x")', p("tags", EQ, "x", "mv_contains()")),
    (
        'true IN (starts_with(a, "x"), ends_with(a, "y"))',
        or_(p("a", STARTS, "x", "starts_with()"), p("a", ENDS, "y", "ends_with()")),
    ),
    # KQL inside ES|QL
    (
        'KQL("event.action:exec and not user.name:root")',
        and_(
            Predicate("event.action", EQ, "exec", ":"), Not(Predicate("user.name", EQ, "root", ":"))
        ),
    ),
    ('KQL("""process.name:*sh""")', Predicate("process.name", ENDS, "sh", ":")),
    # boolean structure
    (
        "a == 1 AND (b == 2 OR NOT c == 3)",
        and_(p("a", EQ, 1, "=="), or_(p("b", EQ, 2, "=="), Not(p("c", EQ, 3, "==")))),
    ),
    (
        "a == 1 or b == 2 and c == 3",
        or_(p("a", EQ, 1, "=="), and_(p("b", EQ, 2, "=="), p("c", EQ, 3, "=="))),
    ),
    ("not a == 1 and b == 2", and_(Not(p("a", EQ, 1, "==")), p("b", EQ, 2, "=="))),
]


@pytest.mark.parametrize(("condition", "expected"), CONDITIONS, ids=[c[0] for c in CONDITIONS])
def test_where(condition: str, expected: Expr) -> None:
    assert where(condition) == expected


# Upstream writes chains of thousands of terms: each is one flat Or/And (a nest
# that deep exceeded Python's recursion limit).
CHAIN = 2000
CHAINS: list[tuple[str, Expr]] = [
    (
        " or ".join(f'x == "v{i}"' for i in range(CHAIN)),
        or_(*(p("x", EQ, f"v{i}", "==") for i in range(CHAIN))),
    ),
    (
        " AND ".join(f"n{i} > {i}" for i in range(CHAIN)),
        and_(*(p(f"n{i}", Op.GT, i, ">", False) for i in range(CHAIN))),
    ),
    (
        " or ".join(f"(a == {i} and not b == {i})" for i in range(CHAIN)),
        or_(*(and_(p("a", EQ, i, "=="), Not(p("b", EQ, i, "=="))) for i in range(CHAIN))),
    ),
]


@pytest.mark.parametrize(("condition", "expected"), CHAINS, ids=["or", "and", "or of ands"])
def test_long_chains(condition: str, expected: Expr) -> None:
    assert where(condition) == expected


OPAQUE: list[tuple[str, str, str]] = [
    (
        "length(process.command_line) > 100",
        "length(process.command_line) > 100",
        "computed value: length()",
    ),
    (
        'DATE_DIFF("seconds", a, b) <= 300',
        'DATE_DIFF("seconds", a, b) <= 300',
        "computed value: date_diff()",
    ),
    ("a + b == c", "a + b == c", "computed value: arithmetic"),
    ("1 == 1", "1 == 1", "constant comparison"),
    ('QSTR("a:b AND c")', 'QSTR("a:b AND c")', "function: QSTR() Lucene query string"),
    ("coalesce(a, b)", "coalesce(a, b)", "function: coalesce()"),
    ("true", "true", "not a condition: expression"),
]


@pytest.mark.parametrize(("condition", "text", "reason"), OPAQUE, ids=[c[0] for c in OPAQUE])
def test_where_opaque(condition: str, text: str, reason: str) -> None:
    got = where(f'x == "a" AND {condition}')
    assert isinstance(got, And) and got.children[0] == p("x", EQ, "a", "==")
    (opaque,) = got.children[1:]
    assert isinstance(opaque, Opaque) and (opaque.text, opaque.why()) == (text, reason)


# -- pipelines --------------------------------------------------------------------------------


def d(pred: Predicate) -> Predicate:
    return replace(pred, kind="derived")


PIPELINES: list[tuple[str, list[Stage]]] = [
    (
        "FROM logs-endpoint.events.process-*, logs-windows.* METADATA _id, _index\n"
        '| WHERE process.name == "a" | KEEP a | DROP b | SORT a DESC | LIMIT 5 | MV_EXPAND a',
        [
            Stage(
                "main",
                p("process.name", EQ, "a", "=="),
                params={
                    "from": ["logs-endpoint.events.process-*", "logs-windows.*"],
                    "metadata": ["_id", "_index"],
                },
            )
        ],
    ),
    (
        "FROM x | WHERE a == 1 | WHERE b == 2",
        [Stage("main", and_(p("a", EQ, 1, "=="), p("b", EQ, 2, "==")), params={"from": ["x"]})],
    ),
    (
        "FROM x | WHERE a == 1\n"
        "| STATS n = COUNT(*), VALUES(host.name) BY user.name, h = DATE_TRUNC(1 hour, @timestamp)\n"
        '| WHERE n >= 5 AND user.name != "root"',
        [
            Stage("main", p("a", EQ, 1, "=="), params={"from": ["x"]}),
            Stage(
                "stats",
                and_(d(p("n", Op.GTE, 5, ">=", False)), Not(p("user.name", EQ, "root", "!="))),
                StageRole.AGGREGATE,
                params={
                    "by": ["user.name", "h"],
                    "aggregations": ["COUNT(*)", "VALUES(host.name)"],
                    "derived": {
                        "h": "DATE_TRUNC(1 hour, @timestamp)",
                        "n": "COUNT(*)",
                        "VALUES(host.name)": "VALUES(host.name)",
                    },
                },
            ),
        ],
    ),
    (
        "FROM x | STATS c = COUNT(*) WHERE a == 1 BY h | STATS m = MAX(c) | WHERE m > 2",
        [
            Stage("main", None, params={"from": ["x"]}),
            Stage(
                "stats",
                None,
                StageRole.AGGREGATE,
                params={
                    "by": ["h"],
                    "aggregations": ["COUNT(*) WHERE a == 1"],
                    "derived": {"c": "COUNT(*) WHERE a == 1"},
                },
            ),
            Stage(
                "stats_2",
                d(p("m", Op.GT, 2, ">", False)),
                StageRole.AGGREGATE,
                params={"by": [], "aggregations": ["MAX(c)"], "derived": {"m": "MAX(c)"}},
            ),
        ],
    ),
    (
        "FROM x | INLINE STATS n = COUNT_DISTINCT(host.id) BY d | WHERE n < 3",
        [
            Stage(
                "main",
                d(p("n", Op.LT, 3, "<", False)),
                params={
                    "from": ["x"],
                    "inline_stats": ["COUNT_DISTINCT(host.id)"],
                    "derived": {"n": "COUNT_DISTINCT(host.id)"},
                },
            )
        ],
    ),
    (
        # a field counts as derived from the command that makes it on
        'FROM x | WHERE a == "1" | EVAL a = TO_LOWER(b), c = 2 | WHERE a == "1"',
        [
            Stage(
                "main",
                and_(p("a", EQ, "1", "=="), d(p("a", EQ, "1", "=="))),
                params={"from": ["x"], "derived": {"a": "TO_LOWER(b)", "c": "2"}},
            )
        ],
    ),
    (
        'FROM x | DISSECT msg "%{user} in from %{+user/2} %{?skip} %{ip->}"\n'
        '| WHERE ip == "1.2.3.4"',
        [
            Stage(
                "main",
                d(p("ip", EQ, "1.2.3.4", "==")),
                params={"from": ["x"], "derived": {"user": "DISSECT msg", "ip": "DISSECT msg"}},
            )
        ],
    ),
    (
        'FROM x | GROK dns.question.name """(?<domain>[^.]+\\.[^.]+)$"""\n'
        '| WHERE domain IN ("a.com")',
        [
            Stage(
                "main",
                d(p("domain", EQ, "a.com", "IN")),
                params={"from": ["x"], "derived": {"domain": "GROK dns.question.name"}},
            )
        ],
    ),
    (
        'FROM x | RENAME process.name AS pn | WHERE pn == "a"',
        [
            Stage(
                "main",
                d(p("pn", EQ, "a", "==")),
                params={"from": ["x"], "derived": {"pn": "process.name"}},
            )
        ],
    ),
    (
        'FROM x | COMPLETION out = prompt WITH {"inference_id": "x"} | WHERE out == "TP"',
        [
            Stage(
                "main",
                d(p("out", EQ, "TP", "==")),
                params={"from": ["x"], "derived": {"out": "COMPLETION"}},
            )
        ],
    ),
    (
        # pipes and quotes inside strings and comments do not split commands
        'FROM x // a | comment\n| WHERE a == "x|y" /* | "no" */ | KEEP a',
        [Stage("main", p("a", EQ, "x|y", "=="), params={"from": ["x"]})],
    ),
    (
        "FROM x | FORK (WHERE a == 1) (WHERE a == 2)",
        [
            Stage(
                "main",
                Opaque("FORK (WHERE a == 1) (WHERE a == 2)", "unsupported command", "FORK"),
                params={"from": ["x"]},
            )
        ],
    ),
]


@pytest.mark.parametrize(("query", "stages"), PIPELINES, ids=[q for q, _ in PIPELINES])
def test_pipeline(query: str, stages: list[Stage]) -> None:
    assert esql.parse(query) == stages


# An EVAL'd CASE with constant results: tests of its field read as its conditions.
CASE_QUERY = (
    "FROM x\n| EVAL vendor = CASE(\n"
    '    process.name == "anydesk.exe", "AnyDesk",\n'
    '    process.name LIKE "teamviewer*", "TeamViewer",\n'
    '    "")\n'
    "| WHERE {}"
)
ANYDESK = p("process.name", EQ, "anydesk.exe", "==")
TEAMVIEWER = p("process.name", STARTS, "teamviewer", "LIKE")

CASES: list[tuple[str, Expr]] = [
    ('vendor != ""', or_(ANYDESK, TEAMVIEWER)),
    ('vendor IN ("AnyDesk", "TeamViewer")', or_(ANYDESK, TEAMVIEWER)),
    ('vendor == ""', Not(or_(ANYDESK, TEAMVIEWER))),
    # no exact reading: the derived field stays
    ('vendor == "AnyDesk"', d(p("vendor", EQ, "AnyDesk", "=="))),
    ("vendor IS NOT NULL", d(p("vendor", Op.EXISTS, True, "IS NOT NULL", False))),
]


@pytest.mark.parametrize(("condition", "expected"), CASES, ids=[c[0] for c in CASES])
def test_case_expansion(condition: str, expected: Expr) -> None:
    (stage,) = esql.parse(CASE_QUERY.format(condition))
    assert stage.expr == expected


def test_case_without_default_is_null_elsewhere() -> None:
    query = 'FROM x | EVAL v = CASE(a == 1, "one", b == 2, "two") | WHERE v IS NOT NULL'
    (stage,) = esql.parse(query)
    assert stage.expr == or_(p("a", EQ, 1, "=="), p("b", EQ, 2, "=="))


ERRORS: list[tuple[str, int, int, str]] = [
    ("FROM x | WHERE a ==", 1, 20, "end of command"),
    ('FROM x\n| WHERE a == "b" AND  // dangling\n', 2, 21, "end of command"),
    ("FROM x | WHERE a == 1 b", 1, 23, "unexpected b"),
    ('FROM x | WHERE a LIKE "x', 1, 23, "unexpected character"),
    ("WHERE a == 1", 1, 1, "expected FROM"),
    ("FROM a |\n  FROM b", 2, 3, "expected a processing command"),
    ("FROM x | EVAL a = (1", 1, 21, "unclosed '('"),
    ("FROM x | EVAL a = 1,, b = 2", 1, 21, "EVAL: item expected"),
    ('FROM x | WHERE KQL("""\n  a:b and\n""")', 2, 10, "in KQL(): KQL: unexpected end of query"),
    ("", 1, 1, "empty query"),
]


@pytest.mark.parametrize(("query", "line", "column", "message"), ERRORS)
def test_syntax_errors_have_positions(query: str, line: int, column: int, message: str) -> None:
    with pytest.raises(QueryError) as info:
        esql.parse(query)
    assert (info.value.line, info.value.column) == (line, column)
    assert message in info.value.message


# -- one canonical tree, three spellings -------------------------------------------------------


def canonical(expr: Expr | None) -> Expr | None:
    """The tree without the spelling: syntax and case flags dropped, and the
    value of ``exists`` (parsers differ: True or None) ignored."""
    return map_predicates(
        expr,
        lambda q: replace(
            q, syntax="", case_sensitive=False, value=None if q.op is Op.EXISTS else q.value
        ),
    )


def c(field: str, op: Op, value: Any) -> Predicate:
    return Predicate(field, op, value)


SPELLINGS: list[tuple[Expr, dict[str, str]]] = [
    (
        c("process.name", EQ, "cmd.exe"),
        {
            "kql": "process.name:cmd.exe",
            "esql": 'process.name == "cmd.exe"',
            "eql": 'process.name == "cmd.exe"',
        },
    ),
    (
        c("process.name", ENDS, ".exe"),
        {
            "kql": "process.name:*.exe",
            "esql": 'process.name LIKE "*.exe"',
            "eql": 'process.name : "*.exe"',
        },
    ),
    (
        c("process.command_line", CONTAINS, "-enc"),
        {
            "kql": "process.command_line:*-enc*",
            "esql": 'process.command_line LIKE "*-enc*"',
            "eql": 'process.command_line like~ "*-enc*"',
        },
    ),
    (
        or_(c("process.name", EQ, "a.exe"), c("process.name", EQ, "b.exe")),
        {
            "kql": "process.name:(a.exe or b.exe)",
            "esql": 'process.name IN ("a.exe", "b.exe")',
            "eql": 'process.name in ("a.exe", "b.exe")',
        },
    ),
    (
        and_(c("event.action", EQ, "exec"), Not(c("user.name", EQ, "root"))),
        {
            "kql": "event.action:exec and not user.name:root",
            "esql": 'event.action == "exec" AND NOT user.name == "root"',
            "eql": 'event.action == "exec" and not user.name == "root"',
        },
    ),
    (
        and_(c("process.pid", Op.GT, 4), c("process.parent.name", Op.EXISTS, None)),
        {
            "kql": "process.pid > 4 and process.parent.name:*",
            "esql": "process.pid > 4 AND process.parent.name IS NOT NULL",
            "eql": "process.pid > 4 and process.parent.name != null",
        },
    ),
]

READERS = {
    "kql": kql.parse,
    "esql": lambda text: esql.parse(f"FROM logs-* | WHERE {text}")[0].expr,
    "eql": lambda text: eql.parse(f"any where {text}")[0].expr,
}


@pytest.mark.parametrize(
    ("expected", "language", "text"),
    [(e, lang, t) for e, spellings in SPELLINGS for lang, t in spellings.items()],
)
def test_spellings(expected: Expr, language: str, text: str) -> None:
    assert canonical(READERS[language](text)) == expected


# -- corpus ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(corpora: Path) -> dict[str, list[Stage]]:
    root = corpora / "elastic"
    parsed: dict[str, list[Stage]] = {}
    failed = []
    for folder in ("rules", "rules_building_block"):
        for path in sorted((root / folder).rglob("*.toml")):
            rule = tomllib.loads(path.read_text(encoding="utf-8"))["rule"]
            if "_deprecated" in path.parts or rule.get("language") != "esql":
                continue
            try:
                parsed[path.name] = esql.parse(rule["query"])
            except QueryError as e:
                failed.append(f"{path.name}:{e.line}:{e.column}: {e.message}")
    assert failed == [], "every ES|QL query of the corpus parses"
    return parsed


def test_corpus_stages(corpus: dict[str, list[Stage]]) -> None:
    assert len(corpus) > 200
    assert all(stages[0].params.get("from") for stages in corpus.values())
    assert all(any(s.expr is not None for s in stages) for stages in corpus.values())
    aggregating = [n for n, stages in corpus.items() if len(stages) > 1]
    assert all(s.role is StageRole.AGGREGATE for n in aggregating for s in corpus[n][1:])
    assert all("by" in s.params for n in aggregating for s in corpus[n][1:])


def test_corpus_opaque_parts_are_computed_comparisons(corpus: dict[str, list[Stage]]) -> None:
    reasons = Counter(
        o.reason for stages in corpus.values() for s in stages for o in opaques(s.expr)
    )
    with_opaque = [n for n, stages in corpus.items() if any(opaques(s.expr) for s in stages)]
    assert all("computed value" in r for r in reasons), reasons
    assert len(with_opaque) / len(corpus) < 0.03, sorted(with_opaque)


def test_corpus_case_expansion_yields_rmm_process_names(corpus: dict[str, list[Stage]]) -> None:
    stage = corpus["command_and_control_multiple_rmm_vendors_same_host.toml"][0]
    names = {q.value for q in predicates(stage.expr) if q.field_raw == "process.name.caseless"}
    assert {"anydesk.exe", "teamviewer.exe"} <= names
