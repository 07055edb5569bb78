"""The static export's shared pages: each rule, field and event is an article of
one of a fixed number of pages per folder (``urls.rule_page``, ``field_page``,
``event_page``), linked as ``rules/<page>.html#<vendor>:<id>``,
``fields/<page>.html#<field>``, ``events/<page>.html#<event>``; opened at one,
the stylesheet shows that article alone. A page is rendered once for its
articles (one frame, one technique-name lookup), and the rules of a page are
read together (``guide.rules.details``).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from detcat.guide import rules as rule_data
from detcat.web import pages, queries
from detcat.web.pages import Page
from detcat.web.urls import Links, event_page, field_page, rule_page

TEMPLATE = "shared.html"
_ROOT = Links(static=True)

Builder = Callable[[sqlite3.Connection], Page]


def jobs(conn: sqlite3.Connection) -> Iterator[tuple[str, Builder]]:
    """Every shared page: (path under the export root, page builder)."""
    for path, pks in rule_groups(conn).items():
        yield path, partial(rule_group, pks=pks)
    for path, names in _grouped(queries.field_names(conn), field_page).items():
        yield path, partial(field_group, names=names)
    for path, ids in _grouped(queries.event_ids(conn), event_page).items():
        yield path, partial(event_group, event_ids=ids)


def _grouped(keys: list[str], page_of: Callable[[str], str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        groups[page_of(key)].append(key)
    return dict(sorted(groups.items()))


def rule_groups(conn: sqlite3.Connection) -> dict[str, list[int]]:
    """Each static rule page with its rules' keys, in the order the page lists
    them (by vendor, then title)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for pk, vendor, rule_id in conn.execute(
        "SELECT pk, vendor, id FROM rules ORDER BY vendor, title, pk"
    ):
        groups[rule_page(vendor, rule_id)].append(pk)
    return dict(sorted(groups.items()))


def rule_group(conn: sqlite3.Connection, pks: list[int]) -> Page:
    """One static rule page: the detail of each of its rules."""
    found = rule_data.details(conn, pks)
    rules = [found[pk] for pk in pks]
    names = queries.technique_names(conn, sorted({t for r in rules for t in r["techniques"]}))
    return Page(TEMPLATE, "Rules", rules, {"kind": "rule", "technique_names": names})


def field_group(conn: sqlite3.Connection, names: list[str]) -> Page:
    """One static field page: each field's page data (as served)."""
    return Page(TEMPLATE, "Fields", [pages.field_(conn, n).data for n in names], {"kind": "field"})


def event_group(conn: sqlite3.Connection, event_ids: list[str]) -> Page:
    """One static event page: each event's page data (as served)."""
    data = [pages.event(conn, e).data for e in event_ids]
    return Page(TEMPLATE, "Events", data, {"kind": "event"})


def twins(page: Page) -> list[tuple[str, Any]]:
    """The JSON twin of each article of a shared page: (path, data), each what the
    server answers for that rule, field or event."""
    kind = page.context["kind"]
    key: Callable[[dict[str, Any]], tuple[str, ...]] = {
        "rule": lambda d: (d["vendor"], d["id"]),
        "field": lambda d: (d["field"],),
        "event": lambda d: (d["id"],),
    }[kind]
    return [(_ROOT.twin(kind, *key(d)), d) for d in page.data]
