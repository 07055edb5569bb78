"""The long fuzzing run of every query parser (the test suite runs a few dozen
inputs per language; this runs as many as asked).

    python bench/fuzz_parsers.py --examples 100000 [--language kql ...]

Inputs and the property come from ``tests/fuzz/fuzz_inputs.py``: an input either
parses or raises the parser's own error. Every other exception is a crash; the
script keeps going, groups crashes by exception type and place, and prints per
language the inputs tried, the crashes and one (shortest) input per crash.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fuzz"))

from fuzz_inputs import VOCABULARY, check, query, random_query  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

Crashes = dict[str, list[str]]  # "Type at file:line" -> inputs


class _TimeUp(Exception):
    pass


def fuzz(language: str, examples: int, seed: int, minutes: float) -> tuple[int, Crashes]:
    """Run ``examples`` inputs (or until ``minutes`` have passed); crashes are
    recorded, never raised, so the run goes on (and Hypothesis does not stop to
    shrink)."""
    tried, crashes = 0, {}
    deadline = time.monotonic() + minutes * 60

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(query(language))
    def run(text: str) -> None:
        nonlocal tried
        if time.monotonic() > deadline:
            raise _TimeUp
        tried += 1
        try:
            check(language, text)
        except Exception as e:  # the crash being looked for
            crashes.setdefault(_signature(e), []).append(text)

    with contextlib.suppress(_TimeUp):
        _seeded(run, seed)()
    return tried, crashes


def fuzz_random(language: str, examples: int, seed: int, minutes: float) -> tuple[int, Crashes]:
    """The same inputs drawn with ``random`` (no Hypothesis: several times faster)."""
    rng, crashes = random.Random(seed), {}
    deadline = time.monotonic() + minutes * 60
    tried = 0
    while tried < examples and time.monotonic() < deadline:
        text = random_query(language, rng)
        tried += 1
        try:
            check(language, text)
        except Exception as e:  # the crash being looked for
            crashes.setdefault(_signature(e), []).append(text)
    return tried, crashes


def _seeded(fn: Callable[[], None], seed: int) -> Callable[[], None]:
    from hypothesis import seed as hypothesis_seed

    return hypothesis_seed(seed)(fn)


def _signature(e: Exception) -> str:
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "detcat" in f.filename]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{type(e).__name__} at {where}: {str(e)[:120]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=10_000, help="inputs per language")
    ap.add_argument("--language", action="append", choices=sorted(VOCABULARY))
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--minutes", type=float, default=float("inf"), help="per language")
    ap.add_argument("--engine", choices=("hypothesis", "random"), default="hypothesis")
    args = ap.parse_args()
    for language in args.language or sorted(VOCABULARY):
        started = time.perf_counter()
        run = fuzz if args.engine == "hypothesis" else fuzz_random
        tried, crashes = run(language, args.examples, args.seed, args.minutes)
        seconds = time.perf_counter() - started
        n = sum(len(v) for v in crashes.values())
        print(f"{language}: {tried} inputs in {seconds:.0f} s, {n} crashes ({len(crashes)} kinds)")
        for sig, texts in crashes.items():
            print(f"  {len(texts)} x {sig}\n    shortest: {min(texts, key=len)[:300]!r}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
