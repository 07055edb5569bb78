"""A small sources directory of good rules, one or more per vendor and query
language, beside which the hostile tests put one bad file at a time.

Every good rule is tagged T1219 and named ``good-…``: whatever a hostile file
does, all of them must still be in the catalog afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path

BUNDLE = {
    "type": "bundle",
    "objects": [
        {
            "type": "attack-pattern",
            "id": "attack-pattern--1",
            "name": "Remote Access Tools",
            "kill_chain_phases": [
                {"kill_chain_name": "mitre-attack", "phase_name": "command-and-control"}
            ],
            "external_references": [{"source_name": "mitre-attack", "external_id": "T1219"}],
        }
    ],
}

SIGMA = """title: good sigma {n}
id: 00000000-0000-4000-8000-00000000000{n}
status: test
tags:
    - attack.t1219
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\\\\anydesk{n}.exe'
    condition: selection
level: high
"""

ELASTIC = """[metadata]
creation_date = "2024/01/01"
maturity = "production"

[rule]
author = ["detcat"]
description = "good"
name = "good elastic {n}"
risk_score = 21
rule_id = "good-elastic-{n}"
severity = "low"
type = "{type}"
language = "{language}"
index = ["logs-*"]
query = '''
{query}
'''

[[rule.threat]]
framework = "MITRE ATT&CK"

[[rule.threat.technique]]
id = "T1219"
name = "Remote Access Tools"
reference = "https://attack.mitre.org/techniques/T1219/"

[rule.threat.tactic]
id = "TA0011"
name = "Command and Control"
reference = "https://attack.mitre.org/tactics/TA0011/"
"""

ELASTIC_QUERIES = {
    "kuery": ("query", 'process.name : "anydesk.exe"'),
    "eql": ("eql", 'process where process.name == "anydesk.exe"'),
    "esql": ("esql", 'from logs-* | where process.name == "anydesk.exe"'),
}

SPLUNK = """name: good splunk {n}
id: good-splunk-{n}
version: 1
date: '2024-01-01'
author: detcat
status: production
type: TTP
description: good
search: '`sysmon` EventCode=1 process_name=anydesk{n}.exe | `good_splunk_{n}_filter`'
tags:
  mitre_attack_id:
  - T1219
"""

CHRONICLE = """rule good_chronicle_{n} {{
  meta:
    author = "detcat"
    description = "good"
    technique = "T1219"
  events:
    $e.metadata.event_type = "PROCESS_LAUNCH"
    $e.target.process.file.full_path = /anydesk{n}\\.exe$/ nocase
  condition:
    $e
}}
"""


def good_ids() -> set[tuple[str, str]]:
    """(vendor, id) of every good rule ``make_sources`` writes."""
    return (
        {("sigma", f"00000000-0000-4000-8000-00000000000{n}") for n in range(2)}
        | {("elastic", f"good-elastic-{lang}") for lang in ELASTIC_QUERIES}
        | {("splunk", f"good-splunk-{n}") for n in range(2)}
        | {("chronicle", f"good_chronicle_{n}") for n in range(2)}
    )


def make_sources(root: Path) -> Path:
    """Write the good sources directory under ``root`` and return it."""
    src = root / "sources"
    (src / "attack").mkdir(parents=True)
    (src / "attack" / "enterprise-attack.json").write_text(json.dumps(BUNDLE))
    for n in range(2):
        write(src / "sigma" / "rules" / f"good{n}.yml", SIGMA.format(n=n))
        write(src / "splunk" / "detections" / "endpoint" / f"good{n}.yml", SPLUNK.format(n=n))
        write(src / "chronicle" / "rules" / f"good{n}.yaral", CHRONICLE.format(n=n))
    for lang, (rule_type, query) in ELASTIC_QUERIES.items():
        text = ELASTIC.format(n=lang, type=rule_type, language=lang, query=query)
        write(src / "elastic" / "rules" / f"good_{lang}.toml", text)
    write(src / "splunk" / "macros" / "sysmon.yml", "name: sysmon\ndefinition: sourcetype=sysmon\n")
    write(
        src / "splunk" / "lookups" / "tools.yml",
        "name: tools\nfilename: tools.csv\ncase_sensitive_match: 'false'\n",
    )
    write(src / "splunk" / "lookups" / "tools.csv", "name,tool\nanydesk.exe,true\n")
    return src


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path
