"""Jinja2 rendering with autoescaping everywhere; helpers for the templates.

Data from rule files is hostile by assumption: it only ever reaches HTML through
autoescaped expressions, and only http(s) URLs become links.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import jinja2
import markupsafe

from detcat.attack import paragraphs
from detcat.sources import registry
from detcat.web import rule_rows, technique_rows, trees
from detcat.web.pages import Page
from detcat.web.urls import Links, indicator_key, rule_anchor, slug

# The policy the server sends as a header and the export as a <meta> tag: only
# our own stylesheet and scripts, no inline code, nothing fetched elsewhere. The
# export's search runs Pagefind's WebAssembly, which needs 'wasm-unsafe-eval'
# (compiling WebAssembly, never evaluating strings).
_POLICY = (
    "default-src 'none'; script-src 'self'{wasm}; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'"
)
CSP_META = _POLICY.format(wasm="")
CSP_META_SEARCH = _POLICY.format(wasm=" 'wasm-unsafe-eval'")  # the export's search page
CSP = CSP_META + "; frame-ancestors 'none'"  # browsers ignore frame-ancestors in <meta>

# Heatmap buckets (upper bounds of rule counts); site.js uses the same ones.
HEAT = (0, 2, 5, 10, 25, 50, 100)


def http_url(value: Any) -> str | None:
    """The URL when it is an absolute http(s) URL, else None (never a link)."""
    text = str(value or "").strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    return text if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def prose(text: str) -> markupsafe.Markup:
    """Guide prose (guide.text) as HTML: escaped, `backtick` spans as <code>."""
    parts = str(markupsafe.escape(text)).split("`")
    return markupsafe.Markup("".join(
        f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)))  # fmt: skip


def heat(n: int) -> int:
    return next((i for i, top in enumerate(HEAT) if n <= top), len(HEAT))


# Stage parameters only ``detcat match`` reads (how SPL's eval'd values and
# conditions are computed): JSON programs the query text already says, for a reader.
_MATCH_PROGRAMS = ("computed", "conditions")


def reader_params(params: dict[str, Any]) -> dict[str, Any]:
    """A stage's parameters as the rule page shows them."""
    return {k: v for k, v in params.items() if k not in _MATCH_PROGRAMS}


def pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "–"


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("detcat.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        http_url=http_url, paragraphs=paragraphs, heat=heat, prose=prose,
        reader_params=reader_params,
        by_vendor=rule_rows.by_vendor,
        vendor_label=registry.display_name,
    )  # fmt: skip
    env.globals.update(
        pct=pct, vendors=registry.names, heat_levels=len(HEAT) + 1,
        tree=trees.tree, tree_field=trees.field_link, tree_value=trees.value,
        reach_link=trees.reach_link, rows=technique_rows, indicator_key=indicator_key,
        rule_anchor=rule_anchor, rule_rows=rule_rows, slug=slug,
    )  # fmt: skip
    return env


# Whitespace between tags (template indentation): one space renders the same, as
# HTML collapses runs of it; no <pre> holds a tag (their text is escaped).
_BETWEEN_TAGS = re.compile(r">\s{2,}<")


def render(page: Page, links: Links, api: str | None = None, query: str = "") -> str:
    template = environment().get_template(page.template)
    # Our own constant, with no double quote: written as is (not entity-escaped).
    csp = markupsafe.Markup(CSP_META_SEARCH if page.template == "search.html" else CSP_META)
    html = template.render(
        page=page, d=page.data, links=links, api=api, static=links.static, query=query, csp=csp,
        **page.context,
    )  # fmt: skip
    return _BETWEEN_TAGS.sub("> <", html)
