"""``detcat coverage``: runnable rules for the user's events, the unlock list,
events files (ids or a JSON sample), on hand-made facts and the real corpora."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from detcat import coverage as cov
from detcat.cli import main

SYSMON = ("sysmon:1", "sysmon:3", "sysmon:7", "sysmon:10", "sysmon:11", "sysmon:12",
          "sysmon:13", "sysmon:22")  # fmt: skip


def facts(pk: int, techniques: tuple[str, ...], *stages: set[str]) -> cov.RuleFacts:
    return cov.RuleFacts(
        pk, "sigma", f"r{pk}", f"rule {pk}", "public", techniques,
        tuple(frozenset(s) for s in stages),
    )  # fmt: skip


PROCESS = {"sysmon:1", "security:4688"}  # a Sigma process_creation stage


@pytest.mark.parametrize(
    ("why", "rule", "have", "runnable"),
    [
        ("a stage's events are alternatives", facts(1, (), PROCESS), {"security:4688"}, True),
        ("no event of the stage collected", facts(1, (), PROCESS), {"sysmon:3"}, False),
        ("a sequence needs both stages", facts(1, (), PROCESS, {"sysmon:3"}), {"sysmon:1"}, False),
        ("both stages covered", facts(1, (), PROCESS, {"sysmon:3"}), {"sysmon:1", "sysmon:3"},
         True),
        ("a stage tied to no event never runs", facts(1, (), PROCESS, set()), PROCESS, False),
        ("a rule without events stages never runs", facts(1, ()), PROCESS, False),
    ],
)  # fmt: skip
def test_runnable(why: str, rule: cov.RuleFacts, have: set[str], runnable: bool) -> None:
    assert rule.runnable(frozenset(have)) is runnable, why


def test_unlock_counts_rules_one_event_completes_and_new_techniques() -> None:
    cat = cov.Catalog(
        rules=[
            facts(1, ("T1059",), PROCESS),  # runnable already
            facts(2, ("T1059", "T1105"), {"sysmon:3"}),  # sysmon:3 unlocks it, T1105 is new
            facts(3, ("T1071",), PROCESS, {"sysmon:22"}),  # missing only sysmon:22
            facts(4, ("T1021",), {"sysmon:3"}, {"sysmon:22"}),  # missing two: neither unlocks
            facts(5, ("T1071",), {"sysmon:22", "dns-client:3008"}),
        ],
        names={}, events={},
    )  # fmt: skip
    doc = cov.coverage(cat, {"sysmon:1"})
    got = {u["event"]: (u["techniques_gained"], u["rules_gained"]) for u in doc["unlock"]}
    assert got == {"sysmon:3": (1, 1), "sysmon:22": (1, 2), "dns-client:3008": (1, 1)}
    assert [u["event"] for u in doc["unlock"]] == ["sysmon:22", "dns-client:3008", "sysmon:3"]
    t1059 = next(t for t in doc["techniques"] if t["id"] == "T1059")
    assert (t1059["rules"], t1059["runnable"]) == (2, 1)
    assert t1059["vendors"] == {"sigma": {"rules": 2, "runnable": 1}}


@pytest.mark.parametrize(
    ("text", "events", "documents", "unrecognized"),
    [
        ("sysmon:1\n# my collection\n\nsecurity:4688  # EDR off\n", ["sysmon:1", "security:4688"],
         0, 0),
        (json.dumps({"Event": {"System": {"Provider": {"#attributes": {
            "Name": "Microsoft-Windows-Sysmon"}}, "EventID": 3}, "EventData": {}}}),
         ["sysmon:3"], 1, 0),
        ('{"winlog": {"channel": "Security"}, "event": {"code": "4688"}}\n'
         '{"process": {"name": "cmd.exe"}}\n'
         '{"winlog": {"channel": "Security"}, "event": {"code": "4688"}}\n',
         ["security:4688"], 3, 1),
    ],
    ids=["id lines", "evtx json", "ecs json lines"],
)  # fmt: skip
def test_events_file(
    tmp_path: Path, text: str, events: list[str], documents: int, unrecognized: int
) -> None:
    path = tmp_path / "events.txt"
    path.write_text(text)
    got = cov.read_events_file(path)
    assert (got.events, got.documents, got.unrecognized) == (events, documents, unrecognized)


# -- the real corpora -------------------------------------------------------------------


def runnable_by_sql(db: Path, events: tuple[str, ...]) -> int:
    """Rules runnable on ``events``, counted by SQL alone (the specification)."""
    marks = ",".join("?" * len(events)) or "NULL"
    conn = sqlite3.connect(db)
    return conn.execute(
        f"""SELECT COUNT(*) FROM rules r
        WHERE EXISTS (SELECT 1 FROM stages s WHERE s.rule_pk = r.pk AND s.role = 'events')
          AND NOT EXISTS (
            SELECT 1 FROM stages s WHERE s.rule_pk = r.pk AND s.role = 'events'
              AND NOT EXISTS (SELECT 1 FROM rule_events e WHERE e.rule_pk = r.pk
                              AND e.stage_idx = s.idx AND e.event IN ({marks})))""",
        events,
    ).fetchone()[0]


def cli_json(db: Path, *args: str) -> Any:
    out = CliRunner().invoke(main, ["coverage", *args, "--db", str(db), "--json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


def flags(events: tuple[str, ...]) -> list[str]:
    return [a for e in events for a in ("--events", e)]


@pytest.mark.parametrize("events", [SYSMON, ("security:4688",), ("sysmon:1",), ()])
def test_runnable_rules_on_the_corpus(corpus_db: Path, events: tuple[str, ...]) -> None:
    doc = cli_json(corpus_db, *flags(events))
    assert doc["summary"]["runnable_rules"] == runnable_by_sql(corpus_db, events)
    assert doc["events"] == sorted(events)
    ready = [t for t in doc["techniques"] if t["runnable"]]
    assert doc["summary"]["runnable_techniques"] == len(ready)
    for t in doc["techniques"]:
        assert t["runnable"] == sum(v["runnable"] for v in t["vendors"].values()) <= t["rules"]
    if not events:
        assert ready == [] and doc["summary"]["runnable_rules"] == 0


def test_unlock_list_predicts_the_next_coverage(corpus_db: Path) -> None:
    """Adding an unlock event to the profile gains exactly what the list said."""
    doc = cli_json(corpus_db, *flags(SYSMON))
    before = doc["summary"]
    assert len(doc["unlock"]) >= 5
    for u in doc["unlock"][:5]:
        after = cli_json(corpus_db, *flags((*SYSMON, u["event"])))["summary"]
        assert (
            after["runnable_techniques"] - before["runnable_techniques"] == u["techniques_gained"]
        )
        assert after["runnable_rules"] - before["runnable_rules"] == u["rules_gained"]
    gains = [(u["techniques_gained"], u["rules_gained"]) for u in doc["unlock"]]
    assert gains == sorted(gains, reverse=True)


def test_events_file_sample_is_recognized_as_match_does(corpus_db: Path, corpora: Path) -> None:
    from detcat.match.reading import read_documents, read_events

    samples = sorted((corpora / "sigma" / "regression_data").rglob("*.json"))[:40]
    lines = [json.dumps(doc) for p in samples for _, doc in read_documents(p)]
    path = Path(corpus_db).parent / "sample.jsonl"
    path.write_text("\n".join(lines))
    expected = {e.catalog_id for e in read_events(path)} - {None}
    doc = cli_json(corpus_db, "--events-file", str(path))
    assert set(doc["events"]) == expected and expected
    assert doc["sample"]["documents"] == len(lines)
    by_flags = cli_json(corpus_db, *flags(tuple(sorted(expected))))
    assert by_flags["summary"] == doc["summary"]


def test_unknown_event_is_a_usage_error(corpus_db: Path) -> None:
    out = CliRunner().invoke(main, ["coverage", "--events", "sysmon:999", "--db", str(corpus_db)])
    assert out.exit_code == 2 and "unknown event 'sysmon:999'" in out.output
