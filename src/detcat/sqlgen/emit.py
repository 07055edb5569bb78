"""IR trees as SQL text: the parts every dialect shares. A dialect (``duckdb``,
``spark``) spells literals, identifiers and the ten leaf operations.

Leaves are wrapped in ``coalesce(…, false)`` where SQL's null would differ from
the matcher's false: under a ``NOT`` (a missing field must make ``NOT`` hold, not
drop the row) and everywhere in a rule that can be unknown (there null *means*
unknown). In a positive position of a rule that cannot be unknown a null leaf
acts as false does (AND/OR are monotone), and the wrapper is saved.

A route's query (``route_query``) follows its plan (``sqlgen.plan``): per row,
the codes of the rules that hold (``k``) or are unknown (``-1 - k``) on it, and
only rows with a code. Rules left to the Python matcher are read from their own
query (``fallback_query``): the rows where some rule's prefilter is not false.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

from detcat.sqlgen.ir import (
    NONNULL,
    SCOPES,
    SEP,
    All,
    AllEmpty,
    Any_,
    Col,
    Const,
    Has,
    IpIn,
    Neg,
    Node,
    NonNull,
    NumCmp,
    Present,
    Python,
    Regex,
    SameValue,
    ScopesIn,
    Unknown,
    can_be_unknown,
)
from detcat.sqlgen.plan import BLOCK, Chunk, RoutePlan
from detcat.sqlgen.rows import LABEL, PYTHON, RAW, TIME


class SqlDialect:
    name = ""
    # Ordering operators by IR name.
    _CMP = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}

    # -- spelled by each dialect ----------------------------------------------------------

    def literal(self, text: str) -> str:
        raise NotImplementedError

    def ident(self, name: str) -> str:
        raise NotImplementedError

    def contains(self, col: str, needle: str) -> str:
        raise NotImplementedError

    def regex(self, col: str, r: Regex) -> str:
        raise NotImplementedError

    def any_value(self, col: str, var: str, test: str) -> str:
        """Some item ``var`` of list ``col`` passes ``test``."""
        raise NotImplementedError

    def list_has(self, col: str, item: str) -> str:
        raise NotImplementedError

    def list_max(self, col: str) -> str:
        raise NotImplementedError

    def list_min(self, col: str) -> str:
        raise NotImplementedError

    def same_value(self, col: str, others: list[str]) -> str:
        """Some value of joined column ``col`` is a value of one of ``others``."""
        raise NotImplementedError

    def replace(self, col: str, old: str, new: str) -> str:
        return f"replace({col}, {self.literal(old)}, {self.literal(new)})"

    def array(self, items: list[str]) -> str:
        raise NotImplementedError

    def compact(self, expr: str) -> str:
        """The list without its nulls."""
        raise NotImplementedError

    def empty(self) -> str:
        """An empty list of integers."""
        raise NotImplementedError

    def flatten(self, expr: str) -> str:
        return f"flatten({expr})"

    def size(self, expr: str) -> str:
        raise NotImplementedError

    def number(self, value: float) -> str:
        if math.isinf(value):
            return f"CAST({self.literal('inf' if value > 0 else '-inf')} AS DOUBLE)"
        return f"CAST({value!r} AS DOUBLE)"

    # -- shared ---------------------------------------------------------------------------

    def condition(self, node: Node, negated: bool = False, strict: bool = False) -> str:
        """``node`` as a boolean expression (see the module docstring for ``strict``)."""
        match node:
            case Const(value):
                return "TRUE" if value else "FALSE"
            case Unknown() | Python():
                return "CAST(NULL AS BOOLEAN)"
            case All(children):
                return (
                    "(" + " AND ".join(self.condition(c, negated, strict) for c in children) + ")"
                )
            case Any_(children):
                return "(" + " OR ".join(self._any(children, negated, strict)) + ")"
            case Neg(child):
                return f"(NOT {self.condition(child, not negated, strict)})"
        sql, nullable = self.leaf(node)
        return f"coalesce({sql}, FALSE)" if nullable and (negated or strict) else sql

    def _any(self, children: tuple[Node, ...], negated: bool, strict: bool) -> list[str]:
        """An OR's terms; its substring tests of one column as one ``contains_any``
        (value lists: ``Image|endswith: [50 names]``), its regexes of one column
        and flags as one alternation (lists of wildcards: one pass, not one each)."""
        groups: dict[Col, list[str]] = {}
        patterns: dict[tuple[Col, str, bool, bool], list[str]] = {}
        terms = []
        for c in children:
            if isinstance(c, Has):
                groups.setdefault(c.col, []).append(c.needle)
            elif isinstance(c, Regex) and "(?P" not in c.pattern and "(?<" not in c.pattern:
                patterns.setdefault((c.col, c.flags, c.each, c.full), []).append(c.pattern)
            else:
                terms.append(self.condition(c, negated, strict))
        for col, needles in groups.items():
            sql = self.contains_any(self.col(col), needles)
            terms.append(f"coalesce({sql}, FALSE)" if negated or strict else sql)
        for (col, flags, each, full), alts in patterns.items():
            merged = alts[0] if len(alts) == 1 else "|".join(f"(?:{a})" for a in alts)
            terms.append(self.condition(Regex(col, merged, flags, each, full), negated, strict))
        return terms

    def contains_any(self, col: str, needles: list[str]) -> str:
        """Some needle is in the column (null without the column)."""
        return " OR ".join(self.contains(col, n) for n in needles)

    def leaf(self, node: Node) -> tuple[str, bool]:
        """A leaf's SQL, and whether it is null on a row without the column."""
        match node:
            case Has(col, needle):
                return self.contains(self.col(col), needle), True
            case Regex(col):
                return self.regex(self.col(col), node), True
            case NumCmp(col, "eq", bound):
                return self.list_has(self.col(col), self.number(bound)), True
            case NumCmp(col, op, bound):
                extreme = self.list_max if op in ("gt", "gte") else self.list_min
                return f"{extreme(self.col(col))} {self._CMP[op]} {self.number(bound)}", True
            case IpIn(col, lo, hi):
                test = f"x BETWEEN {self.literal(lo)} AND {self.literal(hi)}"
                return self.any_value(self.col(col), "x", test), True
            case AllEmpty(col):
                c = self.col(col)
                return f"coalesce({self.replace(c, SEP, '')} = '', TRUE)", False
            case NonNull(field):
                return self.list_has(self.ident(NONNULL), self.literal(field)), False
            case Present(col):
                return f"({self.col(col)} IS NOT NULL)", False
            case SameValue(col, others):
                return self.same_value(self.col(col), [self.col(o) for o in others]), True
            case ScopesIn(values):
                inside = ", ".join(self.literal(v) for v in values)
                return f"({self.ident(SCOPES)} IN ({inside}))", False
        raise TypeError(f"not an IR node: {node!r}")

    def col(self, col: Col) -> str:
        return self.ident(col.name)

    def rule_codes(self, code: int, node: Node) -> str:
        """``code`` where the rule holds, ``-1 - code`` where it is unknown, else null."""
        if not can_be_unknown(node):
            return f"CASE WHEN {self.condition(node)} THEN {code} END"
        cond = self.condition(node, strict=True)
        return f"CASE WHEN {cond} THEN {code} WHEN ({cond}) IS NULL THEN {-1 - code} END"

    def gate(self, tests: Iterable[Has]) -> str:
        """Some of these substring tests holds (null without their columns)."""
        by_col: dict[Col, list[str]] = defaultdict(list)
        for t in tests:
            by_col[t.col].append(t.needle)
        parts = [self.contains_any(self.col(c), sorted(by_col[c])) for c in sorted(by_col, key=str)]
        return "(" + " OR ".join(parts) + ")"

    def route_query(self, source: str, plan: RoutePlan) -> str:
        """The query over ``source`` (a table expression of one route's rows)."""
        under = {i: n for n, run in enumerate(plan.supers) for i in run}
        first = [
            f"({self._search(plan.chunks[i] for i in run)}) AS {self._super(n)}"
            for n, run in enumerate(plan.supers)
        ]
        second = []
        for i, c in enumerate(plan.chunks):
            search = f"({self._search([c])})"
            if i in under:
                second.append(
                    f"CASE WHEN {self._super(under[i])} THEN {search} END AS {self._bit(i)}"
                )
            else:
                first.append(f"{search} AS {self._bit(i)}")
        groups = []
        for signature, rules in plan.groups:
            items = [
                f"CASE WHEN {self.gate(r.gate)} THEN {self.rule_codes(r.code, r.node)} END"
                if r.own
                else self.rule_codes(r.code, r.node)
                for r in rules
            ]
            groups.append((signature, self._when(signature, self.array(items))))
        lists = []
        for i in range(0, len(groups), BLOCK):
            block = groups[i : i + BLOCK]
            inner = self.flatten(self.array([g for _, g in block]))
            lists.append(self._when(frozenset().union(*(s for s, _ in block)), inner))
        if plan.ungated:
            lists.append(self.array([self.rule_codes(code, node) for code, node in plan.ungated]))
        codes = self.compact(self.flatten(self.array(lists))) if lists else self.empty()
        label, time = self.ident(LABEL), self.ident(TIME)
        return (
            f"SELECT {label}, {time}, codes FROM (SELECT {label}, {time}, {codes} AS codes\n"
            f"  FROM (SELECT *{''.join(', ' + b for b in second)}\n"
            f"  FROM (SELECT *{''.join(', ' + b for b in first)} FROM {source}\n"
            f"    WHERE NOT coalesce({self.ident(PYTHON)}, FALSE)) AS searched) AS gated)"
            " AS coded\n"
            f"WHERE {self.size('codes')} > 0"
        )

    def hits_query(self, route_sql: str, samples: int) -> str | None:
        """The route query's rows counted per (code, day), with ``samples`` labels
        each (see ``duckdb.DuckDB.hits_query``); None: the rows are read one by one."""
        return None

    def _bit(self, chunk: int) -> str:
        return self.ident(f"_chunk{chunk}")

    def _super(self, number: int) -> str:
        return self.ident(f"_super{number}")

    def _search(self, chunks: Iterable[Chunk]) -> str:
        """Some literal of these chunks (of one column) is in it."""
        chunks = list(chunks)
        return self.contains_any(self.col(chunks[0].col), [n for c in chunks for n in c.needles])

    def _when(self, chunks: frozenset[int], then: str) -> str:
        bits = " OR ".join(self._bit(i) for i in sorted(chunks))
        return f"CASE WHEN {bits} THEN {then} ELSE {self.empty()} END"

    def fallback_query(self, source: str, nodes: list[Node]) -> str:
        """The rows where one of these prefilters is not false (for the Python matcher)."""
        keep = " OR ".join(f"({self.condition(n, strict=True)}) IS NOT FALSE" for n in nodes)
        label, time, raw = self.ident(LABEL), self.ident(TIME), self.ident(RAW)
        return (
            f"SELECT {label}, {time}, {raw} FROM {source}\n"
            f"WHERE NOT coalesce({self.ident(PYTHON)}, FALSE) AND ({keep})"
        )
