"""Multi-event rules compiled to SQL (``sqlgen.stateful``) give the Python
matcher's detections: per rule kind a table of event streams built for the
edges (window boundaries to the fraction of a second, missing and empty group
fields, several groups, counts exactly at the threshold, the reset after an
alert, events without a time, keys typed as numbers and strings). Each case
states the hits and unknowns the matcher gives (the specification), and
DuckDB must give the same hits, unknowns and events, on the same normalized
rows (the Python engine reads them in the stream order SQL uses)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import pytest

from detcat.backtest import backtest, results
from detcat.backtest.parquet import normalize_files
from detcat.match import RulePlan
from detcat.model import Rule
from detcat.normalize import normalize_rule
from detcat.sources import sigma
from detcat.sources.elastic import build_rule
from detcat.sqlgen import Status, compile_rules
from detcat.sqlgen.rules import wanted_columns


def at(seconds: float) -> str:
    whole = int(seconds)
    frac = f"{seconds - whole:.3f}"[1:] if seconds != whole else ""
    return f"2024-01-01T00:{whole // 60:02d}:{whole % 60:02d}{frac}Z"


def ecs(t: float | None, **fields: Any) -> dict[str, Any]:
    """An ECS document at ``t`` seconds (None: no time); ``a__b`` nests."""
    doc: dict[str, Any] = {} if t is None else {"@timestamp": at(t)}
    for name, value in fields.items():
        node = doc
        *path, last = name.split("__")
        for p in path:
            node = node.setdefault(p, {})
        node[last] = value
    return doc


def login(t: float | None, user: Any = "bob", ip: str = "10.0.0.1") -> dict[str, Any]:
    doc = ecs(t, event__category="authentication", source__ip=ip)
    if user is not None:
        doc["user"] = {"name": user}
    return doc


def threshold(
    value: int, window: str, by: list[str] | None = None, distinct: int = 0
) -> list[Rule]:
    spec: dict[str, Any] = {"field": ["user.name"] if by is None else by, "value": value}
    if distinct:
        spec["cardinality"] = [{"field": "source.ip", "value": distinct}]
    return [build_rule({"rule_id": "t", "name": "t", "type": "threshold", "language": "kuery",
                        "query": "event.category:authentication", "from": window,
                        "threshold": spec}, {}, "t.toml")]  # fmt: skip


def eql(query: str) -> list[Rule]:
    doc = {"rule_id": "s", "name": "s", "type": "eql", "language": "eql", "query": query}
    return [build_rule(doc, {}, "s.toml")]


def proc(t: float | None, pid: Any = 1, name: str = "cmd.exe", **more: Any) -> dict[str, Any]:
    return ecs(t, event__category="process", process__name=name, process__pid=pid, **more)


def file(t: float | None, pid: Any = 1, **more: Any) -> dict[str, Any]:
    return ecs(t, event__category="file", process__pid=pid, **more)


# (why, rules, events, (hits, unknown) of the stateful rule)
THRESHOLD = [
    ("three at the window's very edge", threshold(3, "now-2m"),
     [login(0), login(60), login(120)], (1, 0)),
    ("half a second past the window", threshold(3, "now-2m"),
     [login(0), login(60), login(120.5)], (0, 0)),
    ("the window slides on", threshold(3, "now-2m"),
     [login(0), login(60), login(120.5), login(121)], (1, 0)),
    ("counted per group, interleaved", threshold(2, "now-5m"),
     [login(0, "bob"), login(1, "eve"), login(2, "bob"), login(3, "ann"), login(4, "eve")],
     (2, 0)),
    ("missing and empty group fields take no part", threshold(2, "now-5m"),
     [login(0, None), login(1, ""), login(2, None), login(3, "bob"), login(4, "")], (0, 0)),
    ("an alert starts the count again", threshold(2, "now-5m"),
     [login(t) for t in range(5)], (2, 0)),
    ("value 1: every event", threshold(1, "now-5m"), [login(0), login(1, "eve")], (2, 0)),
    ("no group-by field: one group", threshold(3, "now-5m", []),
     [login(0, "a"), login(1, "b"), login(2, None), login(3, "c")], (1, 0)),
    ("1 and 1.0 are one key, '1' another", threshold(2, "now-5m"),
     [login(0, 1), login(1, "1"), login(2, 1.0)], (1, 0)),
    ("events without a time come last: unknown", threshold(2, "now-5m"),
     [login(None), login(0), login(None)], (0, 1)),
    ("files out of time order are read in time order", threshold(2, "now-1m"),
     [login(100), login(0), login(50)], (1, 0)),
    ("expired before an event without time", threshold(3, "now-1m"),
     [login(0), login(100), login(None)], (0, 0)),
    ("a run of candidates starting before the last alert's count is done",
     threshold(3, "now-10s"), [login(t) for t in (0, 0, 9, 11, 12, 13, 14, 15, 16)], (3, 0)),
    ("a run ending past its last alert", threshold(3, "now-10s"),
     [login(t) for t in (0, 0, 0, 1, 11, 11, 12)], (2, 0)),
    ("runs apart, each counted from its own start", threshold(2, "now-10s"),
     [login(t) for t in (0, 1, 2, 30, 31, 32, 33, 60, 75, 76)], (4, 0)),
    ("cardinality: distinct addresses", threshold(1, "now-5m", distinct=2),
     [login(0), login(1), login(2, ip="10.0.0.2"), login(3), login(4, ip="10.0.0.3")], (2, 0)),
    ("cardinality: a value seen again stays one", threshold(1, "now-5m", distinct=3),
     [login(0), login(1, ip="10.0.0.2"), login(2), login(3, ip="10.0.0.2")], (0, 0)),
    ("cardinality: values at the window's edge", threshold(1, "now-1m", distinct=2),
     [login(0), login(60, ip="10.0.0.2"), login(120.5, ip="10.0.0.3"), login(121)], (2, 0)),
    ("cardinality: a value refreshed inside the window", threshold(1, "now-1m", distinct=2),
     [login(0), login(50), login(100, ip="10.0.0.2")], (1, 0)),
    ("cardinality and count, reset between", threshold(3, "now-5m", distinct=2),
     [login(0), login(1), login(2), login(3, ip="10.0.0.2"), login(4), login(5, ip="10.0.0.3"),
      login(6, ip="10.0.0.3"), login(7, ip="10.0.0.3")], (2, 0)),
    ("cardinality: missing and empty values count nothing", threshold(1, "now-5m", distinct=2),
     [login(0), ecs(1, event__category="authentication", user__name="bob"), login(2, ip=""),
      login(3, ip="10.0.0.9"), login(None, ip="10.0.0.7")], (1, 0)),
]  # fmt: skip

SEQ = """sequence by process.pid with maxspan=1m
  [process where process.name == "cmd.exe"]
  [file where true]"""

SEQ3 = SEQ + "\n  [network where true]"


UNTIL = SEQ + '\nuntil [process where process.name == "logoff.exe"]'
UNTIL_FILE = SEQ + '\nuntil [file where file.name == "x"]'


def logoff(t: float | None, pid: Any = 1) -> dict[str, Any]:
    return proc(t, pid, "logoff.exe")


def net(t: float | None, pid: Any = 1) -> dict[str, Any]:
    return ecs(t, event__category="network", process__pid=pid)


SEQUENCES = [
    ("two steps at maxspan exactly", eql(SEQ), [proc(0), file(60)], (1, 0)),
    ("a fraction past maxspan", eql(SEQ), [proc(0), file(60.25)], (0, 0)),
    ("another key", eql(SEQ), [proc(0, 1), file(1, 2)], (0, 0)),
    ("the order matters", eql(SEQ), [file(0), proc(1)], (0, 0)),
    ("a later first step replaces the open one", eql(SEQ),
     [proc(0), proc(30), file(80)], (1, 0)),
    ("a second step consumes the open one, even too late", eql(SEQ),
     [proc(0), file(70), file(71)], (0, 0)),
    ("each key its own sequence", eql(SEQ),
     [proc(0, 1), proc(1, 2), file(2, 2), file(3, 1), file(4, 1)], (2, 0)),
    ("a missing key takes no part", eql(SEQ), [proc(0, None), file(1, None)], (0, 0)),
    ("pid 7 and '7' differ", eql(SEQ), [proc(0, 7), file(1, "7")], (0, 0)),
    ("no time with maxspan: unknown", eql(SEQ), [proc(0), file(None)], (0, 1)),
    ("without maxspan any time will do",
     eql('sequence by process.pid [process where process.name == "cmd.exe"] [file where true]'),
     [proc(0), file(3000), file(3001), proc(None), file(None)], (2, 0)),
    ("one event takes one step", eql("sequence [any where true] [any where true]"),
     [proc(0), file(1), proc(2)], (2, 0)),
    ("keys per step",
     eql("sequence [process where true] by process.pid [file where true] by process.ppid"),
     [proc(0, 5), file(1, 9, process__ppid=5), file(2, 5, process__ppid=9)], (1, 0)),
    ("three steps in order", eql(SEQ3), [proc(0), file(1), net(2)], (1, 0)),
    ("three steps: maxspan from the first", eql(SEQ3), [proc(0), file(30), net(60.5)], (0, 0)),
    ("three steps: a second step with nothing open takes nothing", eql(SEQ3),
     [proc(0), file(1), file(2), net(3), net(4)], (1, 0)),
    ("three steps: the later start moves on", eql(SEQ3),
     [proc(0), file(1), proc(50), file(51), net(100)], (1, 0)),
    ("three steps: an expired start is dropped, a later one goes on", eql(SEQ3),
     [proc(0), proc(10), file(20), file(65), net(66), file(67), net(68)], (1, 0)),
    ("three steps: keys apart", eql(SEQ3),
     [proc(0, 1), proc(1, 2), file(2, 2), file(3, 1), net(4, 1), net(5, 2), net(6, 2)], (2, 0)),
    ("three steps, no time on the last", eql(SEQ3), [proc(0), file(1), net(None)], (0, 1)),
    ("until drops the open sequence", eql(UNTIL), [proc(0), logoff(10), file(20)], (0, 0)),
    ("until of another key", eql(UNTIL), [proc(0, 1), logoff(10, 2), file(20, 1)], (1, 0)),
    ("until before the first step", eql(UNTIL), [logoff(0), proc(1), file(2)], (1, 0)),
    ("until and a step on one event: until first", eql(UNTIL_FILE),
     [proc(0), file(1, file__name="x"), proc(2), file(3)], (1, 0)),
    ("until between later steps", eql(SEQ3 + '\nuntil [process where process.name == "x"]'),
     [proc(0), file(1), proc(2, name="x"), net(3), proc(4), file(5), net(6)], (1, 0)),
    ("with runs=2 on a step",
     eql("sequence by process.pid [file where true] with runs=2 [process where true]"),
     [file(0), file(1), file(2), proc(3), file(4), proc(5)], (2, 0)),
]  # fmt: skip

BASE = """\
title: Failed logon {n}
id: {rid}
logsource: {{product: windows, service: security}}
detection:
    sel: {{EventID: {eid}, IpAddress|startswith: '{ip}'}}
    condition: sel
