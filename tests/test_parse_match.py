"""``detcat parse`` and ``detcat match`` as specifications: the evaluator's
semantics per operator, event shapes and canonical names, rule selection and
stage reporting, and the two commands' output shapes and exit codes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from match_helpers import rule_catalog

from detcat.cli import main
from detcat.match import Matcher, RulePlan, StagePlan, required_fields
from detcat.match.evaluate import compile_expr
from detcat.match.events import canonical_event, flatten, windows_argv
from detcat.match.reading import read_documents
from detcat.model import And, Not, Op, Opaque, Or, Predicate, StageRole
from detcat.parse import parse_query


def P(field: str | None, op: Op, value: Any, cased: bool = False, kind: str = "") -> Predicate:
    return Predicate(field, op, value, case_sensitive=cased, field=field, kind=kind)


def ev(**fields: Any) -> Any:
    """A flat event whose names are already canonical (dotted ECS names)."""
    return canonical_event("test", fields)


OPAQUE = Opaque("length(x) > 3", "computed value", "length()")
CMD = {"process.command_line": 'C:\\Windows\\cmd.exe /c "whoami /all"'}

# (predicate or tree, event fields, expected: True / False / None = unknown)
SEMANTICS = [
    # eq: case-insensitive unless cased; numbers compare numerically
    (P("process.name", Op.EQ, "CMD.EXE"), {"process.name": "cmd.exe"}, True),
    (P("process.name", Op.EQ, "CMD.EXE", cased=True), {"process.name": "cmd.exe"}, False),
    (P("event.code", Op.EQ, 4688), {"event.code": "4688"}, True),
    (P("event.code", Op.EQ, "4688"), {"event.code": 4688}, True),
    (
        P("winlog.event_data.GrantedAccess", Op.EQ, 5136),
        {"winlog.event_data.GrantedAccess": "0x1410"},
        True,
    ),
    (P("dll.code_signature.exists", Op.EQ, True), {"dll.code_signature.exists": "true"}, True),
    # substring operators
    (P("process.command_line", Op.CONTAINS, "WHOAMI"), CMD, True),
    (P("process.command_line", Op.STARTS_WITH, "c:\\windows\\"), CMD, True),
    (P("process.command_line", Op.ENDS_WITH, '/all"'), CMD, True),
    (P("process.command_line", Op.ENDS_WITH, "/all"), CMD, False),
    # wildcard: * any run, ? one character, the whole value
    (
        P("process.executable", Op.WILDCARD, "C:\\*\\cmd.e?e"),
        {"process.executable": "c:\\windows\\system32\\cmd.exe"},
        True,
    ),
    (
        P("process.executable", Op.WILDCARD, "*\\cmd.e?e"),
        {"process.executable": "c:\\cmd.exe.bak"},
        False,
    ),
    # regex: searched here (the language decides, see FULL below), case by predicate
    (P("process.command_line", Op.REGEX_MATCH, r"who\w+\s/ALL", cased=False), CMD, True),
    (P("process.command_line", Op.REGEX_MATCH, r"who\w+\s/ALL", cased=True), CMD, False),
    # look-ahead: RE2 refuses it, Python's re runs it under a time limit
    (P("process.command_line", Op.REGEX_MATCH, r"cmd(?=\.exe)"), CMD, True),
    # catastrophic backtracking: out of time is unknown, never a hang
    (
        P("process.command_line", Op.REGEX_MATCH, r"(?=(a|aa)+b)"),
        {"process.command_line": "a" * 40},
        None,
    ),
    # cidr
    (P("destination.ip", Op.CIDR, "10.0.0.0/8"), {"destination.ip": "10.1.2.3"}, True),
    (P("destination.ip", Op.CIDR, "fe80::/10"), {"destination.ip": "fe80::1"}, True),
    (P("destination.ip", Op.CIDR, "10.0.0.0/8"), {"destination.ip": "not-an-ip"}, False),
    # numeric comparisons read strings as numbers
    (P("destination.port", Op.GT, 1024), {"destination.port": "8080"}, True),
    (P("destination.port", Op.LTE, 1024), {"destination.port": 8080}, False),
    (P("destination.port", Op.GTE, 80), {"destination.port": "http"}, False),
    (P("destination.port", Op.LT, 1024), {"destination.port": 443}, True),
    # a string bound orders text by code point (EQL, KQL ranges), folded unless cased
    (P("process.name", Op.GTE, "System", cased=True), {"process.name": "System Idle"}, True),
    (P("process.name", Op.LT, "system", cased=True), {"process.name": "System"}, True),
    (P("process.name", Op.LT, "system"), {"process.name": "System"}, False),
    # presence
    (P("process.parent.executable", Op.EXISTS, True), {"process.parent.executable": ""}, True),
    (P("process.parent.executable", Op.EXISTS, True), {}, False),
    (P("process.parent.executable", Op.IS_NULL, None), {}, True),
    (P("process.parent.executable", Op.IS_NULL, None), {"process.parent.executable": ""}, True),
    (P("process.parent.executable", Op.IS_NULL, None), {"process.parent.executable": "x"}, False),
    # a missing field fails every test; its negation holds
    (P("process.name", Op.EQ, "cmd.exe"), {}, False),
    (Not(P("process.name", Op.EQ, "cmd.exe")), {}, True),
    # field-less keywords search every string value; wildcards inside work too
    (P(None, Op.KEYWORD, "WHOAMI"), CMD, True),
    (P(None, Op.KEYWORD, "who*all"), CMD, True),
    # other field-less searches (Sigma's keywords|re, SPL's regex _raw=…) likewise,
    # never a field named "message"; a field-less test that is no search: unknown
    (P(None, Op.REGEX_MATCH, r"whoami\s+/ALL", cased=True), CMD, False),
    (P(None, Op.REGEX_MATCH, r"whoami\s+/ALL"), CMD, True),
    (P(None, Op.CONTAINS, "WHOAMI"), CMD, True),
    (P(None, Op.REGEX_MATCH, "whoami"), {"message": "whoami"}, True),
    (P(None, Op.REGEX_MATCH, "whoami"), {"process.pid": 4}, False),
    (P(None, Op.STARTS_WITH, "cmd"), CMD, None),
    (P(None, Op.CIDR, "10.0.0.0/8"), {"source.ip": "10.1.1.1"}, None),
    # a deployer's list: unknown, but a missing field is in no list
    (P("user.name", Op.IN_LIST, "admins"), {"user.name": "bob"}, None),
    (P("user.name", Op.IN_LIST, "admins"), {}, False),
    # field_ref compares with the other field (here already canonical)
    (
        P("process.parent.executable", Op.FIELD_REF, "process.executable"),
        {"process.parent.executable": "A", "process.executable": "a"},
        True,
    ),
    # implied predicates restate their source: always true
    (P("process.name", Op.EQ, "nope.exe", kind="implied"), {}, True),
    # a column the query computes (ES|QL EVAL) that no event field names: unknown
    (P("elastic:Esql.rmm_vendor", Op.EQ, "anydesk", kind="derived"), {}, None),
    (
        P("elastic:Esql.rmm_vendor", Op.EQ, "anydesk", kind="derived"),
        {"elastic:Esql.rmm_vendor": "x"},
        None,
    ),
    # multi-valued fields: any value
    (P("process.args", Op.EQ, "/c"), {"process.args": ["cmd.exe", "/c"]}, True),
    # Kleene logic around unknown parts
    (And((P("process.name", Op.EQ, "cmd.exe"), OPAQUE)), {"process.name": "cmd.exe"}, None),
    (And((P("process.name", Op.EQ, "x.exe"), OPAQUE)), {"process.name": "cmd.exe"}, False),
    (Or((P("process.name", Op.EQ, "cmd.exe"), OPAQUE)), {"process.name": "cmd.exe"}, True),
    (Not(OPAQUE), {}, None),
]


@pytest.mark.parametrize(("expr", "fields", "expected"), SEMANTICS)
def test_evaluator_semantics(expr: Any, fields: dict[str, Any], expected: bool | None) -> None:
    assert compile_expr(expr, full_match=False)(ev(**fields)) is expected


# (language, query, event fields, expected): parsed and normalized, then evaluated
PARSED_SEMANTICS = [
    # .caseless is a lowercase-normalized keyword: the comparison ignores case
    ("esql", 'FROM logs-* | WHERE process.name.caseless == "anydesk.exe"',
     {"process.name": "AnyDesk.exe"}, True),
    ("esql", 'FROM logs-* | WHERE process.name == "anydesk.exe"',
     {"process.name": "AnyDesk.exe"}, False),
    # Kibana matches keyword fields case-sensitively, full-text fields by their words
    ("kql", 'process.name : "anydesk.exe"', {"process.name": "AnyDesk.exe"}, False),
    ("kql", 'powershell.file.script_block_text : "Invoke-Mimikatz"',
     {"powershell.file.script_block_text": "IEX (invoke-mimikatz -DumpCreds)"}, True),
    # SPL's _raw is the event's text: searched in every value, as a keyword
    ("spl", '| regex _raw="who.mi\\s+/all"', CMD, True),
    ("spl", '| regex _raw!="who.mi\\s+/all"', CMD, False),
    ("spl", '_raw="*WHOAMI*"', CMD, True),
    ("spl", '| where match(_raw, "whoami")', {"user.name": "bob"}, False),
    # a filter on an EVAL-computed column is not a test of an event field
    ("esql", 'FROM logs-* | EVAL Esql.v = CONCAT(process.name, "x") | WHERE Esql.v == "ax"',
     {"process.name": "a"}, None),
]  # fmt: skip


@pytest.mark.parametrize(("language", "query", "fields", "expected"), PARSED_SEMANTICS)
def test_parsed_query_semantics(
    language: str, query: str, fields: dict[str, Any], expected: bool | None
) -> None:
    (stage,) = parse_query(language, query)
    full = language in ("kql", "eql", "esql")
    assert compile_expr(stage.expr, full_match=full)(ev(**fields)) is expected


# Regexes of EQL, ES|QL and KQL match the whole value; Sigma's, SPL's and YARA-L's search.
FULL = [
    (r"cmd\.exe", False, True),
    (r"cmd\.exe", True, False),
    (r".*cmd\.exe.*", True, True),
]


@pytest.mark.parametrize(("pattern", "full", "expected"), FULL)
def test_regex_search_or_whole_value(pattern: str, full: bool, expected: bool) -> None:
    pred = P("process.command_line", Op.REGEX_MATCH, pattern)
    assert compile_expr(pred, full_match=full)(ev(**CMD)) is expected


# -- events: shapes and names -------------------------------------------------------------

SYSMON_1 = {
    "Event": {
        "System": {
            "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
            "EventID": 1,
            "Channel": "Microsoft-Windows-Sysmon/Operational",
            "Execution": {"#attributes": {"ProcessID": 4584}},
        },
        "EventData": {
            "Image": "C:\\Windows\\System32\\cmd.exe",
            "CommandLine": "cmd.exe /c whoami",
            "ParentImage": "C:\\Windows\\explorer.exe",
            "ProcessId": 12184,
            "Hashes": "SHA1=AAA,MD5=BBB,IMPHASH=CCC",
            "GrantedAccess": "0x1410",
        },
    }
}

CANONICAL = [
    ("process.executable", ["C:\\Windows\\System32\\cmd.exe"]),
    ("process.name", ["cmd.exe"]),  # implied from the path, as for rules
    ("process.parent.name", ["explorer.exe"]),
    ("process.pid", [12184]),  # the event's process, not Sysmon's own (Execution)
    ("process.hash.sha1", ["AAA"]),
    ("process.pe.imphash", ["CCC"]),
    ("event.code", [1]),
    ("event.provider", ["Microsoft-Windows-Sysmon"]),
    ("winlog.event_data.GrantedAccess", ["0x1410"]),  # no ECS name: Sigma's fallback
    ("process.args", ["cmd.exe", "/c", "whoami"]),
    ("event.category", ["process", "PROCESS_LAUNCH"]),
    ("host.os.type", ["windows"]),
]


@pytest.mark.parametrize(("name", "values"), CANONICAL)
def test_sysmon_event_canonical_names(name: str, values: list[Any]) -> None:
    e = canonical_event("sysmon1", SYSMON_1)
    assert e.catalog_id == "sysmon:1"
    assert e.fields[name] == values


def test_log_source_scopes_pick_the_meaning_of_a_name() -> None:
    """ImageLoaded is a DLL in Sysmon 7 and a driver file in Sysmon 6, as in Sigma's
    tables. (Splunk's table says dll.path everywhere; the event carries every
    vendor's reading, and rules are kept to their own events.)"""

    def sysmon(eid: int) -> Any:
        return canonical_event("x", {"Event": {
            "System": {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
                       "EventID": eid},
            "EventData": {"ImageLoaded": "C:\\x\\a.dll"}}})  # fmt: skip

    assert "file.path" in sysmon(6).fields and "file.path" not in sysmon(7).fields
    assert "dll.path" in sysmon(7).fields


FLATTEN = [
    ({"Event": {"System": {}, "EventData": {"Data": [
        {"#attributes": {"Name": "TargetUserName"}, "#text": "bob"}]}}}, "TargetUserName", ["bob"]),
    ({"Event": {"System": {}, "EventData": {"Threat Name": "EICAR"}}}, "ThreatName", ["EICAR"]),
    ({"Event": {"System": {}, "UserData": {"Op": {"User": "x\\y"}}}}, "User", ["x\\y"]),
    ({"process": {"parent": {"name": "a.exe"}}}, "process.parent.name", ["a.exe"]),
    ({"process": {"args": ["a", "b"]}}, "process.args", ["a", "b"]),
]  # fmt: skip


@pytest.mark.parametrize(("doc", "name", "values"), FLATTEN)
def test_flatten(doc: dict[str, Any], name: str, values: list[Any]) -> None:
    assert flatten(doc)[name] == values


FILES = [
    ('{"a": 1}', ["f.json"]),
    ('{"a": 1}\n{"a": 2}\n', ["f.json:1", "f.json:2"]),
    ('[\n  {"a": 1},\n  {"a": 2}\n]', ["f.json:2", "f.json:3"]),
    ('{\n  "a": 1\n}\n{\n  "a": 2\n}', ["f.json:1", "f.json:4"]),
]


@pytest.mark.parametrize(("text", "labels"), FILES)
def test_event_file_shapes(tmp_path: Path, text: str, labels: list[str]) -> None:
    f = tmp_path / "f.json"
    f.write_text(text)
    got = [label.replace(str(tmp_path) + "/", "") for label, _ in read_documents(f)]
    assert got == labels


ARGV = [
    ('cmd.exe /c "a b"', ["cmd.exe", "/c", "a b"]),
    ('"C:\\Program Files\\x.exe" -y', ["C:\\Program Files\\x.exe", "-y"]),
    ('a\\\\"b c"', ["a\\b c"]),
    ('a\\"b', ['a"b']),
]


@pytest.mark.parametrize(("cmd", "argv"), ARGV)
def test_windows_argv(cmd: str, argv: list[str]) -> None:
    assert windows_argv(cmd) == argv


# -- rules: selection and stages --------------------------------------------------------------


def plan(vendor: str, rid: str, *stages: tuple[str, StageRole, Any], **kw: Any) -> RulePlan:
    rule = RulePlan(vendor, rid, rid, kw.get("language", "sigma"), kw.get("context", {}))
    for name, role, expr in stages:
        neg = name.startswith("!")
        rule.stages.append(StagePlan(rule, name, role, neg, kw.get("params", {}), expr,
                                     frozenset(kw.get("events", ()))))  # fmt: skip
    return rule


EV = StageRole.EVENTS
IS_CMD = P("process.name", Op.EQ, "cmd.exe")
IS_PS = P("process.name", Op.EQ, "powershell.exe")
WIN = {"logsource": {"product": "windows", "category": "process_creation"}}


def outcome(rule: RulePlan, event: Any = None) -> str:
    r = Matcher([rule]).match(event or canonical_event("e", SYSMON_1))
    kinds = [k for k, lst in (("match", r.matches), ("partial", r.partial),
                              ("undetermined", r.undetermined)) if lst]  # fmt: skip
    assert len(kinds) <= 1
    return kinds[0] if kinds else "none"


def splunk(rid: str, datamodel: str) -> RulePlan:
    """A search over a data model (``| tstats … from datamodel=…``)."""
    return plan("splunk", rid, ("main", EV, IS_CMD), language="spl",
                params={"datamodel": datamodel})  # fmt: skip


RULES = [
    ("one event filter that holds", plan("sigma", "a", ("main", EV, IS_CMD), context=WIN), "match"),
    ("it does not hold", plan("sigma", "b", ("main", EV, IS_PS), context=WIN), "none"),
    # a sequence is evaluated over the stream (tests/test_match_stream.py): one step
    # opens it, silently
    ("a sequence: one step matched", plan("elastic", "c", ("sequence[1]", EV, IS_CMD),
                                          ("sequence[2]", EV, IS_PS), language="eql"), "none"),
    ("an aggregation follows", plan("splunk", "d", ("main", EV, IS_CMD),
                                    ("aggregate[1]", StageRole.AGGREGATE, None)), "partial"),
    ("#e > 5 in YARA-L", plan("chronicle", "e", ("$e", EV, IS_CMD), params={"min_count": 6}),
     "partial"),
    ("depends on an Opaque part", plan("sigma", "f", ("main", EV, And((IS_CMD, OPAQUE)))),
     "undetermined"),
    ("written for another product", plan("sigma", "g", ("main", EV, Not(IS_PS)),
                                         context={"logsource": {"product": "cisco"}}), "none"),
    ("written for other events", plan("sigma", "h", ("main", EV, IS_CMD), context=WIN,
                                      events=["sysmon:11"]), "none"),
    ("written for this event", plan("sigma", "i", ("main", EV, IS_CMD), context=WIN,
                                    events=["sysmon:1", "security:4688"]), "match"),
    ("another log source category", plan("sigma", "j", ("main", EV, IS_CMD), context={
        "logsource": {"product": "windows", "category": "antivirus"}}), "none"),
    ("EQL process where", plan("elastic", "k", ("main", EV, IS_CMD), language="eql",
                               params={"category": "process"}), "match"),
    ("EQL file where", plan("elastic", "l", ("main", EV, IS_CMD), language="eql",
                            params={"category": "file"}), "none"),
    ("EQL any where", plan("elastic", "m", ("main", EV, IS_CMD), language="eql",
                           params={"category": "any"}), "match"),
    # A Sysmon process event fills Splunk's Endpoint data model, no other (the
    # datamodel table of event_sources.toml): searches over other models are not
    # for it, one over any dataset of Endpoint may be.
    ("SPL over another data model", splunk("n", "Web.Web"), "none"),
    ("SPL over another data model, a dataset", splunk("o", "Network_Traffic.All_Traffic"), "none"),
    ("SPL over the event's dataset", splunk("p", "Endpoint.Processes"), "match"),
    ("SPL over the event's data model", splunk("q", "Endpoint"), "match"),
    ("SPL over another dataset of its model", splunk("r", "Endpoint.Registry"), "match"),
]  # fmt: skip


@pytest.mark.parametrize(("why", "rule", "expected"), RULES, ids=[r[0] for r in RULES])
def test_rule_outcome(why: str, rule: RulePlan, expected: str) -> None:
    assert outcome(rule) == expected


def test_correlation_reports_the_rule_it_references() -> None:
    base = plan("sigma", "base-id", ("main", EV, IS_CMD), context=WIN)
    corr = plan("sigma", "corr", ("rule:base-id", StageRole.CORRELATION, None),
                params={"rule": "base-id"})  # fmt: skip
    r = Matcher([base, corr]).match(canonical_event("e", SYSMON_1))
    assert [m["id"] for m in r.matches] == ["base-id"]
    assert [(p["id"], p["stages"]) for p in r.partial] == [("corr", ["rule:base-id"])]


REQUIRED = [
    (And((IS_CMD, P("process.args", Op.EQ, "/c"))), {"process.name", "process.args"}),
    (Or((IS_CMD, P("process.executable", Op.ENDS_WITH, "\\cmd.exe"))), set()),
    (Or((IS_CMD, IS_PS)), {"process.name"}),
    (And((IS_CMD, Not(P("user.name", Op.EQ, "x")))), {"process.name"}),
    (P(None, Op.KEYWORD, "x"), set()),
]


@pytest.mark.parametrize(("expr", "fields"), REQUIRED)
def test_required_fields_index_rules(expr: Any, fields: set[str]) -> None:
    assert required_fields(expr) == fields


# -- the commands ------------------------------------------------------------------------------

SIGMA_RULE = textwrap.dedent(
    """\
    title: Whoami
    id: 11111111-1111-4111-8111-111111111111
    status: test
    logsource:
        category: process_creation
        product: windows
    detection:
        selection:
            Image|endswith: '\\whoami.exe'
        filter:
            ParentImage|endswith: '\\explorer.exe'
        condition: selection and not filter
    level: low
    """
)

PARSE = [
    ("kql", "process.name:cmd.exe", [("process.name", "process.name", "eq", "cmd.exe", False)]),
    ("eql", 'process where not process.args : "/c"', [
        ("process.args", "process.args", "eq", "/c", True)]),
    ("spl", 'EventCode=4688 NOT Image="*\\\\cmd.exe"', [
        ("event.code", "EventCode", "eq", 4688, False),
        ("process.executable", "Image", "ends_with", "\\cmd.exe", True),
        ("process.name", "Image", "eq", "cmd.exe", True)]),
    ("sigma", SIGMA_RULE, [
        ("process.executable", "Image", "ends_with", "\\whoami.exe", False),
        ("process.name", "Image", "eq", "whoami.exe", False),
        ("process.parent.executable", "ParentImage", "ends_with", "\\explorer.exe", True),
        ("process.parent.name", "ParentImage", "eq", "explorer.exe", True)]),
]  # fmt: skip


@pytest.mark.parametrize(("language", "query", "expected"), PARSE)
def test_parse_json(language: str, query: str, expected: list[tuple[Any, ...]]) -> None:
    res = CliRunner().invoke(main, ["parse", language, "--json"], input=query)
    assert res.exit_code == 0, res.output
    stage = json.loads(res.output)["stages"][0]
    got = [
        (p["field"], p["field_raw"], p["op"], p["value"], p["negated"]) for p in stage["predicates"]
    ]
    assert got == expected


def test_parse_text_is_a_tree() -> None:
    """Values exactly as stored (one backslash), EXCL on the top-level NOT (what the
    help promises), and the counts the JSON holds."""
    res = CliRunner().invoke(main, ["parse", "sigma"], input=SIGMA_RULE)
    assert res.exit_code == 0
    assert res.output.splitlines() == [
        "stage main (events)  events: sysmon:1, security:4688",
        "  AND",
        "    AND",
        '      process.executable [Image] ends_with "\\whoami.exe"  |endswith',
        '      process.name [Image] eq "whoami.exe"  (implied)  |endswith',
        "    EXCL",
        "      AND",
        '        process.parent.executable [ParentImage] ends_with "\\explorer.exe"  |endswith',
        '        process.parent.name [ParentImage] eq "explorer.exe"  (implied)  |endswith',
        "  = 4 predicates, 2 exclusions, 0 opaque",
    ]


CS = "  (case-sensitive)"  # KQL on a keyword field (data/field_types.toml)
TREES = [  # (kql query, the tree's lines): NOT under OR is no exclusion
    ("not a:1", ["EXCL", f'  elastic:a [a] eq "1"{CS}  :']),
    ("a:1 or not b:2",
     ["OR", f'  elastic:a [a] eq "1"{CS}  :', "  NOT", f'    elastic:b [b] eq "2"{CS}  :']),
]  # fmt: skip


@pytest.mark.parametrize(("query", "lines"), TREES)
def test_parse_marks_exclusions_only_at_the_top(query: str, lines: list[str]) -> None:
    res = CliRunner().invoke(main, ["parse", "kql", query])
    assert res.output.splitlines()[1:-1] == ["  " + line for line in lines]


def test_parse_jsonl_batch() -> None:
    lines = [
        {"id": 1, "query": "process.name:cmd.exe and not user.name:SYSTEM"},
        {"id": "two", "query": "process.name:("},
        "not json",
    ]
    stdin = "\n".join(json.dumps(x) if isinstance(x, dict) else x for x in lines)
    res = CliRunner().invoke(main, ["parse", "kql", "--jsonl"], input=stdin)
    assert res.exit_code == 1  # some lines failed; every line still answered
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert [r["id"] for r in rows] == [1, "two", None]
    assert rows[0]["error"] is None
    assert rows[0]["stages"][0]["predicates"] == [
        {"field": "process.name", "field_raw": "process.name", "op": "eq", "value": "cmd.exe",
         "negated": False, "exclusion": False},
        {"field": "user.name", "field_raw": "user.name", "op": "eq", "value": "SYSTEM",
         "negated": True, "exclusion": True},
    ]  # fmt: skip
    assert rows[0]["stages"][0]["opaque"] == []
    assert rows[1]["error"] and rows[2]["error"].startswith("input line 3")


EXIT_CODES = [
    (["parse", "kql", "process.name:("], 1),
    (["parse", "cobol", "x"], 2),
    (["match", "--db", "{tmp}/none.sqlite", "{tmp}/ev.json"], 3),
    (["match", "--db", "{tmp}/none.sqlite", "{tmp}/missing.json"], 3),
]


@pytest.mark.parametrize(("args", "code"), EXIT_CODES)
def test_exit_codes(tmp_path: Path, args: list[str], code: int) -> None:
    (tmp_path / "ev.json").write_text(json.dumps(SYSMON_1))
    res = CliRunner().invoke(main, [a.format(tmp=tmp_path) for a in args])
    assert res.exit_code == code, res.output


@pytest.fixture(scope="module")
def tiny_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return rule_catalog(tmp_path_factory.mktemp("catalog"), "sigma", "whoami.yml", SIGMA_RULE)


def test_match_json(tiny_db: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    whoami = json.loads(json.dumps(SYSMON_1))
    whoami["Event"]["EventData"]["Image"] = "C:\\Windows\\System32\\whoami.exe"
    whoami["Event"]["EventData"]["ParentImage"] = "C:\\Windows\\System32\\cmd.exe"
    events.write_text(json.dumps(whoami) + "\n" + json.dumps(SYSMON_1) + "\n")
    res = CliRunner().invoke(main, ["match", "--db", str(tiny_db), "--json", str(events)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == [
        {"event": f"{events}:1", "matches": [{"vendor": "sigma", "title": "Whoami",
                                              "id": "11111111-1111-4111-8111-111111111111"}]},
        {"event": f"{events}:2", "matches": []},
    ]  # fmt: skip


def test_python_api_matches_documents_as_the_cli(tiny_db: Path) -> None:
    """``Matcher.from_catalog(path).match(document)``: the library's entry point."""
    whoami = json.loads(json.dumps(SYSMON_1))
    whoami["Event"]["EventData"]["Image"] = "C:\\Windows\\System32\\whoami.exe"
    whoami["Event"]["EventData"]["ParentImage"] = "C:\\Windows\\System32\\cmd.exe"
    matcher = Matcher.from_catalog(tiny_db)
    assert matcher.match(whoami).to_json() == {
        "event": "event",
        "matches": [{"vendor": "sigma", "title": "Whoami",
                     "id": "11111111-1111-4111-8111-111111111111"}],
    }  # fmt: skip
    assert matcher.match(canonical_event("e", SYSMON_1)).to_json() == {"event": "e", "matches": []}


def test_match_unreadable_event_file_fails(tiny_db: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    res = CliRunner().invoke(main, ["match", "--db", str(tiny_db), str(bad)])
    assert res.exit_code == 1
    assert "not JSON" in res.output


ECS_PROCESS = {"event": {"category": ["process"]}, "process": {"name": "cmd.exe"}}
ECS_RULES = [
    ("Sigma process_creation", plan("sigma", "a", ("main", EV, IS_CMD), context=WIN), "match"),
    ("EQL process where", plan("elastic", "b", ("main", EV, IS_CMD), language="eql",
                               params={"category": "process"}), "match"),
    ("EQL network where", plan("elastic", "c", ("main", EV, IS_CMD), language="eql",
                               params={"category": "network"}), "none"),
    ("Sigma file_event", plan("sigma", "d", ("main", EV, IS_CMD), context={
        "logsource": {"product": "windows", "category": "file_event"}}), "none"),
    ("reads no field the event has", plan("sigma", "e", ("main", EV, Not(
        P("user.name", Op.EQ, "x")))), "none"),
    # nothing says which data models an ECS document fills
    ("SPL over the Web data model", splunk("f", "Web.Web"), "match"),
]  # fmt: skip


@pytest.mark.parametrize(("why", "rule", "expected"), ECS_RULES, ids=[r[0] for r in ECS_RULES])
def test_rule_outcome_on_an_ecs_event(why: str, rule: RulePlan, expected: str) -> None:
    """An ECS document states its categories; they stand for Sigma's categories too."""
    assert outcome(rule, canonical_event("ecs", ECS_PROCESS)) == expected
