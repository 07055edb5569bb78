"""Near-duplicate rules across vendors, over the store in canonical terms.

A rule's *features* are what its events stages look at: each positive indicator
``(field, op, case-folded value)``, each exclusion, each catalog event. A path
predicate with an implied file-name twin (``Image|endswith '\\x.exe'`` ->
``process.name eq x.exe``) counts as the twin only, so a Sigma rule on
``Image`` and an Elastic rule on ``process.name`` share the feature.

Similarity is weighted Jaccard: shared weight over union weight, a feature's
weight its kind's multiplier times ``ln(1 + N/df)`` (``data/similar.toml``).

The catalog-wide pairs are exact: every pair at or above the ``pairs``
threshold that shares an indicator or exclusion, found with prefix filtering
(each rule is only compared with rules sharing one of its rarest features; see
``exact_pairs``). Pairs from the ``pairs`` threshold on are stored (a rule page's
"similar rules"), those from the ``cluster`` threshold on form clusters
(connected components). ``detcat build`` computes them from the rules it writes
(``write_tables``; an incremental build updates only the pairs of the rules it
changed, ``similar.update``); a catalog without them computes them on first use
(``ensure``), cached in the catalog file itself (tables ``sim_*``; a new build
writes a new file, so a cache can never outlive its catalog). One rule's or one
draft's neighbours are scored exactly against every rule sharing a specific
feature (an indexed lookup).
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from detcat import store
from detcat.model import And, Expr, Not, Or, Predicate, Rule, StageRole, expr_from_json, leaves
from detcat.normalize import indicator_key
from detcat.normalize.tables import load

# Bump when features or scoring change: cached tables are recomputed (3: exact pairs).
VERSION = "3"
_NO_VALUE_OPS = ("exists", "is_null")
_KINDS = {"i": "indicator", "x": "exclusion", "e": "event"}

DDL = """
CREATE TABLE sim_features (rule_pk INTEGER NOT NULL, feature TEXT NOT NULL, weight REAL NOT NULL);
CREATE TABLE sim_pairs (a INTEGER NOT NULL, b INTEGER NOT NULL, score REAL NOT NULL);
CREATE TABLE sim_clusters (rule_pk INTEGER PRIMARY KEY, cluster INTEGER NOT NULL);
"""
# Created after the rows of a fresh table: built once rather than kept up row by row.
INDEXES = """
CREATE INDEX sim_features_feature ON sim_features (feature);
CREATE INDEX sim_features_rule ON sim_features (rule_pk);
CREATE INDEX sim_pairs_a ON sim_pairs (a);
CREATE INDEX sim_pairs_b ON sim_pairs (b);
CREATE INDEX sim_clusters_cluster ON sim_clusters (cluster);
"""


@cache
def settings() -> dict[str, Any]:
    return load("similar.toml")


# -- features ---------------------------------------------------------------------------


def collapse_implied(expr: Expr | None) -> Expr | None:
    """The tree with each ``And(p, implied)`` pair replaced by the implied
    predicate: the canonical spelling of what ``p`` pins down."""
    match expr:
        case And(children):
            kept = [
                collapse_implied(c)
                for i, c in enumerate(children)
                if not (i + 1 < len(children) and _implied(children[i + 1]) and not _implied(c))
            ]
            return kept[0] if len(kept) == 1 else And(tuple(kept))  # type: ignore[arg-type]
        case Or(children):
            return Or(tuple(collapse_implied(c) for c in children))  # type: ignore[misc]
        case Not(child):
            return Not(collapse_implied(child))  # type: ignore[arg-type]
    return expr


def _implied(node: Expr) -> bool:
    return isinstance(node, Predicate) and node.kind == "implied"


def key_text(p: Predicate) -> str:
    return "\t".join(indicator_key(p))


def stage_features(expr: Expr | None, events: Iterable[str]) -> set[str]:
    out = {f"e\t{e}" for e in events}
    for lf in leaves(collapse_implied(expr)):
        p = lf.node
        if not isinstance(p, Predicate) or p.op in _NO_VALUE_OPS:
            continue
        if lf.exclusion:
            out.add("x\t" + key_text(p))
        elif not lf.negated:
            out.add("i\t" + key_text(p))
    return out


def rule_features(rule: Rule) -> set[str]:
    """The features of a (normalized) rule's events stages."""
    out: set[str] = set()
    for s in rule.stages:
        if s.role is StageRole.EVENTS and not s.negated:
            out |= stage_features(s.expr, s.events)
    return out


def describe(feature: str) -> dict[str, str]:
    """A feature as JSON: ``{kind, field, op, value}`` or ``{kind, event}``."""
    kind, *rest = feature.split("\t")
    if kind == "e":
        return {"kind": _KINDS[kind], "event": rest[0]}
    return {"kind": _KINDS[kind], "field": rest[0], "op": rest[1], "value": rest[2]}


