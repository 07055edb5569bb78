"""Parse every Elastic query with detcat vs Elastic's ``eql`` on the EQL subset.

    python bench/bench_elastic.py [SOURCES_DIR]

Reads the queries of all active Elastic rules once (TOML reading is not
timed), then times, interleaved and best of N rounds each:

- detcat: every query (KQL, EQL, ES|QL) through ``sources.elastic.parse_query``,
  the path ``detcat build`` takes;
- reference: ``eql.parse_query`` on the EQL queries only, with the relaxations
  that let it read the whole corpus (elasticsearch syntax, missing functions,
  runs, samples, negation; optimizations skipped).

Prints the time per language and the ratio reference / detcat. Target: >= 3.
"""

from __future__ import annotations

import os
import sys
import time
import tomllib
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import eql

from detcat.sources import elastic

ROUNDS = 5


def load(root: Path) -> dict[str, list[str]]:
    """Queries by detcat language name, of every active rule with a query."""
    by_language: dict[str, list[str]] = {}
    for path in elastic.rule_files(root):
        rule = tomllib.loads(path.read_text(encoding="utf-8")).get("rule", {})
        if rule.get("query"):
            language = elastic.LANGUAGES.get(rule.get("language", ""), "")
            by_language.setdefault(language, []).append(rule["query"])
    return by_language


def detcat_parse(queries: dict[str, list[str]]) -> Callable[[], dict[str, float]]:
    def run() -> dict[str, float]:
        times = {}
        for language, texts in queries.items():
            start = time.perf_counter()
            for text in texts:
                elastic.parse_query(language, text)
            times[language] = time.perf_counter() - start
        return times

    return run


def eql_parse(texts: list[str]) -> Callable[[], float]:
    p = eql.parser
    relaxations = (
        p.elasticsearch_syntax,
        p.ignore_missing_functions,
        p.allow_runs,
        p.allow_sample,
        p.allow_negation,
        p.skip_optimizations,
    )

    def run() -> float:
        with ExitStack() as stack:
            for ctx in relaxations:
                stack.enter_context(ctx)
            start = time.perf_counter()
            for text in texts:
                eql.parse_query(text)
            return time.perf_counter() - start

    return run


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "corpora"
    sources = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DETCAT_SOURCES", default))
    queries = load(sources / "elastic")
    ours_run, ref_run = detcat_parse(queries), eql_parse(queries.get("eql", []))
    ours_run(), ref_run()  # warm up: grammars load lazily on first use
    ours: dict[str, float] = {}
    ref = float("inf")
    for _ in range(ROUNDS):
        for language, t in ours_run().items():
            ours[language] = min(ours.get(language, t), t)
        ref = min(ref, ref_run())
    total = sum(ours.values())
    counts = ", ".join(f"{len(v)} {k}" for k, v in sorted(queries.items()))
    print(f"Elastic queries: {counts}; best of {ROUNDS} rounds, interleaved")
    for language, t in sorted(ours.items()):
        print(f"detcat {language:<5} : {t:6.3f} s")
    print(f"detcat total (all queries)       : {total:6.3f} s")
    print(f"eql.parse_query (EQL subset)     : {ref:6.3f} s")
    print(f"ratio eql / detcat               : {ref / total:6.2f}  (target >= 3)")


if __name__ == "__main__":
    main()
