"""``/coverage`` in Debian's Chromium against the CLI: ticking an event recolours
the matrix and updates the unlock list; the unlock list's "add" links; the
Navigator layer download on the overview (served and exported); the JSON twins
validated against their schemas."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from detcat import schemas
from detcat.cli import main

pytestmark = pytest.mark.usefixtures("browser")


@pytest.fixture
def watched(page: Any) -> Iterator[Any]:
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    assert errors == []


def cli_coverage(db: Path, events: list[str]) -> Any:
    args = [a for e in events for a in ("--events", e)]
    out = CliRunner().invoke(main, ["coverage", *args, "--json", "--db", str(db)])
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


def family_runnable(db: Path, family: str, events: list[str]) -> int:
    """Rules tagged with ``family`` or a sub-technique of it whose every events
    stage reads one of ``events``: SQL alone, the specification of a cell."""
    marks = ",".join("?" * len(events))
    conn = sqlite3.connect(db)
    return conn.execute(
        f"""SELECT COUNT(*) FROM rules r
        WHERE EXISTS (SELECT 1 FROM rule_techniques t WHERE t.rule_pk = r.pk
                      AND (t.technique_id = ? OR t.technique_id LIKE ? || '.%'))
          AND EXISTS (SELECT 1 FROM stages s WHERE s.rule_pk = r.pk AND s.role = 'events')
          AND NOT EXISTS (
            SELECT 1 FROM stages s WHERE s.rule_pk = r.pk AND s.role = 'events'
              AND NOT EXISTS (SELECT 1 FROM rule_events e WHERE e.rule_pk = r.pk
                              AND e.stage_idx = s.idx AND e.event IN ({marks})))""",
        (family, family, *events),
    ).fetchone()[0]


def shown(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """() => ({
          runnable: Number(document.querySelector('#runnable-techniques').textContent),
          unlock: [...document.querySelectorAll('#unlock tbody tr')].map(tr => [
            tr.dataset.event, Number(tr.cells[2].textContent), Number(tr.cells[3].textContent)]),
          cells: Object.fromEntries([...document.querySelectorAll('.matrix .cell')].map(
            c => [c.dataset.technique, Number(c.dataset.runnable)])),
          checked: [...document.querySelectorAll('#events input:checked')].map(i => i.value),
          layer: document.querySelector('#layer-link').getAttribute('href'),
        })"""
    )


def expected(doc: dict[str, Any]) -> list[list[Any]]:
    return [[u["event"], u["techniques_gained"], u["rules_gained"]] for u in doc["unlock"][:15]]


def test_ticking_an_event_recolours_the_matrix_and_the_unlock_list(
    watched: Any, corpus_server: str, corpus_db: Path
) -> None:
    page = watched
    page.goto(f"{corpus_server}/coverage?events=sysmon:1")
    before = shown(page)
    doc = cli_coverage(corpus_db, ["sysmon:1"])
    assert before["runnable"] == doc["summary"]["runnable_techniques"]
    assert before["unlock"] == expected(doc) and before["checked"] == ["sysmon:1"]
    box = page.locator('input[value="sysmon:13"]')
    assert box.is_visible(), "the group of a ticked event is open"
    with page.expect_navigation():
        box.check()
    after = shown(page)
    doc = cli_coverage(corpus_db, ["sysmon:1", "sysmon:13"])
    assert sorted(after["checked"]) == ["sysmon:1", "sysmon:13"]
    assert after["runnable"] == doc["summary"]["runnable_techniques"] > before["runnable"]
    assert after["unlock"] == expected(doc) != before["unlock"]
    for family in ("T1112", "T1059", "T1547"):  # registry events matter to the first
        assert before["cells"][family] == family_runnable(corpus_db, family, ["sysmon:1"])
        assert after["cells"][family] == family_runnable(
            corpus_db, family, ["sysmon:1", "sysmon:13"]
        )
    assert after["cells"]["T1112"] > before["cells"]["T1112"]
    assert parse_qs(urlsplit(after["layer"]).query)["events"] == ["sysmon:1", "sysmon:13"]


def test_unlock_add_link_adds_that_event(watched: Any, corpus_server: str) -> None:
    page = watched
    page.goto(f"{corpus_server}/coverage?events=security:4688")
    first = shown(page)["unlock"][0][0]
    page.locator("#unlock tbody tr a.add").first.click()
    page.wait_for_load_state()
    assert sorted(shown(page)["checked"]) == sorted(["security:4688", first])


def fetch(url: str) -> tuple[Any, dict[str, str]]:
    with urllib.request.urlopen(url) as r:
        return json.loads(r.read()), dict(r.headers)


def test_json_twins_are_the_cli_documents(corpus_server: str, corpus_db: Path) -> None:
    doc, _ = fetch(f"{corpus_server}/api/coverage?events=sysmon:1&events=sysmon:3")
    assert doc == cli_coverage(corpus_db, ["sysmon:1", "sysmon:3"])
    schemas.Coverage.model_validate(doc)
    layer, headers = fetch(f"{corpus_server}/api/layer?events=sysmon:1&events=sysmon:3")
    out = CliRunner().invoke(main, ["layer", "--events", "sysmon:1", "--events", "sysmon:3",
                                    "--db", str(corpus_db)])  # fmt: skip
    assert layer == json.loads(out.output)
    assert "attachment" in headers["content-disposition"]
    schemas.NavigatorLayer.model_validate(layer)


@pytest.mark.parametrize("where", ["served", "exported"])
def test_overview_links_the_layer(
    watched: Any, where: str, request: pytest.FixtureRequest, corpus_db: Path
) -> None:
    page = watched
    if where == "served":
        base = request.getfixturevalue("corpus_server")
        page.goto(base + "/")
    else:
        root = request.getfixturevalue("corpus_export")
        page.goto((root / "index.html").as_uri())
    href = page.locator("#layer-link").get_attribute("href")
    out = CliRunner().invoke(main, ["layer", "--db", str(corpus_db)])
    if where == "served":
        got, _ = fetch(base + href)
        assert page.locator("header nav a", has_text="Coverage").count() == 1
    else:
        got = json.loads((root / href).read_text(encoding="utf-8"))
        assert page.locator("header nav a", has_text="Coverage").count() == 0  # needs a server
    assert got == json.loads(out.output)


def test_technique_page_says_the_attack_gap_first(
    watched: Any, corpus_server: str, corpus_db: Path
) -> None:
    """The section on ATT&CK's detection strategy opens with the log sources no
    rule reads, as ``detcat technique --json`` lists them."""
    page = watched
    args = ["technique", "T1070.005", "--json", "--db", str(corpus_db)]
    out = CliRunner().invoke(main, args)
    gap = json.loads(out.output)["attack_detection"]["gap"]
    page.goto(f"{corpus_server}/techniques/T1070.005")
    section = page.locator("#attack-detection")
    first = section.locator("p").first
    assert first.get_attribute("id") == "attack-gap"
    text = first.text_content() or ""
    assert gap and all(r["name"] in text and r["channel"] in text for r in gap)
    assert section.locator("tbody tr.gap").count() >= len(gap)