def catalog_features(conn: sqlite3.Connection) -> dict[int, set[str]]:
    events: dict[tuple[int, int], list[str]] = defaultdict(list)
    for pk, idx, event in conn.execute("SELECT rule_pk, stage_idx, event FROM rule_events"):
        events[(pk, idx)].append(event)
    out: dict[int, set[str]] = defaultdict(set)
    for pk, idx, expr in conn.execute(
        "SELECT rule_pk, idx, expr FROM stages WHERE role = 'events' AND negated = 0"
    ):
        out[pk] |= stage_features(expr_from_json(json.loads(expr)), events[(pk, idx)])
    return {pk: f for pk, f in out.items() if compared(f)}


def weight(feature: str, df: int, n: int) -> float:
    mult = settings()["multipliers"][_KINDS[feature[0]]]
    return float(mult * math.log(1 + n / max(df, 1)))


def score(a: dict[str, float], b: dict[str, float]) -> float:
    """Weighted Jaccard of two weighted feature sets."""
    shared = sum(min(w, b[f]) for f, w in a.items() if f in b)
    union = sum(a.values()) + sum(b.values()) - shared
    return shared / union if union else 0.0


# -- the cached catalog-wide computation --------------------------------------------------


def ensure(db: Path) -> dict[str, Any]:
    """The similarity tables of the catalog at ``db``, computed if missing; returns
    the summary stored with them."""
    conn = store.connect(db)
    try:
        got = cached_summary(conn)
    finally:
        conn.close()
    if got is not None:
        return got
    with store.deriving(db) as wconn:
        got = cached_summary(wconn)  # another process may have written it meanwhile
        if got is None:
            got = _compute(wconn)
    return got


def available(conn: sqlite3.Connection) -> bool:
    """Whether the catalog holds the similarity tables (``ensure`` computes them)."""
    return cached_summary(conn) is not None


def cached_summary(conn: sqlite3.Connection) -> dict[str, Any] | None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'similar'").fetchone()
    if row is None:
        return None
    got: dict[str, Any] = json.loads(row[0])
    return got if got.get("version") == VERSION else None


def _compute(conn: sqlite3.Connection) -> dict[str, Any]:
    return write_tables(conn, catalog_features(conn))


