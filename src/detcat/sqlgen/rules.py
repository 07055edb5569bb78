"""Catalog rules compiled to IR trees, with what routes an event to them.

``match.Matcher`` only tests a stage on the events its *candidates* step admits;
those steps are part of the semantics (a stage reading none of the event's fields
says nothing about it), so each compiled rule carries them as conditions too:
the catalog events it is written for (the route), its log-source gates (by
product, service, category) and, for a stage that requires no field, the fields
of which the event must have one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from detcat.match import RulePlan, _gates, required_fields
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
    all_,
    any_,
    bind,
    columns,
    prefilter,
    python_reasons,
    rebuild,
    walk,
)
from detcat.sqlgen.lower import lower
from detcat.sqlgen.rows import split_name


class Status(StrEnum):
    EXACT = "exact"  # SQL gives the matcher's answer on every event
    FALLBACK = "python fallback"  # SQL keeps candidate rows, the Python matcher decides
    NOT_COMPILED = "not compiled"  # multi-event (stateful) or without a query


@dataclass(eq=False)
class CompiledRule:
    plan: RulePlan
    status: Status
    reasons: list[str] = field(default_factory=list)
    node: Node = FALSE  # the rule's filter (EXACT, FALLBACK)
    events: frozenset[str] = frozenset()  # catalog events it is written for (empty: any)
    gates: tuple[tuple[str, frozenset[str]], ...] = ()
    reads: frozenset[str] = frozenset()

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


def compile_rule(plan: RulePlan) -> CompiledRule:
    if not plan.single_event:
        why = "multi-event rule (sequence, threshold, correlation or several stages)"
        return CompiledRule(plan, Status.NOT_COMPILED, [why])
    stage = plan.stages[0]
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


def compile_rules(plans: Iterable[RulePlan]) -> list[CompiledRule]:
    return [compile_rule(p) for p in plans]


def wanted_columns(compiled: Iterable[CompiledRule]) -> tuple[set[str], set[str]]:
    """The field columns rows need for these rules, and the fields ``exists`` tests:
    every column a filter reads, and the text column of every field (its presence)."""
    wanted: set[str] = set()
    nonnull: set[str] = set()
    for c in compiled:
        if c.status is Status.NOT_COMPILED:
            continue
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
    java_regex: int = 0  # exact rules with a written regex: Java's engine on Spark, not RE2

    @property
    def exact_share(self) -> float:
        """Exactly compiled single-event rules, of all single-event rules."""
        return self.exact / self.single_event if self.single_event else 0.0


def report(compiled: Iterable[CompiledRule]) -> tuple[list[VendorShare], Counter[str]]:
    """Per vendor: rules compiled exactly, falling back to Python, not compiled;
    and every reason with how many rules give it."""
    shares: dict[str, VendorShare] = {}
    reasons: Counter[str] = Counter()
    for c in compiled:
        s = shares.setdefault(c.plan.vendor, VendorShare(c.plan.vendor))
        s.rules += 1
        s.single_event += c.status is not Status.NOT_COMPILED
        s.exact += c.status is Status.EXACT
        s.fallback += c.status is Status.FALLBACK
        s.not_compiled += c.status is Status.NOT_COMPILED
        s.java_regex += c.status is Status.EXACT and java_regex(c.node)
        reasons.update(_reason_kind(r) for r in c.reasons)
    return sorted(shares.values(), key=lambda s: s.vendor), reasons


def java_regex(node: Node) -> bool:
    """The tree holds a regex the rule wrote (not a lowered wildcard): on Spark it
    runs on Java's engine, whose syntax and classes differ from RE2's at the edges."""
    return any(isinstance(n, Regex) and n.each for n in walk(node))


def _reason_kind(reason: str) -> str:
    """A reason without its particulars (the pattern, the field), for counting."""
    return reason.split(":", 1)[0]