"""
FIRST = "11111111-1111-4111-8111-111111111111"
SECOND = "33333333-3333-4333-8333-333333333333"


def base(rid: str = FIRST, ip: str = "", eid: int = 4625) -> Rule:
    rule = sigma.parse_rule_text(BASE.format(n=rid[0], rid=rid, ip=ip, eid=eid))
    assert isinstance(rule, Rule)
    return rule


def correlation(
    kind: str, condition: str, refs: list[str], timespan: str = "5m", second: int = 4625
) -> list[Rule]:
    text = textwrap.dedent(f"""\
        title: Many failed logons
        id: 22222222-2222-4222-8222-222222222222
        correlation:
            type: {kind}
            rules: [{", ".join(refs)}]
            group-by: [TargetUserName]
            timespan: {timespan}
            condition: {condition}
        """)
    rule = sigma.parse_rule_text(text)
    assert isinstance(rule, Rule)
    bases = [base(FIRST, "10.0.0.1" if len(refs) > 1 else "")]
    return bases + ([base(SECOND, "10.0.0.2", second)] if len(refs) > 1 else []) + [rule]


def failed(
    t: float | None, user: str | None = "bob", ip: str = "10.0.0.1", eid: int = 4625
) -> dict[str, Any]:
    system: dict[str, Any] = {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
        "EventID": eid,
        "Channel": "Security",
    }
    if t is not None:
        system["TimeCreated"] = {"#attributes": {"SystemTime": at(t)}}
    data = {"IpAddress": ip, **({"TargetUserName": user} if user is not None else {})}
    return {"Event": {"System": system, "EventData": data}}


BOTH = [SECOND, FIRST]
CORRELATIONS = [
    ("event_count at gte exactly", correlation("event_count", "{gte: 2}", [FIRST]),
     [failed(0), failed(1, "eve"), failed(300)], (1, 0)),
    ("event_count a millisecond past the timespan",
     correlation("event_count", "{gte: 2}", [FIRST]), [failed(0), failed(300.001)], (0, 0)),
    ("event_count gt: one more", correlation("event_count", "{gt: 2}", [FIRST]),
     [failed(0), failed(1), failed(2), failed(3, None), failed(4)], (1, 0)),
    ("value_count of distinct addresses",
     correlation("value_count", "{gt: 1, field: IpAddress}", [FIRST]),
     [failed(0), failed(1), failed(2, ip="10.0.0.9"), failed(3, "eve", "10.0.0.9"),
      failed(4, ip="10.0.0.8"), failed(5, ip="10.0.0.7")], (2, 0)),
    ("value_count past the timespan", correlation("value_count", "{gte: 2, field: IpAddress}",
                                                  [FIRST], "10s"),
     [failed(0), failed(10.5, ip="10.0.0.9"), failed(20, ip="10.0.0.9"),
      failed(None, ip="10.0.0.1")], (0, 1)),
    ("temporal: both rules, any order", correlation("temporal", "{gte: 1}", BOTH),
     [failed(0, ip="10.0.0.2"), failed(1), failed(2), failed(3, ip="10.0.0.2")], (2, 0)),
    ("temporal: other groups", correlation("temporal", "{gte: 1}", BOTH),
     [failed(0), failed(1, "eve", "10.0.0.2")], (0, 0)),
    ("temporal across two event kinds (routes)",
     correlation("temporal", "{gte: 1}", BOTH, "1m", second=4624),
     [failed(0), failed(30, ip="10.0.0.2", eid=4624), failed(100, ip="10.0.0.2", eid=4624),
      failed(161), failed(162, "eve"), failed(163, "eve", "10.0.0.2", 4624)], (2, 0)),
    ("temporal: the first rule expired", correlation("temporal", "{gte: 1}", BOTH, "10s"),
     [failed(0), failed(10.5, ip="10.0.0.2"), failed(11)], (1, 0)),
]  # fmt: skip


def yaral(events: str, condition: str, match: str = "$user over 5m") -> list[Rule]:
    from detcat.languages.yaral import parse_rules
    from detcat.sources.chronicle import build_rule as chronicle_rule

    text = f"rule r {{\n events:\n {events}\n match:\n {match}\n condition:\n {condition}\n}}"
    return [chronicle_rule(parse_rules(text)[0], "r.yaral")]


FAILS = """
    $fail.metadata.event_type = "USER_LOGIN"
    $fail.security_result.action = "BLOCK"
    $fail.target.user.userid = $user
