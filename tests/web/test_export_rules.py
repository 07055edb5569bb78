"""The static export's rule pages, as tables: where a rule lives (a shared page and
an anchor), every rule of a catalog on exactly one page at the article its links
name, the batched rule details equal to one rule's, and in the browser a rule
link showing that rule alone."""

from __future__ import annotations

import collections
import re
from pathlib import Path
from typing import Any

import pytest
from web_helpers import HOSTILE_ID, HOSTILE_TITLE, exported, squash

from detcat import guide, store
from detcat.guide import rules as rule_data
from detcat.web.urls import RULE_PAGES, Links, rule_anchor, rule_page

TOP = Links(static=True)
DEEP = Links(static=True, depth=2)

IDS = [
    ("sigma", "22c45af6-f590-4d44-bab3-b5b2d2a2b6d9"),
    ("elastic", "22c45af6-f590-4d44-bab3-b5b2d2a2b6d9"),  # the same id, another vendor
    ("splunk", "a/b c"),
    ("chronicle", "../../etc/passwd"),
    ("sigma", ".hidden"),
    ("sigma", "sigma:Details"),  # the anchor's separator inside an id
    ("sigma", "sigma_Details"),
    ("sigma", "x" * 300),
    ("sigma", "ünïcode"),
    ("sigma", ""),
]


@pytest.mark.parametrize("vendor, rule_id", IDS)
def test_a_static_rule_is_an_anchor_on_one_of_the_rule_pages(vendor: str, rule_id: str) -> None:
    page, _, anchor = TOP.rule(vendor, rule_id).partition("#")
    assert page == rule_page(vendor, rule_id)
    assert re.fullmatch(r"rules/[0-9a-f]{3}\.html", page) and int(page[6:9], 16) < RULE_PAGES
    # Nothing to quote in an HTML id or a URL fragment.
    assert anchor == rule_anchor(vendor, rule_id)
    assert re.fullmatch(r"[A-Za-z0-9._-]+:[A-Za-z0-9._-]+", anchor)
    assert DEEP.rule(vendor, rule_id) == "../../" + TOP.rule(vendor, rule_id)


def test_anchors_of_distinct_rules_differ() -> None:
    assert len({rule_anchor(v, i) for v, i in IDS}) == len(IDS)


def test_rules_spread_over_every_rule_page() -> None:
    per_page = collections.Counter(rule_page("sigma", f"rule-{n}") for n in range(20 * RULE_PAGES))
    assert len(per_page) == RULE_PAGES and max(per_page.values()) <= 2 * 20


_ARTICLE = re.compile(r'<article class="rule" id="([^"]+)">')


def articles(site: Path) -> dict[str, list[str]]:
    """Each rule article of an exported site (its id) with the pages holding it."""
    found: dict[str, list[str]] = collections.defaultdict(list)
    for page in sorted((site / "rules").glob("*.html")):
        for anchor in _ARTICLE.findall(page.read_text()):
            found[anchor].append(str(page.relative_to(site)))
    return found


def assert_each_rule_once_where_linked(site: Path, db: Path) -> None:
    rules = store.connect(db).execute("SELECT vendor, id FROM rules").fetchall()
    found = articles(site)
    where = {rule_anchor(v, i): [TOP.rule(v, i).partition("#")[0]] for v, i in rules}
    assert found == where


def test_hostile_export_holds_each_rule_once_where_linked(hostile_export: Path, hostile_db: Path):
    assert_each_rule_once_where_linked(hostile_export, hostile_db)


def test_corpus_export_holds_each_rule_once_where_linked(corpus_export: Path, corpus_db: Path):
    assert_each_rule_once_where_linked(corpus_export, corpus_db)


@pytest.mark.parametrize("db_fixture", ["hostile_db", "corpus_db"])
def test_batched_rule_details_are_each_rules_own(
    db_fixture: str, request: pytest.FixtureRequest
) -> None:
    """One statement per table for many rules gives what each rule alone gives,
    across the slices a batch is read in."""
    conn = store.connect(request.getfixturevalue(db_fixture))
    pks = [pk for (pk,) in conn.execute("SELECT pk FROM rules ORDER BY vendor, id")]
    together = rule_data.details(conn, pks)
    assert list(together) == pks
    step = max(1, len(pks) // 300)  # a sample of the corpus: each alone costs a dozen queries
    for pk in pks[::step]:
        assert together[pk] == rule_data.details(conn, [pk])[pk]
    v, i = conn.execute("SELECT vendor, id FROM rules WHERE pk = ?", (pks[-1],)).fetchone()
    assert guide.rule_detail(conn, v, i) == [together[pks[-1]]]


# -- in the browser ------------------------------------------------------------


def _visible_rule(page: Any, url: str) -> tuple[str, str]:
    """The id and title of the one rule article shown at ``url``."""
    page.goto(url)
    shown = page.locator("article.rule:visible")
    assert shown.count() == 1
    return shown.get_attribute("id"), squash(shown.locator("h1").text_content())


def test_a_rule_link_shows_that_rule_alone(page: Any, hostile_export: Path) -> None:
    url = exported(hostile_export).url("rule", "sigma", HOSTILE_ID)
    assert _visible_rule(page, url) == (rule_anchor("sigma", HOSTILE_ID), squash(HOSTILE_TITLE))
    assert page.title() == f"{HOSTILE_TITLE} · detcat"  # site.js names the tab after it


def test_rules_sharing_a_page_each_show_alone(
    page: Any, corpus_export: Path, corpus_db: Path
) -> None:
    by_page: dict[str, list[str]] = collections.defaultdict(list)
    for anchor, (name,) in articles(corpus_export).items():
        by_page[name].append(anchor)
    name, anchors = next((n, a) for n, a in sorted(by_page.items()) if len(a) >= 3)
    rows = store.connect(corpus_db).execute("SELECT vendor, id, title FROM rules")
    titles = {rule_anchor(v, i): squash(t) for v, i, t in rows}
    top = corpus_export.resolve().as_uri() + "/"
    for anchor in anchors[:3]:  # the second and third from the page the first opened
        assert _visible_rule(page, f"{top}{name}#{anchor}") == (anchor, titles[anchor])
