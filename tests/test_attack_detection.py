"""ATT&CK's detection strategies beside the rules: analytics' log-source
references mapped to catalog events, and per technique which of them the
technique's rules read (the gap first)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from detcat import attack, guide, store
from detcat.normalize.attack_sources import log_source_events
from detcat.normalize.events import event_catalog, get_event
from detcat.normalize.tables import EVENT_SOURCES, EVENTS, load


@pytest.mark.parametrize(
    ("name", "channel", "events"),
    [
        ("WinEventLog:Sysmon", "EventCode=3, 22", ["sysmon:3", "sysmon:22"]),
        ("WinEventLog:Security", "EventCode=4663, 4670, 4656",
         ["security:4663", "security:4670", "security:4656"]),
        ("WinEventLog:Sysmon", "EventCode=1: with prose, 3 words", ["sysmon:1"]),
        ("auditd:SYSCALL", "execve", ["auditd:SYSCALL"]),  # the source is the event
        ("macos:endpointsecurity", "ES_EVENT_TYPE_NOTIFY_EXEC", ["esf:NOTIFY_EXEC"]),
        ("AWS:CloudTrail", "CreateAccessKey", ["aws-cloudtrail:CreateAccessKey"]),
        ("WinEventLog:System", "EventCode=99999", []),  # no such catalog event
        ("NSM:Flow", "conn.log", []),  # no catalog provider
        ("WinEventLog:Sysmon", "None", []),
    ],
)  # fmt: skip
def test_log_source_events(name: str, channel: str, events: list[str]) -> None:
    assert log_source_events(name, channel) == events


def test_attack_tables_name_catalog_providers_and_events() -> None:
    src = load(EVENT_SOURCES)
    providers = set(load(EVENTS)["providers"])
    assert set(src["attack"].values()) <= providers
    assert set(src["attack_channel_prefix"]) <= providers
    assert all(get_event(e) for events in src["attack_events"].values() for e in events)
    assert event_catalog()


# -- the real ATT&CK bundle and corpora -------------------------------------------------


@pytest.fixture(scope="module")
def bundle(corpora: Path) -> attack.Attack:
    return attack.load(corpora / "attack" / "enterprise-attack.json")


def test_bundle_strategies_and_analytics(bundle: attack.Attack) -> None:
    assert len(bundle.analytics) == 1739  # ATT&CK v18.1: 1,739 analytics
    assert len({a.strategy_id for a in bundle.analytics}) == 691  # in 691 strategies
    assert all(a.techniques for a in bundle.analytics)
    assert sum(bool(a.log_sources) for a in bundle.analytics) == 1739 - 41  # 41 name none


def test_every_attack_table_entry_is_used(bundle: attack.Attack) -> None:
    names = {s.name for a in bundle.analytics for s in a.log_sources}
    src = load(EVENT_SOURCES)
    assert set(src["attack"]) - names == set()
    assert set(src["attack_events"]) - names == set()


def test_stats_share_of_mapped_references(corpus_db: Path, bundle: attack.Attack) -> None:
    refs = [s for a in bundle.analytics for s in a.log_sources]
    mapped = sum(bool(log_source_events(s.name, s.channel)) for s in refs)
    share = guide.stats(store.connect(corpus_db))["attack_log_sources"]
    assert share == {"references": len(refs), "mapped": mapped}
    assert 0 < mapped < len(refs)


def techniques_with_analytics(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    return [t for (t,) in conn.execute("SELECT DISTINCT technique_id FROM analytics ORDER BY 1")]


def test_covered_means_a_rule_of_the_technique_reads_the_event(corpus_db: Path) -> None:
    conn = store.connect(corpus_db)
    tids = techniques_with_analytics(corpus_db)
    assert len(tids) > 500
    gaps = 0
    for tid in tids[::12]:
        g = guide.technique_guide(conn, tid, limit=1)
        read = {e["id"] for e in g["events"]}  # events the technique's rules read
        d = g["attack_detection"]
        for a in d["analytics"]:
            for src in a["log_sources"]:
                assert src["covered"] == bool(read & set(src["events"])), (tid, src)
                assert bool(src["vendors"]) == src["covered"]
        gap = [(r["name"], r["channel"]) for r in d["gap"]]
        expected = {(s["name"], s["channel"]) for a in d["analytics"] for s in a["log_sources"]
                    if s["events"] and not s["covered"]}  # fmt: skip
        assert set(gap) == expected and len(gap) == len(expected)
        assert d["summary"]["analytics"] == len(d["analytics"])
        gaps += bool(gap)
    assert gaps, "some technique has a gap"


def test_technique_json_has_the_section(corpus_db: Path) -> None:
    from click.testing import CliRunner

    from detcat.cli import main

    out = CliRunner().invoke(main, ["technique", "T1070.005", "--json", "--db", str(corpus_db)])
    d = json.loads(out.output)["attack_detection"]
    assert d["summary"]["analytics"] >= 1
    assert {"id", "strategy_id", "platforms", "description", "log_sources"} <= d["analytics"][
        0
    ].keys()
