"""``detcat match``: which catalog rules fire on which events.

Every rule's stages are read back from the catalog (``model.expr_from_json``) and
evaluated on canonical events (``match.events``) by ``match.evaluate`` (EQL's
computed conditions by ``match.eql``). A single-event rule matches an event when
its filter holds, and is *undetermined* when its known parts hold but it depends
on something detcat cannot evaluate (an Opaque part, a deployer's list, a regex
out of time): never a "no" it does not know.

EQL lineage (``descendant of``, ``child of``, ``event of``) is answered from the
stream's process tree (``match.lineage``), which every event updates first.

Multi-event rules are evaluated over the stream of events, taken in the order
given (``match.stateful``: EQL sequences, samples and joins, Elastic threshold
rules, Sigma correlations, YARA-L match windows): the event that completes one
reports it, with the events that make it up. The matcher keeps their open state,
bounded per rule. Multi-stage rules without an engine (aggregations, new terms,
YARA-L joins across events) report the stages an event matched as *partial*,
with the reason they are not evaluated; a stage that checks no value (only that
fields exist, or what they are not: ``needs.selective``) holds on nearly every
event and is neither evaluated nor reported.

Speed: 8,000 stages per event would be slow one by one. An event's *route* (its
catalog event and log-source scopes) holds the stages written for that kind of
event, built on the first event of the kind; within it, the literal prefilter
(``match.prefilter``, over the clauses ``match.needs`` finds) leaves the few
stages the event's values do not rule out. Stages compile to closures on first
use, two-valued trees fused into one generated function (``match.fuse``).
``match_reference`` evaluates every admitted stage, as closures: the equality
tests and ``bench/bench_match.py`` compare the two.

    matcher = Matcher.from_catalog("detcat.sqlite")
    result = matcher.match({"process": {"name": "cmd.exe"}})  # or an Event
"""

from __future__ import annotations

import copy
import gc
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from operator import itemgetter
from pathlib import Path
from typing import Any

from detcat.jsonio import loads
from detcat.match.aggregates import correlation_engine
from detcat.match.evaluate import NULL, Dialect, Test, compile_expr
from detcat.match.events import Event, canonical_event, categorized_fields
from detcat.match.fuse import fuse
from detcat.match.lineage import Clause, ProcessTree, mentions_lineage
from detcat.match.needs import can_hold, selective
from detcat.match.prefilter import Plan, Route, stage_plan
from detcat.match.stateful import Engine, Results, engine_for
from detcat.match.yaral import condition_needs as _needs
from detcat.model import (
    And,
    Expr,
    Not,
    Op,
    Opaque,
    Or,
    Predicate,
    Rule,
    Stage,
    StageRole,
    expr_from_json,
    opaques,
    predicates,
)
from detcat.normalize import full_match_regex
from detcat.normalize.fields import DATAMODEL, canonical_field
from detcat.normalize.scopes import stage_scopes
from detcat.sources import registry

# Stage parameters that make one event too few: a count, an EQL step ``with runs``.
_REPEATS = ("min_count", "runs")
# Scope kinds compared between a rule stage and an event (see StagePlan.admits).
_GATED_SCOPES = ("product:", "service:", "category:", DATAMODEL)
# Routes kept at once: event kinds are few; a stream of ever-new scopes is not.
MAX_ROUTES = 256
RouteKey = tuple[str | None, frozenset[str]]


