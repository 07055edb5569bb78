"""Near-duplicate rules and lint defaults, measured on the real corpora.

    python bench/bench_similar.py [--db CATALOG] [--sample FILE] [SOURCES_DIR]

Prints: the time to compute the similarity tables; prefix-filtered pairs
against the brute-force scan (every pair sharing an indicator or exclusion, scored),
its time and the recall at the stored-pair and cluster thresholds (1.0: prefix
filtering is exact); clusters,
cross-vendor clusters, the biggest; technique suggestions for the catalog's
untagged rules (what `lint` would say about each, the rule itself having no
tag to vote); the corpus-reach distribution behind ``noisy.reach``. With
--sample, writes 30 clusters (seeded draw) with their rules for reading.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import shutil
import sqlite3
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from detcat import catalog, lint, similar, store
from detcat.lint import peers as lint_peers


def exact_pairs(feats: dict[int, set[str]], weighted: dict[int, dict[str, float]]) -> dict:
    """Every pair sharing at least one indicator or exclusion, scored exactly."""
    inverted: dict[str, list[int]] = defaultdict(list)
    for pk, fs in feats.items():
        for f in fs:
            if f[0] != "e":
                inverted[f].append(pk)
    pairs: set[tuple[int, int]] = set()
    for pks in inverted.values():
        pairs.update(itertools.combinations(sorted(pks), 2))
    return {p: similar.score(weighted[p[0]], weighted[p[1]]) for p in pairs}


def recall(conn: sqlite3.Connection) -> None:
    feats = similar.catalog_features(conn)
    weighted = similar.weigh(feats)
    threshold = similar.settings()["thresholds"]["pairs"]
    start = time.perf_counter()
    found = {(a, b): s for a, b, s in similar.exact_pairs(weighted, threshold)}
    prefix_s = time.perf_counter() - start
    start = time.perf_counter()
    exact = exact_pairs(feats, weighted)
    exact_s = time.perf_counter() - start
    print(f"rules with features {len(feats)}; prefix filtering {len(found)} pairs in "
          f"{prefix_s:.2f} s; brute-force scan {len(exact)} scored pairs "
          f"in {exact_s:.1f} s")  # fmt: skip
    t = similar.settings()["thresholds"]
    for name in ("pairs", "cluster"):
        truth = {p for p, s in exact.items() if s >= t[name]}
        hit = len(truth & set(found))
        print(f"  {name} >= {t[name]}: brute force {len(truth)} pairs, prefix filtering "
              f"finds {hit} (recall {hit / max(len(truth), 1):.3f})")  # fmt: skip


def clusters(conn: sqlite3.Connection) -> None:
    s = similar.cluster_summary(conn)
    sizes = Counter(c["size"] for c in similar.clusters(conn))
    print(f"clusters {s['clusters']}, cross-vendor {s['cross_vendor']}, biggest {s['biggest']}; "
          f"sizes {dict(sorted(sizes.items()))}")  # fmt: skip


def untagged(conn: sqlite3.Connection) -> None:
    cfg = lint.default_settings()
    rows = conn.execute(
        """SELECT r.pk, r.vendor FROM rules r WHERE r.has_query = 1
        AND r.pk NOT IN (SELECT rule_pk FROM rule_techniques)"""
    ).fetchall()
    found: Counter[str] = Counter()
    by_vendor: Counter[str] = Counter()
    t1219: Counter[str] = Counter()
    for pk, vendor in rows:
        keys = [
            tuple(f.split("\t")[1:])
            for (f,) in conn.execute(
                "SELECT feature FROM sim_features WHERE rule_pk = ? AND feature LIKE 'i%'", (pk,)
            )
        ]
        s = lint_peers.suggest_technique(conn, keys, cfg)  # type: ignore[arg-type]
        if s:
            found[s["technique"]] += 1
            by_vendor[vendor] += 1
            if s["technique"] == "T1219":
                t1219[vendor] += 1
    print(f"untagged rules with a query {len(rows)}; a technique suggested for "
          f"{sum(found.values())} ({dict(by_vendor)}); T1219 for {dict(t1219)}; "
          f"top {found.most_common(8)}")  # fmt: skip


def reach(conn: sqlite3.Connection) -> None:
    counts = [
        n
        for (n,) in conn.execute(
            """SELECT COUNT(DISTINCT rule_pk) FROM predicates WHERE negated = 0
            AND stage_role = 'events' AND op NOT IN ('exists', 'is_null')
            GROUP BY field, op, value_key"""
        )
    ]
    line = ", ".join(f">={k}: {sum(c >= k for c in counts)}" for k in (5, 10, 20, 50, 100))
    print(f"distinct positive indicators {len(counts)}; reach {line}")


def sample(conn: sqlite3.Connection, out: Path, k: int = 30) -> None:
    all_clusters = similar.clusters(conn)
    picked = sorted(random.Random(16).sample(all_clusters, min(k, len(all_clusters))),
                    key=lambda c: c["cluster"])  # fmt: skip
    pk = {(v, i): p for p, v, i in conn.execute("SELECT pk, vendor, id FROM rules")}
    lines = []
    for c in picked:
        lines.append(f"## cluster {c['cluster']} ({c['size']} rules, {', '.join(c['vendors'])})")
        for r in c["rules"]:
            lines.append(f"- {r['vendor']} {r['id']}: {r['title']}")
        members = [pk[(r["vendor"], r["id"])] for r in c["rules"]]
        marks = ",".join("?" * len(members))
        scores = [s for (s,) in conn.execute(
            f"SELECT score FROM sim_pairs WHERE a IN ({marks}) AND b IN ({marks})",
            (*members, *members))]  # fmt: skip
        lines.append(f"  pair scores: {sorted(scores, reverse=True)}\n")
    out.write_text("\n".join(lines))
    print(f"{len(picked)} clusters written to {out}")


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "corpora"
    ap = argparse.ArgumentParser()
    ap.add_argument("sources", nargs="?", default=os.environ.get("DETCAT_SOURCES", default))
    ap.add_argument("--db", type=Path, help="a built catalog (copied, never modified)")
    ap.add_argument("--sample", type=Path, help="write 30 clusters here for reading")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "catalog.sqlite"
        if args.db:
            shutil.copy(args.db, db)
        else:
            catalog.build(Path(args.sources), db)
        with store.deriving(db) as conn:  # drop cached tables: time a fresh computation
            conn.execute("DELETE FROM meta WHERE key = 'similar'")
        start = time.perf_counter()
        similar.ensure(db)
        print(f"similarity tables computed in {time.perf_counter() - start:.1f} s")
        conn = store.connect(db)
        recall(conn)
        clusters(conn)
        untagged(conn)
        reach(conn)
        if args.sample:
            sample(conn, args.sample)


if __name__ == "__main__":
    main()
