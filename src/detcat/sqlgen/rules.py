"""Catalog rules compiled to IR trees, with what routes an event to them.

``match.Matcher`` only tests a stage on the events its *candidates* step admits;
those steps are part of the semantics (a stage reading none of the event's fields
says nothing about it), so each compiled rule carries them as conditions too:
the catalog events it is written for (the route), its log-source gates (by
product, service, category) and, for a stage that requires no field, the fields
of which the event must have one.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from detcat.match import RulePlan, StagePlan, _gates, required_fields
from detcat.match import read_fields as _read_fields
from detcat.sqlgen.ir import (
    FALSE,
    LEAVES,
    NONNULL,
    SEP,
    TEXT_ALL,
    TEXT_ALL_FOLD,
    TRUE,
    Col,
    Node,
    NonNull,
    Present,
    Python,
    Regex,
    SameValue,
    ScopesIn,
    Variant,
    all_,
    any_,
    bind,
    can_be_unknown,
    columns,
    prefilter,
    python_reasons,
    rebuild,
    walk,
)
from detcat.sqlgen.lower import lower
from detcat.sqlgen.rows import split_name
from detcat.sqlgen.stateful import NOT_EVALUATED, Shape, compile_stateful


class Status(StrEnum):
    EXACT = "exact"  # SQL gives the matcher's answer on every event
    FALLBACK = "python fallback"  # SQL keeps candidate rows, the Python matcher decides
    STATEFUL = "stateful exact"  # multi-event: SQL window functions give its detections
    NOT_COMPILED = "not compiled"  # multi-event, SQL cannot express it (or no query)


@dataclass(eq=False)
class CompiledRule:
    plan: RulePlan
    status: Status
    reasons: list[str] = field(default_factory=list)
    node: Node = FALSE  # the rule's filter (EXACT, FALLBACK)
    events: frozenset[str] = frozenset()  # catalog events it is written for (empty: any)
    gates: tuple[tuple[str, frozenset[str]], ...] = ()
    reads: frozenset[str] = frozenset()
    shape: Shape | None = None  # STATEFUL: what the rule counts (``sqlgen.stateful``)
    stages: tuple[CompiledRule, ...] = ()  # STATEFUL: its stages' filters, as ``shape.parts``

    @property
    def key(self) -> str:
        return f"{self.plan.vendor}:{self.plan.id}"

    def routed(self, catalog_id: str | None) -> bool:
        """Whether events of ``catalog_id`` (None: unknown events) meet the rule."""
        return catalog_id is None or not self.events or catalog_id in self.events

    def admits(self, scopes: frozenset[str]) -> bool:
        """``StagePlan.admits``: no log source both sides state that disagrees."""
        for kind, mine in self.gates:
            theirs = [s for s in scopes if s.startswith(kind)]
            if theirs and mine.isdisjoint(theirs):
                return False
        return True

    def for_route(
        self, present: set[str], scope_sets: Iterable[str], considered: set[str]
    ) -> tuple[Node, bool]:
        """The rule's SQL condition on one route's rows: its filter where the
        Python matcher would test it (gates by the route's joined scope sets,
        ``reads`` by field presence), bound to the columns the route has. A test
        of a column the rows were not normalized with is the Python matcher's; a
        tree with such tests is a prefilter (read it ``IS NOT FALSE``): the second
        item says whether the condition is one."""
        sets = list(scope_sets)
        admitted = tuple(s for s in sets if self.admits(frozenset(s.split(SEP)) - {""}))
        gate = TRUE if len(admitted) == len(sets) else ScopesIn(admitted) if admitted else FALSE
        reads = any_([Present(Col(f)) for f in sorted(self.reads)]) if self.reads else TRUE
        node = bind(all_([gate, reads, unnormalized(self.node, considered)]), present)
        return (prefilter(node), True) if python_reasons(node) else (node, False)


MULTI_EVENT = "multi-event rule: "  # the reasons of multi-event rules begin so
ALWAYS = frozenset({TEXT_ALL.name, TEXT_ALL_FOLD.name})  # every row has them


def unnormalized(node: Node, considered: set[str]) -> Node:
    """``node`` with its tests of columns outside ``considered`` left to Python."""

    def leaf(n: Node) -> Node:
        if isinstance(n, NonNull):
            names = [nonnull_key(n.field)]
        elif isinstance(n, ScopesIn) or not isinstance(n, LEAVES):
            names = []
        elif isinstance(n, SameValue):
            names = [c.name for c in (n.col, *n.others)]
        else:
            names = [n.col.name]  # type: ignore[union-attr]
        for name in names:
            if name not in considered and name not in ALWAYS:
                return Python(f"not normalized: column {name} (normalize the events again)")
        return n

    return rebuild(node, leaf)


def nonnull_key(field: str) -> str:
    """How ``considered`` names the fields listed in ``_nonnull``."""
    return f"{NONNULL}:{field}"


def compile_rule(plan: RulePlan, single: dict[str, RulePlan] | None = None) -> CompiledRule:
    """``single``: the single-event rules by id, which Sigma correlations reference."""
    if not plan.single_event:
        return _compile_stateful(plan, single or {})
    return compile_stage(plan, plan.stages[0])


def compile_stage(plan: RulePlan, stage: StagePlan) -> CompiledRule:
    """One stage's filter, with what routes events to it."""
    node = lower(stage.expr, plan.dialect(stage))
    python = python_reasons(node)
    fields = required_fields(stage.expr)
    return CompiledRule(
        plan,
        Status.FALLBACK if python else Status.EXACT,
        python,
        node,
        stage.events,
        _gates(plan.stage_scopes(stage)),
        frozenset() if fields else _read_fields(stage.expr),
    )


