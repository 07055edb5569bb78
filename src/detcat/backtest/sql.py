"""Backtests on a SQL engine: one query per route (event kind).

For each route the driver learns the columns its rows have and the distinct
(catalog event, scopes) pairs in it, binds every rule routed there (``sqlgen.
rules.CompiledRule.for_route``), drops the rules that cannot hold on the route,
and runs one query giving, per row, the rules that hold, are unknown, or need
the Python matcher (see ``sqlgen.emit``). Rows whose values the SQL cannot read
(``_python``) and rows a fallback rule's prefilter keeps are decided by the
Python matcher, from the raw JSON each row carries.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, Protocol

from detcat.backtest.results import Backtest, RuleHits
from detcat.match import Matcher
from detcat.match.events import canonical_event
from detcat.sqlgen import CompiledRule, RouteRule, SqlDialect, Status
from detcat.sqlgen.ir import FALSE
from detcat.sqlgen.rows import CATALOG_ID, LABEL, PYTHON, RAW, TIME


class Source(Protocol):
    """Normalized events (``detcat events normalize``) as an engine reads them."""

    dialect: SqlDialect
    considered: set[str]  # the field columns the rows were normalized with

    def routes(self) -> list[str]: ...

    def table(self, route: str) -> str: ...

    def columns(self, route: str) -> set[str]: ...

    def rows(self, sql: str) -> Iterator[tuple[Any, ...]]: ...


class SqlBacktest:
    def __init__(self, source: Source, compiled: list[CompiledRule], hits: dict[str, RuleHits]):
        self.source = source
        self.rules = [c for c in compiled if c.status is not Status.NOT_COMPILED]
        self.hits = hits
        self._matchers: dict[str, Matcher] = {}  # see _matcher

    def run(self, result: Backtest) -> None:
        started = time.perf_counter()
        for route in self.source.routes():
            result.events += self._route(route)
        result.seconds = time.perf_counter() - started

    def _route(self, route: str) -> int:
        table = self.source.table(route)
        present = self.source.columns(route)
        pairs = list(
            self.source.rows(
                f"SELECT DISTINCT {self._c(CATALOG_ID)}, {self._c('_scopes')} FROM {table}"
            )
        )
        count = next(self.source.rows(f"SELECT count(*) FROM {table}"))[0]
        # A partition holds one catalog event (or only unknown ones): see sqlgen.rows.kind_of.
        catalog_id = pairs[0][0] if pairs else None
        scope_sets = [p[1] or "" for p in pairs]
        route_rules: list[tuple[CompiledRule, RouteRule]] = []
        for c in self.rules:
            if not c.routed(catalog_id):
                continue
            node, python = c.for_route(present, scope_sets, self.source.considered)
            if node != FALSE:
                rr = RouteRule(len(route_rules), node, prefilter=python)
                route_rules.append((c, rr))
        if route_rules:
            sql = self.source.dialect.route_query(table, [rr for _, rr in route_rules])
            self._read(sql, route_rules)
        if PYTHON in present:
            self._python_rows(table)
        return int(count)

    def _c(self, name: str) -> str:
        return self.source.dialect.ident(name)

    def _read(self, sql: str, route_rules: list[tuple[CompiledRule, RouteRule]]) -> None:
        for label, when, hits, unknown, maybe, raw in self.source.rows(sql):
            for code in hits or ():
                self.hits[route_rules[code][0].key].hit(label, when)
            for code in unknown or ():
                self.hits[route_rules[code][0].key].unknown += 1
            if maybe:
                self._count(self._matcher("fallback"), label, when, raw)

    def _matcher(self, which: str) -> Matcher:
        """The Python matcher of the fallback rules (for the rows their prefilter
        keeps: a rule whose prefilter is false on a row is false there, so all its
        answers count), or of every SQL rule (for rows SQL cannot read)."""
        if which not in self._matchers:
            rules = [c for c in self.rules if which == "all" or c.status is Status.FALLBACK]
            self._matchers[which] = Matcher([c.plan for c in rules])
        return self._matchers[which]

    def _python_rows(self, table: str) -> None:
        sql = (
            f"SELECT {self._c(LABEL)}, {self._c(TIME)}, {self._c(RAW)} FROM {table} "
            f"WHERE coalesce({self._c(PYTHON)}, FALSE)"
        )
        for label, when, raw in self.source.rows(sql):
            self._count(self._matcher("all"), label, when, raw)

    def _count(self, matcher: Matcher, label: str, when: str | None, raw: str) -> None:
        result = matcher.match(canonical_event(label, json.loads(raw)))
        for m in result.matches:
            self.hits[f"{m['vendor']}:{m['id']}"].hit(label, when)
        for u in result.undetermined:
            self.hits[f"{u['vendor']}:{u['id']}"].unknown += 1