@dataclass(eq=False)
class StagePlan:
    rule: RulePlan
    name: str
    role: StageRole
    negated: bool
    params: dict[str, Any]
    expr: Expr | None
    events: frozenset[str]
    join_keys: tuple[str, ...] = ()
    gates: tuple[tuple[str, frozenset[str]], ...] = ()  # (scope kind, the stage's scopes)
    # Set for stages no field is required by (``not a``, ``a or b``): the fields it
    # reads, one of which the event must have (see Route.candidates).
    reads: frozenset[str] = frozenset()
    _test: Test | None = None
    _filter: Test | None = None  # the compiled filter, EQL's null not mapped to False, fused
    _unfused: Test | None = None  # the same, one closure per node (the reference's)
    _dialect: Dialect | None = None

    @property
    def filters_events(self) -> bool:
        return self.role is StageRole.EVENTS and not self.negated and self.expr is not None

    @cached_property
    def checks_a_value(self) -> bool:
        """Whether the stage holds only on a value it checks (``needs.selective``):
        read when a stage of a rule without an engine holds, worked out once."""
        return selective(self.expr)

    def admits(self, ev: Event) -> bool:
        """Not written for another log source: a product, service or category both
        the stage and the event state agrees (catalog events: see ``in_route``)."""
        return self.admits_scopes(ev.scopes)

    def admits_scopes(self, scopes: frozenset[str]) -> bool:
        for kind, mine in self.gates:
            theirs = [s for s in scopes if s.startswith(kind)]
            if theirs and mine.isdisjoint(theirs):
                return False
        return True

    def in_route(self, catalog_id: str | None, scopes: frozenset[str]) -> bool:
        """Written for events of this catalog event (any, when the event is not one
        the catalog knows) and log source."""
        if self.events and catalog_id is not None and catalog_id not in self.events:
            return False
        return not self.gates or self.admits_scopes(scopes)

    def applies(self, ev: Event) -> bool:
        """In the event's route, and reading one of its fields when no field is
        required (see ``Matcher.admitted``)."""
        if not self.in_route(ev.catalog_id, ev.scopes):
            return False
        return not self.reads or not self.reads.isdisjoint(ev.fields)

    def test(self) -> Test:
        """The stage's filter: True, False or None (unknown); EQL's null is False."""
        if self._test is None:
            d = self._dialect = self.rule.dialect(self)
            inner = self._unfused = compile_expr(self.expr, d.full_match, dialect=d)
            self._filter = fuse(inner)
            if d.opaque is None and d.derived is None:
                self._test = inner  # only EQL's computed conditions give NULL
            else:
                self._test = lambda ev: False if (r := inner(ev)) is NULL else r
        return self._test

    def filter(self) -> Test:
        """``test`` without its mapping of EQL's null to False, for callers that
        read only True and None (``Matcher._match``): one call less per event."""
        if self._filter is None:
            self.test()
        return self._filter  # type: ignore[return-value]

    def unfused(self) -> Test:
        """``filter`` as closures, one per node: what the reference evaluates, so
        that the equality tests compare the fused code with it (``match.fuse``)."""
        if self._unfused is None:
            self.test()
        return self._unfused  # type: ignore[return-value]

    def lineage(self) -> list[Clause]:
        """The EQL lineage clauses of the filter (compiled now: the stream's process
        tree tests their subqueries on every event, from the first)."""
        self.test()
        return self._dialect.lineage if self._dialect else []

    def unknown_reasons(self, ev: Event) -> list[str]:
        """Why the stage's filter is unknown on ``ev``."""
        self.test()
        assert self._dialect is not None
        return self._dialect.explain(ev) or ["undetermined"]


