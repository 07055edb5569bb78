"""Shared by the command-line tests: the sources of a small catalog with values
ending in a backslash, exclusions, a technique description with
citations, markdown links and <code>, a technique no rule tags, and one tagged by
exactly one rule; titles long enough to squeeze a table's id column."""

from __future__ import annotations

import json
from pathlib import Path


def technique(n: int, tid: str, name: str, description: str) -> dict[str, object]:
    return {
        "type": "attack-pattern",
        "id": f"attack-pattern--{n}",
        "name": name,
        "description": description,
        "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": "c2"}],
        "external_references": [{"source_name": "mitre-attack", "external_id": tid}],
    }


DESCRIPTION = (
    "Adversaries use [remote tools](https://attack.mitre.org/techniques/T1219) such as "
    "<code>AnyDesk</code>.(Citation: Someone 2020)\n\nA second paragraph."
)
BUNDLE = {
    "type": "bundle",
    "objects": [
        {"type": "x-mitre-tactic", "id": "x-mitre-tactic--1", "name": "Command and Control",
         "x_mitre_shortname": "c2",
         "external_references": [{"source_name": "mitre-attack", "external_id": "TA0011"}]},
        technique(1, "T1219", "Remote Access Tools", DESCRIPTION),
        technique(2, "T1001", "Data Obfuscation", "No rule tags this one."),
        technique(3, "T1105", "Ingress Tool Transfer", "One rule tags this one."),
    ],
}  # fmt: skip

FLOCK = "\\AppData\\Local\\Flock\\"  # a value ending in a backslash
FLOCK_ID = "00000000-0000-4000-8000-000000000001"


def sigma_rule(rule_id: str, title: str, tag: str, values: list[str]) -> str:
    listed = "".join(f"            - '{v}'\n" for v in values)
    return f"""title: {title}
id: {rule_id}
status: test
description: rule {title}
tags:
    - {tag}
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith:
{listed}    filter:
        ParentImage|endswith: '\\explorer.exe'
    condition: selection and not filter
level: high
"""


RULES = {
    "flock.yml": sigma_rule(FLOCK_ID, "Flock browser folder used by a remote tool, with a "
                            "title long enough to squeeze the other columns of a table",
                            "attack.t1219", [FLOCK, "\\a.exe", "\\b.exe"]),
    "anydesk.yml": sigma_rule("00000000-0000-4000-8000-000000000002", "AnyDesk",
                              "attack.t1219", ["\\AnyDesk.exe", "\\c.exe"]),
    "transfer.yml": sigma_rule("00000000-0000-4000-8000-000000000003", "Transfer",
                               "attack.t1105", ["\\curl.exe"]),
}  # fmt: skip


def write_sources(src: Path, rules: dict[str, str] = RULES) -> Path:
    """A sources directory with the bundle and the given Sigma rules."""
    (src / "attack").mkdir(parents=True)
    (src / "attack" / "enterprise-attack.json").write_text(json.dumps(BUNDLE))
    (src / "sigma" / "rules").mkdir(parents=True)
    for name, text in rules.items():
        (src / "sigma" / "rules" / name).write_text(text)
    return src
