"""The site in Debian's Chromium, served over loopback and exported to files:
the T1219 page against the CLI JSON, expandable indicators, search, predicate
trees, the matrix filter, and hostile rule content staying inert."""

from __future__ import annotations

import json
import re
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from web_helpers import (
    BROKEN_ID,
    HOSTILE_FIELD,
    HOSTILE_ID,
    HOSTILE_TITLE,
    JS_URL,
    PEER_ID,
    SCRIPT,
    TECHNIQUE_FACTS_JS,
    Site,
    expected_technique_facts,
    exported,
    save_artifact,
    served,
    squash,
    tree_counts,
)

from detcat import guide, search, store
from detcat.cli import main
from detcat.sources import registry

pytestmark = pytest.mark.usefixtures("browser")


@pytest.fixture(params=["served", "exported"])
def corpus_site(request: pytest.FixtureRequest) -> Site:
    if request.param == "served":
        return served(request.getfixturevalue("corpus_server"))
    return exported(request.getfixturevalue("corpus_export"))


@pytest.fixture(params=["served", "exported"])
def hostile_site(request: pytest.FixtureRequest) -> Site:
    if request.param == "served":
        return served(request.getfixturevalue("hostile_server"))
    return exported(request.getfixturevalue("hostile_export"))


class Watch:
    """Console errors and dialogs of one page, collected while it is used."""

    def __init__(self, page: Any):
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))


@pytest.fixture
def watched(page: Any) -> Iterator[tuple[Any, Watch]]:
    watch = Watch(page)
    yield page, watch
    assert watch.errors == [] and watch.dialogs == []