@dataclass(eq=False)
class RulePlan:
    vendor: str
    id: str
    title: str
    language: str
    context: dict[str, Any] = field(default_factory=dict)
    stages: list[StagePlan] = field(default_factory=list)
    rule_type: str = ""  # the vendor's rule type: threshold, correlation, eql…
    condition: dict[str, Any] | None = None  # a YARA-L rule's condition (JSON tree)
    # Values SPL's eval and ES|QL's EVAL make are computed (match.spl, match.esql);
    # backtests turn it off (sqlgen.as_backtested: SQL does not compute them yet).
    computes_evals: bool = True

    @classmethod
    def from_rule(cls, rule: Rule) -> RulePlan:
        """A normalized rule as the catalog would give it back (tests, one-off runs)."""
        plan = cls(rule.vendor, rule.id, rule.title, rule.language, dict(rule.context))
        plan.rule_type = rule.type
        windows = registry.language_engine(rule.language) == "windows"
        plan.condition = rule.extra.get("condition") if windows else None
        for s in rule.stages:
            plan.stages.append(
                StagePlan(
                    plan,
                    s.name,
                    s.role,
                    s.negated,
                    s.params,
                    s.expr,
                    frozenset(s.events),
                    tuple(s.join_keys),
                )  # fmt: skip
            )
        return plan

    @property
    def single_event(self) -> bool:
        """One event can fire the whole rule: one event filter and nothing else."""
        if len(self.stages) != 1:
            return False
        s = self.stages[0]
        if self.condition is not None and _needs(self.condition) != {s.name: 1}:
            return False  # a YARA-L condition beyond "$e" (#e > 5, $risk > 50, !$e)
        return s.filters_events and all(int(s.params.get(k, 1) or 1) <= 1 for k in _REPEATS)

    def stage_scopes(self, stage: StagePlan) -> tuple[str, ...]:
        rule = Rule(self.vendor, self.id, self.title, "", self.language, context=self.context)
        return stage_scopes(rule, Stage(stage.name, expr=stage.expr, params=stage.params))

    def dialect(self, stage: StagePlan) -> Dialect:
        """How the rule's language evaluates the stage (see ``match.evaluate``)."""
        full = full_match_regex(self.language)
        d = Dialect(full, self.ref_resolver(stage), computed=stage.params.get("derived") or {})
        if registry.language_engine(self.language) == "sequences":
            from detcat.match.eql import eql_dialect

            eql_dialect(d)
        computed, conditions = stage.params.get("computed"), stage.params.get("conditions")
        if self.computes_evals and (computed or conditions):
            from detcat.match.spl import spl_dialect

            spl_dialect(d, computed or {}, conditions or {})
        reader = registry.computed_reader(self.language)
        if self.computes_evals and reader == "esql_eval" and d.computed:
            from detcat.match.esql import esql_dialect

            esql_dialect(d, stage.params.get("redefined") or [])
        return d

    def computes_values(self, stage: StagePlan) -> bool:
        """Whether ``dialect`` evaluates one of the stage's computed values, at least."""
        if registry.language_engine(self.language) == "sequences":
            return True  # EQL's own evaluator
        if not self.computes_evals:
            return False
        derived = [p for p in predicates(stage.expr) if p.kind == "derived"]
        conditions = stage.params.get("conditions") or {}
        if not (derived or any(conditions.values())):
            return False
        d = self.dialect(stage)
        if d.opaque is not None and any(d.opaque(o) is not None for o in opaques(stage.expr)):
            return True
        return d.derived is not None and any(d.derived(p) is not None for p in derived)

    def ref_resolver(self, stage: StagePlan) -> Any:
        """field_ref values are raw vendor names: canonicalize them like the rule's."""
        scopes = self.stage_scopes(stage)
        return lambda raw: (canonical_field(self.vendor, scopes, raw),)

    def ref(self) -> dict[str, str]:
        return {"vendor": self.vendor, "id": self.id, "title": self.title}


@dataclass
class EventResult:
    event: str
    matches: list[dict[str, Any]] = field(default_factory=list)
    partial: list[dict[str, Any]] = field(default_factory=list)  # some stages matched
    undetermined: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.event, "matches": self.matches}
        if self.partial:
            out["partial"] = self.partial
        if self.undetermined:
            out["undetermined"] = self.undetermined
        return out