"""
FAIL_THEN_OK = FAILS + FAILS.replace("$fail", "$ok").replace("BLOCK", "ALLOW")


def udm(t: float | None, action: str, user: str = "bob") -> dict[str, Any]:
    doc = ecs(t, metadata__event_type="USER_LOGIN", security_result__action=action,
              target__user__userid=user)  # fmt: skip
    if t is not None:
        doc["metadata"]["event_timestamp"] = doc.pop("@timestamp")
    return doc


YARAL = [
    ("#e > 2 at the window's edge", yaral(FAILS, "#fail > 2", "$user over 2m"),
     [udm(0, "BLOCK"), udm(60, "BLOCK"), udm(120, "BLOCK")], (1, 0)),
    ("spread over more than the window", yaral(FAILS, "#fail > 2", "$user over 1m"),
     [udm(0, "BLOCK"), udm(50, "BLOCK"), udm(100, "BLOCK")], (0, 0)),
    ("per match variable", yaral(FAILS, "#fail >= 2"),
     [udm(0, "BLOCK"), udm(1, "BLOCK", "eve"), udm(2, "BLOCK"), udm(3, "BLOCK", "eve")], (2, 0)),
    ("two variables, counts and a reset", yaral(FAIL_THEN_OK, "#fail >= 2 and $ok"),
     [udm(0, "BLOCK"), udm(1, "ALLOW"), udm(2, "BLOCK"), udm(3, "ALLOW"), udm(4, "ALLOW"),
      udm(5, "BLOCK"), udm(6, "BLOCK")], (2, 0)),
    ("two variables, one expired", yaral(FAIL_THEN_OK, "$fail and $ok", "$user over 1m"),
     [udm(0, "BLOCK"), udm(61, "ALLOW"), udm(62, "BLOCK")], (1, 0)),
]  # fmt: skip

CASES = THRESHOLD + SEQUENCES + CORRELATIONS + YARAL


def engines(rules: list[Rule], docs: list[dict[str, Any]], tmp: Path, names: list[str]) -> dict:
    """engine -> rule key -> (hits, unknown, samples) on the same rows."""
    for r in rules:
        normalize_rule(r)
    plans = [RulePlan.from_rule(r) for r in rules]
    compiled = compile_rules(plans)
    stateful = [c for c in compiled if not c.plan.single_event]
    assert [c.status for c in stateful] == [Status.STATEFUL], [c.reasons for c in stateful]
    events = tmp / "events.jsonl"
    events.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    columns, nonnull = wanted_columns(compiled)
    normalize_files([events], tmp / "rows", columns, nonnull, print)
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(results, "SAMPLES", len(docs) + 1)  # every hit a sample
        for name in names:
            got = backtest([str(tmp / "rows")], plans, {}, name)
            out[name] = {k: (r.hits, r.unknown, r.samples) for k, r in got.rules.items()}
            assert not got.fallback, got.fallback
    return out


def stateful_key(rules: list[Rule]) -> str:
    return f"{rules[-1].vendor}:{rules[-1].id}"  # the cases list it last


@pytest.mark.parametrize(("why", "rules", "docs", "want"), CASES, ids=[c[0] for c in CASES])
def test_sql_gives_the_matchers_detections(
    why: str, rules: list[Rule], docs: list[dict[str, Any]], want: tuple[int, int], tmp_path: Path
) -> None:
    got = engines(rules, docs, tmp_path, ["python", "duckdb"])
    hits, unknown, _ = got["python"][stateful_key(rules)]
    assert (hits, unknown) == want  # the case is what it says
    assert got["duckdb"] == got["python"]


@pytest.mark.slow
def test_spark_gives_the_matchers_detections(tmp_path: Path) -> None:
    """Spark local[2]: every case's rows in one session."""
    pytest.importorskip("pyspark", reason="the spark engine is optional: detcat[spark]")
    for i, (why, rules, docs, _) in enumerate(CASES):
        (tmp_path / str(i)).mkdir()
        got = engines(rules, docs, tmp_path / str(i), ["python", "spark"])
        assert got["spark"] == got["python"], why


