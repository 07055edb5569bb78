"""Where a cold build's reading goes, per vendor, against pySigma's own loading.

    python bench/bench_read.py [SOURCES_DIR]

One process, CPU seconds, no workers:

- the reference of ``bench_build.py``: pySigma's ``SigmaCollection.load_ruleset``
  of the Sigma ``rules*`` folders;
- the part of reading Sigma that the standards fix: libyaml (``CSafeLoader``), then
  pySigma's ``SigmaRule.from_dict`` and its parsed conditions;
- detcat's reading of each vendor's files as a build does it (the vendor's
  ``prepare``, then ``catalog.read.read_one``: read, parse, normalize, rows and
  similarity features).

Each is printed as a ratio of the reference, and so is the total spread over the
machine's cores: the least a cold build can cost on this design with nothing else
to do (no SQLite writes, full-text index, near-duplicates nor guide sections).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule

from detcat.catalog.read import prepare, read_one
from detcat.sources import registry


def cpu(fn: Callable[[], Any]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def pysigma_parts(files: list[Path]) -> tuple[float, float]:
    """CPU seconds of libyaml, then of pySigma's rule objects and conditions."""
    texts = [f.read_bytes() for f in files]
    docs: list[Any] = []
    loading = cpu(lambda: docs.extend(yaml.load(t, Loader=yaml.CSafeLoader) for t in texts))

    def rules() -> None:
        for doc in docs:
            try:
                rule = SigmaRule.from_dict(doc)
                for condition in rule.detection.parsed_condition:
                    condition.parsed  # noqa: B018 (parsed on first use)
            except (SigmaError, AttributeError, TypeError):
                pass  # correlation rules and broken files: read otherwise

    return loading, cpu(rules)


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "corpora"
    ap = argparse.ArgumentParser(description="A cold build's reading per vendor vs pySigma.")
    ap.add_argument("sources", nargs="?", default=os.environ.get("DETCAT_SOURCES", default))
    sources = Path(ap.parse_args().sources)
    folders = sorted(p for p in (sources / "sigma").glob("rules*") if p.is_dir())
    if not folders:
        sys.exit(f"{sources}: no sigma/rules* folders (the rule corpora)")
    ref = cpu(lambda: SigmaCollection.load_ruleset(folders))
    print(f"pySigma load_ruleset, {len(folders)} Sigma folders : {ref:6.2f} CPU s (the reference)")
    loading, rules = pysigma_parts([f for d in folders for f in sorted(d.rglob("*.yml"))])
    fixed = loading + rules
    print(f"Sigma, libyaml + pySigma rules and conditions : {loading:6.2f} + {rules:.2f} CPU s "
          f"({fixed / ref:.2f}x)")  # fmt: skip
    total = 0.0
    for vendor in registry.vendors():
        root = sources / vendor.name
        files = vendor.rule_files(root) if root.is_dir() else None
        if files is None:
            print(f"detcat reading, {vendor.name:10s}: no files read one by one, left out")
            continue
        took = cpu(lambda v=vendor, r=root: prepare(v, v.name, r, False))
        took += cpu(lambda v=vendor, r=root, fs=files: [read_one(v, v.name, f, r) for f in fs])
        total += took
        print(f"detcat reading, {vendor.name:10s}: {took:6.2f} CPU s ({took / ref:.2f}x), "
              f"{len(files)} files")  # fmt: skip
    cores = os.cpu_count() or 1
    print(
        f"detcat reading, all vendors    : {total:6.2f} CPU s ({total / ref:.2f}x); "
        f"over {cores} cores at best {total / cores / ref:.2f}x (cold build target <= 0.5x)"
    )


if __name__ == "__main__":
    main()
