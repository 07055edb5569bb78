"""Every page of the site as data: its template, its title and its JSON twin.

The server and the static export both render these, so a page and its twin
(``/api/...``) can never disagree. ``Page.data`` is exactly what the API
returns; ``Page.context`` holds lookups only the HTML needs (titles, names).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from detcat import coverage as cov
from detcat import guide, navigator, similar
from detcat import search as search_mod
from detcat.errors import DetcatError
from detcat.guide import text as guide_text
from detcat.web import queries

DEFAULT_LIMIT = 50  # rows per section, the CLI's default


class NotFound(DetcatError, LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Page:
    template: str
    title: str
    data: Any
    context: dict[str, Any] = field(default_factory=dict)


def overview(conn: sqlite3.Connection) -> Page:
    return Page("overview.html", "Overview", queries.overview(conn))


def technique(conn: sqlite3.Connection, tid: str, limit: int = DEFAULT_LIMIT) -> Page:
    try:
        g = guide.technique_guide(conn, tid, limit=limit)
    except guide.UnknownTechnique as e:
        raise NotFound(str(e)) from e
    # Indicator rows name their rules by position in the page's rule list.
    positions = {(r["vendor"], r["id"]): i for i, r in enumerate(g["rules"])}
    h = g["technique"]
    parent = queries.technique_names(conn, [h["parent"]]) if h["parent"] else {}
    # Each indicator row's rules as positions, written here (a long loop in a template).
    row_rules = {
        section: [" ".join(str(positions[(r["vendor"], r["id"])]) for r in row["rule_refs"])
                  for row in g[section]]
        for section in ("indicators", "exclusions")
    }  # fmt: skip
    context = {"positions": positions, "parent": parent, "about": guide_text.explain(g),
               "row_rules": row_rules}  # fmt: skip
    return Page("technique.html", f"{h['id']} {h['name']}", g, context)


def rule(conn: sqlite3.Connection, vendor: str, rule_id: str) -> Page:
    found = guide.rule_detail(conn, vendor, rule_id)
    if not found:
        raise NotFound(f"no {vendor} rule with id {rule_id}")
    r = found[0]
    names = queries.technique_names(conn, r["techniques"])
    return Page("rule.html", r["title"], r, {"technique_names": names})


def clusters(conn: sqlite3.Connection) -> Page:
    """Near-duplicate clusters (empty until ``similar.ensure`` ran on the catalog)."""
    ready = similar.available(conn)
    data = {
        "summary": similar.cluster_summary(conn) if ready else similar.EMPTY_SUMMARY,
        "clusters": similar.clusters(conn) if ready else [],
    }
    return Page("clusters.html", "Near-duplicate clusters", data)


def field_(conn: sqlite3.Connection, name: str, limit: int = DEFAULT_LIMIT) -> Page:
    data = queries.field_page(conn, name, limit=limit)
    if data is None:
        raise NotFound(f"no rule filters the field {name}")
    return Page("field.html", name, data)


def event(conn: sqlite3.Connection, event_id: str) -> Page:
    data = queries.event_page(conn, event_id)
    if data is None:
        raise NotFound(f"unknown event {event_id}")
    return Page("event.html", f"{data['provider']} / {data['event_id']}", data)


def indicator(conn: sqlite3.Connection, field_name: str | None, op: str, value: str) -> Page:
    data = queries.indicator_page(conn, field_name or None, op, value)
    if data is None:
        raise NotFound("no rule checks this indicator")
    title = f"{data['field'] or '(keyword)'} {op} {data['value']}"
    return Page("indicator.html", title, data)


def indicator_group(conn: sqlite3.Connection, items: list[tuple[str | None, str, str]]) -> Page:
    """Several indicators on one page, each in its own section (the static export)."""
    data = [queries.indicator_page(conn, f or None, op, value) for f, op, value in items]
    found = [d for d in data if d is not None]
    return Page("indicators.html", f"{len(found)} indicators", found)


def search(
    conn: sqlite3.Connection,
    query: str,
    limit: int = DEFAULT_LIMIT,
    vendor: str | None = None,
    technique: str | None = None,
) -> Page:
    """Rules matching ``query`` (words and field:value terms), of one vendor and
    technique (with its sub-techniques) when given; the static export's search
    page takes the same parameters."""
    vendor, technique = vendor or None, (technique or "").strip() or None
    data = search_mod.search(conn, query, limit=limit, vendor=vendor, technique=technique)
    context = {"vendor": vendor or "", "technique": technique or ""}
    return Page("search.html", f"Search {query}" if query else "Search", data, context)


def problems(conn: sqlite3.Connection) -> Page:
    rows = guide.problems(conn)
    # Only problems about a rule that made it into the catalog link to its page.
    stored = set(map(tuple, conn.execute(
        "SELECT vendor, id FROM rules WHERE id IN (SELECT rule_id FROM problems)")))  # fmt: skip
    return Page("problems.html", "Problems", rows, {"stored": stored})


def coverage(
    conn: sqlite3.Connection,
    events: Sequence[str],
    vendors: Sequence[str] = (),
    collection: str | None = None,
) -> Page:
    """``/coverage``: the events chosen, the matrix by runnable rules, the unlock
    list. Its twin is exactly ``detcat coverage --events … --json``."""
    try:
        cat, data = cov.report(conn, events, vendors or None, collection)
    except cov.UnknownEvent as e:
        raise NotFound(str(e)) from e
    context = {
        "choices": cov.event_choices(conn),
        "tactics": queries.matrix(conn)["tactics"],
        "cells": cov.family_cells(cat, data["events"]),
        "collections": [c for (c,) in conn.execute("SELECT DISTINCT collection FROM rules")],
        "collection": collection,
    }
    return Page("coverage.html", "Coverage of your events", data, context)


def layer(
    conn: sqlite3.Connection,
    events: Sequence[str],
    vendors: Sequence[str] = (),
    collection: str | None = None,
    score: str | None = None,
) -> Page:
    """The Navigator layer download (JSON only: no HTML page)."""
    try:
        doc = navigator.layer(conn, vendors=vendors or None, collection=collection,
                              events=events, score=score)  # fmt: skip
    except cov.UnknownEvent as e:
        raise NotFound(str(e)) from e
    return Page("", doc["name"], doc)
