"""A route's rules as one indexed query: each rule is evaluated only on the rows
where a literal it needs occurs.

Testing every rule on every row costs a substring test per leaf per row (the
Sysmon process-creation route holds ~2,000 rules and ~28,000 leaves). Instead:

1. *Gates.* For each rule, a set of substring tests of which one holds on every
   row where the rule is true or unknown (a necessary condition, ``gate``): the
   cheapest set, by how often its tests hold on a sample of the route's rows.
   Where the gate is false the rule is false, so skipping it changes no answer.
2. *Chunks.* Per column, the gate literals of all rules, rarest first, cut into
   chunks that each hold on few sample rows (hot literals alone): one substring
   search per chunk and row (DuckDB: one RE2 alternation) gives a *bit*.
3. *Groups.* Rules whose gates fall in the same chunks share a condition (the OR
   of those bits); a group's rules are evaluated, each behind its own gate, only
   on rows where the condition holds, and groups are nested in blocks the same
   way. Rules without a usable gate are evaluated on every row.

Each evaluated rule gives its code (``k``) where it holds and ``-1 - k`` where it
is unknown (``decode``). Only the cost of a plan depends on the sample; its
answers do not.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import ahocorasick

from detcat.sqlgen.ir import (
    TEXT_ALL,
    TEXT_ALL_FOLD,
    All,
    Any_,
    Col,
    Has,
    Node,
    Regex,
    Variant,
    walk,
)

Gate = frozenset[Has]

# A chunk grows while it holds on at most HOT of the sample rows, up to CHUNK_MAX
# literals: smaller chunks cost more searches per row but wake fewer rules (the
# values measured best on the bench's events, bench/bench_backtest.py).
CHUNK_MAX = 100
HOT = 0.005
UNGATED = 0.5  # a gate holding more often than this saves nothing: evaluate always
BLOCK = 32  # groups per block
SUPER_MAX = 1000  # literals per super chunk
MIN_LITERAL = 2  # shorter regex literals say too little to gate on


class Sample:
    """Which sample rows each literal of a column occurs in (bit sets), so a gate's
    cost is the share of rows where one of its tests holds."""

    def __init__(self, rows: Sequence[dict[str, str | None]], literals: dict[str, set[str]]):
        self.size = len(rows)
        self._bits: dict[tuple[str, str], int] = {}
        for name, words in literals.items():
            automaton = ahocorasick.Automaton()
            for w in words:
                automaton.add_word(w, w)
                self._bits[(name, w)] = 0
            automaton.make_automaton()
            for i, row in enumerate(rows):
                value = row.get(name)
                if value:
                    for w in {w for _, w in automaton.iter(value)}:
                        self._bits[(name, w)] |= 1 << i

    def bits(self, test: Has) -> int:
        return self._bits.get((test.col.name, test.needle), 0)

    def share(self, bits: int) -> float:
        return bits.bit_count() / self.size if self.size else 0.0

    def cost(self, gate: Gate) -> float:
        """Share of sample rows where the gate holds; more tests cost a little more."""
        union = 0
        for t in gate:
            union |= self.bits(t)
        return self.share(union) + 1e-4 * len(gate)


def gate_options(node: Node, present: set[str]) -> list[Has]:
    """Every substring test ``gate`` may pick from ``node`` (to sample them)."""
    out: list[Has] = []
    for n in walk(node):
        if isinstance(n, Has):
            out.append(n)
        elif isinstance(n, Regex):
            out.extend(_regex_tests(n, present) or ())
    return out


def gate(node: Node, present: set[str], cost: Callable[[Gate], float]) -> Gate | None:
    """Substring tests one of which holds wherever ``node`` is true or unknown (the
    cheapest such set by ``cost``), or None when none can be proved: an AND needs
    one child's, an OR every child's; NOT, unknown parts and other leaves give none
    (a missing field makes NOT true)."""
    if isinstance(node, Has):
        return frozenset((node,))
    if isinstance(node, Regex):
        return _regex_tests(node, present)
    if isinstance(node, All):
        options = [g for c in node.children if (g := gate(c, present, cost)) is not None]
        return min(options, key=cost) if options else None
    if isinstance(node, Any_):
        out: set[Has] = set()
        for c in node.children:
            g = gate(c, present, cost)
            if g is None:
                return None
            out |= g
        return frozenset(out)
    return None


def _regex_tests(r: Regex, present: set[str]) -> Gate | None:
    """A regex's literals (``Regex.literals``, case-folded) on the folded column
    of its field, when the route's rows have that column."""
    fold = TEXT_ALL_FOLD if r.col.field == TEXT_ALL.field else Col(r.col.field, Variant.FOLD)
    if not r.literals or fold.name not in present:
        return None
    if any(len(lit) < MIN_LITERAL for lit in r.literals):
        return None
    return frozenset(Has(fold, lit) for lit in r.literals)


