"""The static export's rule pages: each rule is an article of one of
``urls.RULE_PAGES`` shared pages (``urls.rule_page``), linked as
``rules/<page>.html#<vendor>:<id>``; opened at one, the stylesheet shows that
article alone. The rules of a page are read together (``guide.rules.details``) and
the page frame is rendered once per page, not once per rule.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from typing import Any

from detcat.guide import rules as rule_data
from detcat.web import queries
from detcat.web.pages import Page
from detcat.web.urls import Links, rule_page

TEMPLATE = "rules.html"
_ROOT = Links(static=True)


def rule_groups(conn: sqlite3.Connection) -> dict[str, list[int]]:
    """Each static rule page (path under the export root) with its rules' keys, in
    the order the page lists them (by vendor, then title)."""
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
    return Page(TEMPLATE, "Rules", rules, {"technique_names": names})


def twins(page: Page) -> list[tuple[str, Any]]:
    """The JSON twin of each rule of a static rule page: (path, data), each what
    the served ``/api/rules/{vendor}/{id}`` answers."""
    return [(_ROOT.rule_api(r["vendor"], r["id"]), r) for r in page.data]
