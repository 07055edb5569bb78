"""The static export's shared pages, as tables: where a rule, field or event lives
(a shared page and an anchor), each of a catalog on exactly one page at the
article its links name, the batched rule details equal to one rule's, and in the
browser a link showing that article alone."""

from __future__ import annotations

import collections
import re
from pathlib import Path
from typing import Any

import pytest
from web_helpers import HOSTILE_ID, HOSTILE_TITLE, exported, squash

from detcat import guide, store
from detcat.guide import rules as rule_data
from detcat.web import queries
from detcat.web.urls import (
    EVENT_PAGES,
    FIELD_PAGES,
    RULE_PAGES,
    Links,
    event_page,
    field_page,
    rule_anchor,
    rule_page,
    slug,
)

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


KEYS = ["process.name", "winlog.event_data.<script>", "sysmon:1", "security:4688", "", "a" * 200]


@pytest.mark.parametrize("kind, folder, pages", [("field", "fields", FIELD_PAGES),
                                                 ("event", "events", EVENT_PAGES)])  # fmt: skip
@pytest.mark.parametrize("key", KEYS)
def test_a_static_field_or_event_is_an_anchor_on_a_shared_page(
    kind: str, folder: str, pages: int, key: str
) -> None:
    page, _, anchor = getattr(TOP, kind)(key).partition("#")
    assert page == {"field": field_page, "event": event_page}[kind](key)
    assert re.fullmatch(rf"{folder}/[0-9a-f]{{3}}\.html", page) and int(page[-8:-5], 16) < pages
    assert anchor == slug(key) and re.fullmatch(r"[A-Za-z0-9._-]+", anchor)


@pytest.mark.parametrize("pages, page_of", [
    (RULE_PAGES, lambda n: rule_page("sigma", f"rule-{n}")),
    (FIELD_PAGES, lambda n: field_page(f"field.{n}")),
    (EVENT_PAGES, lambda n: event_page(f"provider:{n}")),
])  # fmt: skip
def test_items_spread_over_every_page(pages: int, page_of: Any) -> None:
    per_page = collections.Counter(page_of(n) for n in range(20 * pages))
    assert len(per_page) == pages and max(per_page.values()) <= 2 * 20


_ARTICLE = re.compile(r'<article class="(?:rule|field|event)" id="([^"]+)">')


def articles(site: Path) -> collections.Counter[str]:
    """Each article of an exported site's shared pages, as ``page#id``, counted."""
    found: collections.Counter[str] = collections.Counter()
    for folder in ("rules", "fields", "events"):
        for page in sorted((site / folder).glob("*.html")):
            name = str(page.relative_to(site))
            found.update(f"{name}#{a}" for a in _ARTICLE.findall(page.read_text()))
    return found


def assert_each_once_where_linked(site: Path, db: Path) -> None:
    conn = store.connect(db)
    links = [TOP.rule(v, i) for v, i in conn.execute("SELECT vendor, id FROM rules")]
    links += [TOP.field(f) for f in queries.field_names(conn)]
    links += [TOP.event(e) for e in queries.event_ids(conn)]
    assert articles(site) == collections.Counter(links)  # each once, nothing else


def test_hostile_export_holds_each_article_once_where_linked(
    hostile_export: Path, hostile_db: Path
) -> None:
    assert_each_once_where_linked(hostile_export, hostile_db)


def test_corpus_export_holds_each_article_once_where_linked(
    corpus_export: Path, corpus_db: Path
) -> None:
    assert_each_once_where_linked(corpus_export, corpus_db)


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


@pytest.mark.parametrize("folder", ["rules", "fields", "events"])
def test_articles_sharing_a_page_each_show_alone(
    page: Any, corpus_export: Path, folder: str
) -> None:
    by_page: dict[str, list[str]] = collections.defaultdict(list)
    for href in articles(corpus_export):
        name, _, anchor = href.partition("#")
        if name.startswith(folder + "/"):
            by_page[name].append(anchor)
    name, anchors = next((n, a) for n, a in sorted(by_page.items()) if len(a) >= 3)
    top = corpus_export.resolve().as_uri() + "/"
    for anchor in anchors[:3]:  # the second and third from the page the first opened
        page.goto(f"{top}{name}#{anchor}")
        shown = page.locator("main > article:visible")
        assert shown.count() == 1 and shown.get_attribute("id") == anchor
        assert page.title() == squash(shown.locator("h1").text_content()) + " · detcat"
