"""Multi-event rules over a stream of events (``match.stateful``): EQL sequences,
samples and joins, Elastic threshold rules, Sigma correlations. Each case feeds
events in order to a fresh ``Matcher`` and lists what each event completed:
``"match a,b"`` (a detection of events a and b), ``"undetermined a,b"``, or
``"partial"`` (a rule detcat does not evaluate over the stream, with its reason)."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from match_helpers import rule_catalog

from detcat.match import Matcher, RulePlan
from detcat.match.events import canonical_event
from detcat.model import Rule
from detcat.normalize import normalize_rule
from detcat.sources import sigma
from detcat.sources.elastic import build_rule


def elastic(query: str, **extra: Any) -> Rule:
    doc = {"rule_id": "r", "name": "r", "type": "eql", "language": "eql", "query": query}
    rule = build_rule({**doc, **extra}, {}, "r.toml")
    assert not rule.problems, rule.problems
    return rule


def ev(label: str, t: int, **fields: Any) -> Any:
    """An ECS event at ``t`` seconds (past an arbitrary epoch)."""
    doc: dict[str, Any] = {"@timestamp": f"2024-01-01T00:{t // 60:02d}:{t % 60:02d}Z"}
    for name, value in fields.items():
        node = doc
        *path, last = name.split("__")
        for p in path:
            node = node.setdefault(p, {})
        node[last] = value
    return canonical_event(label, doc)


def run(rules: list[Rule], events: list[Any]) -> list[str]:
    for r in rules:
        normalize_rule(r)
    m = Matcher([RulePlan.from_rule(r) for r in rules])
    out = []
    for e in events:
        res = m.match(e)
        multi = [d for d in res.matches if "events" in d]
        out += [f"match {','.join(d['events'])}" for d in multi]
        out += [f"undetermined {','.join(d['events'])}" for d in res.undetermined if "events" in d]
        out += ["partial" for _ in res.partial]
    return out


def proc(label: str, t: int, name: str, pid: int, **more: Any) -> Any:
    return ev(label, t, event__category="process", process__name=name, process__pid=pid, **more)


def file(label: str, t: int, pid: int, **more: Any) -> Any:
    return ev(label, t, event__category="file", process__pid=pid, **more)


SEQ = """sequence by process.pid with maxspan=1m
  [process where process.name == "cmd.exe"]
  [file where true]"""

EQL = [
    ("two steps, same key, in time", SEQ,
     [proc("a", 0, "cmd.exe", 1), file("b", 30, 1)], ["match a,b"]),
    ("another key", SEQ, [proc("a", 0, "cmd.exe", 1), file("b", 30, 2)], []),
    ("past maxspan", SEQ, [proc("a", 0, "cmd.exe", 1), file("b", 61, 1)], []),
    ("the order matters", SEQ, [file("b", 0, 1), proc("a", 1, "cmd.exe", 1)], []),
    ("a later first step replaces the open one", SEQ,
     [proc("a", 0, "cmd.exe", 1), proc("c", 10, "cmd.exe", 1), file("b", 20, 1)], ["match c,b"]),
    ("one event takes one step of a sequence",
     "sequence [any where true] [any where true]",
     [ev("a", 0, x=1), ev("b", 1, x=1), ev("c", 2, x=1)], ["match a,b", "match b,c"]),
    ("until ends the key's sequences",
     SEQ + '\nuntil [process where process.name == "exit.exe"]',
     [proc("a", 0, "cmd.exe", 1), proc("x", 5, "exit.exe", 1), file("b", 9, 1)], []),
    ("until of another key does not",
     SEQ + '\nuntil [process where process.name == "exit.exe"]',
     [proc("a", 0, "cmd.exe", 1), proc("x", 5, "exit.exe", 2), file("b", 9, 1)], ["match a,b"]),
    ("an until of another category does not",
     'sequence by process.pid [process where process.name == "cmd.exe"] [network where true]'
     ' until [process where process.pid == 1]',
     [proc("a", 0, "cmd.exe", 1), file("x", 5, 1), ev("b", 9, event__category="network",
                                                      process__pid=1)], ["match a,b"]),
    ("a backquoted key is a field, not arithmetic",
     "sequence by `my.odd-key` [process where true] [file where true]",
     [proc("a", 0, "x", 1, **{"my__odd-key": 7}), file("b", 1, 2, **{"my__odd-key": 7})],
     ["match a,b"]),
    ("with runs repeats a step",
     "sequence by process.pid [file where true] with runs=2 [process where true]",
     [file("a", 0, 1), file("b", 1, 1), proc("c", 2, "x", 1)], ["match a,b,c"]),
    ("a one-step sequence with runs needs that many events",
     "sequence by process.pid [file where true] with runs=2",
     [file("a", 0, 1), file("b", 1, 2), file("c", 2, 1)], ["match a,c"]),
    ("computed keys", "sequence [file where true] by process.pid * 2 "
     "[process where true] by process.parent.pid * 2",
     [file("a", 0, 3), proc("b", 1, "x", 9, process__parent__pid=3)], ["match a,b"]),
    ("a step unknown on its event",
     "sequence [file where true] [process where arrayCount(a, x, true) > 0]",
     [file("a", 0, 1), proc("b", 1, "x", 1, a="y")], ["undetermined a,b"]),
    ("sample: any order", "sample by process.pid [process where true] [file where true]",
     [file("a", 0, 1), proc("b", 1, "x", 1)], ["match b,a"]),
    ("legacy join, until", "join by process.pid [process where true] [file where true] "
     'until [process where process.name == "exit"]',
     [file("a", 0, 1), proc("x", 1, "exit", 1), proc("b", 2, "y", 1)], []),
    ("missing-event steps are not evaluated",
     'sequence by process.pid [process where process.name == "x"] ![file where true] '
     "[process where true]",
     [proc("a", 0, "x", 1)], ["partial"]),
    ("a partial step must check a value: any process event holds `process where true`",
     "sequence by process.pid [process where true] ![file where true] [process where true]",
     [proc("a", 0, "x", 1)], []),
]  # fmt: skip


@pytest.mark.parametrize(("why", "query", "events", "expected"), EQL, ids=[c[0] for c in EQL])
def test_eql_over_the_stream(why: str, query: str, events: list[Any], expected: list[str]) -> None:
    assert run([elastic(query)], events) == expected


def threshold(value: int, window: str, cardinality: list[dict[str, Any]] | None = None) -> Rule:
    spec = {"field": ["user.name"], "value": value, "cardinality": cardinality or []}
    return build_rule({"rule_id": "t", "name": "t", "type": "threshold", "language": "kuery",
                       "query": "event.category:authentication", "from": window,
                       "threshold": spec}, {}, "t.toml")  # fmt: skip


def login(label: str, t: int, user: str, ip: str = "10.0.0.1") -> Any:
    return ev(label, t, event__category="authentication", user__name=user, source__ip=ip)


THRESHOLD = [
    ("three within the look-back", threshold(3, "now-5m"),
     [login("a", 0, "bob"), login("b", 60, "bob"), login("c", 120, "bob")], ["match a,b,c"]),
    ("spread wider than the look-back", threshold(3, "now-1m"),
     [login("a", 0, "bob"), login("b", 40, "bob"), login("c", 80, "bob")], []),
    ("counted per group", threshold(2, "now-5m"),
     [login("a", 0, "bob"), login("b", 1, "eve"), login("c", 2, "bob")], ["match a,c"]),
    ("fires once, then counts again", threshold(1, "now-5m"),
     [login("a", 0, "bob"), login("b", 1, "bob")], ["match a", "match b"]),
    ("cardinality: distinct source addresses",
     threshold(2, "now-5m", [{"field": "source.ip", "value": 2}]),
     [login("a", 0, "bob"), login("b", 1, "bob"), login("c", 2, "bob", "10.0.0.2")],
     ["match b,c"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("why", "rule", "events", "expected"), THRESHOLD, ids=[c[0] for c in THRESHOLD]
)
def test_threshold_over_the_stream(
    why: str, rule: Rule, events: list[Any], expected: list[str]
) -> None:
    assert run([rule], events) == expected


BASE = """\
title: Failed logon
id: 11111111-1111-4111-8111-111111111111
logsource: {{product: windows, service: security}}
detection:
    sel: {{EventID: 4625, IpAddress|startswith: '{ip}'}}
    condition: sel