@dataclass
class Chunk:
    col: Col
    needles: list[str]


@dataclass
class Gated:
    code: int
    node: Node
    gate: Gate
    own: bool  # the rule needs its own gate test inside its group (the group's is wider)


@dataclass
class RoutePlan:
    chunks: list[Chunk] = field(default_factory=list)
    # Chunks searched first as one (up to SUPER_MAX literals of a column's chunks of
    # rare literals): a chunk of one is searched only where its super chunk holds.
    supers: list[list[int]] = field(default_factory=list)
    groups: list[tuple[frozenset[int], list[Gated]]] = field(default_factory=list)
    ungated: list[tuple[int, Node]] = field(default_factory=list)


def plan_route(rules: Iterable[tuple[int, Node]], present: set[str], sample: Sample) -> RoutePlan:
    """The plan for rules given as (code, condition) on rows with ``present`` columns."""
    out = RoutePlan()
    gated: list[tuple[int, Node, Gate]] = []
    for code, node in rules:
        g = gate(node, present, sample.cost)
        if g is None or sample.cost(g) > UNGATED:
            out.ungated.append((code, node))
        else:
            gated.append((code, node, g))
    chunk_of = _chunks(gated, sample, out.chunks)
    out.supers = _supers(out.chunks)
    by_signature: dict[frozenset[int], list[Gated]] = defaultdict(list)
    for code, node, g in gated:
        signature = frozenset(chunk_of[t] for t in g)
        wide = sum(len(out.chunks[i].needles) for i in signature) > len(g)
        by_signature[signature].append(Gated(code, node, g, wide))
    out.groups = sorted(by_signature.items(), key=lambda kv: sorted(kv[0]))
    return out


def _chunks(
    gated: list[tuple[int, Node, Gate]], sample: Sample, chunks: list[Chunk]
) -> dict[Has, int]:
    """Cut each column's gate literals, rarest first, into chunks that hold on at
    most ``HOT`` of the sample (a hotter literal alone); the chunk of each test."""
    by_col: dict[Col, set[Has]] = defaultdict(set)
    for _, _, g in gated:
        for t in g:
            by_col[t.col].add(t)
    chunk_of: dict[Has, int] = {}
    for col in sorted(by_col, key=lambda c: c.name):
        tests = sorted(by_col[col], key=lambda t: (sample.bits(t).bit_count(), t.needle))
        current: list[Has] = []
        union = 0
        for t in tests:
            grown = union | sample.bits(t)
            if current and (sample.share(grown) > HOT or len(current) >= CHUNK_MAX):
                _close(col, current, chunks, chunk_of)
                current, grown = [], sample.bits(t)
            current.append(t)
            union = grown
        _close(col, current, chunks, chunk_of)
    return chunk_of


def _close(col: Col, tests: list[Has], chunks: list[Chunk], chunk_of: dict[Has, int]) -> None:
    if tests:
        for t in tests:
            chunk_of[t] = len(chunks)
        chunks.append(Chunk(col, [t.needle for t in tests]))


def _supers(chunks: list[Chunk]) -> list[list[int]]:
    """Per column, its chunks of several literals (rare ones: each holds on at most
    ``HOT`` of the sample) in runs of up to ``SUPER_MAX`` literals; runs of one
    chunk are left out (nothing to save)."""
    by_col: dict[Col, list[int]] = defaultdict(list)
    for i, c in enumerate(chunks):
        if len(c.needles) > 1:
            by_col[c.col].append(i)
    out: list[list[int]] = []
    for ids in by_col.values():
        run: list[int] = []
        size = 0
        for i in ids:
            if run and size + len(chunks[i].needles) > SUPER_MAX:
                out.append(run)
                run, size = [], 0
            run.append(i)
            size += len(chunks[i].needles)
        out.append(run)
    return [run for run in out if len(run) > 1]


def decode(code: int) -> tuple[int, bool]:
    """A result code as (rule code, holds): ``-1 - k`` means rule ``k`` is unknown."""
    return (code, True) if code >= 0 else (-1 - code, False)