class Matcher:
    """All rules, routed and prefiltered for fast candidate selection (see the
    module docstring)."""

    def __init__(self, rules: Iterable[RulePlan]):
        self.rules = list(rules)
        self.by_key = {id(r): r for r in self.rules}
        self._engines()
        self.lineage = [
            c
            for r in self.rules
            if registry.language_engine(r.language) == "sequences"  # EQL's alone
            for s in r.stages
            if mentions_lineage(s.expr)
            for c in s.lineage()
        ]
        self._tree = ProcessTree(self.lineage)
        for r in self.rules:  # also the stages stream engines test themselves (until)
            for s in r.stages:
                if s.role is StageRole.EVENTS and s.expr is not None:
                    s.gates = _gates(r.stage_scopes(s))
        self.event_stages = [s for r in self.rules for s in r.stages if s.filters_events]
        self._single_ids = {id(r) for r in self.rules if r.single_event}
        for s in self.event_stages:
            if not required_fields(s.expr):
                s.reads = read_fields(s.expr)
        # (catalog event, scopes) -> the route's stages and prefilter, built on first use
        self._routes: dict[RouteKey, Route] = {}
        self._plans: dict[int, Plan] = {}  # a stage's clauses (shared by its routes)

    @classmethod
    def from_catalog(
        cls, catalog: sqlite3.Connection | str | Path, vendor: str | None = None
    ) -> Matcher:
        """The matcher of a catalog (an open connection or the catalog file's path)."""
        if not isinstance(catalog, sqlite3.Connection):
            from detcat.store import connect

            catalog = connect(Path(catalog))
        with _no_gc():
            return cls(load_rules(catalog, vendor))

    def admitted(self, ev: Event) -> list[StagePlan]:
        """Every stage the event's identity and fields admit: written for its log
        source and, for a stage no field is required by, reading one of its fields
        (a stage that reads none of the event's fields, ``not resultType: 0`` on a
        Sysmon event, says nothing about it, although a missing field would make
        its negation hold). The reference evaluates all of them."""
        return [s for s in self.event_stages if s.applies(ev)]

    def candidates(self, ev: Event) -> list[StagePlan]:
        """The admitted stages the event's route and values do not rule out."""
        return self.route(ev).candidates(ev)

    def route(self, ev: Event) -> Route:
        """The route of the event's kind: built from the first event of that kind."""
        key = (ev.catalog_id, ev.scopes)
        got = self._routes.get(key)
        if got is None:
            if len(self._routes) >= MAX_ROUTES:  # a stream of ever-new scopes
                del self._routes[next(iter(self._routes))]
            with _no_gc():
                stages = [
                    s
                    for s in self.event_stages
                    if s.in_route(ev.catalog_id, ev.scopes) and not self._inert(s)
                ]
                got = Route(stages, [self._plan(s) for s in stages], frozenset(ev.fields))
            self._routes[key] = got
        return got

    def _plan(self, stage: StagePlan) -> Plan:
        """The stage's clauses for the prefilter, worked out once for all routes."""
        got = self._plans.get(id(stage))
        if got is None:
            got = self._plans[id(stage)] = stage_plan(stage, categorized_fields())
        return got

    def _inert(self, stage: StagePlan) -> bool:
        """A stage whose answer changes nothing: of a multi-stage rule without an
        engine (only its stages that hold and are ``selective`` are reported, as
        partial) and either unknown on every event (an Opaque metrics search, a
        computed value) or not selective."""
        rule = stage.rule
        if rule.single_event or any(s.role is StageRole.CORRELATION for s in rule.stages):
            return False
        evaluated = rule.computes_values(stage)
        if can_hold(stage.expr, stage.params.get("derived"), evaluated) and stage.checks_a_value:
            return False
        if id(rule) not in self._engineless:
            self._engineless[id(rule)] = isinstance(engine_for(rule), str)
        return self._engineless[id(rule)]

    def _engines(self) -> None:
        """Multi-event rules get an engine (see ``match.stateful``) when one of their
        stages first holds: most never do, and building one compiles join keys."""
        self._engine: dict[int, Engine | str] = {}  # an engine, or why there is none
        self._engineless: dict[int, bool] = {}  # rules engine_for gives none (shared)
        # referenced rule id -> the correlation rules referencing it
        self.correlations: dict[str, list[RulePlan]] = defaultdict(list)
        self._watch: dict[int, Engine] = {}  # open engines fed every event
        for r in self.rules:
            for s in r.stages:
                if s.role is StageRole.CORRELATION:
                    self.correlations[str(s.params.get("rule", ""))].append(r)

    def stream(self, complete: bool = False) -> Matcher:
        """A matcher with these compiled rules and a stream state of its own (open
        sequences, windows, the process tree): one per request, so none leaks into
        the next. ``complete``: the events are all there is, an event not among them
        did not happen (a sandbox run, a capture from boot), so lineage may answer
        "no" (see ``match.lineage``)."""
        fresh = copy.copy(self)
        fresh._engine, fresh._watch = {}, {}
        fresh._tree = ProcessTree(self.lineage, complete)
        return fresh

    def engine(self, rule: RulePlan) -> Engine | str:
        """The rule's engine, or the reason it has none."""
        got = self._engine.get(id(rule))
        if got is None:
            if any(s.role is StageRole.CORRELATION for s in rule.stages):
                single = {r.id: r for r in self.rules if r.single_event}
                got = correlation_engine(rule, single)
            else:
                got = engine_for(rule)
            self._engine[id(rule)] = got
        return got

    def match(self, ev: Event | dict[str, Any]) -> EventResult:
        """The rules ``ev`` fires, is undetermined for, or takes a step of; and the
        multi-event rules it completes with the events before it (the matcher keeps
        their open state and the process tree: feed events in time order). ``ev``:
        an ``Event``, or a JSON document (an event labelled "event")."""
        if not isinstance(ev, Event):
            ev = canonical_event("event", ev)
        return self._observed(ev, self.candidates)

    def match_reference(self, ev: Event) -> EventResult:
        """``match`` without route nor prefilter: every admitted stage evaluated.
        Slow; the equality tests and the benchmark compare ``match`` with it."""
        return self._observed(ev, self.admitted, fused=False)

    def _observed(
        self, ev: Event, select: Callable[[Event], list[StagePlan]], fused: bool = True
    ) -> EventResult:
        if not self.lineage:
            return self._match(ev, select(ev), fused)
        with self._tree.observing(ev):
            return self._match(ev, select(ev), fused)

    def _match(self, ev: Event, stages: list[StagePlan], fused: bool = True) -> EventResult:
        result = EventResult(ev.label)
        # Most stages answer False; a single-event rule's one stage that holds (or
        # may) is its result at once, other rules' stages are gathered per rule.
        per_rule: dict[int, Results] = {}
        unknown: dict[int, StagePlan] = {}
        fired: Results = {}
        single = self._single_ids
        for s in stages:
            r = ((s._filter or s.filter()) if fused else s.unfused())(ev)  # NULL: as False
            if r is not True and r is not None:
                continue
            rule = s.rule
            key = id(rule)
            if key in single:  # its only stage
                self._single(rule, ev, r, s, result, fired)
            elif r:
                per_rule.setdefault(key, {})[s.name] = True
            else:
                per_rule.setdefault(key, {}).setdefault(s.name, None)
                unknown[key] = s
        for key, results in per_rule.items():
            rule = self.by_key[key]
            if not isinstance(engine := self.engine(rule), str):
                self._feed(key, engine, ev, results, result)
            elif hits := [s for s in rule.stages if results.get(s.name) and s.checks_a_value]:
                # A stage that holds on the fields an event has says nothing alone.
                result.partial.append({**_partial(rule, hits), "reason": engine})
        if self._watch:
            for key, engine in list(self._watch.items()):
                if key not in per_rule:
                    self._feed(key, engine, ev, {}, result)
        if fired:
            self._correlate(ev, fired, result)
        for lst in (result.matches, result.partial, result.undetermined):
            if len(lst) > 1:
                lst.sort(key=_ORDER)
        return result

    def _correlate(self, ev: Event, fired: Results, result: EventResult) -> None:
        """Sigma correlations over the single-event rules ``ev`` fired (or may have)."""
        rules = {id(r): r for ref in fired for r in self.correlations.get(ref, ())}
        for key, rule in rules.items():
            engine = self.engine(rule)
            if not isinstance(engine, str):
                self._feed(key, engine, ev, fired, result)
                continue
            got = [s for s in rule.stages if fired.get(str(s.params.get("rule", "")))]
            if got:
                result.partial.append({**_partial(rule, got), "reason": engine})

    def _single(
        self,
        rule: RulePlan,
        ev: Event,
        holds: bool | None,
        stage: StagePlan,
        result: EventResult,
        fired: Results,
    ) -> None:
        """A single-event rule whose stage holds (``holds``) or may hold (None)."""
        if holds:
            result.matches.append(rule.ref())
            fired[rule.id] = True
        else:
            result.undetermined.append({**rule.ref(), "unknown": stage.unknown_reasons(ev)})
            fired[rule.id] = None

    def _feed(
        self, key: int, engine: Engine, ev: Event, results: Results, out: EventResult
    ) -> None:
        for d in engine.feed(ev, results):
            found = {**engine.rule.ref(), "events": d.events}
            if d.certain:
                out.matches.append(found)
            else:
                out.undetermined.append({**found, "unknown": [d.reason]})
        if engine.watches and engine.is_open():
            self._watch[key] = engine
        else:
            self._watch.pop(key, None)


