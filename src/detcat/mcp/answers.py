"""The answers of ``detcat mcp``'s tools, as plain dicts, within a budget.

Each answer is what the CLI prints with ``--json`` for the same question (the same
functions compute it: ``guide``, ``search``, ``parse``, ``match``, ``navigator``), plus
``left_out``: for every list that was cut, how many items were left out. Lists are
cut twice: first to the caller's ``limit`` (the totals stay in the answer), then,
while the JSON is still over the budget (characters), by cutting the tail of the biggest
list anywhere in it (``left_out`` names it by path, ``"stages[0].expr.or"``). Text
fields are never cut; a rule's source query is only sent when asked for.

Every failure a caller can cause raises a ``DetcatError`` with a message saying
what to do; ``mcp.server`` turns it into an MCP tool error.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from detcat import guide, navigator, similar
from detcat.errors import DetcatError
from detcat.match import Matcher
from detcat.match.events import canonical_event
from detcat.model import QueryError
from detcat.parse import parse_json
from detcat.search import search
from detcat.store import connect

DEFAULT_BUDGET = 50_000  # characters of JSON per answer (about bytes: mostly ASCII)
MAX_QUERY_CHARS = 1_000_000  # the longest rule in the public corpora is ~300 KB
MAX_EVENTS = 1_000
MAX_EVENT_BYTES = 5_000_000  # all events of one call, as JSON
MAX_ECHO = 80  # characters of a caller's argument quoted back in an error
_ALL = 1_000_000  # "every similar rule": scored anyway, so that left_out can count them


class BadArgument(DetcatError, ValueError):
    pass


class UnknownRule(DetcatError, LookupError):
    pass


def echo(text: str) -> str:
    """A caller's argument, quoted back short enough for an error message."""
    return repr(text if len(text) <= MAX_ECHO else text[:MAX_ECHO] + "…")


