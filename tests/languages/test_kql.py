"""KQL -> Expr, as a table: each query with the one tree it must give.

Values are compared as whole trees (``Predicate`` equality covers field,
operator, value, syntax and case flag). The corpus tests read every KQL
query of the Elastic rules.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from detcat.languages import kql
from detcat.model import Expr, Not, Op, Predicate, QueryError, and_, opaques, or_, predicates


def k(field: str | None, op: Op, value: object, syntax: str = ":") -> Predicate:
    """A KQL predicate: ``:`` compares case-insensitively."""
    return Predicate(field, op, value, syntax)  # type: ignore[arg-type]


EQ, CONTAINS, STARTS, ENDS, WILD = Op.EQ, Op.CONTAINS, Op.STARTS_WITH, Op.ENDS_WITH, Op.WILDCARD

CASES: list[tuple[str, Expr]] = [
    # field:value, quoted or not
    ("process.name:cmd.exe", k("process.name", EQ, "cmd.exe")),
    ('process.name:"cmd.exe"', k("process.name", EQ, "cmd.exe")),
    ("process.name : cmd.exe", k("process.name", EQ, "cmd.exe")),
    ('"process.name":cmd.exe', k("process.name", EQ, "cmd.exe")),
    ("event.code:4688", k("event.code", EQ, "4688")),
    # a CIDR block can only match an ip field, as a CIDR match
    ("destination.ip:10.0.0.0/8", k("destination.ip", Op.CIDR, "10.0.0.0/8")),
    ('source.ip:"fe80::/10"', k("source.ip", Op.CIDR, "fe80::/10")),
    ("url.path:/10.0.0.0/8", k("url.path", EQ, "/10.0.0.0/8")),
    # wildcards in unquoted values
    ("process.name:*cmd*", k("process.name", CONTAINS, "cmd")),
    ("process.name:*.exe", k("process.name", ENDS, ".exe")),
    ("process.name:cmd*", k("process.name", STARTS, "cmd")),
    ("process.name:**cmd**", k("process.name", CONTAINS, "cmd")),
    ("file.path:/tmp/*/x.sh", k("file.path", WILD, "/tmp/*/x.sh")),
    ("file.path:*/tmp/*/x*", k("file.path", WILD, "*/tmp/*/x*")),
    ("process.name:*", k("process.name", Op.EXISTS, True)),
    ("process.name:**", k("process.name", Op.EXISTS, True)),
    # quoted strings hold no wildcards
    ('process.name:"cmd*"', k("process.name", EQ, "cmd*")),
    ('process.name:"*"', k("process.name", EQ, "*")),
    # escapes
    (r"process.args:\*", k("process.args", EQ, "*")),
    (r"process.args:a\*b*", k("process.args", STARTS, "a*b")),
    (r"process.args:*a\*b*", k("process.args", CONTAINS, "a*b")),
    # a literal * among wildcards has no spelling in the model's wildcard (no
    # escapes): an anchored regex says it
    (r"process.args:*a\*b*c*", k("process.args", Op.REGEX_MATCH, r"^.*a\*b.*c.*$")),
    (r"file.path:C\:\\Windows\\*\\x.dll", k("file.path", WILD, "C:\\Windows\\*\\x.dll")),
    (r"user.id:*\:i-*", k("user.id", CONTAINS, ":i-")),
    (r"process.args:f\(x\)", k("process.args", EQ, "f(x)")),
    (r"process.args:\or", k("process.args", EQ, "or")),
    (r"process.args:a\tb", k("process.args", EQ, "a\tb")),
    (r"process.args:\u0041", k("process.args", EQ, "A")),
    (r'process.args:"say \"hi\""', k("process.args", EQ, 'say "hi"')),
    (r'file.path:"C:\\Windows\\x.dll"', k("file.path", EQ, "C:\\Windows\\x.dll")),
    (r'o365.body:"\d+"', k("o365.body", EQ, r"\d+")),
    # `/*` and `*/` are value characters: KQL has no comments
    (
        "file.path:*/tmp/* or file.path:/*",
        or_(k("file.path", CONTAINS, "/tmp/"), k("file.path", STARTS, "/")),
    ),
    ("file.path:/*/.ssh/*", k("file.path", WILD, "/*/.ssh/*")),
    # unquoted values may span words; the whitespace is kept as written
    ("process.title:runc init", k("process.title", EQ, "runc init")),
    (
        "process.args:(* curl* or */bin/curl*)",
        or_(k("process.args", CONTAINS, " curl"), k("process.args", CONTAINS, "/bin/curl")),
    ),
    (
        "process.args:(a  b\n c or d)",
        or_(k("process.args", EQ, "a  b\n c"), k("process.args", EQ, "d")),
    ),
    # value lists distribute the field
    (
        "process.name:(a.exe or b.exe)",
        or_(k("process.name", EQ, "a.exe"), k("process.name", EQ, "b.exe")),
    ),
    (
        'process.name:("a b" or c* OR *d)',
        or_(
            k("process.name", EQ, "a b"),
            k("process.name", STARTS, "c"),
            k("process.name", ENDS, "d"),
        ),
    ),
    (
        "process.name:(a or b and not c)",
        or_(
            k("process.name", EQ, "a"),
            and_(k("process.name", EQ, "b"), Not(k("process.name", EQ, "c"))),
        ),
    ),
    (
        "process.name:(* and not (a or b))",
        and_(
            k("process.name", Op.EXISTS, True),
            Not(or_(k("process.name", EQ, "a"), k("process.name", EQ, "b"))),
        ),
    ),
    (
        "process.args:(x and (y or z))",
        and_(
            k("process.args", EQ, "x"), or_(k("process.args", EQ, "y"), k("process.args", EQ, "z"))
        ),
    ),
    # boolean precedence: not > and > or; keywords in any case
    ("a:1 and b:2 or c:3", or_(and_(k("a", EQ, "1"), k("b", EQ, "2")), k("c", EQ, "3"))),
    ("a:1 or b:2 and c:3", or_(k("a", EQ, "1"), and_(k("b", EQ, "2"), k("c", EQ, "3")))),
    ("not a:1 and b:2", and_(Not(k("a", EQ, "1")), k("b", EQ, "2"))),
    ("NOT a:1 AND (b:2 Or c:3)", and_(Not(k("a", EQ, "1")), or_(k("b", EQ, "2"), k("c", EQ, "3")))),
    ("not not a:1", Not(Not(k("a", EQ, "1")))),
    ("a:orange and b:android", and_(k("a", EQ, "orange"), k("b", EQ, "android"))),
    # ranges: numbers where the literal is one
    ("event.severity >= 73", k("event.severity", Op.GTE, 73, ">=")),
    ("ml.score > 0.98", k("ml.score", Op.GT, 0.98, ">")),
    ("x.count<=-5", k("x.count", Op.LTE, -5, "<=")),
    ('x.count < "10"', k("x.count", Op.LT, 10, "<")),
    ("@timestamp < now-1d", k("@timestamp", Op.LT, "now-1d", "<")),
    # nested fields: the inner field is relative to the outer one
    (
        'delta:{ action:"ADD" and role:(r1 or r2) }',
        and_(
            k("delta.action", EQ, "ADD"), or_(k("delta.role", EQ, "r1"), k("delta.role", EQ, "r2"))
        ),
    ),
    # free text: no field, op keyword, surrounding wildcards dropped
    ("mimikatz", k(None, Op.KEYWORD, "mimikatz", "")),
    ("*mimikatz*", k(None, Op.KEYWORD, "mimikatz", "")),
    ('"sekurlsa logonpasswords"', k(None, Op.KEYWORD, "sekurlsa logonpasswords", "")),
    ("a:1 and mimi*katz", and_(k("a", EQ, "1"), k(None, Op.KEYWORD, "mimi*katz", ""))),
]


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[c[0] for c in CASES])
def test_parse(query: str, expected: Expr) -> None:
    assert kql.parse(query) == expected


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[c[0] for c in CASES])
def test_value_list_token_reads_like_the_general_rule(query: str, expected: Expr) -> None:
    assert kql.parse(query, value_lists=False) == expected


ERRORS: list[tuple[str, int, int, str]] = [
    ("process.name:", 1, 14, "end of query"),
    ("process.name:(a or b", 1, 21, "end of query"),
    ("a:1 and\n  b:2 and )", 2, 11, "unexpected )"),
    ("a:b c:d", 1, 6, "unexpected character ':'"),
    ('a:"unterminated', 1, 3, "unexpected character"),
    (":b", 1, 1, "unexpected character ':'"),
    ("a:{b:c", 1, 7, "end of query"),
    ("a:x\\y", 1, 4, "unexpected character"),
    ("   ", 1, 1, "empty"),
]


@pytest.mark.parametrize(("query", "line", "column", "message"), ERRORS)
def test_syntax_errors_have_positions(query: str, line: int, column: int, message: str) -> None:
    with pytest.raises(QueryError) as info:
        kql.parse(query)
    assert (info.value.line, info.value.column) == (line, column)
    assert message in info.value.message


# -- corpus ------------------------------------------------------------------------------


def kql_queries(corpora: Path) -> Iterator[tuple[str, str]]:
    root = corpora / "elastic"
    for folder in ("rules", "rules_building_block"):
        for path in sorted((root / folder).rglob("*.toml")):
            if "_deprecated" in path.parts:
                continue
            rule = tomllib.loads(path.read_text(encoding="utf-8"))["rule"]
            if rule.get("language") == "kuery" and rule.get("query"):
                yield path.relative_to(root).as_posix(), rule["query"]


@pytest.fixture(scope="module")
def corpus(corpora: Path) -> list[tuple[str, str, Expr]]:
    parsed, failed = [], []
    for path, text in kql_queries(corpora):
        try:
            parsed.append((path, text, kql.parse(text)))
        except QueryError as e:
            failed.append(f"{path}:{e.line}:{e.column}: {e.message}")
    assert failed == [], "every KQL query of the corpus parses"
    return parsed


def test_corpus_every_query_parses_to_predicates_only(corpus: list[tuple[str, str, Expr]]) -> None:
    assert len(corpus) > 700  # query, new_terms, threshold and threat_match rules
    empty = [path for path, _, expr in corpus if not predicates(expr)]
    with_opaque = [path for path, _, expr in corpus if opaques(expr)]
    assert not empty and not with_opaque
    fields = {p.field_raw for _, _, expr in corpus for p in predicates(expr)}
    assert "process.name" in fields and "event.category" in fields


def test_corpus_value_list_token_agrees_with_general_rule(
    corpus: list[tuple[str, str, Expr]],
) -> None:
    differ = [path for path, text, expr in corpus if kql.parse(text, value_lists=False) != expr]
    assert differ == []


# An unquoted word holding `/*` or `*/` (outside quoted strings).
_COMMENT_LIKE_WORD = re.compile(
    r'"(?:\\.|[^"\\])*"|((?:\\.|[^\s()"\\:])*(?:/\*|\*/)(?:\\.|[^\s()"\\:])*)'
)


def test_corpus_comment_like_values_are_values(corpus: list[tuple[str, str, Expr]]) -> None:
    """Real unquoted values contain `*/` and `/*`: each such word is a predicate
    of its query, with the operator its wildcards give."""
    checked = 0
    for _, text, expr in corpus:
        found = {(p.op, p.value) for p in predicates(expr)}
        spans = [str(p.value) for p in predicates(expr) if re.search(r"\s", str(p.value))]
        for word in filter(None, (m.group(1) for m in _COMMENT_LIKE_WORD.finditer(text))):
            expected = kql.value_predicate("f", kql.unquoted_value(word))
            # a word may also be part of a value spanning several words
            assert (expected.op, expected.value) in found or any(word in v for v in spans), word
            checked += 1
    assert checked > 0
