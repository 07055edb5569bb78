"""Lint time per draft (warm catalog) vs pySigma on the same draft.

    python bench/bench_lint.py [--db CATALOG] [SOURCES_DIR]

Without --db the catalog is built from SOURCES_DIR into a temporary file first
(not timed). Each draft of tests/lint/drafts is linted once to warm the catalog
(SQLite pages, field-set cache), then timed best of N. The reference is what a
Sigma CI does with a draft: pySigma reading it (``SigmaRule.from_yaml``), and
reading plus converting it with the Splunk backend.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from detcat import catalog, lint, similar, store

ROUNDS = 5
DRAFTS = Path(__file__).resolve().parents[1] / "tests" / "lint" / "drafts"
LANGUAGE = {".eql": "eql"}


def best(fn: Callable[[], object]) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def pysigma_reference(text: str) -> tuple[float, float]:
    from sigma.backends.splunk import SplunkBackend
    from sigma.collection import SigmaCollection
    from sigma.rule import SigmaRule

    backend = SplunkBackend()
    read = best(lambda: SigmaRule.from_yaml(text))
    convert = best(lambda: backend.convert(SigmaCollection.from_yaml(text)))
    return read, convert


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "corpora"
    ap = argparse.ArgumentParser()
    ap.add_argument("sources", nargs="?", default=os.environ.get("DETCAT_SOURCES", default))
    ap.add_argument("--db", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "catalog.sqlite"
        if args.db is None:
            catalog.build(Path(args.sources), db)
        similar.ensure(db)
        conn = store.connect(db)
        print(f"best of {ROUNDS}, warm catalog ({db})")
        print(f"{'draft':<24} {'lint ms':>8} {'findings':>8} {'pySigma read':>12} "
              f"{'read+convert':>12} {'lint/convert':>12}")  # fmt: skip
        for path in sorted(DRAFTS.iterdir()):
            run = lambda p=path: lint.lint_file(conn, p, LANGUAGE.get(p.suffix))  # noqa: E731
            found = run()  # warm
            ours = best(run)
            row = f"{path.name:<24} {ours * 1e3:8.1f} {len(found.findings):8d}"
            if found.format == "sigma" and not any(f.code == "parse-error" for f in found.findings):
                read, convert = pysigma_reference(path.read_text())
                row += f" {read * 1e3:10.1f}ms {convert * 1e3:10.1f}ms {ours / convert:12.1f}"
            print(row)


if __name__ == "__main__":
    main()
