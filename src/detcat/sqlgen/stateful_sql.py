"""Stateful rules (``sqlgen.stateful``) as one query each, DuckDB or Spark SQL.

The query reads the rule's *entries* (a ``UNION ALL`` over the routes its
stages are routed to), ranks them per group key (``i``, in stream order) and
returns the entries that complete a detection, in stream order, as ``(label,
time, certain)``: ``certain`` false is an unknown detection (an event without a
time, as the matcher says). The window arithmetic is the matcher's: an entry
of time ``f`` is expired at time ``u`` when ``u - f > span``, a missing time
expires nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from detcat.sqlgen.emit import SqlDialect
from detcat.sqlgen.ir import Col, Node, Variant
from detcat.sqlgen.rows import LABEL, SECONDS, TIME
from detcat.sqlgen.stateful import Count, Pair, Part, Shape

# What the two dialects spell differently: an empty-string filter on a key list,
# the fold of a group's candidates into the ranks that fire, and unnesting.
_SPELLING = {
    "duckdb": {
        "drop_empty": "list_filter({col}, lambda x: x <> 's')",
        "fold": (
            "list_reduce(list_prepend([CAST(0 AS BIGINT)], list([i, m] ORDER BY i)),"
            " lambda acc, x: CASE WHEN x[2] > acc[-1] THEN list_append(acc, x[1]) ELSE acc END)"
        ),
        "unnest": "unnest({col})",
    },
    "spark": {
        "drop_empty": "filter({col}, x -> x <> 's')",
        "fold": (
            "aggregate(array_sort(collect_list(struct(i, m))), array(CAST(0 AS BIGINT)),"
            " (acc, x) -> IF(x.m > element_at(acc, -1), concat(acc, array(x.i)), acc))"
        ),
        "unnest": "explode({col})",
    },
}


@dataclass
class Entries:
    """One part's rows on one route: the table, the part's condition bound to the
    route, and the columns the route has."""

    part: Part
    table: str
    node: Node
    present: set[str]


def query(dialect: SqlDialect, shape: Shape, entries: list[Entries]) -> str:
    """The detections of a rule of ``shape`` over ``entries`` (not empty)."""
    union = "\n  UNION ALL\n  ".join(_entries(dialect, e) for e in entries)
    order = "ORDER BY t NULLS LAST, l, sub"
    ranked = (
        f"WITH entries AS (\n  {union}\n),\n"
        "ranked AS (SELECT l, tm, t, k, v, sub,"
        f" CAST(row_number() OVER (PARTITION BY k {order}) AS BIGINT) AS i"
        " FROM entries WHERE k IS NOT NULL)"
    )
    if isinstance(shape, Pair):
        return _pair(dialect, ranked, shape) + f"\n{order}"
    return _count(dialect, ranked, shape) + f"\n{order}"


def _entries(d: SqlDialect, e: Entries) -> str:
    keys = []
    for f in e.part.fields:
        col = Col(f, Variant.KEY).name
        if col not in e.present:
            keys = None  # no row of the route has the field: no entry
            break
        ident = d.ident(col)
        keys.append(
            _SPELLING[d.name]["drop_empty"].format(col=ident) if e.part.drop_empty else ident
        )
    if keys is None:
        key = "CAST(NULL AS STRING)" if d.name == "spark" else "CAST(NULL AS VARCHAR)"
    elif not keys:
        key = d.literal("[]")  # no group-by field: one group
    else:
        some = " AND ".join(f"{d.size(k)} > 0" for k in keys)
        key = f"CASE WHEN {some} THEN to_json({d.array(keys)}) END"
    return (
        f"SELECT {d.ident(LABEL)} AS l, {d.ident(TIME)} AS tm, {d.ident(SECONDS)} AS t,"
        f" {key} AS k, {e.part.var} AS v, {e.part.sub} AS sub FROM {e.table}"
        f" WHERE {d.condition(e.node)}"
    )


_ALL_BEFORE = "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"


def _count(d: SqlDialect, ranked: str, shape: Count) -> str:
    """Per group, ``m``: the oldest rank the detection at ``i`` needs (the
    ``needs[v]``-th latest entry of each counter ``v``, the smallest of them);
    a candidate when entry ``m`` is not expired at the group's latest time ``u``;
    the candidates after the group's previous detection fire (the fold)."""
    group = f"PARTITION BY k ORDER BY i {_ALL_BEFORE}"
    backs = " ".join(
        f"WHEN {v} THEN {'i' if n == 1 else f'lag(i, {n - 1}) OVER (PARTITION BY k, v ORDER BY i)'}"
        for v, n in enumerate(shape.needs)
    )
    oldest = ", ".join(
        f"max(CASE WHEN v = {v} THEN back END) OVER ({group}) AS m{v}"
        for v in range(len(shape.needs))
    )
    ms = [f"o.m{v}" for v in range(len(shape.needs))]
    m = (
        ms[0]
        if len(ms) == 1
        else f"CASE WHEN {' OR '.join(x + ' IS NULL' for x in ms)} THEN NULL"
        f" ELSE least({', '.join(ms)}) END"
    )
    sql = (
        f"{ranked},\n"
        f"backs AS (SELECT *, CASE v {backs} END AS back FROM ranked),\n"
        f"oldest AS (SELECT *, max(t) OVER ({group}) AS u, {oldest} FROM backs),\n"
        f"cands AS (SELECT o.l, o.tm, o.t, o.k, o.i, o.sub, {m} AS m FROM oldest o\n"
        f"  JOIN ranked f ON f.k = o.k AND f.i = {m}\n"
        f"  WHERE NOT (f.t IS NOT NULL AND o.u IS NOT NULL AND o.u - f.t > {d.number(shape.span)}))"
    )
    if shape.needs == (1,):  # every entry is a detection: nothing to fold
        return f"{sql}\nSELECT l, tm, t IS NOT NULL AS certain, t, sub FROM cands"
    unnest = _SPELLING[d.name]["unnest"].format(col="fired")
    return (
        f"{sql},\n"
        f"folded AS (SELECT k, {_SPELLING[d.name]['fold']} AS fired FROM cands GROUP BY k),\n"
        f"fires AS (SELECT k, {unnest} AS i FROM folded)\n"
        "SELECT c.l AS l, c.tm AS tm, c.t IS NOT NULL AS certain, c.t AS t, c.sub AS sub"
        " FROM cands c JOIN fires f ON f.k = c.k AND f.i = c.i"
    )


