"""Keeping the near-duplicate tables (``similar``'s ``sim_*``) up to date after an
incremental build, without recomputing every pair.

A feature's weight depends on its document frequency ``df`` and on the number
``N`` of compared rules (``similar.weight``). When an update removes some rules
and adds others (a rule read again is removed, then added under the same key)
and ``N`` stays the same, only the features whose ``df`` moved get new weights.
The rules whose weighted features change (*touched*: the removed and added ones,
plus every rule holding a feature whose ``df`` moved) are the only ones whose
pairs can change: a pair of two untouched rules keeps its score to the bit.

So their pairs are deleted and found again by querying each touched rule
against the whole catalog. That query is exact, like ``similar.exact_pairs``:
order the rule's features heaviest first; its *prefix* is the shortest run whose
remaining weight is below ``threshold`` times its total. A pair scoring at least
the threshold shares at least that much of the rule's weight, so it shares a
feature of the prefix: the rules holding a prefix feature (an indexed lookup)
are the only candidates. Clusters are then derived again from all the pairs.

When ``N`` changes (a compared rule added or removed: every weight changes), or
so many rules are touched that the whole computation is cheaper, ``update``
returns None and the caller recomputes the tables whole (``similar.write_tables``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from detcat import similar, store

# Past this share of the compared rules touched, computing everything is cheaper.
_MOST_TOUCHED = 0.2


def update(
    conn: sqlite3.Connection,
    removed: dict[int, frozenset[str]],
    added: dict[int, frozenset[str]],
) -> dict[str, Any] | None:
    """Update the ``sim_*`` tables inside the caller's transaction, the rules
    ``removed`` (their stored features, ``similar.features_of``) gone and the
    rules ``added`` (their features) in; returns the new ``meta`` summary, or None
    (nothing written) when the tables must be computed whole."""
    started = time.perf_counter()
    summary = similar.cached_summary(conn)
    added = {pk: fs for pk, fs in added.items() if similar.compared(fs)}
    if summary is None or len(added) != len(removed):
        return None  # no tables to update, or N changes and with it every weight
    if added == removed:  # the same features under the same keys (a title edit)
        return summary
    delta: Counter[str] = Counter()
    for fs in removed.values():
        delta.subtract(fs)
    for fs in added.values():
        delta.update(fs)
    moved = sorted(f for f, d in delta.items() if d)
    touched = set(removed) | set(added) | _holders(conn, moved)
    n = int(summary["rules"])
    if len(touched) > _MOST_TOUCHED * n:
        return None
    _write_features(conn, removed, added, moved, n)
    _write_pairs(conn, touched)
    pairs = _write_clusters(conn)
    summary = {**summary, "pairs": pairs, "seconds": round(time.perf_counter() - started, 2)}
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('similar', ?)", (json.dumps(summary),))
    return summary


def _write_features(
    conn: sqlite3.Connection,
    removed: dict[int, frozenset[str]],
    added: dict[int, frozenset[str]],
    moved: list[str],
    n: int,
) -> None:
    """``sim_features``: the removed rules' rows out, the added rules' in, and
    every row of a feature whose df moved (or that an added rule holds) weighted
    again from the df the table then holds."""
    conn.executemany("DELETE FROM sim_features WHERE rule_pk = ?", [(pk,) for pk in removed])
    conn.executemany(
        "INSERT INTO sim_features VALUES (?, ?, 0)",
        [(pk, f) for pk in sorted(added) for f in sorted(added[pk])],
    )
    for f in sorted({*moved, *(f for fs in added.values() for f in fs)}):
        (df,) = conn.execute("SELECT COUNT(*) FROM sim_features WHERE feature = ?", (f,)).fetchone()
        w = similar.weight(f, df, n)
        conn.execute(
            "UPDATE sim_features SET weight = ? WHERE feature = ? AND weight != ?", (w, f, w)
        )


def _write_pairs(conn: sqlite3.Connection, touched: set[int]) -> None:
    """Every pair of a touched rule, deleted and found again."""
    keys = [(pk,) for pk in sorted(touched)]
    conn.executemany("DELETE FROM sim_pairs WHERE a = ?", keys)
    conn.executemany("DELETE FROM sim_pairs WHERE b = ?", keys)
    threshold = similar.settings()["thresholds"]["pairs"]
    weighted = _weighted(conn, touched)  # the touched rules still compared
    found: set[tuple[int, int, float]] = set()
    for pk in sorted(weighted):
        feats = weighted[pk]
        candidates = _holders(conn, _prefix(feats, threshold)) - {pk}
        weighted.update(_weighted(conn, candidates - weighted.keys()))
        for other in candidates:
            a, b = min(pk, other), max(pk, other)
            if not similar.shares_specific(feats, weighted[other]):
                continue
            s = similar.score(weighted[a], weighted[b])
            if s >= threshold:
                found.add((a, b, round(s, 4)))
    conn.executemany("INSERT INTO sim_pairs VALUES (?,?,?)", sorted(found))


def _prefix(feats: dict[str, float], threshold: float) -> list[str]:
    """The rule's prefix, its features heaviest (rarest) first (ties by name)."""
    return similar.prefix(feats, lambda f: (-feats[f], f), threshold)


def _write_clusters(conn: sqlite3.Connection) -> int:
    """``sim_clusters`` derived again from all the pairs; returns the pair count."""
    pairs = conn.execute("SELECT a, b, score FROM sim_pairs").fetchall()
    cut = similar.settings()["thresholds"]["cluster"]
    clusters = similar.components([p for p in pairs if p[2] >= cut])
    conn.execute("DELETE FROM sim_clusters")
    conn.executemany(
        "INSERT INTO sim_clusters VALUES (?,?)",
        ((pk, cid) for cid, members in enumerate(clusters, 1) for pk in members),
    )
    return len(pairs)


def _holders(conn: sqlite3.Connection, features: Iterable[str]) -> set[int]:
    """The rules holding any of the features."""
    out: set[int] = set()
    for chunk in store.chunks(sorted(set(features))):
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT DISTINCT rule_pk FROM sim_features WHERE feature IN ({marks})"
        out.update(pk for (pk,) in conn.execute(sql, chunk))
    return out


def _weighted(conn: sqlite3.Connection, pks: Iterable[int]) -> dict[int, dict[str, float]]:
    """Rules' weighted features as ``similar.weigh`` orders them (by name), so that
    a score's float sums add in the order a full computation adds them."""
    got = similar.stored_features(conn, sorted(pks))
    return {pk: {f: ws[f] for f in sorted(ws)} for pk, ws in got.items()}