"""


def correlation(kind: str, condition: str, rules: str = "", timespan: str = "5m") -> Rule:
    text = textwrap.dedent(f"""\
        title: Many failed logons
        id: 22222222-2222-4222-8222-222222222222
        correlation:
            type: {kind}
            rules: {rules or f"[{FIRST}]"}
            group-by: [TargetUserName]
            timespan: {timespan}
            condition: {condition}
        """)
    rule = sigma.parse_rule_text(text)
    assert isinstance(rule, Rule)
    return rule


def base(rid: str = "11111111-1111-4111-8111-111111111111", ip: str = "") -> Rule:
    rule = sigma.parse_rule_text(BASE.format(ip=ip).replace(
        "11111111-1111-4111-8111-111111111111", rid))  # fmt: skip
    assert isinstance(rule, Rule)
    return rule


def failed(label: str, t: int, user: str, ip: str = "10.0.0.1") -> Any:
    return canonical_event(label, {"Event": {
        "System": {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
                   "EventID": 4625, "Channel": "Security",
                   "TimeCreated": {"#attributes": {"SystemTime": f"2024-01-01T00:00:{t:02d}Z"}}},
        "EventData": {"TargetUserName": user, "IpAddress": ip}}})  # fmt: skip


FIRST = "11111111-1111-4111-8111-111111111111"
SECOND = "33333333-3333-4333-8333-333333333333"
BOTH = f"[{SECOND}, {FIRST}]"

CORRELATIONS = [
    ("event_count reached", [base(), correlation("event_count", "{gte: 2}")],
     [failed("a", 0, "bob"), failed("b", 1, "eve"), failed("c", 2, "bob")], ["match a,c"]),
    ("event_count outside the timespan", [base(), correlation("event_count", "{gte: 2}",
                                                              timespan="1s")],
     [failed("a", 0, "bob"), failed("c", 5, "bob")], []),
    ("value_count of distinct addresses",
     [base(), correlation("value_count", "{gt: 1, field: IpAddress}")],
     [failed("a", 0, "bob"), failed("b", 1, "bob"), failed("c", 2, "bob", "10.0.0.9")],
     ["match b,c"]),
    ("temporal: both rules, any order",
     [base(FIRST, "10.0.0.1"), base(SECOND, "10.0.0.2"), correlation("temporal", "{gte: 1}", BOTH)],
     [failed("a", 0, "bob", "10.0.0.1"), failed("b", 1, "bob", "10.0.0.2")], ["match b,a"]),
    ("temporal_ordered: in order",
     [base(FIRST, "10.0.0.1"), base(SECOND, "10.0.0.2"),
      correlation("temporal_ordered", "{gte: 1}", BOTH)],
     [failed("a", 0, "bob", "10.0.0.2"), failed("b", 1, "bob", "10.0.0.1")], ["match a,b"]),
    ("temporal_ordered: out of order",
     [base(FIRST, "10.0.0.1"), base(SECOND, "10.0.0.2"),
      correlation("temporal_ordered", "{gte: 1}", BOTH)],
     [failed("a", 0, "bob", "10.0.0.1"), failed("b", 1, "bob", "10.0.0.2")], []),
    ("temporal: other groups",
     [base(FIRST, "10.0.0.1"), base(SECOND, "10.0.0.2"), correlation("temporal", "{gte: 1}", BOTH)],
     [failed("a", 0, "bob", "10.0.0.1"), failed("b", 1, "eve", "10.0.0.2")], []),
    ("fewer than: decided at the window's end, not evaluated",
     [base(), correlation("event_count", "{lt: 2}")], [failed("a", 0, "bob")], ["partial"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("why", "rules", "events", "expected"), CORRELATIONS, ids=[c[0] for c in CORRELATIONS]
)
def test_sigma_correlation_over_the_stream(
    why: str, rules: list[Rule], events: list[Any], expected: list[str]
) -> None:
    assert run(rules, events) == expected


def yaral(events: str, condition: str, match: str = "$user over 5m") -> Rule:
    from detcat.languages.yaral import parse_rules
    from detcat.sources.chronicle import build_rule as chronicle_rule

    text = f"rule r {{\n events:\n {events}\n match:\n {match}\n condition:\n {condition}\n}}"
    return chronicle_rule(parse_rules(text)[0], "r.yaral")


FAILS = """
    $fail.metadata.event_type = "USER_LOGIN"
    $fail.security_result.action = "BLOCK"
    $fail.target.user.userid = $user