NOT_COMPILED = [
    ("an until that requires no field", eql("sequence by process.pid [process where true]"
                                            " [file where true] until [file where true]")),
    ("sample / join", eql("sample by process.pid [process where true] [file where true]")),
    ("a join key is an expression",
     eql("sequence [process where true] by process.pid * 2 [file where true] by process.pid")),
    ("temporal_ordered correlation", correlation("temporal_ordered", "{gte: 1}", BOTH)),
    ("the Python matcher does not evaluate it either: is not an 'at least' count",
     correlation("event_count", "{lt: 2}", [FIRST])),
    ("the Python matcher does not evaluate it either: a comparison between events",
     yaral(FAILS + "    $ok.principal.ip != $fail.principal.ip\n" + FAILS.replace(
         "$fail", "$ok"), "$fail and $ok")),
]  # fmt: skip


@pytest.mark.parametrize(("why", "rules"), NOT_COMPILED, ids=[c[0] for c in NOT_COMPILED])
def test_what_sql_cannot_express_is_reported_with_its_reason(why: str, rules: list[Rule]) -> None:
    for r in rules:
        normalize_rule(r)
    compiled = compile_rules([RulePlan.from_rule(r) for r in rules])
    (c,) = [c for c in compiled if not c.plan.single_event]
    assert c.status is Status.NOT_COMPILED
    (reason,) = c.reasons
    assert reason.startswith("multi-event rule: ")
    for words in why.split(": "):
        assert words in reason, reason


