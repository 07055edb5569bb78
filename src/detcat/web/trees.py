"""Predicate trees (``model.expr_to_json``) as compact nested lists.

A rule page is mostly its trees, and the export writes 7,800 of them: built here
in Python rather than by a recursive Jinja macro (a quarter of the time), with
no whitespace between tags and only the class names the stylesheet and the
tests use. Under an OR, consecutive predicates that differ only in their value
(a value list: ``Image|endswith: [a, b, c]``, ``process.name in (a, b)``) show as
one line with every value, as the rule wrote them. Every text goes through
``escape``: rule content is hostile.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

from detcat.model import value_text
from detcat.web.urls import Links

_MUTED = '<span class="muted">{}</span>'


def tree(expr: dict[str, Any] | None, links: Links) -> Markup:
    """The tree as HTML; each field links to its page where it first appears."""
    if expr is None:
        return Markup(_MUTED.format("(no query)"))
    out: list[str] = []
    _node(expr, _Linker(links), out)
    return Markup("".join(out))


class _Linker:
    """Links as usual, except that a field already linked in this tree is plain text."""

    def __init__(self, links: Links):
        self.links = links
        self.linked: set[str] = set()

    def field(self, name: str) -> str:
        if name in self.linked:
            return str(escape(name))
        self.linked.add(name)
        return f'<a href="{escape(self.links.field(name))}">{escape(name)}</a>'


def _node(e: dict[str, Any], links: _Linker, out: list[str]) -> None:
    for key in ("and", "or", "not"):
        if key in e:
            children = e[key] if key != "not" else [e[key]]
            out.append(f'<div class="node {key}"><span class="kw">{key.upper()}</span><ul>')
            for group in _value_lists(children) if key == "or" else ([c] for c in children):
                out.append("<li>")
                if len(group) > 1:
                    out.append(predicate(group[0], links, [g["value"] for g in group]))
                else:
                    _node(group[0], links, out)
                out.append("</li>")
            out.append("</ul></div>")
            return
    if "opaque" in e:
        detail = f' <span class="detail">{escape(e["detail"])}</span>' if e.get("detail") else ""
        reason = f'<span class="reason">{escape(e["reason"])}</span>{detail}'
        out.append(f'<div class="opaque"><span class="kw">OPAQUE</span> {reason}'
                   f'<pre>{escape(e["opaque"])}</pre></div>')  # fmt: skip
        return
    out.append(predicate(e, links))


_SAME = ("field", "field_raw", "op", "syntax", "case_sensitive", "kind")


def _value_lists(children: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Children in runs: consecutive predicates with values that agree on
    everything but the value form one run; any other child is a run of one."""
    runs: list[list[dict[str, Any]]] = []
    for c in children:
        plain = "op" in c and c.get("value") is not None
        last = runs[-1][0] if runs else None
        if (
            plain
            and last is not None
            and "op" in last
            and last.get("value") is not None
            and all(c.get(k) == last.get(k) for k in _SAME)
        ):
            runs[-1].append(c)
        else:
            runs.append([c])
    return runs


def predicate(e: dict[str, Any], links: _Linker, values: list[Any] | None = None) -> str:
    """One predicate: field, vendor name, operator, value (or the values of a value
    list), source syntax, flags."""
    field, raw = e["field"], e.get("field_raw")
    parts = [_MUTED.format("(keyword)") if field is None else links.field(field)]
    if raw and raw != field:
        parts.append(f'<span class="raw">[{escape(raw)}]</span>')
    parts.append(f'<span class="op">{escape(e["op"])}</span>')
    parts += [value(v) for v in (values if values is not None else [e["value"]])]
    if e.get("syntax"):
        parts.append(f'<span class="syntax">{escape(e["syntax"])}</span>')
    if e.get("case_sensitive"):
        parts.append('<span class="flag">case-sensitive</span>')
    if e.get("kind"):
        parts.append(f'<span class="flag">{escape(e["kind"])}</span>')
    return '<span class="pred">' + " ".join(parts) + "</span>"


def field_link(name: str | None, links: Links) -> Markup:
    if name is None:
        return Markup(_MUTED.format("(keyword)"))
    return Markup(f'<a href="{escape(links.field(name))}">{escape(name)}</a>')


def value(v: Any) -> Markup:
    """A predicate value; None is the absence of one."""
    return Markup(_MUTED.format("(none)") if v is None else f"<code>{escape(value_text(v))}</code>")


def reach_link(field: str | None, op: str, v: Any, n: int, links: Links) -> Markup:
    """A count of rules checking an indicator; a link when other rules share it."""
    if n <= 1:
        return Markup(str(n))
    return Markup(f'<a href="{escape(links.indicator(field, op, v))}">{n}</a>')


def op_bars(ops: dict[str, int]) -> Markup:
    """An operator histogram (as the ``op_bars`` macro writes it, for the pages that
    draw fifty of them)."""
    top = max(ops.values()) if ops else 0
    bars = "".join(
        f'  <li><span class="op">{escape(op)}</span> <meter max="{top}" value="{n}">{n}</meter>'
        f' <span class="n">{n}</span></li>\n'
        for op, n in ops.items()
    )
    return Markup(f'<ul class="bars">\n{bars}</ul>')


def rule_item(r: dict[str, Any], position: int, links: Links) -> Markup:
    """A technique page's rule: its link, its position for site.js and its techniques."""
    html = (f'<li data-r="{position}"><a href="{escape(links.rule(r["vendor"], r["id"]))}">'
            f'{escape(r["title"])}</a>')  # fmt: skip
    if r["techniques"]:
        techs = (
            f'<a href="{escape(links.technique(t))}">{escape(t)}</a> ' for t in r["techniques"]
        )
        html += f' <span class="techs">{"".join(techs)}</span>'
    return Markup(html + "</li>")


_SELECTOR = ' <span class="flag selector" title="chooses the kind of event, not an indicator to copy">selector</span>'  # noqa: E501


def indicator_row(i: dict[str, Any], rules: str, with_reach: bool, links: Links) -> Markup:
    """A technique page's indicator or exclusion row; ``rules`` their positions."""
    flags = (' <span class="flag">implied</span>' if i.get("implied") else "") + (
        _SELECTOR if i.get("selector") else ""
    )
    reach = ""
    if with_reach:
        n = (
            ""
            if i["specific"]
            else reach_link(i["field"], i["op"], i["value"], i["corpus_reach"], links)
        )
        reach = f'<td class="num">{n}</td>'
    return Markup(
        f'<tr><td>{field_link(i["field"], links)}</td><td><span class="op">{escape(i["op"])}</span>'
        f'{flags}</td><td><details data-rules="{escape(rules)}"><summary>{value(i["value"])}'
        f'</summary></details></td><td class="num">{i["rules"]}</td>{reach}</tr>'
    )


def alias_list(aliases: dict[str, list[Any]], label: Any) -> Markup:
    """A field's vendor names (``label`` names a vendor)."""
    items = "".join(
        f'<li><span class="vendor">{escape(label(v))}</span>: '
        + ", ".join(f"<code>{escape(a)}</code>" for a in names)
        + "</li>"
        for v, names in aliases.items()
    )
    return Markup(f'<ul class="aliases">{items}</ul>')


def sample_list(samples: list[Any]) -> Markup:
    return Markup(
        '<ul class="samples">' + "".join(f"<li>{value(s)}</li>" for s in samples) + "</ul>"
    )
