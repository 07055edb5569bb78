"""EQL conditions detcat keeps as text or as derived predicates, evaluated with
Elasticsearch's semantics (``match.eql``, ``match.eql_functions``), and the
honesty rule: what is not evaluated is unknown, never "no"."""

from __future__ import annotations

from typing import Any

import pytest

from detcat.match import RulePlan
from detcat.match.events import canonical_event
from detcat.model import Rule
from detcat.normalize import normalize_rule
from detcat.sources.elastic import build_rule

FILE = {"file": {"name": "explorer.exe", "path": "C:\\dev\\TestLogs\\something.json"}}
PROC = {"process": {"name": "System Idle Process", "pid": 5, "args": ["a.exe", "-x"]}}
EVENT = canonical_event("e", {**FILE, **PROC, "source": {"ip": "10.6.48.157"}})


def outcome(condition: str, language: str = "eql", event: Any = EVENT) -> bool | None:
    """The rule ``any where <condition>`` on EVENT: True, False or None (unknown)."""
    query = f"any where {condition}" if language == "eql" else condition
    rule = build_rule({"rule_id": "r", "name": "r", "type": "eql" if language == "eql" else "esql",
                       "language": language, "query": query}, {}, "r.toml")  # fmt: skip
    assert isinstance(rule, Rule) and not rule.problems, rule.problems
    normalize_rule(rule)
    stage = RulePlan.from_rule(rule).stages[0]
    return stage.test()(event)  # type: ignore[no-any-return]


# (condition, expected): Elasticsearch's answer, or None where detcat cannot know.
FUNCTIONS = [
    ("add(process.pid, 1) == 6", True),
    ("subtract(process.pid, -5) == 10", True),
    ("multiply(process.pid, 2) == 10", True),
    ("divide(process.pid, 2) == 2", True),  # integer division, as Java
    ("divide(process.pid, 2.0) == 2.5", True),
    ("divide(process.pid, 0) == 1", None),  # Elasticsearch fails the query
    ("modulo(process.pid, 3) == 2", True),
    ("process.pid * 2 + 1 == 11", True),
    ("-process.pid == -5", True),
    ('between(file.path, "dev", ".json") == "\\\\TestLogs\\\\something"', True),
    ('between(file.path, "DEV", ".json") == ""', True),  # not found: "" (legacy: null)
    ('between~(file.path, "DEV", ".json") == "\\\\TestLogs\\\\something"', True),
    ('between(process.name, "S", "e", true) == "ystem Idle Proc"', True),
    ('cidrMatch(source.ip, "10.0.0.0/8")', True),
    ('cidrMatch(source.ip, "192.168.0.0/16", "10.6.0.0/16")', True),
    ('concat(process.pid, ":", process.name) == "5:System Idle Process"', True),
    ('concat(process.pid, missing.field) == "5"', False),  # null: never matches
    ('endsWith(file.name, ".EXE")', False),
    ('endsWith~(file.name, ".EXE")', True),
    ('startsWith("explorer.exe.bak", file.name)', True),
    ('stringContains("my explorer.exe", file.name)', True),
    ('stringContains(file.name, "")', False),  # Elasticsearch: false (legacy: true)
    ('indexOf(file.name, "plore") == 2', True),
    ('indexOf(file.name, "plore", -10) == 2', True),  # a negative start is 0
    ('indexOf(file.name, "nothing") == null', True),
    ("length(file.name) == 12", True),
    ("length(process.pid) == 1", None),  # length of a number: a type error
    ('number("0x32", 16) == 50', True),
    ('number("32", 16) == 50', True),
    ('number("x") == 1', None),
    ('string(process.pid) == "5"', True),
    ('substring(file.name, -4) == ".exe"', True),
    ('substring(file.name, -4, -1) == ".ex"', True),
    ('substring(file.name, 0, 3) == "exp"', True),
    ("length(process.args) == 5", True),  # per value (legacy: the number of items)
    ('process.args[1] == "-x"', True),  # legacy array item (Elasticsearch rejects it)
    ('process.args[5] == "-x"', False),
    ('process.name >= "System" and process.name <= "System Idle Process"', True),
    ('process.name > "System Idle Process"', False),
    ('process.name < "system"', True),  # by code point: "S" < "s"
    ('process.pid == "5"', True),  # a plain predicate: detcat reads "5" as 5
    ('add(process.pid, 0) == "5"', None),  # a number against a string: type error
]


