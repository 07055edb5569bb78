"""The build pipeline, the store and the CLI on a small hand-made sources
directory: atomic replacement, problems, exit codes, the guide's arithmetic."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from detcat import catalog, store
from detcat.cli import main
from detcat.guide import technique_guide

BUNDLE = {
    "type": "bundle",
    "objects": [
        {
            "type": "x-mitre-tactic",
            "id": "x-mitre-tactic--1",
            "name": "Command and Control",
            "x_mitre_shortname": "command-and-control",
            "external_references": [{"source_name": "mitre-attack", "external_id": "TA0011"}],
        },
        {
            "type": "attack-pattern",
            "id": "attack-pattern--1",
            "name": "Remote Access Tools",
            "description": "Adversaries use remote access tools.",
            "kill_chain_phases": [
                {"kill_chain_name": "mitre-attack", "phase_name": "command-and-control"}
            ],
            "external_references": [{"source_name": "mitre-attack", "external_id": "T1219"}],
        },
        {
            "type": "attack-pattern",
            "id": "attack-pattern--2",
            "name": "Remote Desktop Software",
            "x_mitre_is_subtechnique": True,
            "kill_chain_phases": [
                {"kill_chain_name": "mitre-attack", "phase_name": "command-and-control"}
            ],
            "external_references": [{"source_name": "mitre-attack", "external_id": "T1219.002"}],
        },
    ],
}


def rule_yaml(n: int, tag: str, image: str, title: str | None = None, extra: str = "") -> str:
    return f"""title: {title or f"Rule {n}"}