def test_compile_report_of_the_corpus_multi_event_rules(corpus_db: Path) -> None:
    """Real multi-event rules: a share of Elastic's and Chronicle's compiles,
    each of the others says its own reason, and DuckDB binds every compiled
    one's query (on an empty table of the rows it reads)."""
    from detcat.match import load_rules
    from detcat.sqlgen import dialect, report
    from detcat.sqlgen.rows import column_types
    from detcat.sqlgen.rules import MULTI_EVENT
    from detcat.sqlgen.stateful_sql import Entries, query
    from detcat.store import connect

    compiled = compile_rules(load_rules(connect(corpus_db)))
    shares, reasons = report(compiled)
    by_vendor = {s.vendor: s for s in shares}
    for vendor in ("elastic", "chronicle"):  # of the rules the Python matcher evaluates
        assert by_vendor[vendor].evaluated >= 20 and by_vendor[vendor].stateful_share >= 0.85
    multi = [c for c in compiled if not c.plan.single_event]
    assert {c.status for c in multi} == {Status.STATEFUL, Status.NOT_COMPILED}
    assert all(c.reasons[0].startswith(MULTI_EVENT) for c in multi if c.reasons)
    kinds = {r for r in reasons if r.startswith(MULTI_EVENT)}
    for expected in ("a join key is an expression", "sample / join",
                     "the Python matcher does not evaluate it either: new terms"):  # fmt: skip
        assert any(expected in k for k in kinds), (expected, kinds)
    con = duckdb.connect()
    duck = dialect("duckdb")
    for c in multi:
        if c.shape is None:
            continue
        types = column_types(wanted_columns([c])[0])
        con.execute("CREATE OR REPLACE TABLE t (" + ", ".join(
            f"{duck.ident(n)} {t}" for n, t in types.items()) + ")")  # fmt: skip
        entries = [
            Entries(p, "t", s.node, set(types))
            for p, s in zip(c.shape.parts, c.stages, strict=True)
        ]
        con.execute("EXPLAIN " + query(duck, c.shape, entries))