@contextmanager
def _no_gc() -> Iterator[None]:
    """No garbage collection while building: it would walk the growing heap of rule
    trees again and again, and none of it is garbage."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _gates(scopes: tuple[str, ...]) -> tuple[tuple[str, frozenset[str]], ...]:
    out = []
    for kind in _GATED_SCOPES:
        # "<kind>any" (EQL ``any where``) admits every event of that kind.
        mine = frozenset(_gate(x) for x in scopes if x.startswith(kind) and x != kind + "any")
        if mine:
            out.append((kind, mine))
    return tuple(out)


def _gate(scope: str) -> str:
    """The scope as events state it: a data-model search (``datamodel:Web.Web``) by
    its model (``datamodel:Web``, see ``Vendor.catalog_event_gates``)."""
    if scope.startswith(DATAMODEL):
        return DATAMODEL + scope[len(DATAMODEL) :].split(".", 1)[0]
    return scope


# Results are listed by vendor, title and id.
_ORDER = itemgetter("vendor", "title", "id")


def _partial(rule: RulePlan, matched: list[StagePlan]) -> dict[str, Any]:
    names = list(dict.fromkeys(s.name for s in matched))
    return {**rule.ref(), "stages": names, "of": [s.name for s in rule.stages]}


# -- required fields ------------------------------------------------------------------------


def required_fields(expr: Expr | None) -> frozenset[str]:
    """Canonical fields without which ``expr`` cannot be true (nor unknown)."""
    match expr:
        case Predicate():
            if expr.kind in ("implied", "derived") or expr.op is Op.IS_NULL:
                return frozenset()
            if expr.whole_event or not expr.field:
                return frozenset()
            return frozenset({expr.field})
        case And(children):
            return frozenset().union(*(required_fields(c) for c in children))
        case Or(children):
            sets = [required_fields(c) for c in children]
            return frozenset.intersection(*sets) if sets else frozenset()
        case Not() | Opaque() | None:
            return frozenset()
    return frozenset()


def read_fields(expr: Expr | None) -> frozenset[str]:
    """Every canonical field ``expr`` tests (not keywords, which read the whole
    event, nor computed values: a stage with one is never skipped)."""
    out: set[str] = set()
    for p in predicates(expr):
        if p.whole_event or not p.field or p.kind == "derived":
            return frozenset()
        if p.kind != "implied":
            out.add(p.field)
    return frozenset(out)


# -- the catalog ------------------------------------------------------------------------------


def load_rules(conn: sqlite3.Connection, vendor: str | None = None) -> list[RulePlan]:
    """Every rule of the catalog (of one vendor) with its stages and their events."""
    where, args = ("WHERE vendor = ?", (vendor,)) if vendor else ("", ())
    rules: dict[int, RulePlan] = {}
    for r in conn.execute(
        f"SELECT pk, vendor, id, title, language, context, type, "
        f"CASE WHEN language = 'yaral' THEN extra END AS extra FROM rules {where}",
        args,
    ):
        context = loads(r["context"] or "{}")
        plan = RulePlan(r["vendor"], r["id"], r["title"], r["language"], context)
        plan.rule_type = r["type"] or ""
        if r["extra"]:
            plan.condition = loads(r["extra"]).get("condition")
        rules[r["pk"]] = plan
    events: dict[tuple[int, int], set[str]] = defaultdict(set)
    shared: dict[Any, Any] = {}  # leaves by their JSON: one object for a common predicate
    for pk, event, idx in conn.execute("SELECT rule_pk, event, stage_idx FROM rule_events"):
        events[(pk, idx)].add(event)
    for s in conn.execute(
        "SELECT rule_pk, idx, name, role, negated, join_keys, params, expr FROM stages"
        " ORDER BY rule_pk, idx"
    ):
        rule = rules.get(s["rule_pk"])
        if rule is None:
            continue
        rule.stages.append(
            StagePlan(
                rule=rule,
                name=s["name"],
                role=StageRole(s["role"]),
                negated=bool(s["negated"]),
                params=loads(s["params"] or "{}"),
                expr=expr_from_json(loads(s["expr"]), shared) if s["expr"] else None,
                events=frozenset(events.get((s["rule_pk"], s["idx"]), ())),
                join_keys=tuple(loads(s["join_keys"] or "[]")),
            )
        )
    return list(rules.values())


def match_events(matcher: Matcher, events: Iterable[Event]) -> list[EventResult]:
    return [matcher.match(ev) for ev in events]


__all__ = ["EventResult", "Matcher", "RulePlan", "StagePlan", "load_rules", "required_fields"]