def write_tables(
    conn: sqlite3.Connection,
    feats: dict[int, set[str]],
    previous: dict[int, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Weights, pairs and clusters of the rules' features (``rule_pk -> features``,
    rules without an indicator left out), written as the ``sim_*`` tables inside
    the caller's transaction; returns the summary stored in ``meta``.
    ``previous``: the weights the tables hold now (``stored_weights``), when only
    the rows that changed are to be written (an incremental build)."""
    started = time.perf_counter()
    feats = {pk: fs for pk, fs in feats.items() if compared(fs)}
    weighted = weigh(feats)
    pairs = exact_pairs(weighted, settings()["thresholds"]["pairs"])
    cut = settings()["thresholds"]["cluster"]
    clusters = components([p for p in pairs if p[2] >= cut])
    fresh = previous is None or not _write_changes(conn, previous, weighted)
    if fresh:
        _run(conn, [f"DROP TABLE IF EXISTS {t}" for t in TABLES] + DDL.split(";")[:-1])
        conn.executemany(
            "INSERT INTO sim_features VALUES (?,?,?)",
            ((pk, f, w) for pk in sorted(weighted) for f, w in weighted[pk].items()),
        )
    conn.executemany("INSERT INTO sim_pairs VALUES (?,?,?)", pairs)
    conn.executemany(
        "INSERT INTO sim_clusters VALUES (?,?)",
        ((pk, cid) for cid, members in enumerate(clusters, 1) for pk in members),
    )
    if fresh:
        _run(conn, INDEXES.split(";")[:-1])
    summary = {
        "version": VERSION,
        "rules": len(weighted),
        "pairs": len(pairs),
        "seconds": round(time.perf_counter() - started, 2),
    }
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('similar', ?)", (json.dumps(summary),))
    return summary


TABLES = ("sim_features", "sim_pairs", "sim_clusters")


def _run(conn: sqlite3.Connection, statements: list[str]) -> None:
    for statement in statements:
        conn.execute(statement)  # not executescript: it would commit the transaction


def _write_changes(
    conn: sqlite3.Connection,
    previous: dict[int, dict[str, float]],
    weighted: dict[int, dict[str, float]],
) -> bool:
    """Update ``sim_features`` row by row and empty the pair and cluster tables;
    False (nothing written) when so many weights changed (the number of rules
    did) that writing the tables anew is cheaper."""
    old = {(pk, f): w for pk, fs in previous.items() for f, w in fs.items()}
    new = {(pk, f): w for pk, fs in weighted.items() for f, w in fs.items()}
    gone = [k for k, w in old.items() if new.get(k) != w]
    added = [(*k, w) for k, w in new.items() if old.get(k) != w]
    if len(gone) + len(added) > len(new) // 10:
        return False
    conn.executemany("DELETE FROM sim_features WHERE rule_pk = ? AND feature = ?", gone)
    conn.executemany("INSERT INTO sim_features VALUES (?,?,?)", added)
    conn.execute("DELETE FROM sim_pairs")
    conn.execute("DELETE FROM sim_clusters")
    return True


def features_of(conn: sqlite3.Connection, pks: list[int]) -> dict[int, frozenset[str]]:
    """The stored features of some rules (those taking part in the tables)."""
    return {pk: frozenset(ws) for pk, ws in stored_features(conn, pks).items()}


def compared(features: Iterable[str]) -> bool:
    """Whether a rule takes part in the catalog-wide tables: it has an indicator."""
    return any(x[0] == "i" for x in features)


def stored_weights(conn: sqlite3.Connection) -> dict[int, dict[str, float]]:
    """The weighted features the catalog's similarity tables hold."""
    out: dict[int, dict[str, float]] = defaultdict(dict)
    for pk, f, w in conn.execute("SELECT rule_pk, feature, weight FROM sim_features"):
        out[pk][f] = w
    return dict(out)


def weigh(feats: dict[int, set[str]]) -> dict[int, dict[str, float]]:
    df: dict[str, int] = defaultdict(int)
    for fs in feats.values():
        for f in fs:
            df[f] += 1
    n = len(feats)
    w = {f: weight(f, k, n) for f, k in df.items()}
    # Sorted: a score's float sums then add in one order, whatever the set order.
    return {pk: {f: w[f] for f in sorted(fs)} for pk, fs in feats.items()}


def exact_pairs(
    weighted: dict[int, dict[str, float]], threshold: float
) -> list[tuple[int, int, float]]:
    """Every pair ``(a, b, score)``, ``a < b``, scoring at least ``threshold`` and
    sharing an indicator or exclusion, sorted.

    Prefix filtering (exact, not a sample): order all features rarest (heaviest)
    first; a rule's *prefix* is its shortest run of features, in that order,
    whose remaining weight is below ``threshold`` times its total. Two rules
    scoring at least the threshold share at least that much weight, so they
    share a feature of the shorter of their two prefixes: comparing each rule
    with the rules already indexed under its prefix features finds every pair.
    Common features (one event, ``host.os.type``) end up outside most prefixes,
    so each rule meets few candidates."""
    weights = {f: w for fs in weighted.values() for f, w in fs.items()}
    rank = {f: i for i, f in enumerate(sorted(weights, key=lambda f: (-weights[f], f)))}
    index: dict[str, list[int]] = defaultdict(list)
    out = []
    for pk in sorted(weighted):
        feats = weighted[pk]
        candidates: set[int] = set()
        for f in prefix(feats, rank.__getitem__, threshold):
            candidates.update(index[f])
            index[f].append(pk)
        for other in candidates:
            if not shares_specific(feats, weighted[other]):
                continue
            s = score(weighted[other], feats)
            if s >= threshold:
                out.append((other, pk, round(s, 4)))
    return sorted(out)


def prefix(feats: dict[str, float], order: Callable[[str], Any], threshold: float) -> list[str]:
    """The shortest run of a rule's features, in ``order``, whose remaining weight
    is below ``threshold`` times its total: a rule scoring at least ``threshold``
    with it shares one of these."""
    total = sum(feats.values())
    # A hair under the bound: rounding must never shorten a prefix (longer is safe).
    bound = threshold * total * (1 - 1e-9)
    left = total
    out = []
    for f in sorted(feats, key=order):
        out.append(f)
        left -= feats[f]
        if left < bound:
            break
    return out


def shares_specific(a: dict[str, float], b: dict[str, float]) -> bool:
    """Whether two rules share an indicator or exclusion (not only events)."""
    return any(f[0] != "e" and f in b for f in a)


def components(pairs: list[tuple[int, int, float]]) -> list[list[int]]:
    """Connected components of the pair graph (union-find), biggest first."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, _ in pairs:
        parent[find(a)] = find(b)
    groups: dict[int, list[int]] = defaultdict(list)
    for x in parent:
        groups[find(x)].append(x)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: (-len(g), g[0]))


# -- queries ------------------------------------------------------------------------------


def weighted_features(conn: sqlite3.Connection, features: Iterable[str]) -> dict[str, float]:
    """Catalog weights of a draft's features (df counted as if the draft were added)."""
    fs = sorted(set(features))
    df = _df(conn, fs)
    n = _rule_count(conn) + 1
    return {f: weight(f, df.get(f, 0) + 1, n) for f in fs}


def _df(conn: sqlite3.Connection, features: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for chunk in store.chunks(features):
        marks = ",".join("?" * len(chunk))
        out.update(conn.execute(
            f"SELECT feature, COUNT(*) FROM sim_features WHERE feature IN ({marks})"
            " GROUP BY feature", chunk,
        ).fetchall())  # fmt: skip
    return out


def _rule_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(DISTINCT rule_pk) FROM sim_features").fetchone()[0])


def neighbours(
    conn: sqlite3.Connection,
    weights: dict[str, float],
    *,
    exclude: int | None = None,
    min_score: float | None = None,
    limit: int = 10,
) -> list[dict[str, Any]]:
    """Catalog rules scored against a weighted feature set, best first:
    ``[{vendor, id, title, score, shared: [...]}]``."""
    floor = settings()["thresholds"]["related"] if min_score is None else min_score
    df = _df(conn, list(weights))
    specific = [f for f in weights if f[0] != "e" and 0 < df.get(f, 0) <= _candidate_df()]
    candidates: set[int] = set()
    for chunk in store.chunks(specific):
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT DISTINCT rule_pk FROM sim_features WHERE feature IN ({marks})"
        candidates.update(pk for (pk,) in conn.execute(sql, chunk))
    candidates.discard(exclude)  # type: ignore[arg-type]
    scored = []
    for pk, feats in stored_features(conn, sorted(candidates)).items():
        s = score(weights, feats)
        if s >= floor:
            scored.append((s, pk, sorted(set(weights) & set(feats))))
    scored.sort(key=lambda t: (-t[0], t[1]))
    name = "SELECT vendor, id, title FROM rules WHERE pk = ?"
    return [neighbour(conn.execute(name, (pk,)).fetchone(), s, shared)
            for s, pk, shared in scored[:limit]]  # fmt: skip


def _candidate_df() -> int:
    return int(settings()["thresholds"]["candidate_df"])


def stored_features(conn: sqlite3.Connection, pks: list[int]) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = defaultdict(dict)
    for chunk in store.chunks(pks):
        marks = ",".join("?" * len(chunk))
        for pk, f, w in conn.execute(
            f"SELECT rule_pk, feature, weight FROM sim_features WHERE rule_pk IN ({marks})", chunk
        ):
            out[pk][f] = w
    return out


def neighbour(name: Sequence[Any], score: float, shared: list[str]) -> dict[str, Any]:
    """A similar rule as JSON: ``name`` its (vendor, id, title), ``shared`` the
    features both rules have."""
    vendor, rule_id, title = name
    return {"vendor": vendor, "id": rule_id, "title": title, "score": round(score, 3),
            "shared": [describe(f) for f in shared]}  # fmt: skip


def similar_rules(
    conn: sqlite3.Connection, vendor: str | None, rule_id: str, limit: int = 10
) -> list[dict[str, Any]] | None:
    """Rules similar to a catalog rule (itself excluded); None when no such rule."""
    sql = "SELECT pk FROM rules WHERE id = ?" + (" AND vendor = ?" if vendor else "")
    row = conn.execute(sql, (rule_id, vendor) if vendor else (rule_id,)).fetchone()
    if row is None:
        return None
    own = stored_features(conn, [row[0]]).get(row[0], {})
    return neighbours(conn, own, exclude=row[0], limit=limit) if own else []


def clusters(conn: sqlite3.Connection, limit: int | None = None) -> list[dict[str, Any]]:
    """Clusters of near-duplicates, biggest first, with members and vendors."""
    members: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for cid, vendor, rid, title in conn.execute(
        "SELECT c.cluster, r.vendor, r.id, r.title FROM sim_clusters c"
        " JOIN rules r ON r.pk = c.rule_pk ORDER BY c.cluster, r.vendor, r.title"
    ):
        members[cid].append({"vendor": vendor, "id": rid, "title": title})
    out = [
        {
            "cluster": cid,
            "size": len(rules),
            "vendors": sorted({r["vendor"] for r in rules}),
            "rules": rules,
        }
        for cid, rules in members.items()
    ]
    return out[:limit] if limit else out


EMPTY_SUMMARY = {"clusters": 0, "cross_vendor": 0, "biggest": 0}


def cluster_summary(conn: sqlite3.Connection) -> dict[str, int]:
    """Counts for ``stats``: clusters, cross-vendor clusters, biggest cluster."""
    row = conn.execute(
        """SELECT COUNT(*), SUM(nv > 1), MAX(n) FROM (
               SELECT c.cluster, COUNT(*) AS n, COUNT(DISTINCT r.vendor) AS nv
               FROM sim_clusters c JOIN rules r ON r.pk = c.rule_pk GROUP BY c.cluster)"""
    ).fetchone()
    return {"clusters": row[0] or 0, "cross_vendor": row[1] or 0, "biggest": row[2] or 0}
