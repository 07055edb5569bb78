"""Fixture events and rules for the equality tests: each rule with the events it
must fire on (the Python matcher and every SQL engine are held to the same list)."""

from __future__ import annotations

import uuid
from typing import Any

SYSMON = "Microsoft-Windows-Sysmon"


def sysmon(event_id: int, time: str, **data: Any) -> dict[str, Any]:
    """A Sysmon event in the evtx-to-JSON shape."""
    return {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": SYSMON}},
                "EventID": event_id,
                "Channel": f"{SYSMON}/Operational",
                "TimeCreated": {"#attributes": {"SystemTime": time}},
            },
            "EventData": data,
        }
    }


# label -> document
EVENTS: dict[str, dict[str, Any]] = {
    "cmd": sysmon(
        1,
        "2024-05-01T10:00:00Z",
        Image="C:\\Windows\\System32\\cmd.exe",
        CommandLine="cmd.exe /c copy C:\\Windows\\Temp\\a_b.txt 100%done",
        ParentImage="C:\\Windows\\explorer.exe",
        User="CORP\\alice",
    ),
    "no_parent": sysmon(
        1, "2024-05-01T11:00:00Z", Image="C:\\Tools\\x.exe", CommandLine="x.exe --flag=%TEMP%"
    ),
    "unicode": sysmon(
        1,
        "2024-05-02T09:00:00Z",
        Image="C:\\Users\\Jörg\\ŞAHİN.exe",
        CommandLine="STRASSE ΣΊΣΥΦΟΣ it's",
        User="",
    ),
    "unicode_sql": sysmon(
        1,
        "2024-05-02T09:30:00Z",
        Image="C:\\Users\\Élodie\\ΣΊΣΥΦΟΣ.exe",
        CommandLine="ÉCOLE Ünïcode run.EXE",
    ),
    "newline": sysmon(
        1,
        "2024-05-02T10:00:00Z",
        Image="C:\\a\\b.exe",
        CommandLine="first line a\nb second ${env:x:-j}",
        User=None,
    ),
    "wild_chars": sysmon(
        1,
        "2024-05-03T10:00:00Z",
        Image="C:\\a\\axb.exe",
        CommandLine="percent 50% under_score back\\\\slash",
    ),
    "net_v4": sysmon(
        3,
        "2024-05-04T10:00:00Z",
        Image="C:\\a\\net.exe",
        DestinationIp="10.1.2.3",
        DestinationPort="10",
        SourceIp="192.168.1.5",
        SourcePort=49152,
    ),
    "net_v6": sysmon(
        3,
        "2024-05-04T11:00:00Z",
        Image="C:\\a\\net.exe",
        DestinationIp="fe80::1",
        DestinationPort=9,
        SourceIp="::1",
        SourcePort="0x1F",
    ),
    "net_bad_ip": sysmon(
        3,
        "2024-05-04T12:00:00Z",
        Image="C:\\a\\net.exe",
        DestinationIp="not-an-ip",
        DestinationPort="nan",
        SourceIp="x",
    ),
    "flat": {"CommandLine": "evil.exe -x", "Image": "C:\\evil.exe", "@timestamp": 1714557600},
    "own_parent": sysmon(
        1, "2024-05-03T10:00:00Z", Image="C:\\w\\loop.com", ParentImage="C:\\w\\loop.com"
    ),
    "own_parent_case": sysmon(
        1, "2024-05-03T11:00:00Z", Image="C:\\w\\LOOP.com", ParentImage="C:\\w\\loop.com"
    ),
}


def sigma(name: str, detection: str, category: str = "process_creation") -> str:
    """A Sigma rule titled ``name`` (its id a UUID derived from the name)."""
    return f"""title: {name}
id: {uuid.uuid5(uuid.NAMESPACE_URL, name)}
status: test
logsource:
    product: windows
    category: {category}
detection:
{detection}
level: high
"""


