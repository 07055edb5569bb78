"""The matcher's cost per event in CPU instructions (callgrind), steady on a shared machine.

    python bench/bench_match_callgrind.py [SOURCES_DIR] --db CATALOG [--before-src DIR]

Timings on a shared virtual machine move by a third from one run to the next;
instruction counts do not. This runs the matcher under valgrind's callgrind, with
counting switched on only around one pass over SigmaHQ's regression events
(after a warm-up pass, so routes and compiled stages exist), and prints the
instructions per event of each phase of ``detcat match``:

- the canonical event (``canonical_event``: flattening, canonical names, derived values);
- that plus candidate selection (``Matcher.candidates``: route and literal prefilter);
- the whole pipeline, document to JSON line (``match`` and the result's JSON).

``--before-src``: the ``src`` folder of another checkout (say, the commit before a
change), counted the same way on the same events and catalog; the ratios now /
before are printed. Needs valgrind (``callgrind_control`` switches counting).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PHASES = ("canonical event", "+ candidate stages", "whole pipeline")
_TOTALS = re.compile(r"^totals: (\d+)", re.MULTILINE)
_HINT = re.compile(r"^desc: Trigger: dump (.+)$", re.MULTILINE)


def child(sources: Path, db: str) -> None:
    """Inside valgrind: count each phase's pass, one dump per phase."""
    import orjson

    from detcat.match import Matcher
    from detcat.match.events import canonical_event
    from detcat.match.reading import read_documents

    files = sorted((sources / "sigma" / "regression_data").rglob("*.json"))
    docs = [doc for f in files for doc in read_documents(f)]
    matcher = Matcher.from_catalog(db)
    gc.freeze()
    stream = matcher.stream()

    def pipeline() -> None:
        for label, doc in docs:
            orjson.dumps(stream.match(canonical_event(label, doc)).to_json(), default=str)

    def canonical() -> None:
        for label, doc in docs:
            canonical_event(label, doc)

    def candidates() -> None:
        for label, doc in docs:
            stream.candidates(canonical_event(label, doc))

    pipeline()  # warm-up: routes built, stages compiled
    # ...and out of the collector too: one full collection walking them, in a pass
    # of 134 events, would weigh on each event as it never does in a long run (and
    # where it falls moves with any change in allocations).
    gc.collect()
    gc.freeze()
    for name, run in zip(PHASES, (canonical, candidates, pipeline), strict=True):
        _control("--instr=on")
        run()
        _control("--instr=off")
        _control(f"--dump={len(docs)} {name}")


def _control(option: str) -> None:
    subprocess.run(["callgrind_control", option, str(os.getpid())], check=True,
                   capture_output=True)  # fmt: skip


def count(src: str, sources: Path, db: Path, tmp: Path) -> dict[str, float]:
    """Instructions per event of each phase, with ``src`` on the path."""
    out = tmp / Path(src).resolve().as_posix().replace("/", "_")
    out.mkdir()
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
           f"--callgrind-out-file={out}/callgrind.out", sys.executable, __file__,
           "--child", str(sources), "--db", str(db)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": src, "PYTHONHASHSEED": "0"}  # same set layouts
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the matcher under valgrind failed ({src}):\n{done.stderr[-2000:]}")
    got: dict[str, float] = {}
    for part in out.iterdir():
        text = part.read_text(errors="replace")
        hint, totals = _HINT.search(text), _TOTALS.search(text)
        if hint and totals and " " in hint.group(1):
            events, name = hint.group(1).split(" ", 1)
            got[name] = int(totals.group(1)) / int(events)
    return got


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "corpora"
    ap = argparse.ArgumentParser()
    ap.add_argument("sources", nargs="?", default=os.environ.get("DETCAT_SOURCES", default))
    ap.add_argument("--db", type=Path, required=True, help="the catalog (detcat build)")
    ap.add_argument("--before-src", help="another checkout's src folder, counted too")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(Path(args.sources), str(args.db))
        return
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        sys.exit("valgrind (with callgrind_control) is needed: apt-get install valgrind")
    if not (Path(args.sources) / "sigma" / "regression_data").is_dir():
        sys.exit(f"{args.sources}: no sigma/regression_data folder (the rule corpora)")
    if not args.db.is_file():
        sys.exit(f"--db {args.db}: no catalog there (detcat build)")
    if args.before_src and not (Path(args.before_src) / "detcat").is_dir():
        sys.exit(f"--before-src {args.before_src}: no detcat package there")
    here = str(Path(__file__).resolve().parents[1] / "src")
    with tempfile.TemporaryDirectory() as tmp:
        now = count(here, Path(args.sources), args.db, Path(tmp))
        before = (
            count(args.before_src, Path(args.sources), args.db, Path(tmp))
            if args.before_src
            else {}
        )
    print("instructions per event (callgrind), SigmaHQ regression events x the catalog")
    for name in PHASES:
        line = f"{name:22s}: {now.get(name, float('nan')):12,.0f}"
        if name in before:
            line += f"   before {before[name]:12,.0f}   now / before {now[name] / before[name]:.3f}"
        print(line)


if __name__ == "__main__":
    main()
