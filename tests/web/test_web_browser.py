"""The site in Debian's Chromium, served over loopback and exported to files:
the T1219 page against the CLI JSON, expandable indicators, search, predicate
trees, the matrix filter, and hostile rule content staying inert."""

from __future__ import annotations

import collections
import json
import re
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

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
    exported_over_http,
    save_artifact,
    served,
    squash,
    tree_counts,
)

from detcat import guide, search, store
from detcat.cli import main
from detcat.sources import registry
from detcat.web import export, static_search

pytestmark = pytest.mark.usefixtures("browser")

# The rule a rule link shows: a served rule page holds one article, a static one
# several, of which the stylesheet shows the one linked (the URL's #anchor).
RULE = "article.rule:visible"


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


# What issue 17 asks of the page: each section says how to read it, with the
# page's own numbers; the first screen of indicators spans fields; vendors in order.
GUIDE_JS = """() => {
  const t = el => el ? el.textContent.replace(/\\s+/g, ' ').trim() : '';
  const h2 = [...document.querySelectorAll('main h2')].find(h => t(h) === 'Authoring guide');
  const fields = document.querySelector('#fields table');
  return {
    guide_first: !!h2 && !!fields &&
      !!(h2.compareDocumentPosition(fields) & Node.DOCUMENT_POSITION_FOLLOWING),
    guide: t(document.querySelector('#guide .explain')),
    explain: Object.fromEntries(['events', 'fields', 'indicators', 'exclusions', 'rules']
      .map(id => [id, t(document.querySelector(`#${id} .explain`))])),
    top20: [...document.querySelectorAll('#indicators tbody tr')].slice(0, 20)
      .map(tr => [t(tr.children[0]), t(tr.children[1]), t(tr.querySelector('summary'))]),
    vendor_groups: [...document.querySelectorAll('#rules h3')].map(h => t(h.firstChild)),
  };
}"""


def test_t1219_page_reads_like_a_guide(
    watched: tuple[Any, Watch], corpus_site: Site, corpus_db: Path
) -> None:
    page, _ = watched
    g = cli_json(corpus_db, "technique", "T1219")
    page.goto(corpus_site.url("technique", "T1219"))
    facts = page.evaluate(GUIDE_JS)
    assert facts["guide_first"]
    assert f"{len(g['rules'])} rules" in facts["guide"]
    assert "Sigma's Image" in facts["guide"] and "Elastic's process.executable" in facts["guide"]
    top_field = g["fields"][0]
    noisy = max((i for i in g["indicators"] if not i["selector"] and not i["specific"]),
                key=lambda i: i["corpus_reach"] - i["rules"])  # fmt: skip
    numbers = {  # section -> numbers of this page its paragraph must state
        "events": [f"{len(g['events'])} catalog events", f"by {g['events'][0]['rules']} rules"],
        "fields": [f"{g['field_count']} distinct fields", f"({top_field['rules']} rules)"],
        "indicators": [f"{g['indicator_count']} distinct", f"{noisy['corpus_reach']} overall",
                       f"({sum(i['specific'] for i in g['indicators'])} of the "
                       f"{len(g['indicators'])} rows)"],
        "exclusions": [f"{g['exclusion_count']} distinct"],
        "rules": [f"The {len(g['rules'])} rules", f"Sigma {g['vendors']['sigma']}"],
    }  # fmt: skip
    for section, wanted in numbers.items():
        for n in wanted:
            assert n in facts["explain"][section], (section, n)
    per_field = collections.Counter(f for f, _, _ in facts["top20"])
    assert len(facts["top20"]) == 20 and max(per_field.values()) <= 10, per_field
    assert facts["vendor_groups"] == ["Sigma", "Elastic", "Splunk", "Google SecOps"]


def test_expanding_an_indicator_shows_its_rules(
    watched: tuple[Any, Watch], corpus_site: Site, corpus_db: Path
) -> None:
    page, _ = watched
    g = cli_json(corpus_db, "technique", "T1219")
    titles = {(r["vendor"], r["id"]): squash(r["title"]) for r in g["rules"]}
    page.goto(corpus_site.url("technique", "T1219"))
    row = page.locator("#indicators tbody tr").first
    links = row.locator("details li > a")
    assert not links.first.is_visible()
    row.locator("summary").click()
    links.first.wait_for()  # site.js lists them from the page's rule list on opening
    want = [titles[(r["vendor"], r["id"])] for r in g["indicators"][0]["rule_refs"]]
    assert [squash(t) for t in links.all_text_contents()] == want
    links.first.click()
    page.wait_for_load_state()
    assert squash(page.locator(f"{RULE} h1").text_content()) == want[0]


@pytest.fixture(params=["served", "exported"])
def corpus_search_site(request: pytest.FixtureRequest) -> Site:
    """The served site, or the export served by a plain static file server."""
    if request.param == "served":
        return served(request.getfixturevalue("corpus_server"))
    return exported_over_http(request.getfixturevalue("corpus_export_server"))