class Answers:
    """Read-only answers over the catalog at ``db``.

    Tools run in worker threads, so each answer opens its own connection (cheap);
    the matchers, slow to build, are kept per vendor until the catalog file changes.
    """

    def __init__(self, db: Path, budget: int = DEFAULT_BUDGET):
        self.db = Path(db)
        self.budget = budget
        self._matchers: dict[tuple[str | None, tuple[int, int]], Matcher] = {}
        self._lock = threading.Lock()

    @contextmanager
    def conn(self) -> Iterator[sqlite3.Connection]:
        with closing(connect(self.db)) as conn:  # connect refuses what is not a catalog
            yield conn

    # -- tools -----------------------------------------------------------------------------

    def search_rules(
        self,
        query: str = "",
        vendor: str | None = None,
        technique: str | None = None,
        field: str | None = None,
        value: str | None = None,
        limit: int = 20,
    ) -> dict[str, Any]:
        if not (query.strip() or vendor or technique or field or value):
            raise BadArgument("nothing to search: give a query, vendor, technique, field or value")
        with self.conn() as conn:
            _check_vendor(conn, vendor)
            data = search(
                conn, query, limit, vendor=vendor, technique=technique, field=field, value=value
            )
        return self.fit(data, {"rules": data["total"] - len(data["rules"])})

    def get_rule(
        self, rule_id: str, vendor: str | None = None, include_source: bool = False
    ) -> dict[str, Any]:
        with self.conn() as conn:
            vendor, _pk = self.find_rule(conn, rule_id, vendor)
            data = guide.rule_detail(conn, vendor, rule_id)[0]
        if not include_source:
            del data["query"]
        return self.fit(data, {})

    def technique_guide(
        self, technique_id: str, vendor: str | None = None, limit: int = 10
    ) -> dict[str, Any]:
        with self.conn() as conn:
            _check_vendor(conn, vendor)
            data = guide.technique_guide(conn, technique_id, limit=limit, vendor=vendor)
        left_out = {
            "rules": max(0, len(data["rules"]) - limit),
            "events": max(0, len(data["events"]) - limit),
            "fields": data["field_count"] - len(data["fields"]),
            "indicators": data["indicator_count"] - len(data["indicators"]),
            "exclusions": data["exclusion_count"] - len(data["exclusions"]),
        }
        del data["rules"][limit:], data["events"][limit:]
        return self.fit(data, left_out)

    def parse_query(self, language: str, query: str) -> dict[str, Any]:
        if len(query) > MAX_QUERY_CHARS:
            raise BadArgument(
                f"the query has {len(query):,} characters; at most {MAX_QUERY_CHARS:,} are "
                "parsed (the longest public rule has about 300,000)"
            )
        try:
            data = parse_json(language, query)
        except QueryError as e:
            at = f" at line {e.line}, column {e.column}" if e.line else ""
            raise BadArgument(f"cannot parse the {language} query: {e.message}{at}") from None
        except RecursionError:
            raise BadArgument(f"the {language} query nests too deeply to parse") from None
        return self.fit(data, {})

    def match_events(
        self, events: list[dict[str, Any]], vendor: str | None = None
    ) -> dict[str, Any]:
        if len(events) > MAX_EVENTS:
            raise BadArgument(
                f"{len(events):,} events: at most {MAX_EVENTS:,} per call; send them in batches"
            )
        size = len(json.dumps(events, ensure_ascii=False, default=str))
        if size > MAX_EVENT_BYTES:
            raise BadArgument(
                f"the events are {size:,} bytes of JSON: at most {MAX_EVENT_BYTES:,} per call"
            )
        bad = [i for i, ev in enumerate(events) if not isinstance(ev, dict)]
        if bad:
            raise BadArgument(f"events[{bad[0]}] is not a JSON object")
        matcher = self.matcher(vendor).stream()  # no open sequence from an earlier call
        results = [
            matcher.match(canonical_event(f"events[{i}]", ev)).to_json()
            for i, ev in enumerate(events)
        ]
        return self.fit({"results": results}, {})

    def indicator_reach(
        self, value: str, field: str | None = None, op: str | None = None, limit: int = 20
    ) -> dict[str, Any]:
        with self.conn() as conn:
            data = guide.indicator_reach(conn, value, field, op, limit)
        left_out = {
            "rules": data["reach"] - len(data["rules"]),
            "by_field": data["by_field_count"] - len(data["by_field"]),
        }
        return self.fit(data, left_out)

    def similar_rules(
        self, rule_id: str, vendor: str | None = None, limit: int = 10
    ) -> dict[str, Any]:
        """``detcat similar --json``; the similarity tables are computed into the catalog
        on first use, as the CLI does."""
        with self.conn() as conn:
            vendor, _pk = self.find_rule(conn, rule_id, vendor)
        similar.ensure(self.db)
        with self.conn() as conn:
            found = similar.similar_rules(conn, vendor, rule_id, limit=_ALL) or []
        data = {"rule": {"vendor": vendor, "id": rule_id}, "similar": found[:limit]}
        return self.fit(data, {"similar": len(found) - limit})

    def coverage_layer(
        self, vendor: str | None = None, events: list[str] | None = None
    ) -> dict[str, Any]:
        """``detcat layer``'s layer, its techniques ranked by score (Navigator does not
        care about their order) so that a cut keeps the best covered."""
        with self.conn() as conn:
            _check_vendor(conn, vendor)
            data = navigator.layer(conn, vendors=[vendor] if vendor else None, events=events or ())
        data["techniques"].sort(key=lambda t: (-t["score"], t["techniqueID"]))
        return self.fit(data, {})

    def stats(self) -> dict[str, Any]:
        with self.conn() as conn:
            return self.fit(guide.stats(conn), {})

    # -- helpers -----------------------------------------------------------------------------

    def find_rule(
        self, conn: sqlite3.Connection, rule_id: str, vendor: str | None
    ) -> tuple[str, int]:
        """(vendor, pk) of the one rule with this id (of this vendor)."""
        _check_vendor(conn, vendor)
        sql = "SELECT vendor, pk FROM rules WHERE id = ?" + (" AND vendor = ?" if vendor else "")
        rows = conn.execute(sql, (rule_id, vendor) if vendor else (rule_id,)).fetchall()
        if not rows:
            of = f" of vendor {vendor}" if vendor else ""
            raise UnknownRule(
                f"no rule with id {echo(rule_id)}{of}: search_rules finds rules by title, "
                "technique or field value"
            )
        if len(rows) > 1:
            vendors = ", ".join(sorted(r["vendor"] for r in rows))
            raise BadArgument(f"rule id {echo(rule_id)} exists for {vendors}: give the vendor")
        return rows[0]["vendor"], rows[0]["pk"]

    def matcher(self, vendor: str | None) -> Matcher:
        with self._lock, self.conn() as conn:
            _check_vendor(conn, vendor)
            st = self.db.stat()
            key = (vendor, (st.st_mtime_ns, st.st_size))
            if key not in self._matchers:
                self._matchers = {k: m for k, m in self._matchers.items() if k[1] == key[1]}
                self._matchers[key] = Matcher.from_catalog(conn, vendor)
            return self._matchers[key]

    def fit(self, data: dict[str, Any], left_out: dict[str, int]) -> dict[str, Any]:
        """``data`` with ``left_out`` (cuts by limit, then by budget; zero counts dropped)."""
        data["left_out"] = {k: n for k, n in left_out.items() if n > 0}
        fit_budget(data, self.budget, data["left_out"])
        return data