"""
FAIL_THEN_OK = (
    FAILS
    + """
    $ok.metadata.event_type = "USER_LOGIN"
    $ok.security_result.action = "ALLOW"
    $ok.target.user.userid = $user
"""
)


def udm(label: str, t: int, action: str, user: str = "bob") -> Any:
    return ev(label, t, metadata__event_type="USER_LOGIN", security_result__action=action,
              target__user__userid=user)  # fmt: skip


YARAL = [
    ("#e > 2 within the window", yaral(FAILS, "#fail > 2"),
     [udm("a", 0, "BLOCK"), udm("b", 60, "BLOCK"), udm("c", 120, "BLOCK")], ["match a,b,c"]),
    ("spread over more than the window", yaral(FAILS, "#fail > 2", "$user over 1m"),
     [udm("a", 0, "BLOCK"), udm("b", 50, "BLOCK"), udm("c", 100, "BLOCK")], []),
    ("per match variable", yaral(FAILS, "#fail >= 2"),
     [udm("a", 0, "BLOCK"), udm("b", 1, "BLOCK", "eve"), udm("c", 2, "BLOCK")], ["match a,c"]),
    ("two variables joined by a placeholder", yaral(FAIL_THEN_OK, "$fail and $ok"),
     [udm("a", 0, "BLOCK"), udm("b", 1, "ALLOW", "eve"), udm("c", 2, "ALLOW")], ["match a,c"]),
    ("an outcome condition is not evaluated", yaral(FAILS, "$fail and $risk > 3"),
     [udm("a", 0, "BLOCK")], ["partial"]),
]  # fmt: skip


@pytest.mark.parametrize(("why", "rule", "events", "expected"), YARAL, ids=[c[0] for c in YARAL])
def test_yaral_over_the_stream(
    why: str, rule: Rule, events: list[Any], expected: list[str]
) -> None:
    assert run([rule], events) == expected


SEQUENCE_RULE = '''\
[metadata]
maturity = "production"

[rule]
rule_id = "seq-1"
name = "Shell then file"
type = "eql"
language = "eql"
query = """
sequence by process.pid with maxspan=1m
  [process where process.name == "cmd.exe"]
  [file where true]
