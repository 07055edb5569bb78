"""``detcat match`` throughput on SigmaHQ's regression events, all vendors' rules.

    python bench/bench_match.py [SOURCES_DIR] [--db CATALOG]

Builds the catalog from SOURCES_DIR (unless --db names one), then times, in this
process and on the same events: the indexed matcher (``Matcher.match``) and the
reference, every event filter of the catalog evaluated on every event (the same
compiled closures, no index). Prints ms per event and the ratio indexed /
reference (target <= 0.25), plus the catalog load time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from detcat import catalog
from detcat.match import Matcher
from detcat.match.events import Event
from detcat.match.reading import read_events
from detcat.store import connect

ROUNDS = 3


def best(fn: object) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def naive(matcher: Matcher, events: list[Event]) -> None:
    stages = [s for r in matcher.rules for s in r.stages if s.filters_events]
    for ev in events:
        for s in stages:
            s.test()(ev)


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "corpora"
    ap = argparse.ArgumentParser()
    ap.add_argument("sources", nargs="?", default=os.environ.get("DETCAT_SOURCES", default))
    ap.add_argument("--db", type=Path)
    args = ap.parse_args()
    sources = Path(args.sources)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "catalog.sqlite"
        if args.db is None:
            catalog.build(sources, db)
        start = time.perf_counter()
        matcher = Matcher.from_catalog(connect(db))
        load = time.perf_counter() - start
    files = sorted((sources / "sigma" / "regression_data").rglob("*.json"))
    events = [ev for f in files for ev in read_events(f)]
    naive(matcher, events)  # compile every stage once, for both measurements
    ours = best(lambda: [matcher.match(ev) for ev in events])
    ref = best(lambda: naive(matcher, events))
    n = len(events)
    print(f"{len(matcher.rules)} rules, {n} events, best of {ROUNDS}")
    print(f"catalog load (rules, stages, index)   : {load:7.2f} s")
    print(f"reference: every filter, every event  : {ref / n * 1000:7.2f} ms/event")
    print(f"detcat match (indexed)                : {ours / n * 1000:7.2f} ms/event")
    print(f"ratio indexed / reference             : {ours / ref:7.2f}  (target <= 0.25)")


if __name__ == "__main__":
    main()
