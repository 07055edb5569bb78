"""The static export and the two commands, on the hostile catalog and on the
full catalog: every page and twin written, relative links only, none broken."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from web_helpers import HOSTILE_ID, HOSTILE_TITLE, broken_links, hostile_markup

from detcat import store
from detcat.cli import main
from detcat.web import export, queries, static_search
from detcat.web.app import create_app
from detcat.web.templating import CSP_META, CSP_META_SEARCH
from detcat.web.urls import EVENT_PAGES, FIELD_PAGES, RULE_PAGES, Links, rule_page

TOP = Links(static=True)
SHARED = ("rules", "fields", "events")  # folders of pages holding several articles


def shared_articles(conn: sqlite3.Connection) -> list[tuple[str, tuple[str, ...]]]:
    """(kind, key) of every rule, field and event of a catalog."""
    rules = [("rule", (v, i)) for v, i in conn.execute("SELECT vendor, id FROM rules")]
    fields = [("field", (f,)) for f in queries.field_names(conn)]
    return rules + fields + [("event", (e,)) for e in queries.event_ids(conn)]


def test_hostile_export_is_complete_linked_and_inert(hostile_export: Path) -> None:
    pages = sorted(str(p.relative_to(hostile_export)) for p in hostile_export.rglob("*.html"))
    assert {"index.html", "search.html", "problems.html", TOP.technique("T1219"),
            rule_page("sigma", HOSTILE_ID)} <= set(pages)  # fmt: skip
    assert broken_links(hostile_export) == {}
    for page in pages:
        html = (hostile_export / page).read_text()
        assert hostile_markup(html) == [], page
        csp = CSP_META_SEARCH if page == TOP.search() else CSP_META  # search runs WebAssembly
        assert f'<meta http-equiv="Content-Security-Policy" content="{csp}">' in html


def test_every_exported_page_has_its_json_twin_equal_to_the_api(
    hostile_export: Path, hostile_db: Path
) -> None:
    client = TestClient(create_app(hostile_db))
    server = Links()
    pairs = [
        (TOP.home(), server.home()),
        (TOP.technique("T1219"), server.technique("T1219")),
        (TOP.problems(), server.problems()),
    ]
    twins = {TOP.api(static): server.api(served) for static, served in pairs}
    # A static rule, field or event page holds several: each has a twin of its own.
    articles = shared_articles(store.connect(hostile_db))
    twins |= {TOP.twin(kind, *key): server.twin(kind, *key) for kind, key in articles}
    for static_twin, served_twin in twins.items():
        twin = json.loads((hostile_export / static_twin).read_text())
        assert twin == client.get(served_twin).json(), static_twin
    htmls = {str(p.relative_to(hostile_export)) for p in hostile_export.rglob("*.html")}
    written = {str(p.relative_to(hostile_export)) for p in (hostile_export / "api").rglob("*.json")}
    shared = ("rules/", "fields/", "events/")
    pages_with_twin = {h for h in htmls if h != TOP.search() and not h.startswith(shared)}
    assert written == {TOP.api(h) for h in pages_with_twin} | {TOP.twin(k, *a) for k, a in articles}


def test_search_index_holds_every_rule(hostile_export: Path, hostile_db: Path) -> None:
    conn = store.connect(hostile_db)
    n_rules = conn.execute("SELECT COUNT(*) FROM rules").fetchone()[0]
    entry = json.loads((hostile_export / export.SEARCH_DIR / "pagefind-entry.json").read_text())
    assert entry["languages"][static_search.LANGUAGE]["page_count"] == n_rules
    found, ids = static_search.records(conn)
    records = {r["url"]: r for r in found}
    # Tokens name fields by the ids site.js reads from the index folder.
    assert json.loads((hostile_export / export.SEARCH_DIR / static_search.FIELDS_FILE)
                      .read_text()) == ids  # fmt: skip
    # What the results list shows of each rule, one entry per rule.
    files = {
        f.stem: json.loads(f.read_text())
        for f in (hostile_export / export.SEARCH_DIR / static_search.RESULTS_DIR).iterdir()
    }
    results = {rid: entry for entries in files.values() for rid, entry in entries.items()}
    assert sorted(url for url, *_ in results.values()) == sorted(records)
    # Each in the file site.js reads for its id.
    assert all(static_search.results_bundle(rid) == stem
               for stem, entries in files.items() for rid in entries)  # fmt: skip
    hostile_result = next(e for e in results.values() if e[0] == TOP.rule("sigma", HOSTILE_ID))
    assert hostile_result[1:] == [HOSTILE_TITLE, "Sigma", "T1219"]
    assert len(records) == n_rules
    hostile = records[TOP.rule("sigma", HOSTILE_ID)]
    assert hostile["filters"] == {"vendor": ["sigma"], "technique": ["T1219"]}
    words = hostile["content"].split()
    assert {"Hostile", "described", f"{ids['process.command_line']}:script"} <= set(words)
    assert hostile["meta"]["techniques"] == "T1219" and hostile["meta"]["vendor"] == "Sigma"
    # Sorted as the server sorts search results: by vendor, then title.
    order = [r["url"] for r in sorted(records.values(), key=lambda r: r["sort"]["order"])]
    rows = conn.execute("SELECT vendor, id FROM rules ORDER BY vendor, title, pk").fetchall()
    assert order == [TOP.rule(v, i) for v, i in rows]


def test_export_refuses_a_foreign_directory_and_replaces_its_own(
    hostile_db: Path, tmp_path: Path
) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(export.ExportError, match="not a detcat export"):
        export.export_site(hostile_db, foreign, workers=1)
    assert (foreign / "precious.txt").read_text() == "keep me"
    site = tmp_path / "site"
    export.export_site(hostile_db, site, workers=1)
    (site / "rules" / "stale.html").write_text("from an older catalog")
    report = export.export_site(hostile_db, site, workers=2)
    assert not (site / "rules" / "stale.html").exists()
    assert report.files == sum(1 for p in site.rglob("*") if p.is_file())


def test_export_site_command(hostile_db: Path, tmp_path: Path) -> None:
    out = CliRunner().invoke(
        main, ["export-site", str(tmp_path / "s"), "--db", str(hostile_db), "--workers", "1"]
    )
    assert out.exit_code == 0, out.output
    n_pages = len(list((tmp_path / "s").rglob("*.html")))
    assert f"{n_pages} pages" in out.output and "http.server" in out.output
    assert not (tmp_path / "s" / "api").exists()  # no JSON twins unless asked
    assert 'class="json"' not in (tmp_path / "s" / "index.html").read_text()
    twins = CliRunner().invoke(
        main, ["export-site", str(tmp_path / "s"), "--db", str(hostile_db), "--json"]
    )
    assert twins.exit_code == 0, twins.output
    shared = sum(len(list((tmp_path / "s" / f).rglob("*.html"))) for f in SHARED)
    # Every page but search, and each rule, field and event rather than their pages.
    n_twins = n_pages - 1 - shared + len(shared_articles(store.connect(hostile_db)))
    assert len(list((tmp_path / "s" / "api").rglob("*.json"))) == n_twins
    missing = CliRunner().invoke(main, ["export-site", str(tmp_path / "t"), "--db", "nope.db"])
    assert missing.exit_code == 3 and not (tmp_path / "t").exists()


def test_serve_command_binds_loopback_by_default(
    hostile_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    out = CliRunner().invoke(main, ["serve", "--db", str(hostile_db)])
    assert out.exit_code == 0, out.output
    assert (calls[0]["host"], calls[0]["port"]) == ("127.0.0.1", 8000)
    assert CliRunner().invoke(main, ["serve", "--db", "nope.db"]).exit_code == 3


def test_cli_start_up_does_not_import_the_web_stack() -> None:
    code = (
        "import sys, detcat.cli; print(sorted({'fastapi', 'uvicorn', 'jinja2'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- the full catalog -------------------------------------------------------------


def test_corpus_export_writes_every_page_and_no_link_is_broken(
    corpus_export: Path, corpus_db: Path
) -> None:
    conn = store.connect(corpus_db)
    count = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
    shared = count(
        """SELECT COUNT(*) FROM (SELECT 1 FROM predicates WHERE negated = 0
        AND stage_role = 'events' AND op NOT IN ('exists', 'is_null')
        GROUP BY field, op, value_key HAVING COUNT(DISTINCT rule_pk) > 1)"""
    )
    files = lambda folder: sum(1 for _ in (corpus_export / folder).rglob("*.html"))  # noqa: E731
    assert files("techniques") == count("SELECT COUNT(*) FROM techniques")

    def articles(folder: str, kind: str) -> int:
        pages = (corpus_export / folder).glob("*.html")
        return sum(p.read_text().count(f'<article class="{kind}" id="') for p in pages)

    assert articles("rules", "rule") == count("SELECT COUNT(*) FROM rules")
    assert articles("events", "event") == count("SELECT COUNT(DISTINCT event) FROM rule_events")
    assert articles("fields", "field") == len(queries.field_names(conn))
    assert files("rules") <= RULE_PAGES and files("fields") <= FIELD_PAGES
    assert files("events") <= EVENT_PAGES
    sections = sum(p.read_text().count('<section class="indicator" id="i')
                   for p in (corpus_export / "indicators").glob("*.html"))  # fmt: skip
    assert sections == shared and files("indicators") <= 256
    assert broken_links(corpus_export) == {}


def test_corpus_technique_twin_is_the_cli_json(corpus_db: Path, corpus_export: Path) -> None:
    cli = CliRunner().invoke(main, ["technique", "T1219", "--db", str(corpus_db), "--json"])
    expected = json.loads(cli.output)
    with TestClient(create_app(corpus_db)) as client:
        assert client.get("/api/techniques/T1219").json() == expected
    assert not (corpus_export / "api").exists()  # twins are asked for (hostile_export does)


def test_link_checker_reports_what_it_cannot_follow(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "ok.html").write_text('<a href="sub/page.html">x</a> <a href="https://x.example">')
    links = '<a href="../ok.html?q=1">b</a> <a href="../gone.html">g</a> <a href="/ok.html">a</a>'
    (tmp_path / "sub" / "page.html").write_text(links)
    assert broken_links(tmp_path) == {"sub/page.html": ["../gone.html", "/ok.html"]}
