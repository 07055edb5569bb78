"""``detcat match``: which catalog rules fire on which events.

Every rule's stages are read back from the catalog (``model.expr_from_json``) and
evaluated on canonical events (``match.events``) by ``match.evaluate``. A rule is a
full match only when it is a single event filter that holds; a multi-stage rule
(EQL sequence, YARA-L multi-event rule, SPL/ES|QL filter after an aggregation,
Elastic threshold / new-terms, Sigma correlation) reports the stages that
matched instead. A rule whose known parts hold but that depends on something
detcat cannot evaluate (an Opaque part, a deployer's list) is *undetermined*.

Speed: 3,000+ rules per event would be slow one by one, so each stage is
indexed by one field it cannot match without (the rarest of its required
fields) and, when the catalog knows the events a stage applies to, by those
events; an event only meets the stages its fields and identity admit. Stages
compile to closures on first use.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from detcat.match.evaluate import Test, compile_expr
from detcat.match.events import Event
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
from detcat.normalize.fields import canonical_field
from detcat.normalize.scopes import stage_scopes

# Stage parameters that make one event not enough (YARA-L ``#e > N``).
_MIN_COUNT = "min_count"
# Scope kinds compared between a rule stage and an event (see StagePlan.admits).
_GATED_SCOPES = ("product:", "service:", "category:")


@dataclass(eq=False)
class StagePlan:
    rule: RulePlan
    name: str
    role: StageRole
    negated: bool
    params: dict[str, Any]
    expr: Expr | None
    events: frozenset[str]
    gates: tuple[tuple[str, frozenset[str]], ...] = ()  # (scope kind, the stage's scopes)
    # Set for stages no field is required by (``not a``, ``a or b``): the fields it
    # reads, one of which the event must have (see Matcher.candidates).
    reads: frozenset[str] = frozenset()
    _test: Test | None = None

    @property
    def filters_events(self) -> bool:
        return self.role is StageRole.EVENTS and not self.negated and self.expr is not None

    def admits(self, ev: Event) -> bool:
        """Not written for another log source: a product, service or category both
        the stage and the event state agrees (catalog events are matched by the
        index)."""
        for kind, mine in self.gates:
            theirs = [s for s in ev.scopes if s.startswith(kind)]
            if theirs and mine.isdisjoint(theirs):
                return False
        return True

    def test(self) -> Test:
        if self._test is None:
            full = full_match_regex(self.rule.language)
            self._test = compile_expr(self.expr, full, self.rule.ref_resolver(self))
        return self._test


@dataclass(eq=False)
class RulePlan:
    vendor: str
    id: str
    title: str
    language: str
    context: dict[str, Any] = field(default_factory=dict)
    stages: list[StagePlan] = field(default_factory=list)

    @property
    def single_event(self) -> bool:
        """One event can fire the whole rule: one event filter and nothing else."""
        if len(self.stages) != 1:
            return False
        s = self.stages[0]
        return s.filters_events and int(s.params.get(_MIN_COUNT, 1) or 1) <= 1

    def stage_scopes(self, stage: StagePlan) -> tuple[str, ...]:
        rule = Rule(self.vendor, self.id, self.title, "", self.language, context=self.context)
        return stage_scopes(rule, Stage(stage.name, expr=stage.expr, params=stage.params))

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
    """All rules, indexed for fast candidate selection (see the module docstring)."""

    def __init__(self, rules: Iterable[RulePlan]):
        self.rules = list(rules)
        self.correlations = [
            r for r in self.rules if any(s.role is StageRole.CORRELATION for s in r.stages)
        ]
        stages = [s for r in self.rules for s in r.stages if s.filters_events]
        required = {id(s): required_fields(s.expr) for s in stages}
        freq = Counter(f for fields in required.values() for f in fields)
        # catalog event (None: any event) -> anchor field (None: no anchor) -> stages
        self.index: dict[str | None, dict[str | None, list[StagePlan]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for s in stages:
            s.gates = _gates(s.rule.stage_scopes(s))
            fields = required[id(s)]
            anchor = min(fields, key=lambda f: (freq[f], f)) if fields else None
            if anchor is None:
                s.reads = read_fields(s.expr)
            for event in s.events or (None,):
                self.index[event][anchor].append(s)

    @classmethod
    def from_catalog(cls, conn: sqlite3.Connection, vendor: str | None = None) -> Matcher:
        return cls(load_rules(conn, vendor))

    def candidates(self, ev: Event) -> list[StagePlan]:
        """Stages the event's identity and fields admit. A stage that reads none of
        the event's fields (``not resultType: 0`` on a Sysmon event) says nothing
        about it, although a missing field would make its negation hold."""
        keys = (None, *ev.fields)
        if ev.catalog_id is not None:
            # A stage sits under one anchor of one bucket here: no duplicates.
            buckets = (self.index.get(ev.catalog_id, {}), self.index.get(None, {}))
            found = [s for b in buckets for k in keys for s in b.get(k, ())]
        else:  # an unknown event: the stages of every catalog event apply
            found = list(
                {id(s): s for b in self.index.values() for k in keys for s in b.get(k, ())}.values()
            )
        return [
            s
            for s in found
            if (not s.gates or s.admits(ev)) and (not s.reads or not s.reads.isdisjoint(ev.fields))
        ]

    def match(self, ev: Event) -> EventResult:
        result = EventResult(ev.label)
        hits: dict[int, list[StagePlan]] = defaultdict(list)
        unknown: dict[int, StagePlan] = {}
        for s in self.candidates(ev):
            r = s.test()(ev)
            if r is True:
                hits[id(s.rule)].append(s)
            elif r is None:
                unknown[id(s.rule)] = s
        rules = {id(s.rule): s.rule for group in hits.values() for s in group}
        rules.update({key: s.rule for key, s in unknown.items()})
        full_ids: set[str] = set()
        for key, rule in rules.items():
            if key in hits and rule.single_event:
                result.matches.append(rule.ref())
                full_ids.add(rule.id)
            elif key in hits:
                result.partial.append(_partial(rule, hits[key]))
            elif rule.single_event:
                reasons = sorted({o.reason for o in opaques(unknown[key].expr)})
                result.undetermined.append({**rule.ref(), "unknown": reasons or ["in_list"]})
        result.partial += self._correlations(full_ids)
        for lst in (result.matches, result.partial, result.undetermined):
            lst.sort(key=lambda d: (d["vendor"], d["title"], d["id"]))
        return result

    def _correlations(self, fired: set[str]) -> list[dict[str, Any]]:
        """Correlation rules whose referenced rules fired on this event."""
        out = []
        for rule in self.correlations if fired else ():
            refs = [s for s in rule.stages if s.role is StageRole.CORRELATION]
            got = [s for s in refs if str(s.params.get("rule", "")) in fired]
            if got:
                out.append(_partial(rule, got))
        return out


def _gates(scopes: tuple[str, ...]) -> tuple[tuple[str, frozenset[str]], ...]:
    out = []
    for kind in _GATED_SCOPES:
        # "<kind>any" (EQL ``any where``) admits every event of that kind.
        mine = frozenset(x for x in scopes if x.startswith(kind) and x != kind + "any")
        if mine:
            out.append((kind, mine))
    return tuple(out)


def _partial(rule: RulePlan, matched: list[StagePlan]) -> dict[str, Any]:
    names = list(dict.fromkeys(s.name for s in matched))
    return {**rule.ref(), "stages": names, "of": [s.name for s in rule.stages]}


# -- required fields ------------------------------------------------------------------------


def required_fields(expr: Expr | None) -> frozenset[str]:
    """Canonical fields without which ``expr`` cannot be true (nor unknown)."""
    match expr:
        case Predicate():
            if expr.kind == "implied" or expr.op in (Op.IS_NULL, Op.KEYWORD) or not expr.field:
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
    event: a stage with one is never skipped)."""
    out: set[str] = set()
    for p in predicates(expr):
        if p.op is Op.KEYWORD or not p.field:
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
        f"SELECT pk, vendor, id, title, language, context FROM rules {where}", args
    ):
        context = json.loads(r["context"] or "{}")
        rules[r["pk"]] = RulePlan(r["vendor"], r["id"], r["title"], r["language"], context)
    events: dict[tuple[int, int], set[str]] = defaultdict(set)
    for pk, event, idx in conn.execute("SELECT rule_pk, event, stage_idx FROM rule_events"):
        events[(pk, idx)].add(event)
    for s in conn.execute(
        "SELECT rule_pk, idx, name, role, negated, params, expr FROM stages ORDER BY rule_pk, idx"
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
                params=json.loads(s["params"] or "{}"),
                expr=expr_from_json(json.loads(s["expr"])) if s["expr"] else None,
                events=frozenset(events.get((s["rule_pk"], s["idx"]), ())),
            )
        )
    return list(rules.values())


def match_events(matcher: Matcher, events: Iterable[Event]) -> list[EventResult]:
    return [matcher.match(ev) for ev in events]


__all__ = ["EventResult", "Matcher", "RulePlan", "StagePlan", "load_rules", "required_fields"]