"""
'''


def test_detcat_match_reports_a_sequence_with_its_events(tmp_path: Any) -> None:
    import json

    from click.testing import CliRunner

    from detcat.cli import main

    db = rule_catalog(tmp_path, "elastic", "rule.toml", SEQUENCE_RULE)
    docs = [
        {"@timestamp": "2024-01-01T00:00:00Z", "event": {"category": "process"},
         "process": {"name": "cmd.exe", "pid": 7}},
        {"@timestamp": "2024-01-01T00:00:10Z", "event": {"category": "file"},
         "process": {"pid": 7}},
    ]  # fmt: skip
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(d) + "\n" for d in docs))
    res = CliRunner().invoke(main, ["match", "--db", str(db), "--json", str(events)])
    assert res.exit_code == 0, res.output
    second = json.loads(res.output)[1]["matches"]
    labels = [f"{events}:1", f"{events}:2"]
    assert second == [{"vendor": "elastic", "id": "seq-1", "title": "Shell then file",
                       "events": labels}]  # fmt: skip
    text = CliRunner().invoke(main, ["match", "--db", str(db), str(events)]).output
    assert f"seq-1  Shell then file  (events {', '.join(labels)})" in text


def test_each_stream_of_a_matcher_has_its_own_open_sequences() -> None:
    """The MCP server keeps one compiled matcher and gives each request a stream:
    the first step seen in one request does not complete in the next."""
    rule = elastic("sequence [file where true] [process where true]")
    normalize_rule(rule)
    shared = Matcher([RulePlan.from_rule(rule)])
    first, second = shared.stream(), shared.stream()
    assert not first.match(file("a", 0, 1)).matches
    assert not second.match(proc("b", 1, "x", 1)).matches
    assert [d["events"] for d in first.match(proc("c", 2, "x", 1)).matches] == [["a", "c"]]