# (rule id, Sigma detection, log source category, events it fires on)
CASES: list[tuple[str, str, str, set[str]]] = [
    (
        "not-missing-parent",
        "    sel:\n        Image|endswith: '.exe'\n    filter:\n"
        "        ParentImage|endswith: '\\explorer.exe'\n"
        "    condition: sel and not filter",
        "process_creation",
        {"no_parent", "unicode", "unicode_sql", "newline", "wild_chars", "flat"},
    ),
    (
        "backslash-path",
        "    sel:\n        CommandLine|contains: 'C:\\Windows\\Temp\\'\n    condition: sel",
        "process_creation",
        {"cmd"},
    ),
    (
        "double-backslash",
        "    sel:\n        CommandLine|contains: 'back\\\\\\\\slash'\n    condition: sel",
        "process_creation",
        {"wild_chars"},
    ),
    (
        "literal-percent",
        "    sel:\n        CommandLine|contains: '%TEMP%'\n    condition: sel",
        "process_creation",
        {"no_parent"},
    ),
    (
        "percent-not-wildcard",
        "    sel:\n        CommandLine|contains: '50%'\n    condition: sel",
        "process_creation",
        {"wild_chars"},
    ),
    (
        "underscore-literal",
        "    sel:\n        CommandLine|contains: 'a_b'\n    condition: sel",
        "process_creation",
        {"cmd"},
    ),
    (
        "underscore-not-any",
        "    sel:\n        Image|contains: 'a_b'\n    condition: sel",
        "process_creation",
        set(),
    ),
    (
        "casefold-sharp-s",
        "    sel:\n        CommandLine|contains: 'straße'\n    condition: sel",
        "process_creation",
        {"unicode"},
    ),
    (
        "casefold-greek",
        "    sel:\n        CommandLine|contains: 'σίσυφος'\n    condition: sel",
        "process_creation",
        {"unicode"},
    ),
    (
        "unicode-endswith",
        "    sel:\n        Image|endswith: 'şahi̇n.exe'\n    condition: sel",
        "process_creation",
        {"unicode"},
    ),
    (
        "casefold-accent",
        "    sel:\n        CommandLine|contains: 'école'\n    condition: sel",
        "process_creation",
        {"unicode_sql"},
    ),
    (
        "wildcard-unicode",
        "    sel:\n        Image: '*σίσυφος.exe'\n    condition: sel",
        "process_creation",
        {"unicode_sql"},
    ),
    (
        "wildcard-ascii-suffix",
        "    sel:\n        CommandLine: '*RUN.exe'\n    condition: sel",
        "process_creation",
        {"unicode_sql"},
    ),
    (
        "wildcard-any",
        "    sel:\n        ParentImage: '*'\n    condition: sel",
        "process_creation",
        {"cmd", "own_parent", "own_parent_case"},
    ),
    (
        "dollar-brace",
        "    sel:\n        CommandLine|contains: '${env:x:-j}'\n    condition: sel",
        "process_creation",
        {"newline"},
    ),
    (
        "quote",
        '    sel:\n        CommandLine|contains: "it\'s"\n    condition: sel',
        "process_creation",
        {"unicode"},
    ),
    (
        "regex-dot-newline",
        "    sel:\n        CommandLine|re: 'a.b'\n    condition: sel",
        "process_creation",
        {"cmd"},
    ),
    (
        "regex-newline-class",
        "    sel:\n        CommandLine|re: 'a\\sb'\n    condition: sel",
        "process_creation",
        {"newline"},
    ),
    (
        "regex-case-i",
        "    sel:\n        CommandLine|re|i: '^CMD\\.EXE'\n    condition: sel",
        "process_creation",
        {"cmd"},
    ),
    (
        "wildcard-newline",
        "    sel:\n        CommandLine: '*line a?b*'\n    condition: sel",
        "process_creation",
        {"newline"},
    ),
    (
        "wildcard-whole",
        "    sel:\n        Image: '*\\a?b.exe'\n    condition: sel",
        "process_creation",
        {"newline", "wild_chars"},
    ),
    (
        "keyword",
        "    keywords:\n        - 'EVIL.EXE'\n    condition: keywords",
        "process_creation",
        {"flat"},
    ),
    (
        "keyword-wildcard",
        "    keywords:\n        - 'under*back'\n    condition: keywords",
        "process_creation",
        {"wild_chars"},
    ),
    # field-less: a number keyword is searched as text; a keyword regex in each value
    (
        "keyword-number",
        "    keywords:\n        - 100\n    condition: keywords",
        "process_creation",
        {"cmd"},
    ),
    (
        "keyword-regex",
        "    keywords:\n        '|re': 'copy\\s+C:'\n    condition: keywords",
        "process_creation",
        {"cmd"},
    ),
    # A stage that requires no field is only tested on events with one it reads.
    (
        "is-null",
        "    sel:\n        User: null\n    condition: sel",
        "process_creation",
        {"unicode", "newline"},
    ),
    (
        "exists",
        "    sel:\n        User|exists: true\n    condition: sel",
        "process_creation",
        {"cmd", "unicode"},
    ),
    (
        "empty-value",
        "    sel:\n        User: ''\n    condition: sel",
        "process_creation",
        {"unicode", "newline"},
    ),
    (
        "port-gt-string",
        "    sel:\n        DestinationPort|gt: 9\n    condition: sel",
        "network_connection",
        {"net_v4"},
    ),
    (
        "port-lte",
        "    sel:\n        DestinationPort|lte: 9\n    condition: sel",
        "network_connection",
        {"net_v6"},
    ),
    (
        "port-eq-number-string",
        "    sel:\n        DestinationPort: 10\n    condition: sel",
        "network_connection",
        {"net_v4"},
    ),
    (
        "hex-number",
        "    sel:\n        SourcePort: 31\n    condition: sel",
        "network_connection",
        {"net_v6"},
    ),
    (
        "cidr-v4",
        "    sel:\n        DestinationIp|cidr: '10.0.0.0/8'\n    condition: sel",
        "network_connection",
        {"net_v4"},
    ),
    (
        "cidr-v6",
        "    sel:\n        DestinationIp|cidr: 'fe80::/10'\n    condition: sel",
        "network_connection",
        {"net_v6"},
    ),
    (
        "not-cidr",
        "    sel:\n        SourceIp|cidr:\n            - '192.168.0.0/16'\n"
        "            - '::1/128'\n    condition: not sel",
        "network_connection",
        {"net_bad_ip"},
    ),
    (
        "field-reference",
        "    sel:\n        Image|fieldref: ParentImage\n    condition: sel",
        "process_creation",
        {"own_parent", "own_parent_case"},  # Sigma compares values case-insensitively
    ),
    (
        "not-field-reference",
        "    sel:\n        Image|endswith:\n            - '.com'\n            - '\\x.exe'\n"
        "    filter:\n        Image|fieldref: ParentImage\n    condition: sel and not filter",
        "process_creation",
        {"no_parent"},  # no ParentImage: the reference fails, its NOT holds
    ),
]
