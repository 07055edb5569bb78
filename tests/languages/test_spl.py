"""SPL -> detcat model, as tables: one search, one canonical reading.

Predicates are written ``P(field, op, value, syntax, case_sensitive, kind)``.
Search-language comparisons ignore case; eval (``| where``) comparisons do not,
unless a side is read through lower()/upper(). ``main(text)`` is the expression
of the stage that filters raw events.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from detcat.languages import spl
from detcat.model import (
    And,
    Expr,
    Not,
    Op,
    Opaque,
    Or,
    Predicate,
    QueryError,
    Stage,
    StageRole,
    exclusions,
    leaves,
    opaques,
    predicates,
)

EQ, CONTAINS, STARTS, ENDS = Op.EQ, Op.CONTAINS, Op.STARTS_WITH, Op.ENDS_WITH
WILD, REGEX, CIDR, REF = Op.WILDCARD, Op.REGEX_MATCH, Op.CIDR, Op.FIELD_REF
EXISTS, NULL, KEYWORD, LISTED = Op.EXISTS, Op.IS_NULL, Op.KEYWORD, Op.IN_LIST
GT, GTE, LT, LTE = Op.GT, Op.GTE, Op.LT, Op.LTE


def P(
    field: str | None, op: Op, value: object, syntax: str = "=", cs: bool = False, kind: str = ""
) -> Predicate:
    return Predicate(field, op, value, syntax, cs, kind=kind)  # type: ignore[arg-type]


def A(*children: Expr) -> And:
    return And(children)


def O(*children: Expr) -> Or:  # noqa: E743 - reads like the And/Or it builds
    return Or(children)


def stage(stages: list[Stage], name: str) -> Stage:
    (found,) = [s for s in stages if s.name == name]
    return found


def main(text: str, **kw: object) -> Expr | None:
    return stage(spl.parse(text, **kw), "main").expr  # type: ignore[arg-type]


# -- the search language -------------------------------------------------------------

SEARCH_TERMS = [
    ("process_name=cmd.exe", P("process_name", EQ, "cmd.exe")),
    ('process_name="cmd.exe"', P("process_name", EQ, "cmd.exe")),
    ("process_name = cmd.exe", P("process_name", EQ, "cmd.exe")),
    ('"query_type{}"=SIG', P("query_type{}", EQ, "SIG")),
    ("process_name!=cmd.exe", Not(P("process_name", EQ, "cmd.exe", "!="))),
    ("EventCode=4688", P("EventCode", EQ, 4688)),
    ('EventCode="4688"', P("EventCode", EQ, 4688)),
    ("Logon_Type=0x3", P("Logon_Type", EQ, "0x3")),
    ('process_id="0012"', P("process_id", EQ, "0012")),
    ("bytes_in>65000", P("bytes_in", GT, 65000, ">")),
    ("bytes_in >= 1.5", P("bytes_in", GTE, 1.5, ">=")),
    ("count<5", P("count", LT, 5, "<")),
    ("count<=5", P("count", LTE, 5, "<=")),
    ("src_ip=10.0.0.0/8", P("src_ip", CIDR, "10.0.0.0/8")),
    ('src_ip!="fe80::/10"', Not(P("src_ip", CIDR, "fe80::/10", "!="))),
    (
        "index=main sourcetype=xmlwineventlog",
        A(P("index", EQ, "main"), P("sourcetype", EQ, "xmlwineventlog")),
    ),
    (
        "eventtype=wineventlog_security source=WinEventLog:Security",
        A(P("eventtype", EQ, "wineventlog_security"), P("source", EQ, "WinEventLog:Security")),
    ),
    # IN lists are an Or of one predicate per value; stray commas are tolerated
    (
        'process_name IN ("cmd.exe", powershell.exe)',
        O(P("process_name", EQ, "cmd.exe", "IN"), P("process_name", EQ, "powershell.exe", "IN")),
    ),
    ('x IN (,"a",, "b",)', O(P("x", EQ, "a", "IN"), P("x", EQ, "b", "IN"))),
    ("EventCode IN (4688, 1)", O(P("EventCode", EQ, 4688, "IN"), P("EventCode", EQ, 1, "IN"))),
    # free text searches the raw event
    ("mimikatz", P(None, KEYWORD, "mimikatz", "")),
    ('"Invoke-Mimikatz -DumpCreds"', P(None, KEYWORD, "Invoke-Mimikatz -DumpCreds", "")),
    ("*mimikatz*", P(None, KEYWORD, "*mimikatz*", "")),
    ("TERM(sudoedit)", P(None, KEYWORD, "sudoedit", "TERM()")),
    ("CASE(Error)", P(None, KEYWORD, "Error", "CASE()", True)),
    # a bare * matches every event; time modifiers choose the window, not events
    ("* index=main", P("index", EQ, "main")),
    ("index=main earliest=-24h latest=now", P("index", EQ, "main")),
    # an escaped quote outside quotes, an attached () group in a bare value
    ('x=*\\"privileged\\":true*', P("x", CONTAINS, '"privileged":true')),
    ("Processes.process=*GetCurrent()*", P("Processes.process", CONTAINS, "GetCurrent()")),
]

WILDCARDS = [
    ('Image="*\\\\cmd.exe"', P("Image", ENDS, "\\cmd.exe")),
    ("Image=*\\\\cmd.exe", P("Image", ENDS, "\\cmd.exe")),
    ('Image="C:\\\\Windows\\\\*"', P("Image", STARTS, "C:\\Windows\\")),
    ('CommandLine="*-enc *"', P("CommandLine", CONTAINS, "-enc ")),
    # wildcard values carry no escapes (model.py): "*" any run, "?" one character
    ('Image="C:\\\\*\\\\cmd.exe"', P("Image", WILD, "C:\\*\\cmd.exe")),
    ("Image=*\\\\*.exe*", P("Image", WILD, "*\\*.exe*")),
    # a single backslash before an ordinary character stays literal
    ('Image="*\\System32\\*"', P("Image", CONTAINS, "\\System32\\")),
    # a backslash cannot escape "*" in SPL; "?" is not a wildcard
    ('CommandLine="*\\**"', P("CommandLine", CONTAINS, "\\")),
    ('CommandLine="a\\*b*"', P("CommandLine", WILD, "a\\*b*")),
    # a literal "?" beside a wildcard cannot be said in the model's spelling: a regex
    ('CommandLine="a?b*c"', P("CommandLine", REGEX, "^a\\?b.*c$")),
    ('CommandLine="*a?b*c*"', P("CommandLine", REGEX, "^.*a\\?b.*c.*$")),
    ('CommandLine="*a?b*"', P("CommandLine", CONTAINS, "a?b")),
    ('CommandLine="what?"', P("CommandLine", EQ, "what?")),
    # "**" matches what "*" matches
    ('ClientAddress="*0200****7f*"', P("ClientAddress", WILD, "*0200*7f*")),
    ('x="a**"', P("x", STARTS, "a")),
    # a bare * on a field is a presence test
    ("user=*", P("user", EXISTS, None)),
    ("user!=*", Not(P("user", EXISTS, None, "!="))),
    ('x IN ("a*", *)', O(P("x", STARTS, "a", "IN"), P("x", EXISTS, None, "IN"))),
]

a, b, c, d = (P(x, EQ, 1) for x in "abcd")

BOOLEANS = [
    # search: NOT binds tightest, then OR, then AND (implicit or explicit)
    ("a=1 b=1", A(a, b)),
    ("a=1 AND b=1", A(a, b)),
    ("a=1 OR b=1", O(a, b)),
    ("a=1 b=1 OR c=1", A(a, O(b, c))),
    ("a=1 AND b=1 OR c=1", A(a, O(b, c))),
    ("a=1 OR b=1 c=1", A(O(a, b), c)),
    ("(a=1 b=1) OR c=1", O(A(a, b), c)),
    ("NOT a=1 b=1", A(Not(a), b)),
    ("NOT (a=1 OR b=1) c=1", A(Not(O(a, b)), c)),
    ("a=1 OR NOT b=1", O(a, Not(b))),
    ("NOT NOT a=1", Not(Not(a))),
    ("((a=1))", a),
    # "or"/"and" in lower case are words, not operators
    ("a=1 or", A(a, P(None, KEYWORD, "or", ""))),
]


@pytest.mark.parametrize(("text", "expected"), SEARCH_TERMS + WILDCARDS + BOOLEANS)
def test_search(text: str, expected: Expr) -> None:
    assert main(text) == expected
    assert main(f"| search {text}") == expected


# -- the eval language (| where) ---------------------------------------------------------

_ARITH = "arithmetic expression"
WHERE = [
    ('x=="cmd.exe"', P("x", EQ, "cmd.exe", "==", True)),
    ('x="cmd.exe"', P("x", EQ, "cmd.exe", "=", True)),
    ('"cmd.exe"=x', P("x", EQ, "cmd.exe", "=", True)),
    ('x!="cmd.exe"', Not(P("x", EQ, "cmd.exe", "!=", True))),
    ('x="*cmd*"', P("x", EQ, "*cmd*", "=", True)),  # eval has no wildcards
    ("count > 5", P("count", GT, 5, ">")),
    ("5 < count", P("count", GT, 5, ">")),
    ("count <= .25", P("count", LTE, 0.25, "<=")),
    ("x == -1", P("x", EQ, -1, "==")),
    ('lower(x)="cmd.exe"', P("x", EQ, "cmd.exe", "=")),
    ('upper(x)!="CMD.EXE"', Not(P("x", EQ, "CMD.EXE", "!="))),
    ("'Processes.process_name'=\"a\"", P("Processes.process_name", EQ, "a", "=", True)),
    # functions that test a field
    ('match(x, "^cmd\\\\.exe$")', P("x", REGEX, "^cmd\\.exe$", "match()", True)),
    ('match(x, "(?i)^cmd")', P("x", REGEX, "(?i)^cmd", "match()")),
    ('match(lower(x), "cmd")', P("x", REGEX, "cmd", "match()")),
    ('like(x, "%cmd%")', P("x", CONTAINS, "cmd", "like()", True)),
    ('like(x, "cmd%")', P("x", STARTS, "cmd", "like()", True)),
    ('like(x, "%\\\\cmd.exe")', P("x", ENDS, "\\cmd.exe", "like()", True)),
    ('like(x, "c_d%")', P("x", WILD, "c?d*", "like()", True)),
    ('like(x, "%")', P("x", EXISTS, None, "like()", True)),
    ('like(x, "a*b%")', P("x", STARTS, "a*b", "like()", True)),
    ('like(x, "a*b%c")', P("x", REGEX, "^a\\*b.*c$", "like()", True)),
    ('LIKE (x, "%a%")', P("x", CONTAINS, "a", "like()", True)),
    ('x LIKE "%a%"', P("x", CONTAINS, "a", "LIKE", True)),
    ('like(lower(x), "%a%")', P("x", CONTAINS, "a", "like()")),
    ("isnull(x)", P("x", NULL, None, "isnull()")),
    ("isnotnull(x)", P("x", EXISTS, None, "isnotnull()")),
    ('cidrmatch("10.0.0.0/8", src)', P("src", CIDR, "10.0.0.0/8", "cidrmatch()")),
    ('in(x, "a", "b")', O(P("x", EQ, "a", "in()", True), P("x", EQ, "b", "in()", True))),
    ('x IN ("a", 2)', O(P("x", EQ, "a", "IN", True), P("x", EQ, 2, "IN"))),
    ("new IN (old_values)", P("new", REF, "old_values", "IN", True)),
    ('searchmatch("x=a* y=1")', A(P("x", STARTS, "a"), P("y", EQ, 1))),
    # comparing two fields; a time relative to the search
    ("src_user=user", P("src_user", REF, "user", "=", True)),
    ("a != b", Not(P("a", REF, "b", "!=", True))),
    ("api_calls > upper", P("api_calls", REF, "upper", ">", True)),
    ('first > relative_time(now(), "-70m@m")', P("first", GT, "-70m@m", "relative_time()")),
    ("last < now()", P("last", LT, "now", "relative_time()")),
    ("x = null()", P("x", NULL, None, "=")),
    # computed values, conditionals and other shapes stay Opaque, saying why
    ("len(x) > 200", Opaque("len(x) > 200", "computed value", "len()")),
    (
        "mvcount(ips) > 1",
        Opaque("mvcount(ips) > 1", "computed value", "mvcount()"),
    ),
    (
        "x > (a + 2 * b)",
        Opaque("x > (a + 2 * b)", "computed value", "arithmetic expression"),
    ),
    (
        'if(x="a", true(), false())',
        Opaque('if(x="a", true(), false())', "computed value", "if()/case()"),
    ),
    ('case(x="a", 1)', Opaque('case(x="a", 1)', "computed value", "if()/case()")),
    ("1=1", Opaque("1=1", "constant comparison")),
    ('match(x, "a" . y)', Opaque('match(x, "a" . y)', "computed value", "match() pattern")),
    ("a XOR b", Opaque("a XOR b", "unsupported syntax", "XOR")),
    ("isOutlier", Opaque("isOutlier", "not a condition", "value")),
    (
        "isnull(mvfind(a, b))",
        Opaque("isnull(mvfind(a, b))", "computed value", "mvfind()"),
    ),
    # an Opaque's text is its whole source: signs and parentheses before its first word
    ("-len(x) < -3", Opaque("-len(x) < -3", "computed value", _ARITH)),
    ("(len(x) + 1) * 2 > 5", Opaque("(len(x) + 1) * 2 > 5", "computed value", _ARITH)),
    ("- ( len(x) ) < 0", Opaque("- ( len(x) ) < 0", "computed value", _ARITH)),
    ('len(")(") > len(x)', Opaque('len(")(") > len(x)', "computed value", "len()")),
]

EVAL_BOOLEANS = [
    # eval: NOT, then AND, then OR; operators in any case
    ("a=1 AND b=1 OR c=1", O(A(*(P(x, EQ, 1) for x in "ab")), P("c", EQ, 1))),
    ("a=1 OR b=1 AND c=1", O(P("a", EQ, 1), A(P("b", EQ, 1), P("c", EQ, 1)))),
    ("a=1 and (b=1 or c=1)", A(P("a", EQ, 1), O(P("b", EQ, 1), P("c", EQ, 1)))),
    ("NOT a=1 AND b=1", A(Not(P("a", EQ, 1)), P("b", EQ, 1))),
    ("not a=1", Not(P("a", EQ, 1))),
]


@pytest.mark.parametrize(("text", "expected"), WHERE + EVAL_BOOLEANS)
def test_where(text: str, expected: Expr) -> None:
    assert (
        main(f"index=x | where {text}") == A(P("index", EQ, "x"), expected)
        if not isinstance(expected, And)
        else A(P("index", EQ, "x"), *expected.children)
    )


# -- one canonical reading, many SPL spellings (sqlglot-style) ---------------------------------


def reading(expr: Expr | None) -> set[tuple[object, ...]]:
    """What a filter means, without how it was spelled: (field, op, value, case, negated)."""
    return {
        (lf.node.field_raw, lf.node.op, lf.node.value, lf.node.case_sensitive, lf.negated)
        for lf in leaves(expr)
        if isinstance(lf.node, Predicate)
    }


PROCESSES = "| tstats count from datamodel=Endpoint.Processes"
SPELLINGS = {
    "cmd.exe ends_with, any case": (
        {("process_path", ENDS, "\\cmd.exe", False, False)},
        [
            'process_path="*\\\\cmd.exe"',
            "process_path=*\\\\cmd.exe",
            'process_path IN ("*\\\\cmd.exe")',
            "| search process_path=*\\\\cmd.exe",
            '| where like(lower(process_path), "%\\\\cmd.exe")',
            '| eval p=lower(process_path) | where like(p, "%\\\\cmd.exe")',
            '| rename process_path AS p | search p="*\\\\cmd.exe"',
            '| where searchmatch("process_path=*\\\\\\\\cmd.exe")',
        ],
    ),
    "not cmd.exe": (
        {("Processes.process_name", EQ, "cmd.exe", False, True)},
        [
            f"{PROCESSES} where NOT Processes.process_name=cmd.exe by Processes.dest",
            f"{PROCESSES} where Processes.process_name!=cmd.exe by Processes.dest",
            f'{PROCESSES} by Processes.process_name | where lower(process_name)!="cmd.exe"',
            f"{PROCESSES} by Processes.process_name | rename Processes.* AS *"
            " | search NOT process_name=cmd.exe",
        ],
    ),
    "regex on the command line": (
        {("CommandLine", REGEX, "-e(nc)?\\s", True, False)},
        [
            '| regex CommandLine="-e(nc)?\\\\s"',
            '| where match(CommandLine, "-e(nc)?\\\\s")',
            '| rex field=CommandLine "(?<m>-e(nc)?\\\\s)" | where isnotnull(m)',
            '| rex field=CommandLine "(?<m>-e(nc)?\\\\s)"'
            ' | eval c=if(isnotnull(m), "true", "false") | search c=true',
        ],
    ),
}


@pytest.mark.parametrize("name", SPELLINGS)
def test_spellings_share_one_reading(name: str) -> None:
    canonical, texts = SPELLINGS[name]
    for text in texts:
        stages = spl.parse(text)
        assert reading(stage(stages, "main").expr) == canonical, text


# -- the pipeline ------------------------------------------------------------------------------

TSTATS = (
    "| tstats summariesonly=false count min(_time) as firstTime"
    " values(Processes.process) as process from datamodel=Endpoint.Processes"
    " where Processes.process_name=cmd.exe"
    " by Processes.dest Processes.user Processes.parent_process_name"
)


def test_tstats_keeps_datamodel_field_names_and_records_its_shape() -> None:
    (main_stage,) = spl.parse(TSTATS)
    assert main_stage.expr == P("Processes.process_name", EQ, "cmd.exe")
    assert main_stage.role is StageRole.EVENTS
    assert main_stage.params == {
        "datamodel": "Endpoint.Processes",
        "by": ["Processes.dest", "Processes.user", "Processes.parent_process_name"],
    }


PIPELINE_FIELDS = [
    # renames are undone, also with wildcards and when drop_dm_object_name was removed
    (
        '| rename Processes.* AS * | where user!="SYSTEM"',
        Not(P("Processes.user", EQ, "SYSTEM", "!=", True)),
    ),
    (
        '| where parent_process_name="cmd.exe"',
        P("Processes.parent_process_name", EQ, "cmd.exe", "=", True),
    ),
    (
        "| rename Processes.dest as host | rename host as h | search h=ws1",
        P("Processes.dest", EQ, "ws1"),
    ),
    # eval copies keep the field; lower() makes the comparison case-insensitive
    ('| eval u=user | where u="Bob"', P("Processes.user", EQ, "Bob", "=", True)),
    ('| eval u=lower(user) | where u="bob"', P("Processes.user", EQ, "bob", "=")),
    # computed fields are marked derived; rex and spath define fields too
    ("| eval n=len(user) | where n > 3", P("n", GT, 3, ">", kind="derived")),
    (
        '| rex field=user "(?<domain>[^\\\\\\\\]+)\\\\\\\\" | search domain=CORP',
        P("domain", EQ, "CORP", kind="derived"),
    ),
    ("| spath input=user output=uid path=id | search uid=0", P("uid", EQ, 0, kind="derived")),
    ("| iplocation dest | search Country!=US", Not(P("Country", EQ, "US", "!=", kind="derived"))),
]


@pytest.mark.parametrize(("tail", "expected"), PIPELINE_FIELDS)
def test_later_filters_read_the_fields_the_pipeline_made(tail: str, expected: Expr) -> None:
    stages = spl.parse(TSTATS + " " + tail)
    assert stage(stages, "main").expr == A(P("Processes.process_name", EQ, "cmd.exe"), expected)


CMD_A = P("cmd", REGEX, "a", "match()", True)
CONDITIONAL_FIELDS = [
    # a two-way conditional with constant results stands for its condition …
    ('| eval v=if(match(cmd, "a"), 1, 0) | where v=1', CMD_A),
    ('| eval v=if(match(cmd, "a"), "yes", "no") | search v=YES', CMD_A),
    ('| eval v=if(match(cmd, "a"), 1, 0) | where v=0', Not(CMD_A)),
    ('| eval v=if(match(cmd, "a"), 1, 0) | where v!=1', Not(CMD_A)),
    ('| eval v=case(match(cmd, "a"), "hit") | search v=hit', CMD_A),
    ('| eval v=case(match(cmd, "a"), "hit", true(), "miss") | search v=miss', Not(CMD_A)),
    # … and a rex group that spans its pattern is there when the pattern matched
    ('| rex field=cmd "(?<m>a)" | where isnotnull(m)', P("cmd", REGEX, "a", "rex", True)),
    ('| rex field=cmd "(?<m>(?i)a)" | search m=*', P("cmd", REGEX, "(?i)a", "rex")),
    ('| rex field=cmd "(?<m>a)" | where isnull(m)', Not(P("cmd", REGEX, "a", "rex", True))),
    # otherwise the field is just derived
    ('| eval v=if(match(cmd, "a"), 1, 0) | where v=2', P("v", EQ, 2, "=", kind="derived")),
    ("| eval v=if(len(cmd) > 5, 1, 0) | where v=1", P("v", EQ, 1, "=", kind="derived")),
    (
        '| rex field=cmd "x(?<m>a)" | where isnotnull(m)',
        P("m", EXISTS, None, "isnotnull()", kind="derived"),
    ),
]


@pytest.mark.parametrize(("tail", "expected"), CONDITIONAL_FIELDS)
def test_conditional_fields_stand_for_their_condition(tail: str, expected: Expr) -> None:
    assert main("index=x " + tail) == A(P("index", EQ, "x"), expected)


AGGREGATIONS = [
    # a filter on an aggregation's output is a stage of its own …
    (
        "| stats count by dest | where count > 5",
        "aggregate[1]",
        P("count", GT, 5, ">", kind="derived"),
    ),
    (
        "| stats dc(user) as users by dest | search users>=3",
        "aggregate[1]",
        P("users", GTE, 3, ">=", kind="derived"),
    ),
    (
        "| eventstats count as n by dest | where n < 2",
        "aggregate[1]",
        P("n", LT, 2, "<", kind="derived"),
    ),
    (
        "| transaction dest startswith=(EventCode=1) maxspan=5m | where duration > 60",
        "aggregate[1]",
        P("duration", GT, 60, ">", kind="derived"),
    ),
    (
        "| top limit=5 user | where percent < 1",
        "aggregate[1]",
        P("percent", LT, 1, "<", kind="derived"),
    ),
    # … values(x)/latest(x) still hold x's values …
    (
        '| stats values(CommandLine) as cmd by dest | where match(cmd, "enc")',
        "aggregate[1]",
        P("CommandLine", REGEX, "enc", "match()", True),
    ),
    # … and a filter on a group-by field still filters events
    ("| stats count by dest | search dest=ws1", "main", P("dest", EQ, "ws1")),
    ("| eventstats count by dest | search user=bob", "main", P("user", EQ, "bob")),
]


@pytest.mark.parametrize(("tail", "name", "expected"), AGGREGATIONS)
def test_filters_after_an_aggregation_go_where_their_fields_live(
    tail: str, name: str, expected: Expr
) -> None:
    stages = spl.parse("index=x " + tail)
    found = stage(stages, name).expr
    assert found == (A(P("index", EQ, "x"), expected) if name == "main" else expected)
    if name != "main":
        assert stage(stages, name).role is StageRole.AGGREGATE
        assert stage(stages, "main").expr == P("index", EQ, "x")


def test_transaction_options_are_not_group_fields() -> None:
    text = "index=x | transaction dest startswith=(EventCode=1) maxspan=5m | where eventcount > 2"
    assert stage(spl.parse(text), "aggregate[1]").params["by"] == ["dest"]


def test_aggregate_stage_records_by_and_aggregations() -> None:
    stages = spl.parse("index=x | stats count min(_time) as first by dest, user | where count > 5")
    assert [s.name for s in stages] == ["main", "aggregate[1]"]
    assert stages[1].params == {
        "by": ["dest", "user"],
        "aggregations": ["count", "min(_time) AS first"],
    }


# _raw, the event's text, is no field: the test is field-less (a search of every value)
REGEX_COMMAND = [
    ('| regex _raw="a\\\\d+"', P(None, REGEX, "a\\d+", "regex", True)),
    ('| regex "a\\\\d+"', P(None, REGEX, "a\\d+", "regex", True)),
    ('| rename _raw AS x | regex x="a"', P(None, REGEX, "a", "regex", True)),
    ('| eval _raw = cmd . "x" | regex _raw="a"', P("_raw", REGEX, "a", "regex", True, "derived")),
    ('| regex cmd!="(?i)enc"', Not(P("cmd", REGEX, "(?i)enc", "regex"))),
]


@pytest.mark.parametrize(("tail", "expected"), REGEX_COMMAND)
def test_regex_command_filters(tail: str, expected: Expr) -> None:
    assert main("index=x " + tail) == A(P("index", EQ, "x"), expected)


def test_two_aggregations_give_two_stages() -> None:
    text = (
        "index=x | stats count by dest user | where count > 1"
        " | stats dc(user) as n by dest | where n > 3"
    )
    stages = spl.parse(text)
    assert [(s.name, s.expr) for s in stages] == [
        ("main", P("index", EQ, "x")),
        ("aggregate[1]", P("count", GT, 1, ">", kind="derived")),
        ("aggregate[2]", P("n", GT, 3, ">", kind="derived")),
    ]


def test_exclusions_are_top_level_nots_of_their_stage() -> None:
    text = (
        'index=x NOT user=svc_* dest!=dc1 | where NOT match(cmd, "^a") | search NOT (a=1 OR b=2)'
        " | stats count by dest | where NOT count > 5"
    )
    stages = spl.parse(text)
    assert exclusions(stage(stages, "main").expr) == [
        P("user", STARTS, "svc_"),
        P("dest", EQ, "dc1", "!="),
        P("cmd", REGEX, "^a", "match()", True),
        P("a", EQ, 1),
        P("b", EQ, 2),
    ]
    assert exclusions(stage(stages, "aggregate[1]").expr) == [
        P("count", GT, 5, ">", kind="derived")
    ]


def test_subsearches_join_append_and_map_are_stages() -> None:
    text = (
        "index=a x=1 NOT [search index=b y=2 | fields y] [| inputlookup allow.csv]"
        " | join type=left dest [search index=c z=3]"
        " | append [| tstats count from datamodel=Web where Web.status=200 by Web.src]"
        ' | map search="search index=d user=$user$"'
    )
    stages = spl.parse(text)
    assert [(s.name, s.negated, s.join_keys, s.params.get("command")) for s in stages] == [
        ("main", False, [], None),
        ("subsearch[1]", True, [], None),
        ("subsearch[2]", False, [], None),
        ("subsearch[3]", False, ["dest"], "join"),
        ("subsearch[4]", False, [], "append"),
        ("subsearch[5]", False, [], "map"),
    ]
    assert stages[0].expr == A(P("index", EQ, "a"), P("x", EQ, 1))
    assert stages[1].expr == A(P("index", EQ, "b"), P("y", EQ, 2))
    assert opaques(stages[2].expr)[0].why() == "not events: inputlookup: a lookup table"
    assert stages[3].params["type"] == "left"
    assert stages[4].expr == P("Web.status", EQ, 200) and stages[4].params["datamodel"] == "Web"
    assert stages[5].expr == A(P("index", EQ, "d"), P("user", REF, "user"))


def test_appendpipe_reads_the_results_so_far() -> None:
    text = "index=x | stats count by dest | appendpipe [| where count > 3]"
    assert stage(spl.parse(text), "subsearch[1]").expr == P("count", GT, 3, ">", kind="derived")


OPAQUE_STAGES = [
    (
        "| mstats avg(cpu) as cpu where index=metrics by host",
        "not events: mstats: metrics",
    ),
    (
        "| inputlookup previously_seen.csv | where x=1",
        "not events: inputlookup: a lookup table",
    ),
    (
        "index=x | apply smb_model threshold=0.01 | search isOutlier > 0",
        "not events: MLTK fit/apply: model scoring",
    ),
    ("index=x | fit DensityFunction count by src", "not events: MLTK fit/apply: model scoring"),
    ("| rest /services/server/info", "unsupported command: rest"),
    ("index=x | frobnicate a b", "unsupported command: frobnicate"),
    ("index=x | anomalydetection count", "unsupported command: anomalydetection"),
    ("index=x `some_macro(a)` y=1", "unresolved macro: undefined"),
]


@pytest.mark.parametrize(("text", "reason"), OPAQUE_STAGES)
def test_what_is_not_read_is_opaque_with_a_reason(text: str, reason: str) -> None:
    found = [o.why() for s in spl.parse(text) for o in opaques(s.expr)]
    assert found == [reason]


def test_mltk_scores_are_filtered_in_their_own_stage() -> None:
    stages = spl.parse("index=x | apply model | search isOutlier > 0 dest=ws1")
    assert stages[0].expr == P("index", EQ, "x")
    assert stages[1].role is StageRole.AGGREGATE
    assert predicates(stages[1].expr) == [P("isOutlier", GT, 0, ">"), P("dest", EQ, "ws1")]


IGNORED_TAILS = [
    "| table a b | fields - c | dedup a | sort - count | head 10 | fillnull value=0",
    '| convert timeformat="%Y" ctime(firstTime) | bin _time span=1h | mvexpand a | makemv a',
    "| iplocation src | collect index=summary | outputlookup x.csv | foreach * [eval <<FIELD>>=1]",
    '| lookup asset_lookup ip AS src OUTPUT owner | rex field=a "(?<b>x)" | spath | xmlkv',
]


@pytest.mark.parametrize("tail", IGNORED_TAILS)
def test_commands_that_do_not_filter_are_understood_and_passed_over(tail: str) -> None:
    assert spl.parse("index=x " + tail) == [Stage("main", P("index", EQ, "x"))]


def test_ignored_commands_are_listed() -> None:
    assert {"table", "fields", "dedup", "sort", "head", "convert", "fillnull", "bin"} <= spl.IGNORED
    assert {"makemv", "mvexpand", "collect"} <= spl.IGNORED


def test_comments_are_stripped() -> None:
    text = 'index=x ``` a comment with | pipes and "quotes ```\n| search y=1 ```| where z=2```'
    assert main(text) == A(P("index", EQ, "x"), P("y", EQ, 1))


# -- lookups -------------------------------------------------------------------------------------

LOOKUP = (
    "index=x | lookup remote_access_software remote_utility AS process_name"
    " OUTPUT isutility, category AS cat"
)


def table(calls: list[tuple[str, str, Expr | None]], answer: tuple[list[str], bool] | None):  # noqa: ANN201
    def resolve(name: str, column: str, condition: Expr | None) -> tuple[list[str], bool] | None:
        calls.append((name, column, condition))
        return answer

    return resolve


def test_a_resolved_lookup_becomes_its_values() -> None:
    calls: list[tuple[str, str, Expr | None]] = []
    resolve = table(calls, (["anydesk.exe", "*teamviewer*", "lit\\*eral*"], False))
    expr = main(LOOKUP + " | search isutility=True cat!=RMM", lookup=resolve)
    kind = "lookup:remote_access_software"
    assert expr == A(
        P("index", EQ, "x"),
        O(
            P("process_name", EQ, "anydesk.exe", "lookup", kind=kind),
            P("process_name", CONTAINS, "teamviewer", "lookup", kind=kind),
            P("process_name", STARTS, "lit*eral", "lookup", kind=kind),
        ),
    )
    # the filter reaches the resolver in the table's own column names
    assert calls == [
        (
            "remote_access_software",
            "remote_utility",
            A(P("isutility", EQ, "True"), Not(P("category", EQ, "RMM", "!="))),
        )
    ]


def test_an_unresolved_lookup_is_an_in_list_and_the_filter() -> None:
    for resolve in (None, table([], None)):
        expr = main(LOOKUP + ' | where isutility="True"', lookup=resolve)
        assert expr == A(
            P("index", EQ, "x"),
            P(
                "process_name",
                LISTED,
                "remote_access_software",
                "lookup",
                kind="lookup:remote_access_software",
            ),
            P("isutility", EQ, "True", "=", True, kind="derived"),
        )


def test_isnull_on_a_lookup_output_excludes_the_table() -> None:
    calls: list[tuple[str, str, Expr | None]] = []
    text = (
        "index=x | lookup corp_domains domain AS query OUTPUT domain AS known | where isnull(known)"
    )
    expr = main(text, lookup=table(calls, (["corp.com"], True)))
    kind = "lookup:corp_domains"
    assert expr == A(P("index", EQ, "x"), Not(P("query", EQ, "corp.com", "lookup", True, kind)))
    assert calls == [("corp_domains", "domain", P("domain", EXISTS, None, "isnull()"))]
    assert exclusions(expr) == [P("query", EQ, "corp.com", "lookup", True, kind)]


def test_lookup_input_fields_are_resolved_through_the_pipeline() -> None:
    text = (
        TSTATS
        + " | lookup lolbas name AS parent_process_name OUTPUT is_lolbas | search is_lolbas=true"
    )
    expr = main(text, lookup=table([], (["certutil.exe"], False)))
    assert predicates(expr)[-1] == P(
        "Processes.parent_process_name", EQ, "certutil.exe", "lookup", kind="lookup:lolbas"
    )


# -- errors --------------------------------------------------------------------------------------

ERRORS = [
    ('index=x process="cmd.exe', 1, 17, "unterminated quoted string"),
    ("index=x [search y=1", 1, 9, "unbalanced '['"),
    ("index=x ]", 1, 9, "unbalanced ']'"),
    ("index=x\n| where x = = 1", 2, 13, "unexpected '=' in eval expression"),
    ("a=1 OR", 1, 7, "unexpected end of input in search expression"),
    ("| tstats count where (a=1 by host", 1, 34, "unexpected end of input in search expression"),
    ("index=x | eval = 1", 1, 16, "unexpected '=' in eval expression"),
]


@pytest.mark.parametrize(("text", "line", "column", "message"), ERRORS)
def test_syntax_error(text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(QueryError) as info:
        spl.parse(text)
    assert (info.value.line, info.value.column) == (line, column)
    assert info.value.message.startswith(message)


def test_import_does_no_work() -> None:
    code = (
        "import detcat.languages.spl, detcat.languages.spl.expr as e; print(e._parser.cache_info())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "currsize=0" in out.stdout  # the grammar is built on first parse, not on import


# -- the real corpus -------------------------------------------------------------------------------

# Opaque reasons the corpus may show, each a documented limit of the model.
DOCUMENTED = {
    "not events: mstats: metrics",
    "not events: MLTK fit/apply: model scoring",
    "not events: inputlookup: a lookup table",
    "computed value: arithmetic expression",
    "computed value: len()",
    "computed value: mvcount()",
    "computed value: mvfind()",
    "computed value: match() pattern",
    "unsupported command: outlier",
}


@pytest.fixture(scope="module")
def searches(corpora: Path) -> list[tuple[str, str, list[str]]]:
    """(path, macro-expanded search, undefined macro names) of every active detection."""
    import yaml

    from detcat.sources.splunk import Macros  # the source module owns macro expansion

    root = corpora / "splunk"
    macros, _ = Macros.load(root / "macros")
    out = []
    for path in sorted((root / "detections").rglob("*.yml")):
        rel = path.relative_to(root).as_posix()
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
        if rel.startswith("detections/deprecated/") or doc.get("status") == "deprecated":
            continue
        exp = macros.expand(doc["search"])
        out.append((rel, exp.text, [o.text for o in exp.opaques]))
    return out


@pytest.fixture(scope="module")
def parsed(corpora: Path, searches: list[tuple[str, str, list[str]]]) -> dict[str, list[Stage]]:
    from detcat.sources.splunk_lookups import LookupTables

    tables, _ = LookupTables.load(corpora / "splunk" / "lookups")
    return {rel: spl.parse(text, lookup=tables.resolve) for rel, text, _ in searches}


def test_corpus_every_search_parses(
    searches: list[tuple[str, str, list[str]]], parsed: dict[str, list[Stage]]
) -> None:
    assert len(searches) == len(parsed) == 1613
    assert all(stage(stages, "main") for stages in parsed.values())


def test_corpus_coverage(
    searches: list[tuple[str, str, list[str]]], parsed: dict[str, list[Stage]]
) -> None:
    undefined = {rel: macros for rel, _, macros in searches if macros}
    reasons: Counter[str] = Counter()
    full = 0
    for rel, stages in parsed.items():
        found = [o.why() for s in stages for o in opaques(s.expr)]
        reasons.update(set(found))
        has_query = any(s.expr is not None for s in stages)
        full += has_query and not found and rel not in undefined
    share = full / len(parsed)
    print(f"\nSPL fully parsed: {full}/{len(parsed)} = {share:.2%}; rules per reason: {reasons}")
    assert share >= 0.97
    assert set(reasons) <= DOCUMENTED, set(reasons) - DOCUMENTED


def test_corpus_remote_access_lookups_resolve_to_tool_names(parsed: dict[str, list[Stage]]) -> None:
    using = {
        rel: [
            p
            for s in stages
            for p in predicates(s.expr)
            if p.kind == "lookup:remote_access_software"
        ]
        for rel, stages in parsed.items()
    }
    using = {rel: preds for rel, preds in using.items() if preds}
    assert len(using) >= 5
    for rel, preds in using.items():
        values = {str(p.value).casefold() for p in preds}
        assert len(values) >= 50 and any("anydesk" in v for v in values), rel
        assert all(p.op is not LISTED for p in preds), rel


def test_corpus_tstats_fields_keep_their_datamodel_prefix(parsed: dict[str, list[Stage]]) -> None:
    stages = parsed["detections/endpoint/cmdline_tool_not_executed_in_cmd_shell.yml"]
    main_stage = stage(stages, "main")
    assert main_stage.params["datamodel"] == "Endpoint.Processes"
    assert P("Processes.parent_process_name", EQ, "cmd.exe") in exclusions(main_stage.expr)
    fields = {p.field_raw for s in parsed.values() for p in predicates(s[0].expr)}
    assert {"Processes.process_name", "Filesystem.file_path", "Registry.registry_path"} <= fields
