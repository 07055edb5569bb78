"""ES|QL's EVAL'd fields in ``detcat match``: a WHERE on a field the query
computes is evaluated on the event, with ES|QL's functions, where the
computation reads the event's own fields; anything else stays undetermined."""

from __future__ import annotations

import re
from typing import Any

import pytest
from match_helpers import query_outcome

from detcat.match.esql import FUNCTIONS, program
from detcat.match.events import canonical_event
from detcat.match.programs import NotComputable, compile_program

PADDING = (
    'FROM logs-* | WHERE event.category == "process"'
    " | EVAL multi_spaces = LOCATE(process.command_line, SPACE(5)) | WHERE multi_spaces > 0"
)
PROC = {"event.category": "process"}

# (why, query, canonical event fields, expected outcome)
CASES = [
    ("LOCATE finds the run", PADDING, {**PROC, "process.command_line": "a      b"}, "match"),
    ("LOCATE gives 0", PADDING, {**PROC, "process.command_line": "a  b"}, "none"),
    ("a missing field is null", PADDING, PROC, "none"),
    ("chained EVALs",
     "FROM logs-* | EVAL n = LENGTH(process.name), long = n > 10 | WHERE long == true",
     {"process.name": "averylongname.exe"}, "match"),
    ("CONCAT and a comparison",
     'FROM logs-* | EVAL x = CONCAT(process.name, "!") | WHERE x == "cmd.exe!"',
     {"process.name": "cmd.exe"}, "match"),
    ("comparisons are case-sensitive",
     'FROM logs-* | EVAL x = CONCAT(process.name, "!") | WHERE x == "CMD.EXE!"',
     {"process.name": "cmd.exe"}, "none"),
    # a name made twice: the parser keeps the last text, which a filter between
    # the two must not read (upstream: "EVAL command = REPLACE(command, …)")
    ("a name EVAL'd twice",
     'FROM logs-* | EVAL c = process.name | WHERE c == "a" | EVAL c = CONCAT(c, "!")',
     {"process.name": "a"}, "undetermined"),
    ("what reads a name EVAL'd twice",
     'FROM logs-* | EVAL c = process.name | EVAL c = CONCAT(c, "!") | EVAL d = c'
     ' | WHERE d == "a!"', {"process.name": "a"}, "undetermined"),
    ("an event field EVAL'd from itself",
     'FROM logs-* | EVAL process.name = CONCAT(process.name, "!") | WHERE process.name == "a!"',
     {"process.name": "a"}, "match"),
    ("an aggregation is not computed on one event",
     "FROM logs-* | EVAL x = COUNT_DISTINCT(process.name) | WHERE x > 1",
     {"process.name": "cmd.exe"}, "undetermined"),
]  # fmt: skip


def outcome(query: str, fields: dict[str, Any], backtested: bool = False) -> str:
    return query_outcome("elastic", "esql", query, fields, backtested)


@pytest.mark.parametrize(("why", "query", "fields", "expected"), CASES, ids=[c[0] for c in CASES])
def test_eval_fields_are_computed(why: str, query: str, fields: dict[str, Any], expected: str):
    assert outcome(query, fields) == expected


def test_backtests_leave_eval_values_unknown() -> None:
    fields = {**PROC, "process.command_line": "a      b"}
    assert outcome(PADDING, fields, backtested=True) == "undetermined"


