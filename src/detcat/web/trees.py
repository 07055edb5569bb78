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


def esc(text: Any) -> str:
    """``markupsafe.escape`` as a plain string: the same five entities, without
    a ``Markup`` object per call (a technique page escapes thousands of texts)."""
    return (
        str(text)
        .replace("&", "&amp;")
        .replace(">", "&gt;")
        .replace("<", "&lt;")
        .replace("'", "&#39;")
        .replace('"', "&#34;")
    )


def field_html(name: str | None, links: Links) -> str:
    """A field's link, or "(keyword)" for none."""
    if name is None:
        return _MUTED.format("(keyword)")
    return f'<a href="{esc(links.field(name))}">{esc(name)}</a>'


def value_html(v: Any) -> str:
    """A predicate value; None is the absence of one."""
    return _MUTED.format("(none)") if v is None else f"<code>{esc(value_text(v))}</code>"


def reach_html(field: str | None, op: str, v: Any, n: int, links: Links) -> str:
    """A count of rules checking an indicator; a link when other rules share it."""
    if n <= 1:
        return str(n)
    return f'<a href="{esc(links.indicator(field, op, v))}">{n}</a>'


def field_link(name: str | None, links: Links) -> Markup:
    return Markup(field_html(name, links))


def value(v: Any) -> Markup:
    return Markup(value_html(v))


def reach_link(field: str | None, op: str, v: Any, n: int, links: Links) -> Markup:
    return Markup(reach_html(field, op, v, n, links))
