"""``detcat match`` throughput and memory on SigmaHQ's regression events, all rules.

    python bench/bench_match.py [SOURCES_DIR] [--db CATALOG] [--sizes 10000,100000]
                                [--before-src DIR]

Builds the catalog from SOURCES_DIR (unless --db names one), then measures in one
run, on the same events:

- the matcher's build time (``Matcher.from_catalog``) and the first pass over the
  events (routes built, stages compiled on first use), CPU seconds;
- events per CPU-second of the indexed matcher (routes + literal prefilter:
  ``Matcher.match``) against the reference (every admitted stage evaluated:
  ``Matcher.match_reference``), both from the JSON document to the JSON result
  line, and the ratio;
- the same on a mixed stream: the regression events (which all fire something,
  the worst case) and the ``eql`` package's 102 test events (legacy Endgame
  process, file and network events, most firing nothing), when ``eql`` is installed;
- ``detcat match --jsonl`` as a child process on a JSON-lines file of each size
  (the regression events replicated): events per CPU-second and peak RSS, which
  must not grow with the number of events.

``--before-src``: the ``src`` folder of another checkout (say, the commit before a
change); its matcher is timed too on the same events and catalog, in a subprocess,
for a before/after in the same run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from detcat import catalog
from detcat.cli.match import json_bytes
from detcat.match import EventResult, Matcher
from detcat.match.events import canonical_event
from detcat.match.reading import read_documents

REFERENCE_EVENTS = 134  # the reference is slow: one pass over the regression events


def cpu(fn: Callable[[], Any]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def regression_documents(sources: Path) -> list[tuple[str, dict[str, Any]]]:
    files = sorted((sources / "sigma" / "regression_data").rglob("*.json"))
    return [doc for f in files for doc in read_documents(f)]


def pipeline(docs: list[tuple[str, dict[str, Any]]], match: Callable[..., EventResult]) -> None:
    """Document in, JSON line out: what ``detcat match --jsonl`` does per event."""
    for label, doc in docs:
        json_bytes(match(canonical_event(label, doc)).to_json())


def mixed_documents(docs: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The regression events and the eql package's test events, or [] without eql."""
    try:
        import eql
    except ImportError:
        return []
    data = Path(eql.__file__).parent / "etc" / "test_data.json"
    return docs + [(f"eql:{i}", doc) for i, doc in enumerate(json.loads(data.read_text()))]


# Run by another checkout's interpreter path: its own matcher, the same measurement.
BEFORE = """
import gc, json, sys, time
from pathlib import Path
from detcat.match import Matcher
from detcat.match.events import canonical_event
from detcat.match.reading import read_documents
try:
    from detcat.cli.match import json_bytes as encode
except ImportError:  # before orjson: what its CLI wrote with
    encode = lambda r: json.dumps(r, ensure_ascii=False, default=str)
sources, db, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
files = sorted((sources / "sigma" / "regression_data").rglob("*.json"))
docs = [doc for f in files for doc in read_documents(f)]
matcher = Matcher.from_catalog(db)
gc.freeze()
def run():
    stream = matcher.stream()
    for label, doc in docs:
        encode(stream.match(canonical_event(label, doc)).to_json())
run()
start = time.process_time()
for _ in range(rounds):
    run()
print(rounds * len(docs) / (time.process_time() - start))
"""


