"""IR trees as SQL text: the parts every dialect shares. A dialect (``duckdb``,
``spark``) spells literals, identifiers and the ten leaf operations.

Leaves are wrapped in ``coalesce(…, false)`` where SQL's null would differ from
the matcher's false: under a ``NOT`` (a missing field must make ``NOT`` hold, not
drop the row) and everywhere in a rule that can be unknown (there null *means*
unknown). In a positive position of a rule that cannot be unknown a null leaf
acts as false does (AND/OR are monotone), and the wrapper is saved.

The route query gives, per event row, the codes of the rules that hold on it
(``hits``), that are unknown on it (``unknown``) and whose prefilter keeps it for
the Python matcher (``maybe``), and only rows with at least one code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
    ScopesIn,
    Unknown,
    can_be_unknown,
)
from detcat.sqlgen.rows import LABEL, PYTHON, RAW, TIME


@dataclass(frozen=True)
class RouteRule:
    """One rule's condition on a route, its code in the query's result lists, and
    whether it is a prefilter (``FALLBACK``: rows where it is not false)."""

    code: int
    node: Node
    prefilter: bool = False


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

    def replace(self, col: str, old: str, new: str) -> str:
        return f"replace({col}, {self.literal(old)}, {self.literal(new)})"

    def codes(self, items: list[str]) -> str:
        """A list of integers from ``items`` (CASE expressions), nulls dropped."""
        raise NotImplementedError

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
        (value lists: ``Image|endswith: [50 names]``)."""
        groups: dict[Col, list[str]] = {}
        terms = []
        for c in children:
            if isinstance(c, Has):
                groups.setdefault(c.col, []).append(c.needle)
            else:
                terms.append(self.condition(c, negated, strict))
        for col, needles in groups.items():
            sql = self.contains_any(self.col(col), needles)
            terms.append(f"coalesce({sql}, FALSE)" if negated or strict else sql)
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
            case ScopesIn(values):
                inside = ", ".join(self.literal(v) for v in values)
                return f"({self.ident(SCOPES)} IN ({inside}))", False
        raise TypeError(f"not an IR node: {node!r}")

    def col(self, col: Col) -> str:
        return self.ident(col.name)

    def route_query(self, source: str, rules: list[RouteRule]) -> str:
        """The query over ``source`` (a table expression of one route's rows)."""
        hits, unknown, maybe = [], [], []
        for r in rules:
            strict = can_be_unknown(r.node)
            cond = self.condition(r.node, strict=strict)
            if r.prefilter:
                maybe.append(f"CASE WHEN ({cond}) IS NOT FALSE THEN {r.code} END")
                continue
            hits.append(f"CASE WHEN {cond} THEN {r.code} END")
            if strict:
                unknown.append(f"CASE WHEN ({cond}) IS NULL THEN {r.code} END")
        lists = {"hits": hits, "unknown": unknown, "maybe": maybe}
        inner = ",\n  ".join(f"{self.codes(items)} AS {name}" for name, items in lists.items())
        label, time, raw = self.ident(LABEL), self.ident(TIME), self.ident(RAW)
        return (
            f"SELECT {label}, {time}, hits, unknown, maybe,\n"
            f"  CASE WHEN {self.size('maybe')} > 0 THEN {raw} END AS {raw}\n"
            f"FROM (SELECT {label}, {time}, {raw},\n  {inner}\n"
            f"  FROM {source} WHERE NOT coalesce({self.ident(PYTHON)}, FALSE)) AS coded\n"
            f"WHERE {self.size('hits')} > 0 OR {self.size('unknown')} > 0"
            f" OR {self.size('maybe')} > 0"
        )
