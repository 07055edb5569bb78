"""The technique page's long tables, written in Python: one call per table.

A technique page lists up to a thousand rules and a hundred indicator rows; as
Jinja loops calling a helper per row, the rendering was most of an uncached
request. Each function here writes a whole table body (or list) as one string,
byte for byte what the template's loop wrote: the rows are joined with the
whitespace the loop put between them, which ``templating.render`` then
collapses the same way. Every text goes through ``esc``: rule content is hostile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from markupsafe import Markup

from detcat.sources import registry
from detcat.web.trees import esc, field_html, reach_html, value_html
from detcat.web.urls import Links

# -- the fields table ---------------------------------------------------------------------


def field_rows(fields: list[dict[str, Any]], links: Links) -> Markup:
    """The rows of "Fields filtered most": field, vendor names, rules, operators,
    sample values."""
    return Markup("\n      ".join(_field_row(f, links) for f in fields))


def _field_row(f: dict[str, Any], links: Links) -> str:
    cells = (field_html(f["field"], links), _aliases(f["aliases"]), f'{f["rules"]}',
             _op_bars(f["operators"]), _samples(f["samples"]))  # fmt: skip
    return (
        '<tr>\n        <td>{}</td>\n        <td>{}</td>\n        <td class="num">{}</td>\n'
        "        <td>{}</td>\n        <td>{}</td>\n      </tr>"
    ).format(*cells)


def _aliases(aliases: dict[str, list[Any]]) -> str:
    items = "".join(
        f'<li><span class="vendor">{esc(registry.display_name(v))}</span>: '
        + ", ".join(f"<code>{esc(a)}</code>" for a in names)
        + "</li>"
        for v, names in aliases.items()
    )
    return f'<ul class="aliases">{items}</ul>'


def _op_bars(ops: dict[str, int]) -> str:
    top = max(ops.values()) if ops else 0
    bars = "".join(
        f'  <li><span class="op">{esc(op)}</span> <meter max="{top}" value="{n}">{n}</meter>'
        f' <span class="n">{n}</span></li>\n'
        for op, n in ops.items()
    )
    return f'<ul class="bars">\n{bars}</ul>'


def _samples(samples: list[Any]) -> str:
    return '<ul class="samples">' + "".join(f"<li>{value_html(s)}</li>" for s in samples) + "</ul>"


# -- indicators and exclusions ----------------------------------------------------------

_SELECTOR = ' <span class="flag selector" title="chooses the kind of event, not an indicator to copy">selector</span>'  # noqa: E501


def indicator_rows(
    rows: list[dict[str, Any]], rules_of: list[str], with_reach: bool, links: Links
) -> Markup:
    """The indicator (or exclusion) rows; ``rules_of`` each row's rules as
    positions in the page's rule list (site.js lists them when a row opens)."""
    return Markup(
        "\n".join(
            _indicator_row(i, r, with_reach, links) for i, r in zip(rows, rules_of, strict=True)
        )
    )


def _indicator_row(i: dict[str, Any], rules: str, with_reach: bool, links: Links) -> str:
    flags = (' <span class="flag">implied</span>' if i.get("implied") else "") + (
        _SELECTOR if i.get("selector") else ""
    )
    reach = ""
    if with_reach:
        reach = f'<td class="num">{"" if i["specific"] else _reach(i, links)}</td>'
    return (
        f'<tr><td>{field_html(i["field"], links)}</td><td><span class="op">{esc(i["op"])}</span>'
        f'{flags}</td><td><details data-rules="{esc(rules)}"><summary>{value_html(i["value"])}'
        f'</summary></details></td><td class="num">{i["rules"]}</td>{reach}</tr>'
    )


def _reach(i: dict[str, Any], links: Links) -> str:
    return reach_html(i["field"], i["op"], i["value"], i["corpus_reach"], links)


# -- events and rules -------------------------------------------------------------------


def event_rows(events: list[dict[str, Any]], links: Links) -> Markup:
    """The rows of "Events covered"."""
    label: Callable[[str], str] = registry.display_name
    return Markup("\n      ".join(
        f'<tr><td>{esc(e["provider"])}</td><td><a class="event" href="{esc(links.event(e["id"]))}">'
        f'{esc(e["event_id"])}</a></td><td>{esc(e["title"])}</td>'
        f'<td class="num">{e["rules"]}</td><td class="vendors">'
        + ", ".join(f'<span class="vendor">{esc(label(v))}</span>' for v in e["vendors"])
        + "</td></tr>"
        for e in events
    ))  # fmt: skip


def rule_items(
    rules: list[dict[str, Any]], positions: dict[tuple[str, str], int], links: Links
) -> Markup:
    """One vendor's rules, each with its link, its position in the page's rule
    list (site.js finds a row's rules by it) and its techniques."""
    return Markup("\n".join(
        _rule_item(r, positions[(r["vendor"], r["id"])], links) for r in rules))  # fmt: skip


def _rule_item(r: dict[str, Any], position: int, links: Links) -> str:
    html = (f'<li data-r="{position}"><a href="{esc(links.rule(r["vendor"], r["id"]))}">'
            f'{esc(r["title"])}</a>')  # fmt: skip
    if r["techniques"]:
        techs = "".join(
            f'<a href="{esc(links.technique(t))}">{esc(t)}</a> ' for t in r["techniques"]
        )
        html += f' <span class="techs">{techs}</span>'
    return html + "</li>"