THRESHOLD_TOML = """\
[metadata]
maturity = "production"

[rule]
rule_id = "brute-1"
name = "Many logons"
type = "threshold"
language = "kuery"
query = "event.category:authentication"
from = "now-2m"

[rule.threshold]
field = ["user.name"]
value = 2
"""


def test_backtest_and_sql_report_as_a_user_runs_them(tmp_path: Path) -> None:
    """The CLI on a catalog of one threshold rule: sql-report counts it as
    stateful exact, DuckDB backtests it with the Python engine's answer."""
    from click.testing import CliRunner

    from detcat.cli import main
    from tests.match_helpers import rule_catalog

    db = rule_catalog(tmp_path, "elastic", "brute.toml", THRESHOLD_TOML)
    report = json.loads(CliRunner().invoke(main, ["sql-report", "--db", str(db), "--json"]).stdout)
    (vendor,) = report["vendors"]
    assert (vendor["multi_event"], vendor["evaluated"], vendor["stateful"]) == (1, 1, 1)
    assert report["rules"] == []  # no rule left out
    events = tmp_path / "events.jsonl"
    docs = [login(0), login(30, "eve"), login(60), login(200), login(500), login(501)]
    events.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    out = {}
    for engine in ("duckdb", "python"):
        res = CliRunner().invoke(
            main, ["backtest", str(events), "--db", str(db), "--engine", engine, "--json"]
        )
        assert res.exit_code == 0, res.output
        got = json.loads(res.stdout)
        assert got["not_compiled"] == [] and got["fallback"] == []
        out[engine] = [(r["id"], r["hits"], r["samples"]) for r in got["rules"]]
    assert out["duckdb"] == out["python"] == [("brute-1", 2, [f"{events}:3", f"{events}:6"])]


KEY_VALUES = [1, 1.0, True, "1", "", 0, 0.0, False, 2.5, "2.5", float("inf"), 2**60 + 1,
              float(2**60), -0.0, "true", None]  # fmt: skip


@pytest.mark.parametrize("a", KEY_VALUES, ids=repr)
def test_key_texts_are_equal_exactly_when_python_values_are(a: Any) -> None:
    """The matcher's group keys are tuples of values: SQL's keys must agree."""
    from detcat.sqlgen.rows import key_text

    for b in KEY_VALUES:
        assert (key_text(a) == key_text(b)) is (a == b), (a, b)


def test_rows_sql_cannot_read_send_the_rule_to_the_python_matcher(tmp_path: Path) -> None:
    """A user name whose case fold is longer (``ß``) is a row SQL cannot read
    exactly: the rule runs on the Python matcher for that run, listed as a
    fallback, with the Python engine's answer."""
    rules = threshold(2, "now-5m")
    for r in rules:
        normalize_rule(r)
    plans = [RulePlan.from_rule(r) for r in rules]
    docs = [login(0, "straße"), login(1, "straße"), login(2, "bob"), login(3, "bob")]
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    columns, nonnull = wanted_columns(compile_rules(plans))
    normalize_files([events], tmp_path / "rows", columns, nonnull, print)
    got = {e: backtest([str(tmp_path / "rows")], plans, {}, e) for e in ("python", "duckdb")}
    assert [f["rule"] for f in got["duckdb"].fallback] == ["elastic:t"]
    assert "cannot read exactly" in got["duckdb"].fallback[0]["reason"]
    hits = {e: (b.rules["elastic:t"].hits, b.rules["elastic:t"].samples) for e, b in got.items()}
    assert hits["duckdb"] == hits["python"] == (2, [f"{events}:2", f"{events}:4"])
