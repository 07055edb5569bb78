"""Backtests on a SQL engine: one query per route (event kind).

For each route the driver learns the columns its rows have and the distinct
(catalog event, scopes) pairs in it, binds every rule routed there (``sqlgen.
rules.CompiledRule.for_route``), drops the rules that cannot hold on the route,
reads a sample of its rows to plan the query (``sqlgen.plan``: which literals
gate which rules), and runs it: per row, the rules that hold or are unknown
(see ``sqlgen.emit``), counted per rule and day by the engine where the dialect
can (DuckDB: memory does not grow with the rows). Rows whose values the SQL
cannot read (``_python``) and rows a fallback rule's prefilter keeps are decided
by the Python matcher, from the raw JSON each row carries.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, Protocol

from detcat.backtest import results
from detcat.backtest.results import Backtest, RuleHits
from detcat.match import Matcher
from detcat.match.events import canonical_event
from detcat.sqlgen import CompiledRule, SqlDialect, Status
from detcat.sqlgen.ir import FALSE, Node
from detcat.sqlgen.plan import Sample, decode, gate_options, plan_route
from detcat.sqlgen.rows import CATALOG_ID, LABEL, PYTHON, RAW, TIME

SAMPLE_ROWS = 2_000  # rows read to plan a route's query (its first rows)


class Source(Protocol):
    """Normalized events (``detcat events normalize``) as an engine reads them."""

    dialect: SqlDialect
    considered: set[str]  # the field columns the rows were normalized with

    def routes(self) -> list[str]: ...

    def table(self, route: str) -> str: ...

    def columns(self, route: str) -> set[str]: ...

    def rows(self, sql: str, plain: bool = False) -> Iterator[tuple[Any, ...]]: ...


class SqlBacktest:
    def __init__(self, source: Source, compiled: list[CompiledRule], hits: dict[str, RuleHits]):
        self.source = source
        self.rules = [c for c in compiled if c.status in (Status.EXACT, Status.FALLBACK)]
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
        exact, prefilters = self._bind(catalog_id, present, [p[1] or "" for p in pairs])
        dialect = self.source.dialect
        if exact:
            nodes = [(code, node) for code, (_, node) in enumerate(exact)]
            plan = plan_route(nodes, present, self._sample(table, present, nodes))
            self._read(dialect.route_query(table, plan), [c for c, _ in exact])
        if prefilters:
            for label, when, raw in self.source.rows(dialect.fallback_query(table, prefilters)):
                self._count(self._matcher("fallback"), label, when, raw)
        if PYTHON in present:
            self._python_rows(table)
        return int(count)

    def _bind(
        self, catalog_id: str | None, present: set[str], scope_sets: list[str]
    ) -> tuple[list[tuple[CompiledRule, Node]], list[Node]]:
        """The route's exact rules with their conditions, and its fallback rules'
        prefilters (rules that cannot hold on the route left out)."""
        exact: list[tuple[CompiledRule, Node]] = []
        prefilters: list[Node] = []
        for c in self.rules:
            if not c.routed(catalog_id):
                continue
            node, python = c.for_route(present, scope_sets, self.source.considered)
            if node == FALSE:
                continue
            if python:
                prefilters.append(node)
            else:
                exact.append((c, node))
        return exact, prefilters

    def _c(self, name: str) -> str:
        return self.source.dialect.ident(name)

    def _sample(self, table: str, present: set[str], nodes: list[tuple[int, Node]]) -> Sample:
        """The route's first rows, in the columns the rules' gates may test."""
        literals: dict[str, set[str]] = {}
        for _, node in nodes:
            for t in gate_options(node, present):
                literals.setdefault(t.col.name, set()).add(t.needle)
        names = sorted(literals)
        if not names:
            return Sample([], {})
        sql = f"SELECT {', '.join(map(self._c, names))} FROM {table} LIMIT {SAMPLE_ROWS}"
        rows = [dict(zip(names, r, strict=True)) for r in self.source.rows(sql)]
        return Sample(rows, literals)

    def _read(self, sql: str, rules: list[CompiledRule]) -> None:
        counted = self.source.dialect.hits_query(sql, results.SAMPLES)
        if counted is None:
            self._read_rows(sql, rules)
            return
        for code, hits, first, last, samples in self.source.rows(counted, plain=True):
            rule, holds = decode(code)
            if holds:
                self.hits[rules[rule].key].add(hits, first, last, samples)
            else:
                self.hits[rules[rule].key].unknown += hits

    def _read_rows(self, sql: str, rules: list[CompiledRule]) -> None:
        for label, when, codes in self.source.rows(sql, plain=True):
            for code in codes:
                rule, holds = decode(code)
                if holds:
                    self.hits[rules[rule].key].hit(label, when)
                else:
                    self.hits[rules[rule].key].unknown += 1

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
