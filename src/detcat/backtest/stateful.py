"""Multi-event rules on a SQL engine: one query per rule (``sqlgen.stateful_sql``)
over the routes its stages are written for.

SQL answers exactly only on rows it reads exactly: a rule whose routes hold rows
SQL cannot read (``_python``), or whose stages test a column the rows were not
normalized with, or rows normalized before ``_seconds`` existed, runs on the
Python matcher instead, over every event of its routes in stream order (the
rule is listed as a fallback, with why).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

from detcat.backtest.results import Backtest, RuleHits
from detcat.backtest.sql import Source
from detcat.match import Matcher, RulePlan
from detcat.match.events import canonical_event
from detcat.sqlgen import CompiledRule
from detcat.sqlgen.ir import FALSE
from detcat.sqlgen.rows import CATALOG_ID, LABEL, PYTHON, RAW, SECONDS, TIME, event_time
from detcat.sqlgen.stateful_sql import Entries, query


@dataclass
class _Route:
    name: str
    table: str
    present: set[str]
    catalog_id: str | None
    scope_sets: list[str]
    python_rows: bool  # rows SQL cannot read exactly (the Python matcher's)


class StatefulBacktest:
    def __init__(
        self,
        source: Source,
        compiled: list[CompiledRule],
        hits: dict[str, RuleHits],
        single: list[RulePlan],
    ):
        self.source, self.compiled, self.hits, self.single = source, compiled, hits, single
        self._routes: list[_Route] | None = None

    def routes(self) -> list[_Route]:
        if self._routes is None:
            self._routes = [self._route(r) for r in self.source.routes()]
        return self._routes

    def _route(self, name: str) -> _Route:
        table, present = self.source.table(name), self.source.columns(name)
        c = self.source.dialect.ident
        pairs = list(
            self.source.rows(f"SELECT DISTINCT {c(CATALOG_ID)}, {c('_scopes')} FROM {table}")
        )
        python = PYTHON in present and any(
            self.source.rows(f"SELECT 1 FROM {table} WHERE coalesce({c(PYTHON)}, FALSE) LIMIT 1")
        )
        catalog_id = pairs[0][0] if pairs else None
        return _Route(name, table, present, catalog_id, [p[1] or "" for p in pairs], python)

    def run(self, result: Backtest) -> None:
        started = time.perf_counter()
        fallback: list[tuple[CompiledRule, set[str]]] = []
        for c in self.compiled:
            entries, routes, why = self._entries(c)
            if why:
                result.fallback.append({"rule": c.key, "title": c.plan.title, "reason": why})
                fallback.append((c, routes))
            elif entries:
                self._read(c, query(self.source.dialect, c.shape, entries))  # type: ignore[arg-type]
        if fallback:
            self._python(fallback)
        result.seconds += time.perf_counter() - started

    def _entries(self, c: CompiledRule) -> tuple[list[Entries], set[str], str]:
        """The rule's entries per route and part, the routes, and why SQL cannot
        answer on these rows ("" when it can)."""
        assert c.shape is not None
        entries: list[Entries] = []
        routes: set[str] = set()
        why = ""
        for route in self.routes():
            for part, stage in zip(c.shape.parts, c.stages, strict=True):
                if not stage.routed(route.catalog_id):
                    continue
                node, python = stage.for_route(
                    route.present, route.scope_sets, self.source.considered
                )
                if node == FALSE:
                    continue
                routes.add(route.name)
                if SECONDS not in route.present:
                    why = why or "events normalized without _seconds: normalize them again"
                elif python:
                    why = why or "a column the events were not normalized with"
                elif route.python_rows:
                    why = why or "rows SQL cannot read exactly (the Python matcher's)"
                entries.append(Entries(part, route.table, node, route.present))
        return entries, routes, why

    def _read(self, c: CompiledRule, sql: str) -> None:
        hits = self.hits[c.key]
        for label, when, certain, *_ in self.source.rows(sql):
            if certain:
                hits.hit(label, when)
            else:
                hits.unknown += 1

    def _python(self, rules: list[tuple[CompiledRule, set[str]]]) -> None:
        """The Python matcher on every event of the rules' routes, in stream order,
        counting only these rules (the single-event rules correlations reference
        ride along)."""
        wanted = {c.key for c, _ in rules}
        refs = {str(s.params.get("rule", "")) for c, _ in rules for s in c.plan.stages}
        singles = [p for p in self.single if p.id in refs]
        matcher = Matcher([c.plan for c, _ in rules] + singles)
        routes = sorted(set().union(*(r for _, r in rules)))
        for label, raw in self._stream(routes):
            ev = canonical_event(label, json.loads(raw))
            got = matcher.match(ev)
            for m in got.matches:
                key = f"{m['vendor']}:{m['id']}"
                if key in wanted:
                    self.hits[key].hit(label, event_time(ev))
            for u in got.undetermined:
                key = f"{u['vendor']}:{u['id']}"
                if key in wanted:
                    self.hits[key].unknown += 1

    def _stream(self, routes: list[str]) -> Iterator[tuple[str, str]]:
        by_name = {r.name: r for r in self.routes()}
        c = self.source.dialect.ident
        order = SECONDS if all(SECONDS in by_name[r].present for r in routes) else TIME
        union = " UNION ALL ".join(
            f"SELECT {c(LABEL)}, {c(order)}, {c(RAW)} FROM {by_name[r].table}" for r in routes
        )
        sql = (
            f"SELECT {c(LABEL)}, {c(RAW)} FROM ({union}) AS s"
            f" ORDER BY {c(order)} NULLS LAST, {c(LABEL)}"
        )
        yield from self.source.rows(sql)
