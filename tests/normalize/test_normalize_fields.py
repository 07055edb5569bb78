"""Canonical fields, one family at a time: the canonical name on the left, the
vendor spellings that must read as it on the right (sqlglot ``validate_all`` style).

A spelling is ``raw`` or ``(raw, where)``; ``where`` holds the log-source facts
the vendor's source module records (Sigma logsource, EQL category, Splunk data
source, UDM event type).
"""

from __future__ import annotations

from typing import Any

import pytest
from normalize_helpers import canonical_of, sigma

from detcat.normalize import is_mapped

PROC = {"context": sigma("process_creation")}
IMAGE_LOAD = {"context": sigma("image_load")}
DRIVER_LOAD = {"context": sigma("driver_load")}
FILE_EVENT = {"context": sigma("file_event")}
REGISTRY = {"context": sigma("registry_set")}
DNS = {"context": sigma("dns_query")}
NETCONN = {"context": sigma("network_connection")}
SECURITY = {"context": sigma(service="security")}
PS_SCRIPT = {"context": sigma("ps_script")}
PROC_ACCESS = {"context": sigma("process_access")}
AUDITD = {"context": sigma(product="linux", service="auditd")}
CLOUDTRAIL = {"context": sigma(product="aws", service="cloudtrail")}
WEBSERVER = {"context": {"logsource": {"category": "webserver"}}}
SPLUNK_SYSMON = {"context": {"data_source": ["Sysmon EventID 1"]}}
SPLUNK_SECURITY = {"context": {"data_source": ["Windows Event Log Security 4624"]}}
LAUNCH = {"event_type": "PROCESS_LAUNCH"}
NETWORK = {"event_type": "NETWORK_CONNECTION"}

FAMILIES: dict[str, dict[str, list[Any]]] = {
    "process.executable": {
        "sigma": [("Image", PROC), ("SourceImage", PROC_ACCESS), ("ProcessName", SECURITY)],
        "elastic": ["process.executable", "process.executable.caseless"],
        "splunk": ["Processes.process_path", "process_path", ("Image", SPLUNK_SYSMON)],
        "chronicle": [("target.process.file.full_path", LAUNCH)],
    },
    "process.name": {
        "elastic": ["process.name", "process.name.caseless"],
        "splunk": ["Processes.process_name", "process_name"],
        "sigma": [("comm", AUDITD)],
    },
    "process.command_line": {
        "sigma": [("CommandLine", PROC)],
        "elastic": ["process.command_line", "process.command_line.caseless"],
        "splunk": ["Processes.process", "CommandLine"],
        "chronicle": [("target.process.command_line", LAUNCH)],
    },
    "process.parent.executable": {
        "sigma": [("ParentImage", PROC)],
        "elastic": ["process.parent.executable"],
        "splunk": ["Processes.parent_process_path"],
        "chronicle": [("principal.process.file.full_path", LAUNCH)],
    },
    "process.parent.name": {
        "elastic": ["process.parent.name"],
        "splunk": ["Processes.parent_process_name", "parent_process_name"],
    },
    "process.parent.command_line": {
        "sigma": [("ParentCommandLine", PROC)],
        "elastic": ["process.parent.command_line"],
        "splunk": ["Processes.parent_process"],
        "chronicle": [("principal.process.command_line", LAUNCH)],
    },
    "process.pe.original_file_name": {
        "sigma": [("OriginalFileName", PROC)],
        "elastic": ["process.pe.original_file_name"],
        "splunk": ["Processes.original_file_name", "OriginalFileName"],
    },
    "file.path": {
        "sigma": [("TargetFilename", FILE_EVENT), ("ImageLoaded", DRIVER_LOAD)],
        "elastic": ["file.path", "file.path.caseless"],
        "splunk": ["Filesystem.file_path", "TargetFilename"],
        "chronicle": ["target.file.full_path"],
    },
    "dll.path": {
        "sigma": [("ImageLoaded", IMAGE_LOAD)],
        "elastic": ["dll.path"],
        "splunk": ["ImageLoaded"],
    },
    "dll.pe.original_file_name": {"sigma": [("OriginalFileName", IMAGE_LOAD)]},
    "registry.path": {
        "sigma": [("TargetObject", REGISTRY)],
        "elastic": ["registry.path"],
        "splunk": ["Registry.registry_path"],
        "chronicle": ["target.registry.registry_key"],
    },
    "registry.data.strings": {
        "sigma": [("Details", REGISTRY)],
        "elastic": ["registry.data.strings"],
        "splunk": ["Registry.registry_value_data"],
        "chronicle": ["target.registry.registry_value_data"],
    },
    "dns.question.name": {
        "sigma": [("QueryName", DNS), ("query", {"context": {"logsource": {"category": "dns"}}})],
        "elastic": ["dns.question.name"],
        "splunk": ["DNS.query", "QueryName"],
        "chronicle": ["network.dns.questions.name"],
    },
    "destination.ip": {
        "sigma": [("DestinationIp", NETCONN)],
        "elastic": ["destination.ip"],
        "splunk": ["All_Traffic.dest_ip", "dest_ip"],
        "chronicle": [("target.ip", NETWORK)],
    },
    # An email's attachment, not a file on disk: file.name would let email rules
    # fire on file-creation events.
    "email.attachments.file.name": {
        "elastic": ["email.attachments.file.name"],
        "splunk": ["All_Email.file_name"],
    },
    "destination.port": {
        "sigma": [("DestinationPort", NETCONN)],
        "elastic": ["destination.port"],
        "splunk": ["All_Traffic.dest_port"],
        "chronicle": ["target.port"],
    },
    "source.ip": {
        "sigma": [("IpAddress", SECURITY)],
        "elastic": ["source.ip"],
        "splunk": ["Authentication.src", "src_ip"],
        "chronicle": ["principal.ip"],
    },
    "user.name": {
        "sigma": [("User", PROC)],
        "elastic": ["user.name"],
        "splunk": ["Processes.user", "user"],
        "chronicle": ["principal.user.userid"],
    },
    "event.code": {
        "sigma": [("EventID", SECURITY)],
        "elastic": ["event.code", "winlog.event_id"],
        "splunk": ["EventCode", "EventID"],
    },
    "event.action": {
        "sigma": [("eventName", CLOUDTRAIL)],
        "elastic": ["event.action"],
        "splunk": ["eventName", "All_Changes.command"],
        "chronicle": ["metadata.product_event_type"],  # a name ("x"), not a number
    },
    "powershell.file.script_block_text": {
        "sigma": [("ScriptBlockText", PS_SCRIPT)],
        "elastic": ["powershell.file.script_block_text"],
        "splunk": ["ScriptBlockText"],
    },
    "winlog.event_data.TargetUserName": {
        "sigma": [("TargetUserName", SECURITY)],
        "elastic": ["winlog.event_data.TargetUserName"],
    },
    "url.query": {"sigma": [("cs-uri-query", WEBSERVER)], "elastic": ["url.query"]},
    "user_agent.original": {
        "sigma": [("cs-user-agent", WEBSERVER)],
        "elastic": ["user_agent.original"],
        "splunk": ["Web.http_user_agent", "userAgent"],
        "chronicle": ["network.http.user_agent"],
    },
    "auditd.data.a0": {"sigma": [("a0", AUDITD)], "elastic": ["auditd.data.a0"]},
    "message": {"sigma": [None], "splunk": [None]},
}

