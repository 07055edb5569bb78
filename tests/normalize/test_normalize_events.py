"""Rule stage -> catalog events: one row per log-source spelling, vendor by vendor."""

from __future__ import annotations

from typing import Any

import pytest
from normalize_helpers import make_rule, normalized, pred, sigma

from detcat.model import And, Expr, Not, Op, StageRole, and_
from detcat.normalize import event_catalog, get_event


def events_of(
    vendor: str,
    expr: Expr | None = None,
    context: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> list[str]:
    expr = expr if expr is not None else pred("CommandLine", "x", Op.CONTAINS)
    return normalized(make_rule(vendor, expr, context, params)).stages[0].events


def eid(raw: str, *codes: Any) -> Expr:
    from detcat.model import or_

    return or_(*(pred(raw, c) for c in codes))


SIGMA_CASES = [
    (sigma("process_creation"), None, ["sysmon:1", "security:4688"]),
    (sigma("process_creation", product="linux"), None, ["sysmon-linux:1", "auditd:EXECVE"]),
    (sigma("dns_query"), None, ["sysmon:22"]),
    (sigma("network_connection"), None, ["sysmon:3"]),
    (sigma("file_event"), None, ["sysmon:11"]),
    (sigma("image_load"), None, ["sysmon:7"]),
    (sigma("registry_set"), None, ["sysmon:13"]),
    (sigma("registry_event"), None, ["sysmon:12", "sysmon:13", "sysmon:14"]),
    # an EventID filter narrows what the category implies
    (sigma("registry_event"), eid("EventID", 13), ["sysmon:13"]),
    (sigma("ps_script"), None, ["powershell:4104"]),
    # service channels: EventID values under the channel's provider
    (sigma(service="security"), eid("EventID", 4624, 4625), ["security:4624", "security:4625"]),
    (sigma(service="system"), eid("EventID", 7045), ["system:7045"]),
    (sigma(service="sysmon"), eid("EventID", 16), ["sysmon:16"]),
    # a negated EventID names no event
    (sigma(service="security"), And((eid("EventID", 4624), Not(eid("EventID", 4625)))),
     ["security:4624"]),
    # a Provider_Name filter picks the provider
    (sigma(product="windows", service="application"),
     and_(eid("Provider_Name", "Microsoft-Windows-Sysmon"), eid("EventID", 1)), ["sysmon:1"]),
    (sigma(product="aws", service="cloudtrail"), eid("eventName", "ConsoleLogin"),
     ["aws-cloudtrail:ConsoleLogin"]),
    ({"logsource": {"category": "webserver"}}, None, []),
]  # fmt: skip


@pytest.mark.parametrize("context, expr, expected", SIGMA_CASES)
def test_sigma_events(context: Any, expr: Expr | None, expected: list[str]) -> None:
    assert events_of("sigma", expr, context) == expected


DEFEND = ["logs-endpoint.events.process-*"]
WINDOWS = ["logs-endpoint.events.process-*", "logs-windows.sysmon_operational-*",
           "logs-system.security*"]  # fmt: skip

ELASTIC_CASES = [
    (DEFEND, {"category": "process"}, eid("event.type", "start"),
     ["elastic-defend:process/start"]),
    (WINDOWS, {"category": "process"}, eid("event.type", "start"),
     ["elastic-defend:process/start", "sysmon:1", "security:4688"]),
    # KQL: the category is an event.category value
    (["logs-endpoint.events.*"], {}, and_(eid("event.category", "file"),
                                          eid("event.type", "creation")),
     ["elastic-defend:file/creation"]),
    # an Elastic Defend index implies its category when the query names none
    (DEFEND, {}, eid("event.type", "start"), ["elastic-defend:process/start"]),
    (["logs-system.security*"], {}, eid("event.code", "4624"), ["security:4624"]),
    (["winlogbeat-*"], {}, eid("winlog.event_id", "7045"), ["system:7045"]),
    (["winlogbeat-*"], {"category": "any"},
     and_(eid("event.provider", "Microsoft-Windows-Sysmon"), eid("event.code", "1")),
     ["sysmon:1"]),
    (["logs-aws.cloudtrail-*"], {}, eid("event.action", "ConsoleLogin"),
     ["aws-cloudtrail:ConsoleLogin"]),
    # ES|QL: index patterns come from FROM
    ([], {"from": ["logs-windows.sysmon_operational-*"], "category": "any"},
     eid("event.code", "22"), ["sysmon:22"]),
]  # fmt: skip


@pytest.mark.parametrize("index, params, expr, expected", ELASTIC_CASES)
def test_elastic_events(index: list[str], params: Any, expr: Expr, expected: list[str]) -> None:
    assert events_of("elastic", expr, {"index": index}, params) == expected


SPLUNK_CASES = [
    (["Sysmon EventID 1", "Windows Event Log Security 4688"], None, None,
     ["sysmon:1", "security:4688"]),
    (["Sysmon EventID 1 AND Sysmon EventID 3"], None, None, ["sysmon:1", "sysmon:3"]),
    (["Windows Event Log Security 4624"], eid("EventCode", "4625"), None, ["security:4625"]),
    (["Powershell Script Block Logging 4104"], None, None, ["powershell:4104"]),
    (["Linux Auditd Execve"], None, None, ["auditd:EXECVE"]),
    (["AWS CloudTrail"], eid("eventName", "ConsoleLogin"), None,
     ["aws-cloudtrail:ConsoleLogin"]),
    # no data source: the data model stands in
    ([], None, {"datamodel": "Endpoint.Processes"}, ["sysmon:1", "security:4688"]),
    # a macro that expanded to source=… names the channel
    ([], and_(eid("source", "XmlWinEventLog:Security"), eid("EventCode", "4720")), None,
     ["security:4720"]),
]  # fmt: skip


@pytest.mark.parametrize("sources, expr, params, expected", SPLUNK_CASES)
def test_splunk_events(sources: list[str], expr: Any, params: Any, expected: list[str]) -> None:
    assert events_of("splunk", expr, {"data_source": sources}, params) == expected


CHRONICLE_CASES = [
    (eid("metadata.event_type", "PROCESS_LAUNCH"), {}, ["udm:PROCESS_LAUNCH"]),
    (eid("metadata.event_type", "NETWORK_DNS", "NETWORK_CONNECTION"), {},
     ["udm:NETWORK_DNS", "udm:NETWORK_CONNECTION"]),
    (and_(eid("metadata.product_name", "Microsoft-Windows-Sysmon"),
          eid("metadata.product_event_type", "3")), {}, ["sysmon:3"]),
    (and_(eid("metadata.product_name", "AWS CloudTrail"),
          eid("metadata.product_event_type", "ConsoleLogin")), {},
     ["aws-cloudtrail:ConsoleLogin"]),
    (pred("principal.hostname", "x"), {"event_types": ["USER_LOGIN"]}, ["udm:USER_LOGIN"]),
]  # fmt: skip


@pytest.mark.parametrize("expr, context, expected", CHRONICLE_CASES)
def test_chronicle_events(expr: Expr, context: Any, expected: list[str]) -> None:
    assert events_of("chronicle", expr, context) == expected


def test_aggregate_stages_name_no_events() -> None:
    rule = make_rule("sigma", pred("EventID", 4625), context=sigma(service="security"))
    rule.stages[0].role = StageRole.AGGREGATE
    assert normalized(rule).stages[0].events == []


@pytest.mark.parametrize(
    "event_id, provider, title",
    [
        ("sysmon:1", "Microsoft-Windows-Sysmon", "Process creation"),
        ("sysmon:22", "Microsoft-Windows-Sysmon", "DNSEvent (DNS query)"),
        ("security:4688", "Microsoft-Windows-Security-Auditing", "A new process has been created"),
    ],
)
def test_catalog_titles(event_id: str, provider: str, title: str) -> None:
    event = get_event(event_id)
    assert event is not None
    assert (event.provider, event.title) == (provider, title)
    assert event in event_catalog()


def test_sysmon_events_1_to_29_are_all_in_the_catalog() -> None:
    ids = {e.id for e in event_catalog()}
    assert {f"sysmon:{n}" for n in range(1, 30)} <= ids