def _search(page: Any, site: Site, **params: str) -> tuple[list[str], str]:
    """Titles listed and the summary line of the search page for these parameters."""
    page.goto(site.url("search") + "?" + urlencode(params))
    summary = page.locator("#search-summary:not(:empty)")
    summary.wait_for()
    titles = page.locator("#search-results li > a").all_text_contents()
    return [squash(t) for t in titles], squash(summary.text_content())


# Field terms and filters: the static search lists what the server lists, in its order.
EXACT_SEARCHES = [
    {"q": "process.name:anydesk.exe"},
    {"q": "Image:anydesk"},  # the vendor's field name
    {"q": "process.name:anydesk", "vendor": "elastic"},
    {"q": "", "technique": "t1219"},  # with sub-techniques; more than one page of results
    {"q": "remote access", "technique": "T1219", "vendor": "sigma"},
]


@pytest.mark.parametrize("params", EXACT_SEARCHES, ids=lambda p: " ".join(p.values()).strip())
def test_search_lists_what_the_server_finds(
    watched: tuple[Any, Watch], corpus_search_site: Site, corpus_db: Path, params: dict[str, str]
) -> None:
    page, _ = watched
    shown, summary = _search(page, corpus_search_site, **params)
    filters = {k: v for k, v in params.items() if k != "q"}
    found = search.search(store.connect(corpus_db), params["q"], limit=50, **filters)
    assert found["total"] > 0
    assert shown == [squash(r["title"]) for r in found["rules"]]
    assert summary.startswith(f"{found['total']} rules match")


def test_search_words_also_find_values(
    watched: tuple[Any, Watch], corpus_search_site: Site, corpus_db: Path
) -> None:
    """A word finds what full-text search finds; the export's search also finds
    rules checking a value with that word (the server needs field:value for those)."""
    page, _ = watched
    shown, summary = _search(page, corpus_search_site, q="anydesk", vendor="splunk")
    conn = store.connect(corpus_db)
    fts = [squash(r["title"]) for r in search.search(conn, "anydesk", vendor="splunk")["rules"]]
    assert len(fts) >= 3
    if corpus_search_site.name == "served":
        assert shown == fts
        return
    assert set(fts) <= set(shown)
    in_values = {squash(t) for (t,) in conn.execute(
        """SELECT title FROM rules WHERE vendor = 'splunk' AND pk IN (SELECT rule_pk
        FROM predicates WHERE value_key LIKE '%anydesk%' AND negated = 0)""")}  # fmt: skip
    assert set(shown) - set(fts) <= in_values
    assert summary.startswith(f"{len(shown)} rules match")


# Fields and prefix lengths whose every prefix the export's search is asked for.
PREFIX_SEARCHES = [("process.name", 2), ("process.command_line", 1)]


@pytest.mark.parametrize("field, n", PREFIX_SEARCHES)
def test_static_field_terms_find_every_value_a_prefix_starts(
    watched: tuple[Any, Watch],
    corpus_export_server: str,
    corpus_export: Path,
    corpus_db: Path,
    field: str,
    n: int,
) -> None:
    """`field:p` in the export's search lists exactly the rules checking a value with a
    word that starts with p, for every (ASCII) prefix p of n characters: where the
    words extending p run into the next Pagefind index chunk, and where a stemmer
    would have changed p (English stems "by" to "bi")."""
    page, _ = watched
    site = exported_over_http(corpus_export_server)
    found, ids = static_search.records(store.connect(corpus_db))
    words: dict[str, set[str]] = collections.defaultdict(set)  # value word -> rule urls
    for r in found:
        for token in r["content"].split():
            name, _, word = token.partition(":")
            if name == ids[field]:
                words[word].add(r["url"])
    prefixes = sorted({w[:n] for w in words if len(w) >= n and w[:n].isascii()})
    assert len(prefixes) > 20
    page.goto(site.url("search"))
    got = page.evaluate(
        """async ([field, prefixes]) => {
          const out = {};
          for (const p of prefixes) {
            out[p] = (await window.detcatSearch(field + ":" + p)).results.map(r => r.id);
          }
          return out;
        }""",
        [field, prefixes],
    )
    urls = _result_urls(corpus_export, got)
    expected = {p: set().union(*(u for w, u in words.items() if w.startswith(p))) for p in prefixes}
    wrong = [p for p in prefixes if urls[p] != expected[p]]
    assert not wrong, f"{len(wrong)} of {len(prefixes)} prefixes list other rules: {wrong[:10]}"


def _result_urls(root: Path, results: dict[str, list[str]]) -> dict[str, set[str]]:
    """Pagefind result ids as rule urls, from the export's results files."""
    entries: dict[str, list[str]] = {}
    for bundle in {static_search.results_bundle(i) for ids in results.values() for i in ids}:
        path = root / export.SEARCH_DIR / static_search.RESULTS_DIR / f"{bundle}.json"
        entries.update(json.loads(path.read_text()))
    return {p: {entries[i][0] for i in ids} for p, ids in results.items()}