def _compile_stateful(plan: RulePlan, single: dict[str, RulePlan]) -> CompiledRule:
    """A multi-event rule: STATEFUL when its shape compiles and each stage's filter
    is exact and never unknown (an unknown stage result makes detections uncertain
    in ways the matcher tracks per open sequence), else NOT_COMPILED with why."""
    shape = compile_stateful(plan, single)
    if isinstance(shape, str):
        return CompiledRule(plan, Status.NOT_COMPILED, [MULTI_EVENT + shape])
    stages = tuple(compile_stage(part.stage.rule, part.stage) for part in shape.parts)
    for c in stages:
        if c.status is not Status.EXACT or can_be_unknown(c.node):
            why = "; ".join(c.reasons) or "a stage can be unknown on an event"
            return CompiledRule(plan, Status.NOT_COMPILED, [MULTI_EVENT + why])
    return CompiledRule(plan, Status.STATEFUL, shape=shape, stages=stages)


def as_backtested(plans: Iterable[RulePlan]) -> list[RulePlan]:
    """``plans`` as backtests run them, on every engine: without the values SPL's
    eval and ES|QL's EVAL make, which ``detcat match`` computes (``match.spl``,
    ``match.esql``) but SQL does not yet. Left to the Python fallback, they would
    run their rules on every row of their route (on the corpora, DuckDB backtests
    ran 3x slower); they stay unknown instead, as before. The plans themselves are
    marked, and returned."""
    plans = list(plans)
    for p in plans:
        p.computes_evals = False
    return plans


def compile_rules(plans: Iterable[RulePlan]) -> list[CompiledRule]:
    plans = list(plans)
    single = {p.id: p for p in plans if p.single_event}  # as match.Matcher.engine
    return [compile_rule(p, single) for p in plans]


def wanted_columns(compiled: Iterable[CompiledRule]) -> tuple[set[str], set[str]]:
    """The field columns rows need for these rules, and the fields ``exists`` tests:
    every column a filter reads, and the text column of every field (its presence)."""
    wanted: set[str] = set()
    nonnull: set[str] = set()
    for c in compiled:
        if c.status is Status.NOT_COMPILED:
            continue
        if c.shape is not None:
            for p in c.shape.parts:
                keys = (*p.fields, p.distinct) if p.distinct else p.fields
                wanted |= {Col(f, Variant.KEY).name for f in keys}
        for s in c.stages:
            wanted |= {n for n in columns(s.node) if not n.startswith("_")}
            wanted |= {Col(f).name for f in s.reads}
            nonnull |= {n.field for n in walk(s.node) if isinstance(n, NonNull)}
        wanted |= {n for n in columns(c.node) if not n.startswith("_")}
        wanted |= {Col(f).name for f in c.reads}
        nonnull |= {n.field for n in walk(c.node) if isinstance(n, NonNull)}
    wanted |= {split_name(n).field for n in wanted}  # each field's presence
    return wanted, nonnull


@dataclass
class VendorShare:
    vendor: str
    rules: int = 0
    single_event: int = 0
    exact: int = 0
    fallback: int = 0
    not_compiled: int = 0
    multi_event: int = 0
    evaluated: int = 0  # multi-event rules the Python matcher evaluates over the stream
    stateful: int = 0  # multi-event rules compiled exactly (window functions)
    java_regex: int = 0  # exact rules with a written regex: Java's engine on Spark, not RE2

    @property
    def exact_share(self) -> float:
        """Exactly compiled single-event rules, of all single-event rules."""
        return self.exact / self.single_event if self.single_event else 0.0

    @property
    def stateful_share(self) -> float:
        """Multi-event rules compiled exactly, of those the Python matcher evaluates."""
        return self.stateful / self.evaluated if self.evaluated else 0.0


def report(compiled: Iterable[CompiledRule]) -> tuple[list[VendorShare], Counter[str]]:
    """Per vendor: rules compiled exactly, falling back to Python, not compiled;
    and every reason with how many rules give it."""
    shares: dict[str, VendorShare] = {}
    reasons: Counter[str] = Counter()
    for c in compiled:
        s = shares.setdefault(c.plan.vendor, VendorShare(c.plan.vendor))
        s.rules += 1
        s.single_event += c.plan.single_event
        s.multi_event += not c.plan.single_event
        s.evaluated += _evaluated(c)
        s.exact += c.status is Status.EXACT
        s.stateful += c.status is Status.STATEFUL
        s.fallback += c.status is Status.FALLBACK
        s.not_compiled += c.status is Status.NOT_COMPILED
        s.java_regex += c.status is Status.EXACT and java_regex(c.node)
        reasons.update(_reason_kind(r) for r in c.reasons)
    return sorted(shares.values(), key=lambda s: s.vendor), reasons


def _evaluated(c: CompiledRule) -> bool:
    """A multi-event rule the Python matcher evaluates over the stream."""
    not_evaluated = MULTI_EVENT + NOT_EVALUATED
    return not c.plan.single_event and not any(r.startswith(not_evaluated) for r in c.reasons)


def java_regex(node: Node) -> bool:
    """The tree holds a regex the rule wrote (not a lowered wildcard): on Spark it
    runs on Java's engine, whose syntax and classes differ from RE2's at the edges."""
    return any(isinstance(n, Regex) and n.each for n in walk(node))


def _reason_kind(reason: str) -> str:
    """A reason without its particulars (the pattern, the field), for counting. A
    multi-event rule's reason keeps its kind (``multi-event rule: sequence with
    until: not compiled``), without the fields, conditions and numbers it names."""
    if reason.startswith(MULTI_EVENT):
        return re.sub(r"\d+", "N", re.sub(r"\([^()]*\)?|\{.*\}", "(…)", reason))
    return reason.split(":", 1)[0]