id: 00000000-0000-4000-8000-00000000000{n}
status: test
description: remote tool rule {n}
tags:
    - {tag}
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '{image}'
{extra}    condition: selection{" and not filter" if extra else ""}
level: high
"""


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    src = tmp_path / "sources"
    (src / "attack").mkdir(parents=True)
    (src / "attack" / "enterprise-attack.json").write_text(json.dumps(BUNDLE))
    rules = src / "sigma" / "rules"
    rules.mkdir(parents=True)
    filt = "    filter:\n        ParentImage|endswith: '\\explorer.exe'\n"
    (rules / "r1.yml").write_text(rule_yaml(1, "attack.t1219.002", "\\AnyDesk.exe", extra=filt))
    (rules / "r2.yml").write_text(rule_yaml(2, "attack.t1219", "\\AnyDesk.exe", extra=filt))
    (rules / "r3.yml").write_text(rule_yaml(3, "attack.t1105", "\\AnyDesk.exe"))
    (rules / "r4.yml").write_text(rule_yaml(4, "attack.t1219", "\\tv.exe", "<script>x</script>"))
    (rules / "broken.yml").write_text("title: broken\ndetection: [\n")
    return src


def test_build_and_guide(sources: Path, tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    report = catalog.build(sources, db, workers=1)
    assert report.vendors["sigma"]["rules"] == 4
    assert [p.path for p in report.problems] == ["rules/broken.yml"]
    assert report.unknown_techniques == {"T1105": 1}  # kept, reported
    g = technique_guide(store.connect(db), "T1219")
    assert g["vendors"]["sigma"] == 3
    assert {r["id"][-1]: r["techniques"] for r in g["rules"]} == {
        "1": ["T1219.002"],
        "2": ["T1219"],
        "4": ["T1219"],
    }
    anydesk = next(i for i in g["indicators"] if i["value"] == "\\AnyDesk.exe")
    # Two rules here, three in the whole catalog (r3 is tagged T1105).
    assert (anydesk["field"], anydesk["op"], anydesk["rules"], anydesk["corpus_reach"]) == (
        "process.executable",
        "ends_with",
        2,
        3,
    )
    tv = next(i for i in g["indicators"] if i["value"] == "\\tv.exe")
    assert tv["specific"] and tv["corpus_reach"] == 1
    assert [(e["field"], e["op"], e["value"], e["rules"]) for e in g["exclusions"]] == [
        ("process.parent.executable", "ends_with", "\\explorer.exe", 2),
    ]
    image = next(f for f in g["fields"] if f["field"] == "process.executable")
    assert image["rules"] == 3 and image["operators"] == {"ends_with": 3}
    assert image["aliases"] == {"sigma": ["Image"]}
    sub = technique_guide(store.connect(db), "T1219.002")
    assert [r["id"][-1] for r in sub["rules"]] == ["1"]


def test_failed_build_keeps_previous_catalog(
    sources: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "c.sqlite"
    catalog.build(sources, db, workers=1)
    before = db.read_bytes()

    def explode(self: object, *args: object) -> int:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store.CatalogWriter, "add_rule", explode)
    with pytest.raises(RuntimeError):
        catalog.build(sources, db, workers=1, incremental=False)
    assert db.read_bytes() == before
    assert not list(tmp_path.glob(".c.sqlite.*")), "temporary file left behind"
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM rules").fetchone()[0] == 4


def test_missing_attack_bundle_is_a_build_error(sources: Path, tmp_path: Path) -> None:
    (sources / "attack" / "enterprise-attack.json").unlink()
    with pytest.raises(catalog.BuildError, match="ATT&CK"):
        catalog.build(sources, tmp_path / "c.sqlite", workers=1)


def test_cli_exit_codes_and_json(sources: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "c.sqlite")
    run = CliRunner().invoke
    assert run(main, ["technique", "T1219", "--db", db]).exit_code == 3  # no catalog yet
    assert (
        run(main, ["build", "--sources", str(sources), "--db", db, "--workers", "1"]).exit_code == 0
    )
    strict = run(
        main, ["build", "--sources", str(sources), "--db", db, "--strict", "--workers", "1"]
    )
    assert strict.exit_code == 1
    out = run(main, ["technique", "t1219", "--db", db, "--json"])
    assert out.exit_code == 0
    data = json.loads(out.output)
    assert set(data) >= {
        "technique",
        "vendors",
        "rules",
        "events",
        "fields",
        "indicators",
        "exclusions",
    }
    assert data["technique"]["subtechniques"] == [
        {"id": "T1219.002", "name": "Remote Desktop Software"}
    ]
    assert run(main, ["technique", "T9999", "--db", db]).exit_code == 3
    stats = json.loads(run(main, ["stats", "--db", db, "--json"]).output)
    assert stats["vendors"]["sigma"] == {
        **stats["vendors"]["sigma"],
        "rules": 4,
        "with_query": 4,
        "fully_parsed": 4,
        "with_opaque": 0,
        "problems": 1,
    }
    rule = json.loads(
        run(main, ["rule", "00000000-0000-4000-8000-000000000001", "--db", db, "--json"]).output
    )
    assert rule["exclusions"] == [
        {"field": "process.parent.executable", "op": "ends_with", "value": "\\explorer.exe"}
    ]
    found = json.loads(run(main, ["search", "script", "--db", db, "--json"]).output)
    assert [r["title"] for r in found["rules"]] == ["<script>x</script>"]
    by_field = json.loads(run(main, ["search", "Image:anydesk", "--db", db, "--json"]).output)
    assert by_field["total"] == 3
    text = run(main, ["technique", "T1219", "--db", db])
    assert text.exit_code == 0 and "<script>x</script>" in text.output


@pytest.mark.parametrize(
    "cmd", [[], ["build"], ["technique"], ["rule"], ["stats"], ["search"], ["problems"]]
)
def test_every_command_has_help(cmd: list[str]) -> None:
    out = CliRunner().invoke(main, [*cmd, "--help"])
    assert out.exit_code == 0 and "Usage" in out.output


def test_a_vendor_without_reader_is_a_problem_not_a_crash(sources: Path, tmp_path: Path) -> None:
    (sources / "acme").mkdir()
    report = catalog.build(sources, tmp_path / "c.sqlite", vendors=("sigma", "acme"), workers=2)
    assert report.vendors["sigma"]["rules"] == 4
    assert any("no reader for acme" in p.message for p in report.problems)