CASES = [
    pytest.param(canonical, vendor, spelling, id=f"{canonical}<-{vendor}:{_raw}")
    for canonical, vendors in FAMILIES.items()
    for vendor, spellings in vendors.items()
    for spelling in spellings
    for _raw in [spelling[0] if isinstance(spelling, tuple) else spelling]
]


@pytest.mark.parametrize("canonical, vendor, spelling", CASES)
def test_vendor_spelling_reads_as_canonical(canonical: str, vendor: str, spelling: Any) -> None:
    raw, where = spelling if isinstance(spelling, tuple) else (spelling, None)
    assert canonical_of(vendor, raw, where) == canonical


@pytest.mark.parametrize(
    "vendor, raw, where, expected",
    [
        # meaning depends on the log source
        ("chronicle", "principal.process.file.full_path", NETWORK, "process.executable"),
        ("chronicle", "target.process.file.full_path", {"event_type": "PROCESS_OPEN"},
         "Target.process.executable"),
        ("sigma", "TargetImage", PROC_ACCESS, "Target.process.executable"),
        # Windows event data by event: the account logging on in 4624
        ("splunk", "TargetUserName", SPLUNK_SECURITY, "user.name"),
        ("sigma", "Signed", IMAGE_LOAD, "dll.code_signature.exists"),
        ("sigma", "Details", {"context": sigma(service="system")}, "winlog.event_data.Details"),
        # prefix entries keep the rest of the path
        ("sigma", "requestParameters.userName", CLOUDTRAIL,
         "aws.cloudtrail.flattened.request_parameters.userName"),
        # Sigma field names match case-insensitively, like the backends do
        ("sigma", "commandline", PROC, "process.command_line"),
    ],
)  # fmt: skip
def test_log_source_dependent_fields(vendor: str, raw: str, where: Any, expected: str) -> None:
    assert canonical_of(vendor, raw, where) == expected


@pytest.mark.parametrize(
    "vendor, raw, where, expected",
    [
        ("sigma", "OpNum", {"context": {"logsource": {"product": "rpc_firewall"}}}, "sigma:OpNum"),
        ("splunk", "isOutlier", None, "splunk:isOutlier"),
        ("elastic", "Esql.event_count", None, "elastic:Esql.event_count"),
        ("chronicle", "graph.metadata.source_type", None, "chronicle:graph.metadata.source_type"),
    ],
)
def test_fields_without_canonical_meaning_are_namespaced(
    vendor: str, raw: str, where: Any, expected: str
) -> None:
    field = canonical_of(vendor, raw, where)
    assert field == expected
    assert is_mapped(field) == (":" not in expected)
