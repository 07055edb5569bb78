"""Build the Sigma catalog vs pySigma's own loading of the same folders.

    python bench/bench_sigma.py [SOURCES_DIR]

Both run in this process, best of N rounds each; prints the ratio
(detcat build time / pySigma load time). Target: <= 1.0. Also prints the whole
four-vendor build against the same reference (a later target: <= 0.5).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from sigma.collection import SigmaCollection

from detcat import catalog
from detcat.sources import sigma

ROUNDS = 3


def best(fn: object) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "corpora"
    sources = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DETCAT_SOURCES", default))
    folders = sorted(p for p in (sources / "sigma").glob("rules*") if p.is_dir())
    n_files = len(sigma.rule_files(sources / "sigma"))
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "sigma.sqlite"
        ours = best(lambda: catalog.build(sources, db, vendors=("sigma",)))
        whole = best(lambda: catalog.build(sources, db))
    ref = best(lambda: SigmaCollection.load_ruleset(folders))
    print(f"{n_files} Sigma rule files, best of {ROUNDS}")
    print(f"pySigma SigmaCollection.load_ruleset : {ref:7.2f} s")
    print(f"detcat build (parse+normalize+store) : {ours:7.2f} s")
    print(f"ratio detcat / pySigma               : {ours / ref:7.2f}  (target <= 1.0)")
    print(f"detcat build, all four vendors       : {whole:7.2f} s")
    print(f"ratio all vendors / pySigma (Sigma)  : {whole / ref:7.2f}  (later target <= 0.5)")


if __name__ == "__main__":
    main()