def _check_vendor(conn: sqlite3.Connection, vendor: str | None) -> None:
    if vendor is None:
        return
    known = [v for (v,) in conn.execute("SELECT DISTINCT vendor FROM rules ORDER BY vendor")]
    if vendor not in known:
        raise BadArgument(f"unknown vendor {echo(vendor)}: the catalog has {', '.join(known)}")


# -- the budget --------------------------------------------------------------------------------


def dumps(data: Any) -> str:
    """The JSON text of an answer (compact: the budget counts these characters)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)


def fit_budget(data: Any, budget: int, left_out: dict[str, int]) -> None:
    """Cut the tail of the biggest list in ``data`` until its JSON fits ``budget``
    characters or no list is left to cut, counting what went in ``left_out`` (by
    path). Lists are ranked, so what is kept of each is its head; one round cuts at
    most half a list, so a big answer loses some of several lists, not all of one."""
    while True:
        lists: list[tuple[int, str, list[Any]]] = []
        overflow = _size(data, "", lists) - budget
        if overflow <= 0:
            return
        # A list of one (a rule's only stage) goes only when no longer list is left:
        # cutting the long lists inside it keeps the answer's shape.
        cuttable = [t for t in lists if len(t[2]) > 1] or [t for t in lists if t[2]]
        if not cuttable:
            return
        _, path, biggest = max(cuttable, key=lambda t: t[0])
        most, cut, freed = max(1, len(biggest) // 2), 0, 0
        while cut < most and freed < overflow:
            cut += 1
            freed += len(dumps(biggest[-cut])) + 1  # the item and its comma
        left_out[path] = left_out.get(path, 0) + cut
        del biggest[-cut:]


def _size(node: Any, path: str, lists: list[tuple[int, str, list[Any]]]) -> int:
    """Characters of ``node``'s compact JSON; records every list with its size."""
    if isinstance(node, dict):
        inner = sum(
            len(dumps(str(k))) + 1 + _size(v, f"{path}.{k}" if path else str(k), lists)
            for k, v in node.items()
        )
        return 2 + inner + max(0, len(node) - 1)
    if isinstance(node, list):
        total = 2 + sum(_size(v, f"{path}[{i}]", lists) for i, v in enumerate(node))
        total += max(0, len(node) - 1)
        lists.append((total, path, node))
        return total
    return len(dumps(node))