def _pair(d: SqlDialect, ranked: str, shape: Pair) -> str:
    """A step-1 entry completes the latest step-0 entry ``la`` of its key before it
    when no step-1 entry came between (``lb < la``): within ``span`` of its time
    when there is a span; unknown when either time is missing."""
    before = "PARTITION BY k ORDER BY i ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING"
    looked = (
        f"{ranked},\n"
        "looked AS (SELECT *,"
        f" max(CASE WHEN v = 0 THEN i END) OVER ({before}) AS la,"
        f" max(CASE WHEN v = 1 THEN i END) OVER ({before}) AS lb,"
        f" max(CASE WHEN v = 0 AND t IS NOT NULL THEN i END) OVER ({before}) AS la_timed,"
        f" max(CASE WHEN v = 0 THEN t END) OVER ({before}) AS la_t FROM ranked)\n"
    )
    done = "v = 1 AND la IS NOT NULL AND (lb IS NULL OR lb < la)"
    if shape.span is None:
        return f"{looked}SELECT l, tm, TRUE AS certain, t, sub FROM looked WHERE {done}"
    timed = "(t IS NOT NULL AND coalesce(la_timed = la, FALSE))"  # both times known
    return (
        f"{looked}SELECT l, tm, {timed} AS certain, t, sub FROM looked"
        f" WHERE {done} AND (NOT {timed} OR t - la_t <= {d.number(shape.span)})"
    )