@pytest.mark.parametrize(("condition", "expected"), FUNCTIONS)
def test_eql_functions(condition: str, expected: bool | None) -> None:
    assert outcome(condition) is expected


# Null (a missing field in a computed value) never matches, also under not.
NULLS = [
    ("length(missing.field) > 0", False),
    ("not length(missing.field) > 0", False),
    ("not (add(missing.field, 1) == 2 or false)", False),
    ("length(missing.field) == null", True),
    ("missing.field == null", True),
]


@pytest.mark.parametrize(("condition", "expected"), NULLS)
def test_eql_null(condition: str, expected: bool) -> None:
    assert outcome(condition) is expected


# Legacy EQL that Elasticsearch rejects, read as the legacy ``eql`` package reads it.
NESTED = {"items": [{"a": "x", "b": [{"c": 1}, {"c": 2}]}, {"a": "y", "b": []}], "z": 2}
LEGACY_DOC = {**PROC, "file": {"name": ""}, "zero": 0, "nested": NESTED}
LEGACY = [
    ("safe(length(file.name)) == 0", True),
    ("safe(divide(process.name, 2)) == null", True),  # a type error becomes null
    ("safe(divide(process.pid, 0)) == null", True),
    ("safe(add(process.pid, 1)) == 6", True),
    ("process.name", True),  # a bare field: its truthiness
    ("file.name", False),  # the empty string
    ("zero", False),
    ("nested", True),  # an object
    ("not process.missing", False),  # absent: null, and not null stays null
    ('arraySearch(process.args, a, a == "-x")', True),
    ('arraySearch(process.args, a, a == "x")', False),
    ('arraySearch(process.missing, a, a == "x")', False),
    ('arraySearch(nested.items, i, i.a == "y")', True),
    ('arraySearch(nested.items, i, i.a == "y" and arraySearch(i.b, j, j.c == 1))', False),
    ('arraySearch(nested.items, i, i.a == "x" and arraySearch(i.b, j, j.c == 1))', True),
    ("arraySearch(nested.items, i, arraySearch(i.b, j, j.c == nested.z))", True),
    ("arraySearch(nested.items, i, arraySearch(i.b, j, j.c == 3))", False),
]


@pytest.mark.parametrize(("condition", "expected"), LEGACY)
def test_legacy_eql(condition: str, expected: bool) -> None:
    assert outcome(condition, event=canonical_event("l", LEGACY_DOC)) is expected


# Not evaluated: unknown, never False (Elasticsearch rejects most of them).
UNKNOWN = [
    'descendant of [process where process.name == "cmd.exe"]',
    'arrayCount(process.args, a, a == "x") == 1',
    "arraySearch(process.args, a, a : process.missing)",  # null on each item
    "not descendant of [process where true]",
    "length(file.name~) == 1",
]


@pytest.mark.parametrize("condition", UNKNOWN)
def test_not_evaluated_is_unknown(condition: str) -> None:
    try:
        result = outcome(condition)
    except AssertionError:  # a parse problem: the rule is Opaque, so unknown too
        return
    assert result is None


def test_unknown_reasons_say_what_happened() -> None:
    from detcat.match.evaluate import Dialect, compile_expr
    from detcat.model import Op, Predicate

    name = "process.command_line"
    regex = Predicate(name, Op.REGEX_MATCH, "(?=(a|aa)+b)", field=name)
    listed = Predicate(name, Op.IN_LIST, "admins", field=name)
    d = Dialect(False)
    test = compile_expr(regex, False, dialect=d)
    event: Any = canonical_event("e", {"process": {"command_line": "a" * 40}})
    assert test(event) is None
    assert d.explain(event) == [
        "regex '(?=(a|aa)+b)' needs backtracking (look-around or back-reference) and ran "
        "out of its 0.05 s time limit (or ran outside the main thread, where no limit can "
        "be set)"
    ]
    d = Dialect(False)
    assert compile_expr(listed, False, dialect=d)(event) is None
    assert d.explain(event) == ["members of the deployer's list 'admins' unknown"]


def test_derived_values_of_other_languages_are_unknown() -> None:
    """An ES|QL field DISSECT extracts is not in the event: unknown, not "no" (its
    EVAL'd fields are computed: tests/test_match_esql.py)."""
    query = 'FROM logs-* | DISSECT process.name "%{x}.%{y}" | WHERE x == "cmd"'
    assert outcome(query, "esql") is None