# (EVAL expression, canonical event fields, its value): each function and operator
CMD = {"process.command_line": "Cmd.exe /c whoami"}
VALUES = [
    ("ABS(0 - LENGTH(process.command_line))", CMD, 17),
    ('CASE(LENGTH(process.command_line) > 99, "long", "short")', CMD, "short"),
    ('COALESCE(user.name, process.command_line)', CMD, "Cmd.exe /c whoami"),
    ('CONCAT(process.command_line, "!", 1)', CMD, "Cmd.exe /c whoami!1"),
    ('CONCAT(user.name, "!")', CMD, None),
    ('ENDS_WITH(process.command_line, "whoami")', CMD, True),
    ('STARTS_WITH(process.command_line, "cmd")', CMD, False),
    ("user.name IS NULL", CMD, True),
    ("process.command_line IS NOT NULL", CMD, True),
    ("LEFT(process.command_line, 3)", CMD, "Cmd"),
    ("RIGHT(process.command_line, 6)", CMD, "whoami"),
    ('LOCATE(process.command_line, "/c")', CMD, 9),
    ('LOCATE(process.command_line, "c", 2)', CMD, 10),
    ('LOCATE(process.command_line, "zz")', CMD, 0),
    ('process.command_line LIKE "cmd*"', CMD, False),
    ('process.command_line LIKE "Cmd.exe ?c*"', CMD, True),
    ('process.command_line NOT LIKE "*whoami"', CMD, False),
    ('process.command_line RLIKE "Cmd.*"', CMD, True),
    ('process.command_line RLIKE "Cmd"', CMD, False),
    ("TO_LOWER(CONCAT(process.command_line))", CMD, "cmd.exe /c whoami"),
    ("TO_UPPER(CONCAT(process.command_line))", CMD, "CMD.EXE /C WHOAMI"),
    ('TRIM(CONCAT("  ", process.command_line, " "))', CMD, "Cmd.exe /c whoami"),
    ('LTRIM(CONCAT("  ", process.command_line))', CMD, "Cmd.exe /c whoami"),
    ('RTRIM(CONCAT(process.command_line, "  "))', CMD, "Cmd.exe /c whoami"),
    ('REPLACE(process.command_line, "[ /]+", "_")', CMD, "Cmd.exe_c_whoami"),
    ("MV_COUNT(process.args)", {"process.args": ["a", "b"]}, 2),
    ("MV_FIRST(process.args)", {"process.args": ["a", "b"]}, "a"),
    ("MV_LAST(process.args)", {"process.args": ["a", "b"]}, "b"),
    ("LENGTH(SPACE(3))", {}, 3),
    ("SUBSTRING(process.command_line, -6)", CMD, "whoami"),
    ("SUBSTRING(process.command_line, 1, 3)", CMD, "Cmd"),
    ('TO_INTEGER("42") + 1', {}, 43),
    ('TO_LONG("4.5")', {}, 4),
    ('TO_DOUBLE("4")', {}, 4.0),
    ("TO_STRING(LENGTH(process.command_line))", CMD, "17"),
    ('process.command_line =~ "CMD.EXE /C WHOAMI"', CMD, True),
    ('process.command_line IN ("x", "Cmd.exe /c whoami")', CMD, True),
    ('NOT (process.command_line == "x" OR user.name IS NULL)', CMD, False),
    ("-LENGTH(process.command_line) * 2 % 5", CMD, -4.0),
]  # fmt: skip


@pytest.mark.parametrize(("expr", "fields", "value"), VALUES, ids=[v[0] for v in VALUES])
def test_eval_values(expr: str, fields: dict[str, Any], value: Any) -> None:
    prog = program("v", (("v", expr),))
    assert prog is not None
    compute = compile_program(prog, lambda raw: (raw,), FUNCTIONS)
    assert compute(canonical_event("e", fields)) == value


def test_every_computed_function_has_value_tests() -> None:
    tested = {m.group(1).lower() for expr, _, _ in VALUES for m in re.finditer(r"(\w+)\(", expr)}
    tested |= {"is_null", "is_not_null", "like", "rlike"}  # operators, read as functions
    assert set(FUNCTIONS) <= tested


@pytest.mark.parametrize(
    "source",
    [
        'TO_LOWER(process.name) . ""',  # `.` is no ES|QL operator
        "COUNT_DISTINCT(process.name)",  # an aggregation
        'DISSECT process.command_line "%{a} %{b}"',  # how the parser records DISSECT
        "LENGTH(w)",  # w is EVAL'd from an aggregation
    ],
)
def test_what_is_not_computed_stays_unknown(source: str) -> None:
    assert not computable(program("v", (("v", source), ("w", "MAX(process.pid)"))))


def computable(prog: Any) -> bool:
    try:
        return prog is not None and bool(compile_program(prog, lambda raw: (raw,), FUNCTIONS))
    except NotComputable:
        return False
