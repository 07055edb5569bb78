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
from detcat.sqlgen.stateful import UNTIL, Count, Part, Shape, Steps

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
        # per run of candidates [a, b]: the last detection after it (see _runs)
        "pairs": "list([a, b] ORDER BY a)",
        "first": "r[1]",
        "second": "r[2]",
        "run_fold": (
            "list_reduce(list_prepend([CAST({start} AS BIGINT)], {pairs}),"
            " lambda acc, x: list_append(acc, CASE WHEN greatest(x[1], acc[-1] + {n}) <= x[2]"
            " THEN x[2] - (x[2] - greatest(x[1], acc[-1] + {n})) % {n} ELSE acc[-1] END))"
        ),
        "runs": "SELECT k, unnest(rs) AS r, unnest(acc[1:len(rs)]) AS before FROM folded",
        "series": "unnest(generate_series({f}, b, {n}))",
    },
    "spark": {
        "drop_empty": "filter({col}, x -> x <> 's')",
        "fold": (
            "aggregate(array_sort(collect_list(struct(i, m))), array(CAST(0 AS BIGINT)),"
            " (acc, x) -> IF(x.m > element_at(acc, -1), concat(acc, array(x.i)), acc))"
        ),
        "unnest": "explode({col})",
        "pairs": "array_sort(collect_list(array(a, b)))",
        "first": "r[0]",
        "second": "r[1]",
        "run_fold": (
            "aggregate({pairs}, array(CAST({start} AS BIGINT)),"
            " (acc, x) -> concat(acc, array(IF(greatest(x[0], element_at(acc, -1) + {n}) <= x[1],"
            " x[1] - (x[1] - greatest(x[0], element_at(acc, -1) + {n})) % {n},"
            " element_at(acc, -1)))))"
        ),
        "runs": (
            "SELECT k, r, before FROM folded"
            " LATERAL VIEW inline(arrays_zip(rs, slice(acc, 1, size(rs)))) t AS r, before"
        ),
        "series": "explode(CASE WHEN {f} <= b THEN sequence({f}, b, {n}) ELSE array() END)",
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
    distinct = isinstance(shape, Count) and shape.distinct > 0
    union = "\n  UNION ALL\n  ".join(_entries(dialect, e, distinct) for e in entries)
    order = "ORDER BY t NULLS LAST, l, sub"
    ranked = (
        f"WITH entries AS (\n  {union}\n),\n"
        f"ranked AS (SELECT l, tm, t, k, v, sub{', dv' if distinct else ''},"
        f" CAST(row_number() OVER (PARTITION BY k {order}) AS BIGINT) AS i"
        " FROM entries WHERE k IS NOT NULL)"
    )
    if isinstance(shape, Steps):
        return _steps(dialect, ranked, shape) + f"\n{order}"
    return _count(dialect, ranked, shape) + f"\n{order}"


def _entries(d: SqlDialect, e: Entries, distinct: bool) -> str:
    key = _values(d, e, e.part.fields)
    if key is None:
        key = "CAST(NULL AS STRING)" if d.name == "spark" else "CAST(NULL AS VARCHAR)"
    elif not key:
        key = d.literal("[]")  # no group-by field: one group
    else:
        some = " AND ".join(f"{d.size(k)} > 0" for k in key)
        key = f"CASE WHEN {some} THEN to_json({d.array(key)}) END"
    values = ""
    if distinct:  # the distinct field's values (none: no values to count)
        got = _values(d, e, (e.part.distinct,) if e.part.distinct else ())
        none = "CAST(NULL AS ARRAY<STRING>)" if d.name == "spark" else "CAST(NULL AS VARCHAR[])"
        values = f", {got[0] if got else none} AS dv"
    return (
        f"SELECT {d.ident(LABEL)} AS l, {d.ident(TIME)} AS tm, {d.ident(SECONDS)} AS t,"
        f" {key} AS k, {e.part.var} AS v, {e.part.sub} AS sub{values} FROM {e.table}"
        f" WHERE {d.condition(e.node)}"
    )


def _values(d: SqlDialect, e: Entries, fields: tuple[str, ...]) -> list[str] | None:
    """The key columns of ``fields`` (empty strings dropped where the part says),
    or None when a route has no row with one of them."""
    out = []
    for f in fields:
        col = Col(f, Variant.KEY).name
        if col not in e.present:
            return None
        ident = d.ident(col)
        out.append(
            _SPELLING[d.name]["drop_empty"].format(col=ident) if e.part.drop_empty else ident
        )
    return out


_ALL_BEFORE = "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"


def _count(d: SqlDialect, ranked: str, shape: Count) -> str:
    """Per group, ``m``: the oldest rank the detection at ``i`` needs (the
    ``needs[v]``-th latest entry of each counter ``v``, the smallest of them, and
    with distinct values the latest rank from which the window still shows that
    many of them); a candidate when entry ``m`` is not expired at the group's
    latest time ``u``; the candidates after the group's previous detection fire
    (the fold)."""
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
    span = d.number(shape.span)
    sql = (
        f"{ranked},\n"
        f"backs AS (SELECT *, CASE v {backs} END AS back FROM ranked),\n"
        f"oldest AS (SELECT *, max(t) OVER ({group}) AS u, {oldest} FROM backs)"
    )
    source = "oldest o"
    if shape.distinct > 0:
        sql += ",\n" + _distinct(d, shape.distinct, span)
        source = "oldest o LEFT JOIN lth ON lth.k = o.k AND lth.i = o.i"
        ms.append("lth.l")
    m = (
        ms[0]
        if len(ms) == 1
        else f"CASE WHEN {' OR '.join(x + ' IS NULL' for x in ms)} THEN NULL"
        f" ELSE least({', '.join(ms)}) END"
    )
    sql += (
        f",\ncands AS (SELECT o.l, o.tm, o.t, o.k, o.i, o.sub, {m} AS m FROM {source}\n"
        f"  JOIN ranked f ON f.k = o.k AND f.i = {m}\n"
        f"  WHERE NOT (f.t IS NOT NULL AND o.u IS NOT NULL AND o.u - f.t > {span}))"
    )
    if shape.needs == (1,) and not shape.distinct:  # every entry fires: nothing to fold
        return f"{sql}\nSELECT l, tm, t IS NOT NULL AS certain, t, sub FROM cands"
    if len(shape.needs) == 1 and not shape.distinct:
        fires = _runs(d, shape.needs[0])
    else:
        unnest = _SPELLING[d.name]["unnest"].format(col="fired")
        fires = (
            f"folded AS (SELECT k, {_SPELLING[d.name]['fold']} AS fired FROM cands GROUP BY k),\n"
            f"fires AS (SELECT k, {unnest} AS i FROM folded)"
        )
    return (
        f"{sql},\n{fires}\n"
        "SELECT c.l AS l, c.tm AS tm, c.t IS NOT NULL AS certain, c.t AS t, c.sub AS sub"
        " FROM cands c JOIN fires f ON f.k = c.k AND f.i = c.i"
    )


def _runs(d: SqlDialect, n: int) -> str:
    """``fires`` of one counter of ``n`` entries: there ``m = i - n + 1``, so
    after a detection at ``r`` the next is the first candidate at ``r + n`` or
    later, and along a run of consecutive candidate ranks ``[a, b]`` they come
    every ``n`` from ``greatest(a, r + n)``. The fold then goes over runs, not
    candidates: a group's steady stream is one run, whatever its detections."""
    spell = _SPELLING[d.name]
    pairs = spell["pairs"]
    fold = spell["run_fold"].format(start=1 - n, n=n, pairs=pairs)
    first = f"greatest(a, before + {n})"
    return (
        "starts AS (SELECT k, i, CASE WHEN i - lag(i) OVER (PARTITION BY k ORDER BY i) = 1"
        " THEN 0 ELSE 1 END AS s FROM cands),\n"
        "numbered AS (SELECT k, i, sum(s) OVER (PARTITION BY k ORDER BY i"
        f" {_ALL_BEFORE}) AS run FROM starts),\n"
        "runs AS (SELECT k, min(i) AS a, max(i) AS b FROM numbered GROUP BY k, run),\n"
        f"folded AS (SELECT k, {pairs} AS rs, {fold} AS acc FROM runs GROUP BY k),\n"
        f"placed AS ({spell['runs']}),\n"
        f"spans AS (SELECT k, {spell['first']} AS a, {spell['second']} AS b, before"
        " FROM placed),\n"
        f"fires AS (SELECT k, {spell['series'].format(f=first, n=n)} AS i FROM spans)"
    )


def _distinct(d: SqlDialect, need: int, span: str) -> str:
    """``lth``: per entry ``i``, the latest rank ``l`` from which the group's
    entries up to ``i`` show ``need`` distinct values in the window: the
    ``need``-th latest of the values' last ranks (a value's last rank is inside
    the window while the value is, times growing along the stream)."""
    unnest = _SPELLING[d.name]["unnest"].format(col="dv")
    return (
        f"vals AS (SELECT k, i, t, {unnest} AS val FROM ranked),\n"
        "seen AS (SELECT o.k AS k, o.i AS i, x.val, max(x.i) AS lo FROM oldest o\n"
        "  JOIN vals x ON x.k = o.k AND x.i <= o.i\n"
        f"  WHERE NOT (x.t IS NOT NULL AND o.u IS NOT NULL AND o.u - x.t > {span})\n"
        "  GROUP BY o.k, o.i, x.val),\n"
        "spread AS (SELECT k, i, lo,"
        " row_number() OVER (PARTITION BY k, i ORDER BY lo DESC) AS nth FROM seen),\n"
        f"lth AS (SELECT k, i, lo AS l FROM spread WHERE nth = {need})"
    )


def _steps(d: SqlDialect, ranked: str, shape: Steps) -> str:
    """Step by step, per entry: ``go`` (an entry of step ``v`` that moved a
    sequence on; every step-0 entry starts one), ``st`` (the time its sequence
    started) and ``ok`` (every time ``maxspan`` needed was known). A step-``j``
    entry takes the latest ``go`` step-``j-1`` entry ``la`` before it unless a
    step-``j`` entry took it first (``lb > la``) or an ``until`` entry dropped it
    (``lu > la``); past ``maxspan`` it drops it."""
    before = "PARTITION BY k ORDER BY i ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING"
    cols = "p.l, p.tm, p.t, p.k, p.v, p.sub, p.i"
    sql = f"{ranked},\ns0 AS (SELECT *, v = 0 AS go, t AS st, TRUE AS ok FROM ranked)"
    until = f"max(CASE WHEN v = {UNTIL} THEN i END) OVER ({before})"
    n = sum(p.var != UNTIL for p in shape.parts) - 1
    for j in range(1, n + 1):
        took = (
            "p.la IS NOT NULL AND (p.lb IS NULL OR p.lb < p.la) AND (p.lu IS NULL OR p.lu < p.la)"
        )
        timed = "(p.t IS NOT NULL AND q.st IS NOT NULL)"
        inside, known = "TRUE", "TRUE"
        if shape.span is not None:
            inside = f"NOT ({timed} AND p.t - q.st > {d.number(shape.span)})"
            known = timed
        sql += (
            f",\ns{j} AS (SELECT {cols},"
            f" CASE WHEN p.v = {j} THEN {took} AND {inside} ELSE p.go END AS go,"
            f" CASE WHEN p.v = {j} THEN q.st ELSE p.st END AS st,"
            f" CASE WHEN p.v = {j} THEN coalesce(q.ok AND {known}, FALSE) ELSE p.ok END AS ok\n"
            f"  FROM (SELECT *, max(CASE WHEN v = {j - 1} AND go THEN i END) OVER ({before}) AS la,"
            f" max(CASE WHEN v = {j} THEN i END) OVER ({before}) AS lb, {until} AS lu"
            f" FROM s{j - 1}) p\n"
            f"  LEFT JOIN s{j - 1} q ON q.k = p.k AND q.i = p.la)"
        )
    return f"{sql}\nSELECT l, tm, ok AS certain, t, sub FROM s{n} WHERE v = {n} AND go"