def before(src_dir: str, sources: Path, db: Path, rounds: int) -> float:
    """Events per CPU-second of another checkout's matcher (first pass left out)."""
    env = {**os.environ, "PYTHONPATH": src_dir}
    cmd = [sys.executable, "-c", BEFORE, str(sources), str(db), str(rounds)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def run_cli(db: Path, events: Path) -> tuple[float, float, int]:
    """(CPU seconds, peak RSS MiB, exit code) of ``detcat match --jsonl``."""
    cmd = [sys.executable, "-c", "from detcat.cli import main; main()",
           "match", "--jsonl", str(events), "--db", str(db)]  # fmt: skip
    with open(os.devnull, "w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = usage.ru_utime + usage.ru_stime
    return seconds, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def write_jsonl(docs: list[tuple[str, dict[str, Any]]], path: Path, n: int) -> None:
    lines = [json.dumps(doc) + "\n" for _, doc in docs]
    with path.open("w") as f:
        for i in range(n):
            f.write(lines[i % len(lines)])


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "corpora"
    ap = argparse.ArgumentParser()
    ap.add_argument("sources", nargs="?", default=os.environ.get("DETCAT_SOURCES", default))
    ap.add_argument("--db", type=Path)
    ap.add_argument("--sizes", default="10000,100000", help="events per CLI run")
    ap.add_argument("--before-src", help="another checkout's src folder, timed too")
    args = ap.parse_args()
    sources = Path(args.sources)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "catalog.sqlite"
        if args.db is None:
            catalog.build(sources, db)
        docs = regression_documents(sources)
        # The CLI first, while this process is small: a child's peak RSS counts the
        # parent's pages it shares until exec (the matcher's, once built here).
        cli = [(n, *run_cli_on(docs, db, Path(tmp), n)) for n in map(int, args.sizes.split(","))]
        start = time.process_time()
        matcher = Matcher.from_catalog(db)
        build = time.process_time() - start
        gc.freeze()  # as `detcat match` does: collections need not walk the rules
        first = cpu(lambda: pipeline(docs, matcher.stream().match))
        rounds = max(1, 2000 // len(docs))
        ours = cpu(lambda: [pipeline(docs, matcher.stream().match) for _ in range(rounds)])
        ref_docs = docs[:REFERENCE_EVENTS]
        ref = cpu(lambda: pipeline(ref_docs, matcher.stream().match_reference))
        ours_rate = rounds * len(docs) / ours
        ref_rate = len(ref_docs) / ref
        print(f"{len(matcher.rules)} rules, {len(docs)} regression events")
        print(f"matcher build (Matcher.from_catalog)     : {build:8.2f} CPU s")
        print(f"first pass (routes, stages compiled)     : {first:8.2f} CPU s")
        print(f"reference: every admitted stage          : {ref_rate:8.0f} events/CPU-s")
        print(f"detcat match (routes + prefilter)        : {ours_rate:8.0f} events/CPU-s")
        print(f"ratio indexed / reference (speed-up)     : {ours_rate / ref_rate:8.1f}x")
        if mixed := mixed_documents(docs):
            n = max(1, 2000 // len(mixed))
            took = cpu(lambda: [pipeline(mixed, matcher.stream().match) for _ in range(n)])
            print(f"mixed: + eql package's {len(mixed) - len(docs)} test events     : "
                  f"{n * len(mixed) / took:8.0f} events/CPU-s")  # fmt: skip
        if args.before_src:
            old = before(args.before_src, sources, db, rounds)
            print(f"before ({args.before_src}), same events    : {old:8.0f} events/CPU-s")
            print(f"ratio now / before                       : {ours_rate / old:8.1f}x")
        for n, seconds, rss, code in cli:
            print(f"detcat match --jsonl, {n:>7} events      : {n / seconds:8.0f} events/CPU-s "
                  f"(start-up included), peak RSS {rss:.0f} MiB, exit {code}")  # fmt: skip
        if len(cli) > 1:  # start-up cancels out: the streaming rate of the CLI itself
            (n0, s0, *_), (n1, s1, *_) = cli[0], cli[-1]
            print(
                f"detcat match --jsonl, events {n0}..{n1}  : "
                f"{(n1 - n0) / (s1 - s0):8.0f} events/CPU-s (start-up left out)"
            )


def run_cli_on(
    docs: list[tuple[str, dict[str, Any]]], db: Path, tmp: Path, n: int
) -> tuple[float, float, int]:
    """``run_cli`` on the regression events replicated to ``n``."""
    path = tmp / f"events-{n}.jsonl"
    write_jsonl(docs, path, n)
    try:
        return run_cli(db, path)
    finally:
        path.unlink()


if __name__ == "__main__":
    main()
