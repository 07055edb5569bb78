"""SPL's eval'd fields in ``detcat match``: a filter on a field the query computes
(``eval``, ``rex``) is evaluated on the event, with SPL's semantics, where the
computation reads the event's own fields; anything else stays undetermined."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from match_helpers import query_outcome

from detcat.match.evaluate import compile_predicate
from detcat.match.events import canonical_event
from detcat.match.programs import compile_program, computed_test
from detcat.match.spl import FUNCTIONS
from detcat.model import Op, Predicate
from detcat.normalize.fields import canonical_field
from detcat.parse import parse_query

SINGLE_LETTER = (
    '| eval n = len(process_name), exe = if(substr(process_name, -4) == ".exe", 1, 0)'
    " | search n=5 exe=1"
)
# Processes.process is the command line (CIM)
TRAVERSAL = '| eval c = mvcount(split(Processes.process, "/..")) - 1 | where c > 1'
SAMSAM = r'| rex field=file_name "(?<ext>\.[^\.]+)$" | search ext=.stubbin OR ext=.sophos'
ROOT_DROP = (
    '| eval parts = split(file_path, "\\\\") | eval n = mvcount(parts), root = mvindex(parts, 0)'
    ' | where like(root, "C:") AND n = 2'
)

RENAMED = (
    "| tstats count from datamodel=Endpoint.Processes by Processes.process_name"
    " Processes.original_file_name Processes.process_path | rename Processes.* AS *"
    ' | where NOT match(process_name, "(?i)".original_file_name)'
)

# (why, query, canonical event fields, expected outcome)
CASES = [
    ("len and substr hold", SINGLE_LETTER, {"process.name": "a.exe"}, "match"),
    ("len does not", SINGLE_LETTER, {"process.name": "ab.exe"}, "none"),
    ("a name its path implies too is one value", SINGLE_LETTER,
     {"process.name": "a.exe", "process.executable": "C:\\t\\a.exe"}, "match"),
    ("eval compares case-sensitively", SINGLE_LETTER, {"process.name": "A.EXE"}, "none"),
    ("a missing field is null", SINGLE_LETTER, {"user.name": "x"}, "none"),
    ("mvcount of split", TRAVERSAL, {"process.command_line": "x /../../y"}, "match"),
    ("one separator is not two", TRAVERSAL, {"process.command_line": "x /../y"}, "none"),
    ("rex group, searched case-insensitively", SAMSAM, {"file.name": "a.b.STUBBIN"}, "match"),
    ("rex group of the last extension", SAMSAM, {"file.name": "a.stubbin.txt"}, "none"),
    ("chained evals, mvindex, like", ROOT_DROP, {"file.path": "C:\\evil.lnk"}, "match"),
    ("chained evals, deeper path", ROOT_DROP, {"file.path": "C:\\x\\evil.lnk"}, "none"),
    ("concatenation", '| eval x = process_name . "!" | search x="cmd.exe!"',
     {"process.name": "cmd.exe"}, "match"),
    ("arithmetic on a number", "| eval p = len(process_name) * 2 | where p > 10",
     {"process.name": "abcdef"}, "match"),
    ("arithmetic on text is null", "| eval p = process_name * 2 | where p > 10",
     {"process.name": "six"}, "none"),
    ("division by zero is null", "| eval p = len(process_name) / 0 | where p > 10",
     {"process.name": "abcdef"}, "none"),
    ("if on a null condition takes the else branch",
     '| eval s = if(substr(user, 1, 1) == "x", "y", "n") | search s=n', {"process.pid": 1},
     "match"),
    ("a function not computed stays unknown", "| eval h = sha256(process_name) | search h=abc",
     {"process.name": "a.exe"}, "undetermined"),
    ("a multivalue where one value is expected", SINGLE_LETTER,
     {"process.name": ["a.exe", "b.exe"]}, "undetermined"),
    # a command the parser does not follow may change the value: fillnull sets the
    # null length of a missing field to 0
    ("fillnull after the eval", "| eval n = len(user) | fillnull value=0 n | search n=0",
     {"process.name": "a.exe"}, "undetermined"),
    ("mvexpand after the eval", "| eval n = len(process_name) | mvexpand n | search n=5",
     {"process.name": "a.exe"}, "undetermined"),
    ("commands that keep values", "| eval n = len(process_name) | table n | dedup n | search n=5",
     {"process.name": "a.exe"}, "match"),
    ("an eval after the change is computed again",
     "| fillnull value=0 x | eval n = len(process_name) | search n=5", {"process.name": "a.exe"},
     "match"),
    # a where condition kept Opaque for its computed value is computed too
    ("a condition on a computed value", "| where len(user) >= 8", {"user.name": "abcdefgh"},
     "match"),
    ("a condition that fails", "| where len(user) >= 8", {"user.name": "abc"}, "none"),
    # the program is the parsed condition's, not its Opaque text's (which drops the -)
    ("a leading minus", "| where -len(user) < -3", {"user.name": "abcd"}, "match"),
    ("null under NOT keeps no event", "| where NOT len(user) >= 8", {"process.pid": 1}, "none"),
    ("a regex made from another field", RENAMED, {"process.name": "CMD.exe",
     "process.pe.original_file_name": "cmd.exe"}, "none"),
    ("the renamed binary", RENAMED, {"process.name": "x.exe",
     "process.pe.original_file_name": "cmd.exe"}, "match"),
    ("a condition on a value changed since", "| eval n = len(user) | fillnull value=0 n "
     "| where n + 1 > 3", {"user.name": "abcdefgh"}, "undetermined"),
    ("a name eval'd twice and filtered both ways",
     "| eval x = len(process_name) | search x=5 | eval x = len(user) | search x=1",
     {"process.name": "a.exe", "user.name": "u"}, "undetermined"),
]  # fmt: skip


def outcome(query: str, fields: dict[str, Any], backtested: bool = False) -> str:
    return query_outcome("splunk", "spl", query, fields, backtested)


@pytest.mark.parametrize(("why", "query", "fields", "expected"), CASES, ids=[c[0] for c in CASES])
def test_eval_fields_are_computed(why: str, query: str, fields: dict[str, Any], expected: str):
    assert outcome(query, fields) == expected


def test_backtests_leave_eval_values_unknown() -> None:
    """SQL does not compute them yet: every backtest engine leaves them unknown."""
    assert outcome(SINGLE_LETTER, {"process.name": "a.exe"}, backtested=True) == "undetermined"
    fields = {"user.name": "abcdefgh"}
    assert outcome("| where len(user) >= 8", fields, backtested=True) == "undetermined"


# (query, name): what the pipeline records as the stage's program for a name
PROGRAMS = [
    ("| eval n = len(process_name) | search n=5", "n",
     ["call", "len", [["field", "process_name"]]]),
    # a field read through lower() is its lower-case value
    ("| eval p = lower(process_name) | eval n = len(p) | search n=5", "n",
     ["call", "len", [["call", "lower", [["field", "process_name"]]]]]),
    ("| rename process AS cmd | eval c = cmd . 1 | search c=x", "c",
     ["arith", [["field", "process"], ".", ["num", 1]]]),
]  # fmt: skip


@pytest.mark.parametrize(("query", "name", "program"), PROGRAMS)
def test_programs_recorded(query: str, name: str, program: list[Any]) -> None:
    (stage,) = parse_query("spl", query)
    assert stage.params["computed"][name] == program


# (query, the Opaque condition's text, its program or None: not computable)
CONDITIONS = [
    ("| where len(user) >= 8", "len(user) >= 8",
     ["cmp", ">=", ["call", "len", [["field", "user"]]], ["num", 8]]),
    # an eval'd field is inlined, as in params["computed"]
    ("| eval n = len(user) | where mvcount(x) > n", "mvcount(x) > n",
     ["cmp", ">", ["call", "mvcount", [["field", "x"]]], ["call", "len", [["field", "user"]]]]),
    ("| eval n = len(user) | fillnull value=0 n | where n + 1 > 3", "n + 1 > 3", None),
    # the same text with two meanings in one stage: neither is computed
    ("| where len(x) > 1 | eval x = len(user) | where len(x) > 1", "len(x) > 1", None),
]  # fmt: skip


@pytest.mark.parametrize(("query", "text", "program"), CONDITIONS)
def test_condition_programs_recorded(query: str, text: str, program: list[Any] | None) -> None:
    (stage,) = parse_query("spl", query)
    assert stage.params["conditions"][text] == program


def test_no_program_reads_the_raw_event() -> None:
    """_raw is the event as indexed, which no field detcat reads holds."""
    assert outcome("| eval n = len(_raw) | search n>5", {"process.name": "a"}) == "undetermined"


def test_no_program_for_what_the_event_does_not_have() -> None:
    """After stats, eval reads an aggregate (a group-by field is still the event's)."""
    query = "| stats count by process_name | eval n = count * 2 | search n>5"
    stages = parse_query("spl", query)
    assert [s.role for s in stages] == ["events", "aggregate"]
    assert all("computed" not in s.params for s in stages)


# (eval expression, canonical event fields, its value): each function and operator
VALUES = [
    ("abs(0 - len(process_name))", {"process.name": "abc"}, 3),
    ('case(len(process_name) > 5, "long", true(), "short")', {"process.name": "abc"}, "short"),
    ("case(false(), 1)", {}, None),
    ('case(len(process_name) > 5, "long", len(process_name) > 1, "short")',
     {"process.name": "abc"}, "short"),
    ('coalesce(user, process_name, "x")', {"process.name": "abc"}, "abc"),
    ("isnull(user)", {"process.name": "abc"}, True),
    ("isnotnull(process_name)", {"process.name": "abc"}, True),
    ('like(process_name, "a_c%")', {"process.name": "abcd"}, True),
    ('like(process_name, "A%")', {"process.name": "abcd"}, False),
    # lower(x) alone is x read case-insensitively, not a computed value
    ('lower(process_name) . ""', {"process.name": "AbC"}, "abc"),
    ('upper(process_name) . ""', {"process.name": "AbC"}, "ABC"),
    ('ltrim(process_name, "x")', {"process.name": "xxabcxx"}, "abcxx"),
    ('rtrim(process_name, "x")', {"process.name": "xxabcxx"}, "xxabc"),
    ("trim(process_name)", {"process.name": "  abc "}, "abc"),
    ('match(process_name, "^a.c$")', {"process.name": "abc"}, True),
    ('match(process_name, "^A")', {"process.name": "abc"}, False),
    ('replace(process_name, "b+", "-")', {"process.name": "abbbc"}, "a-c"),
    ('mvcount(split(process_name, "."))', {"process.name": "a.b.c"}, 3),
    ('mvindex(split(process_name, "."), -1)', {"process.name": "a.b.c"}, "c"),
    ('mvindex(split(process_name, "."), 0, 1)', {"process.name": "a.b.c"}, ["a", "b"]),
    ("mvcount(user)", {"process.name": "abc"}, None),
    ('mvfind(split(process_name, "."), "^b")', {"process.name": "a.b.c"}, 1),
    ('mvfind(split(process_name, "."), "^x")', {"process.name": "a.b.c"}, None),
    ('mvjoin(split(process_name, "."), "/")', {"process.name": "a.b.c"}, "a/b/c"),
    ("substr(process_name, 2)", {"process.name": "abcdef"}, "bcdef"),
    ("substr(process_name, 2, 3)", {"process.name": "abcdef"}, "bcd"),
    ("substr(process_name, -3)", {"process.name": "abcdef"}, "def"),
    ('tonumber("0x1F")', {}, 31),
    ('tonumber("ff", 16)', {}, 255),
    ('tonumber("abc")', {}, None),
    ("tostring(len(process_name))", {"process.name": "abc"}, "3"),
    ('if(process_name == "abc", 1, 0)', {"process.name": "abc"}, 1),
    ('process_name . "-" . 1', {"process.name": "abc"}, "abc-1"),
    ('"a" + "b"', {}, "ab"),
    ("7 % 4 + 10 / 4 - 2 * 3", {}, -0.5),
    ('process_name IN ("x", "abc")', {"process.name": "abc"}, True),
    ('NOT (process_name == "abc" OR isnull(user))', {"process.name": "abc"}, False),
    ('process_name == "abc" AND len(user) > 1', {"process.name": "abc"}, None),
]  # fmt: skip


@pytest.mark.parametrize(("expr", "fields", "value"), VALUES, ids=[v[0] for v in VALUES])
def test_eval_values(expr: str, fields: dict[str, Any], value: Any) -> None:
    (stage,) = parse_query("spl", f"| eval v = {expr} | search v=x")
    compute = compile_program(stage.params["computed"]["v"], _canonical, FUNCTIONS)
    assert compute(canonical_event("e", fields)) == value


def _canonical(raw: str) -> tuple[str, ...]:
    return (canonical_field("splunk", ("any",), raw),)  # a rule without a log source


def test_every_computed_function_has_value_tests() -> None:
    tested = {m.group(1).lower() for expr, _, _ in VALUES for m in re.finditer(r"(\w+)\(", expr)}
    assert set(FUNCTIONS) <= tested


# Values an attacker controls must not break matching: unknown at worst.
HOSTILE = [
    ("| eval v = tonumber(process_name) % 2 | where v > 0", {"process.name": "inf"},
     "undetermined"),
    ("| eval v = substr(process_name, tonumber(user)) | search v=a",
     {"process.name": "abc", "user.name": "1e400"}, "undetermined"),
    ("| eval v = tonumber(process_name) * 1e308 | where v > 0", {"process.name": "1e308"},
     "match"),
]  # fmt: skip


@pytest.mark.parametrize(("query", "fields", "expected"), HOSTILE)
def test_hostile_values_are_unknown_at_worst(
    query: str, fields: dict[str, Any], expected: str
) -> None:
    assert outcome(query, fields) == expected


@pytest.mark.parametrize("op", [Op.EQ, Op.GT, Op.GTE, Op.LT, Op.LTE])
@pytest.mark.parametrize("want", [5, "5", 0, "0x5", -2.5])
@pytest.mark.parametrize("value", [5, 5.0, 0, -3, 1e308, float("inf")])
def test_a_computed_number_is_tested_as_a_field_would_be(op: Op, want: Any, value: Any) -> None:
    """computed_test compares numbers directly: the answer of the field's test."""
    p = Predicate("process.pid", op, want, field="process.pid")
    as_field = compile_predicate(p, False)(canonical_event("e", {"process.pid": value}))
    assert as_field is not None
    assert computed_test(p, lambda ev: value, False)(canonical_event("e", {})) == as_field


@pytest.mark.parametrize("op", [Op.EQ, Op.CONTAINS, Op.STARTS_WITH, Op.ENDS_WITH])
@pytest.mark.parametrize("want", ["abc", "ABC", "", "ß", "5"])
@pytest.mark.parametrize("value", ["abc", "xABCx", "ss", "SS", "", "5", "5.0", "0x5"])
@pytest.mark.parametrize("cased", [False, True])
def test_a_computed_text_is_tested_as_a_field_would_be(op: Op, want: str, value: str, cased: bool):
    p = Predicate("process.name", op, want, case_sensitive=cased, field="process.name")
    as_field = compile_predicate(p, False)(canonical_event("e", {"process.name": value}))
    assert computed_test(p, lambda ev: value, False)(canonical_event("e", {})) == as_field


@pytest.mark.parametrize("op", list(Op))
def test_a_computed_null_is_tested_as_a_missing_field(op: Op) -> None:
    p = Predicate("process.name", op, "x", field="process.name")
    as_field = compile_predicate(p, False)(canonical_event("e", {"user.name": "u"}))
    assert computed_test(p, lambda ev: None, False)(canonical_event("e", {})) == as_field


# Random eval expressions over the functions and hostile field values: matching
# answers (match, none or undetermined) and never raises.
_ARGS = st.one_of(
    st.sampled_from(["process_name", "user", "Processes.process", "_raw"]),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(['"a"', '""', '"\\\\"', '"(?<x>a"', '"%"', "1e400", "-0", "0.5"]),
)


@st.composite
def _eval_expressions(draw: st.DrawFn, depth: int = 3) -> str:
    if depth == 0 or draw(st.booleans()):
        return draw(_ARGS)
    name = draw(st.sampled_from(sorted(FUNCTIONS)))
    args = [draw(_eval_expressions(depth - 1)) for _ in range(draw(st.integers(0, 3)))]
    op = draw(st.sampled_from(["", " + 1", ' . "x"', " * 2", " / 0", " % 3", ' == "a"']))
    return f"{name}({', '.join(args)}){op}"


@settings(max_examples=200, deadline=None)
@given(
    expr=_eval_expressions(),
    value=st.one_of(
        st.text(max_size=20), st.integers(), st.floats(), st.lists(st.text(), max_size=3)
    ),
)
def test_random_eval_expressions_never_break_matching(expr: str, value: Any) -> None:
    query = f"| eval v = {expr} | search v=1 OR v=a"
    fields = {"process.name": value, "user.name": value, "process.command_line": value}
    assert outcome(query, fields) in ("match", "none", "undetermined")
