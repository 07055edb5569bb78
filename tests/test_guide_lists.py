"""What the technique page and the rule page list, from one definition each:
indicators (no event selectors) and exclusions (as the rule wrote them, each
once), on a small catalog built from rule files."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from detcat import catalog, guide, store

SIGMA = """
title: LSASS access
id: 22222222-2222-4222-8222-222222222222
tags: [attack.t1003.001]
logsource: {category: process_access, product: windows}
detection:
  sel: {TargetImage|endswith: '\\lsass.exe'}
  f1: {SourceImage|endswith: '\\brave.exe'}
  f2: {GrantedAccess: '0x40'}
  f3: {GrantedAccess: '0x40'}
  f4: {GrantedAccess: '0x40'}
  condition: sel and not f1 and not f2 and not f3 and not f4
"""

SPLUNK = """
name: Whoami from the Security log
id: 33333333-3333-4333-8333-333333333333
type: TTP
tags: {mitre_attack_id: [T1003.001]}
search: 'eventtype=wineventlog_security EventCode=4688 New_Process_Name="*\\\\whoami.exe"'
"""


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> Any:
    src = tmp_path_factory.mktemp("sources")
    (src / "attack").mkdir()
    (src / "attack" / "enterprise-attack.json").write_text('{"type": "bundle", "objects": []}')
    (src / "sigma" / "rules").mkdir(parents=True)
    (src / "sigma" / "rules" / "lsass.yml").write_text(textwrap.dedent(SIGMA))
    (src / "splunk" / "detections").mkdir(parents=True)
    (src / "splunk" / "detections" / "whoami.yml").write_text(textwrap.dedent(SPLUNK))
    db = src / "catalog.sqlite"
    catalog.build(src, db, vendors=("sigma", "splunk"), workers=1)
    return store.connect(db)


def keys(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(r["field"], r["op"], str(r["value"]).lower()) for r in rows]


def test_technique_and_rule_pages_list_the_same_exclusions_once(conn: Any) -> None:
    page = keys(guide.technique_guide(conn, "T1003.001")["exclusions"])
    (rule,) = guide.rule_detail(conn, "sigma", "22222222-2222-4222-8222-222222222222")
    assert sorted(page) == sorted(keys(rule["exclusions"])) == sorted([
        ("process.executable", "ends_with", "\\brave.exe"),
        ("winlog.event_data.GrantedAccess", "eq", "0x40"),
    ])  # fmt: skip


def test_event_selectors_are_not_indicators(conn: Any) -> None:
    page = keys(guide.technique_guide(conn, "T1003.001")["indicators"])
    (rule,) = guide.rule_detail(conn, "splunk", "33333333-3333-4333-8333-333333333333")
    for listed in (page, keys(rule["indicators"])):
        assert ("event.dataset", "eq", "wineventlog_security") not in listed
        assert ("process.name", "eq", "whoami.exe") in listed
    assert ("event.action", "eq", "wineventlog_security") not in page
