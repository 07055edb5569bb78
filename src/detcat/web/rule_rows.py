"""Lists and tables of rules and of a rule's parts, written in Python: one call
per list.

The static export writes 7,800 rule articles and 15,000 lists of rules (field,
event and indicator pages); as Jinja loops calling a macro per row, they were
most of its rendering time (as ``technique_rows`` found for the technique page).
Each function writes what the template's loop wrote, byte for byte. Every text
goes through ``esc``: rule content is hostile.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from markupsafe import Markup

from detcat.sources import registry
from detcat.web.trees import esc, field_html, reach_html, value_html
from detcat.web.urls import Links

_NONE = '<li class="muted">none</li>'


def technique_items(techniques: list[str], names: dict[str, str], links: Links) -> Markup:
    """The rule's techniques, each linked with its name when the catalog has it."""
    items = (
        f'<li><a class="technique" href="{esc(links.technique(t))}">{esc(t)}</a>'
        f"{' ' + esc(names[t]) if names[t] else ''}</li>"
        if t in names
        else f"<li>{esc(t)}</li>"
        for t in techniques
    )
    return Markup("".join(items) or _NONE)


def event_items(events: list[dict[str, Any]], links: Links) -> Markup:
    items = (
        f'<li><a class="event" href="{esc(links.event(e["id"]))}">{esc(e["provider"])} / '
        f"{esc(e['event_id'])}</a> {esc(e['title'])}</li>"
        for e in events
    )
    return Markup("".join(items) or _NONE)


def exclusion_rows(exclusions: list[dict[str, Any]], links: Links) -> Markup:
    return Markup("".join(
        f'<tr><td>{field_html(x["field"], links)}</td><td class="op">{esc(x["op"])}</td>'
        f"<td>{value_html(x['value'])}</td></tr>"
        for x in exclusions
    ))  # fmt: skip


def indicator_rows(indicators: list[dict[str, Any]], links: Links) -> Markup:
    """Field (as written: no link), operator, value, kind, corpus reach."""
    return Markup("".join(
        f"<tr><td>{esc(i['field'] if i['field'] is not None else '(keyword)')}</td>"
        f'<td class="op">{esc(i["op"])}</td><td>{value_html(i["value"])}</td>'
        f"<td>{esc(i['kind'])}</td><td class=\"num\">"
        f"{reach_html(i['field'], i['op'], i['value'], i['corpus_reach'], links)}</td></tr>"
        for i in indicators
    ))  # fmt: skip


def similar_rows(similar: list[dict[str, Any]], links: Links) -> Markup:
    """Score, vendor, rule (linked), shared features."""
    return Markup("".join(
        f'<tr><td class="num">{n["score"]:.2f}</td><td>{esc(registry.display_name(n["vendor"]))}'
        f'</td><td><a href="{esc(links.rule(n["vendor"], n["id"]))}">{esc(n["title"])}</a></td>'
        f'<td class="num">{len(n["shared"])}</td></tr>'
        for n in similar
    ))  # fmt: skip


def by_vendor(rows: Iterable[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Rows grouped by their ``vendor`` key, vendors in page order (Sigma first)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["vendor"], []).append(r)
    return [(v, groups[v]) for v in registry.display_order(groups)]


def rules_by_vendor(rules: list[dict[str, Any]], links: Links) -> Markup:
    """Rules linked by title under a heading per vendor."""
    return Markup("".join(
        f'<h3 class="vendor">{esc(registry.display_name(vendor))} <span class="count">'
        f'({len(group)})</span></h3>\n<ul class="rules">\n'
        + "".join(f'<li><a href="{esc(links.rule(r["vendor"], r["id"]))}">{esc(r["title"])}'
                  "</a></li>\n" for r in group)
        + "</ul>\n"
        for vendor, group in by_vendor(rules)
    ))  # fmt: skip


def technique_counts(counts: dict[str, int], links: Links) -> Markup:
    """Techniques linked, each with its number of rules."""
    return Markup("".join(
        f'<li><a class="technique" href="{esc(links.technique(t))}">{esc(t)}</a> ({n})</li>'
        for t, n in counts.items()
    ))  # fmt: skip
