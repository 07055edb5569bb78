"""Reading events for ``detcat match``: throughput and memory on a large JSON-lines file.

    python bench/bench_match_input.py [SOURCES_DIR] [--mib 100] [--match CATALOG]

Writes a JSON-lines file of about --mib MiB from SigmaHQ's regression events
(replicated), then times, in this process and on the same file: the reference,
reading lines and ``json.loads`` each (the least any reader must do), against
``read_documents`` (detcat's reader: shapes, line labels, bad-event handling) and
``read_events`` (plus flattening and canonical field names). Prints MiB/s, the
ratios to the reference, and the peak RSS after each step (it must not grow with
the file). With --match, also runs ``detcat match FILE --db CATALOG`` as a child
process and prints its time, events/s and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from detcat.match.reading import read_documents, read_events


def write_events(sources: Path, out: Path, mib: int) -> int:
    files = sorted((sources / "sigma" / "regression_data").rglob("*.json"))
    lines = [json.dumps(doc) + "\n" for f in files for _, doc in read_documents(f)]
    block = "".join(lines).encode()
    with out.open("wb") as f:
        for _ in range(max(1, mib * 2**20 // len(block))):
            f.write(block)
    return out.stat().st_size


def reference(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if json.loads(line) is not None)


def documents(path: Path) -> int:
    return sum(1 for _ in read_documents(path))


def events(path: Path) -> int:
    return sum(1 for _ in read_events(path))


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def timed(fn: Callable[[Path], int], path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    n = fn(path)
    return time.perf_counter() - start, n


def run_match(path: Path, db: Path, size: int) -> None:
    cmd = [sys.executable, "-c", "from detcat.cli import main; main()",
           "match", str(path), "--db", str(db)]  # fmt: skip
    start = time.perf_counter()
    with open(os.devnull, "w") as sink:
        code = subprocess.run(cmd, stdout=sink, check=False).returncode
    seconds = time.perf_counter() - start
    n = sum(1 for _ in path.open("rb"))
    rss = peak_rss_mib(resource.RUSAGE_CHILDREN)
    print(f"detcat match: exit {code}, {seconds:.0f} s, {n / seconds:.0f} events/s, "
          f"{size / 2**20 / seconds:.2f} MiB/s, peak RSS {rss:.0f} MiB")  # fmt: skip


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "corpora"
    ap = argparse.ArgumentParser()
    ap.add_argument("sources", nargs="?", default=os.environ.get("DETCAT_SOURCES", default))
    ap.add_argument("--mib", type=int, default=100)
    ap.add_argument("--match", type=Path, metavar="CATALOG")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        size = write_events(Path(args.sources), path, args.mib)
        print(f"{size / 2**20:.0f} MiB of JSON lines; peak RSS before reading "
              f"{peak_rss_mib():.0f} MiB")  # fmt: skip
        ref, n = timed(reference, path)
        print(f"reference (lines + json.loads): {n} documents, {size / 2**20 / ref:.1f} MiB/s")
        for name, fn in (("read_documents", documents), ("read_events", events)):
            seconds, got = timed(fn, path)
            assert got == n, (name, got, n)
            print(
                f"{name}: {size / 2**20 / seconds:.1f} MiB/s, {n / seconds:.0f} events/s, "
                f"{seconds / ref:.2f}x the reference; peak RSS {peak_rss_mib():.0f} MiB"
            )
        if args.match:
            run_match(path, args.match, size)


if __name__ == "__main__":
    main()
