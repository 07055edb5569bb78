"""Where every page lives, for the server (absolute routes) and for the static
export (files, linked relatively so the site works from ``file://``).

One function per page kind keeps the two layouts in step: the exporter writes
each page at the path the links point to.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from detcat.store import value_key

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_UNQUOTED = re.compile(r"[A-Za-z0-9_.~-]*")  # what ``quote(text, safe="")`` leaves as is


def slug(text: str) -> str:
    """A file name for any id: kept when already safe, else sanitized plus a hash
    so that distinct ids never share a file."""
    clean = _UNSAFE.sub("_", text)
    if clean == text and text and not text.startswith("."):
        return text
    clean = "_" + clean[1:] if clean.startswith(".") else clean  # no hidden files, no ".."
    return f"{clean[:60]}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def indicator_key(field: str | None, op: str, value: object) -> str:
    """A short stable name for a (field, op, case-folded value) indicator: 48 bits
    (a collision among the catalog's 55,000 indicators: about 1 in 200,000)."""
    raw = "\x1f".join((field or "", op, value_key(value)))
    return hashlib.sha1(raw.encode()).hexdigest()[:12]


def indicator_group(key: str) -> str:
    """The static page holding an indicator's section: 256 pages, by key prefix."""
    return f"indicators/{key[:2]}.html"


# The static export keeps rules, fields and events as articles of shared pages, a
# fixed number per folder (a page per item wasted a disk block each and repeated
# the page frame 10,800 times); an item's page is a hash of its key, so its
# address does not move as the catalog grows.
RULE_PAGES = 512
FIELD_PAGES = 128
EVENT_PAGES = 128


def _spread(folder: str, key: str, pages: int) -> str:
    digest = hashlib.sha1(key.encode()).hexdigest()
    return f"{folder}/{int(digest[:8], 16) % pages:03x}.html"


def rule_page(vendor: str, rule_id: str) -> str:
    """The static page holding a rule's article, under the export root."""
    return _spread("rules", f"{vendor}\x1f{rule_id}", RULE_PAGES)


def rule_anchor(vendor: str, rule_id: str) -> str:
    """The id of a rule's article: readable, and unique (a slug has no ":")."""
    return f"{slug(vendor)}:{slug(rule_id)}"


def field_page(name: str) -> str:
    return _spread("fields", name, FIELD_PAGES)


def event_page(event_id: str) -> str:
    return _spread("events", event_id, EVENT_PAGES)


def _events_query(events: Sequence[str], collection: str | None = None) -> str:
    params = [("events", e) for e in events] + ([("collection", collection)] if collection else [])
    return "?" + urlencode(params) if params else ""


def _q(text: str) -> str:
    # Most ids need no quoting: they skip quote's work per character (pages link
    # hundreds of rules and techniques).
    return text if _UNQUOTED.fullmatch(text) else quote(text, safe="")


@dataclass(frozen=True, slots=True)
class Links:
    """Hrefs as seen from one page. ``static`` pages sit ``depth`` directories
    below the export root; server pages use absolute routes."""

    static: bool = False
    depth: int = 0

    @property
    def root(self) -> str:
        return "../" * self.depth if self.static else "/"

    def home(self) -> str:
        return self.root + ("index.html" if self.static else "")

    def _page(self, folder: str, name: str) -> str:
        name = f"{slug(name)}.html" if self.static else _q(name)
        return f"{self.root}{folder}/{name}"

    def technique(self, tid: str) -> str:
        return self._page("techniques", tid)

    def rule(self, vendor: str, rule_id: str) -> str:
        """A served rule has its own page; a static one is an article of a shared page
        (opened at it, the stylesheet shows that article alone)."""
        if self.static:
            return self.root + f"{rule_page(vendor, rule_id)}#{rule_anchor(vendor, rule_id)}"
        return self.root + f"rules/{_q(vendor)}/{_q(rule_id)}"

    def field(self, name: str) -> str:
        if self.static:
            return self.root + f"{field_page(name)}#{slug(name)}"
        return self._page("fields", name)

    def event(self, event_id: str) -> str:
        if self.static:
            return self.root + f"{event_page(event_id)}#{slug(event_id)}"
        return self._page("events", event_id)

    def twin(self, kind: str, *key: str) -> str:
        """The JSON twin of a rule (vendor, id), a field or an event: a static one has
        a file of its own, as its page holds several."""
        if self.static:
            return self.root + f"api/{kind}s/" + "/".join(map(slug, key)) + ".json"
        return self.api(getattr(self, kind)(*key))

    def indicator(self, field: str | None, op: str, value: object) -> str:
        """A static indicator is a section of a shared page (12,000 one-screen pages
        would repeat the page frame and waste a disk block each)."""
        if self.static:
            key = indicator_key(field, op, value)
            return self.root + f"{indicator_group(key)}#i{key}"
        params = {"field": field or "", "op": op, "value": "" if value is None else str(value)}
        return self.root + "indicators?" + urlencode(params)

    def search(self, query: str = "") -> str:
        page = "search.html" if self.static else "search"
        return self.root + page + (f"?{urlencode({'q': query})}" if query else "")

    def problems(self) -> str:
        return self.root + ("problems.html" if self.static else "problems")

    def clusters(self) -> str:
        return self.root + ("clusters.html" if self.static else "clusters")

    def coverage(self, events: Sequence[str] = (), collection: str | None = None) -> str:
        """The coverage page (served only: it computes for the events chosen)."""
        return self.root + "coverage" + _events_query(events, collection)

    def layer(self, events: Sequence[str] = (), collection: str | None = None) -> str:
        """The Navigator layer download; a static export holds the default one."""
        if self.static:
            return self.root + "layer.json"
        return self.root + "api/layer" + _events_query(events, collection)

    def asset(self, name: str) -> str:
        return self.root + f"static/{name}"

    def api(self, page: str) -> str:
        """The JSON twin of a page href made by this object (same root)."""
        rest = page[len(self.root) :]
        if self.static:
            name = rest.removesuffix(".html")
            return self.root + "api/" + ("overview" if name == "index" else name) + ".json"
        return self.root + "api/" + (rest or "overview")