def cli_json(db: Path, *args: str) -> Any:
    out = CliRunner().invoke(main, [*args, "--db", str(db), "--json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


# -- the full catalog ---------------------------------------------------------


def test_t1219_page_shows_the_cli_json(
    watched: tuple[Any, Watch], corpus_site: Site, corpus_db: Path
) -> None:
    page, _ = watched
    page.goto(corpus_site.url("technique", "T1219"))
    facts = page.evaluate(TECHNIQUE_FACTS_JS)
    expected = expected_technique_facts(cli_json(corpus_db, "technique", "T1219"))
    assert facts == expected
    assert len(facts["rules"]) >= 52 and facts["events"] and facts["indicators"]


def test_expanding_an_indicator_shows_its_rules(
    watched: tuple[Any, Watch], corpus_site: Site, corpus_db: Path
) -> None:
    page, _ = watched
    g = cli_json(corpus_db, "technique", "T1219")
    titles = {(r["vendor"], r["id"]): squash(r["title"]) for r in g["rules"]}
    page.goto(corpus_site.url("technique", "T1219"))
    row = page.locator("#indicators tbody tr").first
    links = row.locator("details a.rule")
    assert not links.first.is_visible()
    row.locator("summary").click()
    assert links.first.is_visible()
    want = [titles[(r["vendor"], r["id"])] for r in g["indicators"][0]["rule_refs"]]
    assert [squash(t) for t in links.all_text_contents()] == want
    links.first.click()
    page.wait_for_load_state()
    assert squash(page.locator("h1").text_content()) == want[0]


def test_search_finds_the_anydesk_rules(
    watched: tuple[Any, Watch], corpus_site: Site, corpus_db: Path
) -> None:
    page, _ = watched
    page.goto(corpus_site.url("home"))
    page.fill("header input[name=q]", "anydesk")
    page.press("header input[name=q]", "Enter")
    page.wait_for_selector("#search-results li")
    shown = [squash(t) for t in page.locator("#search-results a.rule").all_text_contents()]
    conn = store.connect(corpus_db)
    found = search.search(conn, "anydesk", limit=100_000)
    expected = [squash(r["title"]) for r in found["rules"]]
    if corpus_site.name == "served":
        expected = expected[:50]  # the page's default limit, like the CLI
    assert shown == expected  # the static export's search agrees with FTS5
    titled = conn.execute("SELECT title FROM rules WHERE title LIKE '%anydesk%'").fetchall()
    assert len(titled) >= 5 and {squash(t[0]) for t in titled} <= set(shown)
    summary = page.locator("#search-summary").text_content()
    assert str(found["total"]) in summary


def _richest_t1219_rule(db: Path) -> tuple[str, str]:
    """The T1219 rule with the most predicates among those with exclusions."""
    row = (
        store.connect(db)
        .execute(
            """SELECT r.vendor, r.id FROM rules r JOIN predicates p ON p.rule_pk = r.pk
        WHERE r.pk IN (SELECT rule_pk FROM rule_techniques WHERE technique_id LIKE 'T1219%')
        GROUP BY r.pk HAVING SUM(p.exclusion) > 0 ORDER BY COUNT(*) DESC, r.id LIMIT 1"""
        )
        .fetchone()
    )
    return row[0], row[1]


def test_rule_page_renders_predicate_trees(
    watched: tuple[Any, Watch], corpus_site: Site, corpus_db: Path
) -> None:
    page, _ = watched
    vendor, rule_id = _richest_t1219_rule(corpus_db)
    r = guide.rule_detail(store.connect(corpus_db), vendor, rule_id)[0]
    page.goto(corpus_site.url("rule", vendor, rule_id))
    assert squash(page.locator("h1").text_content()) == squash(r["title"])
    stages = page.locator("#stages .stage")
    assert stages.count() == len(r["stages"])
    for i, s in enumerate(r["stages"]):
        tree = stages.nth(i).locator(".tree")
        counts = tree_counts(s["expr"])
        assert {k: tree.locator(f".node.{k}").count() for k in ("and", "or", "not")} == {
            k: counts[k] for k in ("and", "or", "not")
        }
        assert tree.locator(".pred").count() == counts["pred"] > 0
    excl = page.locator("#exclusions tbody tr")
    assert excl.count() == len(r["exclusions"]) > 0
    assert page.locator("#indicators tbody tr").count() == len(r["indicators"])
    assert page.locator("pre.query").text_content() == r["query"]
    assert page.locator("a.upstream").get_attribute("href") == r["upstream_url"]


def test_matrix_vendor_filter(
    watched: tuple[Any, Watch], corpus_site: Site, corpus_db: Path
) -> None:
    page, _ = watched
    from detcat.web.queries import overview

    data = overview(store.connect(corpus_db))
    cell = next(c for t in data["tactics"] for c in t["techniques"] if c["id"] == "T1219")
    page.goto(corpus_site.url("home"))
    assert page.locator("#rule-total").text_content() == str(data["rules"])
    shown = page.locator(".matrix .cell", has=page.locator("a[href*='T1219']")).first
    for vendor in ("all", *registry.names(), "all"):
        page.select_option("#vendor-filter", vendor)
        n = cell["rules"].get(vendor, 0)
        assert shown.locator(".n").text_content() == str(n)
        assert re.search(rf"\bh{_heat(n)}\b", shown.get_attribute("class") or "")


def _heat(n: int) -> int:
    from detcat.web.templating import heat

    return heat(n)


def test_screenshot_of_the_t1219_page(page: Any, corpus_server: str, tmp_path: Path) -> None:
    page.goto(served(corpus_server).url("technique", "T1219"))
    shot = tmp_path / "t1219.png"
    page.screenshot(path=str(shot), full_page=True)
    width, height = struct.unpack(">II", shot.read_bytes()[16:24])  # PNG IHDR
    assert (width, height) >= (1400, 2000)
    assert save_artifact(shot).read_bytes() == shot.read_bytes()
    shutil.copyfile(shot, tmp_path / "kept.png")


# -- hostile content -------------------------------------------------------------


def _assert_inert(page: Any, watch: Watch) -> None:
    """No hostile string ran or became markup; our own scripts only."""
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert watch.dialogs == [] and watch.errors == []
    injected = page.evaluate(
        """() => ({
        handlers: [...document.querySelectorAll('*')].flatMap(el => [...el.attributes]
            .filter(a => a.name.startsWith('on')).map(a => el.tagName + ' ' + a.name)),
        imgs: document.querySelectorAll('img, svg').length,
        scripts: [...document.scripts].map(s => s.getAttribute('src') || 'inline'),
        jsLinks: [...document.querySelectorAll('[href]')]
            .map(a => a.getAttribute('href')).filter(h => /^\\s*javascript:/i.test(h)),
    })"""
    )
    assert injected["handlers"] == [] and injected["imgs"] == 0 and injected["jsLinks"] == []
    assert all(re.search(r"(static/site\.js|search-index\.js)$", s) for s in injected["scripts"])


HOSTILE_PAGES = [
    ("home",),
    ("technique", "T1219"),
    ("rule", "sigma", HOSTILE_ID),
    ("rule", "sigma", BROKEN_ID),
    ("field", "winlog.event_data." + HOSTILE_FIELD),
    ("indicator", "process.command_line", "contains", SCRIPT),
    ("event", "sysmon:1"),
    ("problems",),
]


@pytest.mark.parametrize("where", HOSTILE_PAGES, ids=lambda w: w[0])
def test_hostile_content_is_inert(page: Any, hostile_site: Site, where: tuple[str, ...]) -> None:
    watch = Watch(page)
    page.goto(hostile_site.url(*where))
    page.locator("details summary").first.click() if page.locator("details").count() else None
    _assert_inert(page, watch)
    body = page.locator("main").inner_text()
    assert SCRIPT in body or '"><img src=x onerror=window.__pwned=2>' in body


def test_hostile_rule_reads_literally(page: Any, hostile_site: Site) -> None:
    watch = Watch(page)
    page.goto(hostile_site.url("rule", "sigma", HOSTILE_ID))
    assert page.locator("h1").text_content() == HOSTILE_TITLE
    refs = page.locator("#references li")
    assert refs.nth(0).locator("a").count() == 0 and refs.nth(0).text_content() == JS_URL
    assert refs.nth(1).locator("a").count() == 0
    ok = refs.nth(2).locator("a")
    assert ok.get_attribute("href") == 'https://example.com/ok"><script>window.__pwned=6</script>'
    assert page.get_by_text(JS_URL).first.is_visible()
    _assert_inert(page, watch)


def test_opaque_nodes_show_their_reason(page: Any, hostile_site: Site, hostile_db: Path) -> None:
    r = guide.rule_detail(store.connect(hostile_db), "sigma", BROKEN_ID)[0]
    page.goto(hostile_site.url("rule", "sigma", BROKEN_ID))
    opaque = page.locator(".tree .opaque")
    assert opaque.count() == 1
    assert opaque.locator(".reason").text_content() == r["stages"][0]["expr"]["reason"]
    assert opaque.locator("pre").text_content() == r["stages"][0]["expr"]["opaque"]


def test_hostile_search_is_inert(page: Any, hostile_site: Site, hostile_db: Path) -> None:
    watch = Watch(page)
    query = "hostile" if hostile_site.name == "exported" else SCRIPT  # export: words only
    page.goto(hostile_site.url("search", query))
    page.wait_for_selector("#search-results li")
    found = search.search(store.connect(hostile_db), query)
    shown = page.locator("#search-results a.rule").all_text_contents()
    assert shown == [r["title"] for r in found["rules"]] and HOSTILE_TITLE in shown
    assert page.locator("header input[name=q]").input_value() == query
    _assert_inert(page, watch)


def test_peer_rule_links_back_through_the_shared_indicator(page: Any, hostile_site: Site) -> None:
    """Corpus reach on a rule page links to the other rules checking the value."""
    page.goto(hostile_site.url("rule", "sigma", PEER_ID))
    row = page.locator("#indicators tbody tr", has_text=SCRIPT)
    row.locator("a.reach").click()
    page.wait_for_load_state()
    titles = page.locator("#rules a.rule").all_text_contents()
    assert sorted(titles) == sorted(["AnyDesk peer rule", HOSTILE_TITLE])