def test_exported_search_from_a_file_says_it_needs_http(page: Any, corpus_export: Path) -> None:
    page.goto(exported(corpus_export).url("search") + "?q=anydesk")
    summary = page.locator("#search-summary:not(:empty)")
    summary.wait_for()
    assert "http.server" in (summary.text_content() or "")
    assert page.locator("#search-results li").count() == 0


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
    rule = page.locator(RULE)
    assert squash(rule.locator("h1").text_content()) == squash(r["title"])
    stages = rule.locator(".stages .stage")
    assert stages.count() == len(r["stages"])
    for i, s in enumerate(r["stages"]):
        tree = stages.nth(i).locator(".tree")
        counts = tree_counts(s["expr"])
        assert {k: tree.locator(f".node.{k}").count() for k in ("and", "or", "not")} == {
            k: counts[k] for k in ("and", "or", "not")
        }
        # A value list under an OR is one line: every value shows, as code.
        assert tree.locator(".pred code").count() == counts["values"] > 0
    excl = rule.locator(".exclusions tbody tr")
    assert excl.count() == len(r["exclusions"]) > 0
    assert rule.locator(".indicators tbody tr").count() == len(r["indicators"])
    assert rule.locator("pre.query").text_content() == r["query"]
    assert rule.locator("a.upstream").get_attribute("href") == r["upstream_url"]


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
    top = page.locator("#indicators tbody tr").all_inner_texts()[:20]  # listed beside the shot
    listing = tmp_path / "t1219-top20.txt"
    listing.write_text("\n".join(" ".join(row.split()) for row in top) + "\n")
    assert len(save_artifact(listing).read_text().splitlines()) == 20


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
    assert all(re.search(r"static/site\.js$", s) for s in injected["scripts"])


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
    assert page.locator(f"{RULE} h1").text_content() == HOSTILE_TITLE
    refs = page.locator(f"{RULE} .references li")
    assert refs.nth(0).locator("a").count() == 0 and refs.nth(0).text_content() == JS_URL
    assert refs.nth(1).locator("a").count() == 0
    ok = refs.nth(2).locator("a")
    assert ok.get_attribute("href") == 'https://example.com/ok"><script>window.__pwned=6</script>'
    assert page.get_by_text(JS_URL).first.is_visible()
    _assert_inert(page, watch)


def test_opaque_nodes_show_their_reason(page: Any, hostile_site: Site, hostile_db: Path) -> None:
    r = guide.rule_detail(store.connect(hostile_db), "sigma", BROKEN_ID)[0]
    page.goto(hostile_site.url("rule", "sigma", BROKEN_ID))
    opaque = page.locator(f"{RULE} .tree .opaque")
    assert opaque.count() == 1
    assert opaque.locator(".reason").text_content() == r["stages"][0]["expr"]["reason"]
    assert opaque.locator("pre").text_content() == r["stages"][0]["expr"]["opaque"]


@pytest.fixture(params=["served", "exported"])
def hostile_search_site(request: pytest.FixtureRequest) -> Site:
    if request.param == "served":
        return served(request.getfixturevalue("hostile_server"))
    return exported_over_http(request.getfixturevalue("hostile_export_server"))


@pytest.mark.parametrize("query", [SCRIPT, "hostile", "process.command_line:<script>"])
def test_hostile_search_is_inert(
    page: Any, hostile_search_site: Site, hostile_db: Path, query: str
) -> None:
    watch = Watch(page)
    page.goto(hostile_search_site.url("search", query))
    page.wait_for_selector("#search-results li")
    found = search.search(store.connect(hostile_db), query)
    shown = page.locator("#search-results li > a").all_text_contents()
    assert HOSTILE_TITLE in shown and set(shown) <= {r["title"] for r in found["rules"]}
    assert page.locator("header input[name=q]").input_value() == query
    _assert_inert(page, watch)


def test_peer_rule_links_back_through_the_shared_indicator(page: Any, hostile_site: Site) -> None:
    """Corpus reach on a rule page links to the other rules checking the value."""
    page.goto(hostile_site.url("rule", "sigma", PEER_ID))
    row = page.locator(f"{RULE} .indicators tbody tr", has_text=SCRIPT)
    row.locator("td.num a").click()  # the corpus reach
    page.wait_for_load_state()
    # The export holds indicators as sections of shared pages: the link opens one.
    shown = ".indicator:target" if hostile_site.name == "exported" else ".indicator"
    titles = page.locator(f"{shown} .checking li > a").all_text_contents()
    assert page.locator(".indicator").filter(has_text="AnyDesk peer rule").count() >= 1
    assert sorted(titles) == sorted(["AnyDesk peer rule", HOSTILE_TITLE])
