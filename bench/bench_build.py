"""Cold and incremental builds against pySigma's own loading of the Sigma folders.

    python bench/bench_build.py [SOURCES_DIR] [--rounds N] [--before-src DIR]

All in this process, on a private copy of the sources (so that a rule can be
changed): pySigma's ``SigmaCollection.load_ruleset`` of the Sigma ``rules*``
folders (the reference), a cold build of all four vendors + ATT&CK with the
default workers and with ``--workers 1``, then incremental builds after changing
one Sigma rule (its detection, then its title), one Splunk macro, and nothing.
Each time is the best of N rounds (the machine is shared); a build includes its
near-duplicate tables. Prints the ratios (targets: cold <= 0.5 x pySigma,
incremental <= 0.05 x cold) and each build's phases in seconds (with workers,
"read (waiting on workers)" is the time the parent waited for parsed files).
``--before-src``: the ``src`` folder of another checkout (say, the commit before
this work) whose cold builds (+ near-duplicate tables, as ``detcat build`` made
them) are timed too, in a subprocess, for a before/after in the same run.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sigma.collection import SigmaCollection

from detcat import catalog

RULE = "sigma/rules/windows/process_creation/proc_creation_win_remote_access_tools_anydesk.yml"
MACRO = "splunk/macros/sysmon.yml"


@dataclass
class Timing:
    """Best wall-clock seconds and best CPU seconds (this process and its finished
    children: the workers, a subprocess) of N rounds. On a shared machine the CPU
    time is the steadier of the two."""

    wall: float
    cpu: float

    def ratio(self, other: Timing) -> str:
        return f"{self.wall / other.wall:6.3f} wall, {self.cpu / other.cpu:6.3f} CPU"


def _cpu() -> float:
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def best(rounds: int, fn: Callable[[], Any]) -> tuple[Timing, Any]:
    walls, cpus, last = [], [], None
    for _ in range(rounds):
        start, cpu = time.perf_counter(), _cpu()
        last = fn()
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu() - cpu)
    return Timing(min(walls), min(cpus)), last


BEFORE = """
import resource, sys, time
from pathlib import Path
from detcat import catalog, similar
def cpu():
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime
src, db, workers = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) or None
start, cpu0 = time.perf_counter(), cpu()
catalog.build(src, db, workers=workers)
similar.ensure(db)
print(time.perf_counter() - start, cpu() - cpu0)
"""


def before(src_dir: str, sources: Path, db: Path, workers: int, rounds: int) -> Timing:
    """Cold builds of another checkout of detcat, a fresh catalog each round (the
    subprocess times the build itself, its imports left out)."""
    env = {**os.environ, "PYTHONPATH": src_dir}
    cmd = [sys.executable, "-c", BEFORE, str(sources), str(db), str(workers)]
    walls, cpus = [], []
    for _ in range(rounds):
        db.unlink(missing_ok=True)
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
        wall, cpu = out.split()[-2:]
        walls.append(float(wall))
        cpus.append(float(cpu))
    return Timing(min(walls), min(cpus))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path}: {old!r} not found"
    path.write_text(text.replace(old, new, 1))


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "corpora"
    ap = argparse.ArgumentParser()
    ap.add_argument("sources", nargs="?", default=os.environ.get("DETCAT_SOURCES", default))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--before-src", help="another checkout's src folder, timed too")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    rows: list[tuple[str, Timing, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "sources"
        shutil.copytree(args.sources, src, ignore=shutil.ignore_patterns("regression_data"))
        db = Path(tmp) / "catalog.sqlite"
        folders = sorted(p for p in (src / "sigma").glob("rules*") if p.is_dir())
        ref, _ = best(args.rounds, lambda: SigmaCollection.load_ruleset(folders))
        if args.before_src:
            old_db = Path(tmp) / "before.sqlite"
            for name, workers in (("default workers", 0), ("--workers 1", 1)):
                timing = before(args.before_src, src, old_db, workers, args.rounds)
                rows.append((f"BEFORE: cold build, {name}", timing, None))

        def run(name: str, change: Callable[[], None] | None = None, **kw: Any) -> Timing:
            def once() -> catalog.BuildReport:
                if change:
                    change()
                return catalog.build(src, db, **kw)

            timing, report = best(args.rounds, once)
            rows.append((name, timing, report))
            return timing

        cold = run("cold build, default workers", incremental=False)
        cold1 = run("cold build, --workers 1", incremental=False, workers=1)
        n = iter(range(1000))  # each round changes the file again
        one = run("incremental, one Sigma rule's detection", lambda: edit(
            src / RULE, "- Product: AnyDesk", f"- Product: AnyDesk {next(n)}"))  # fmt: skip
        run("incremental, one Sigma rule's title", lambda: edit(
            src / RULE, "title: ", f"title: Edited {next(n)} "))  # fmt: skip
        macro = run("incremental, one Splunk macro", lambda: edit(
            src / MACRO, "definition: ", f"definition: x={next(n)} OR "))  # fmt: skip
        none = run("incremental, nothing changed")
    report_rows(ref, len(folders), args.rounds, rows)
    print(f"{os.cpu_count()} CPUs; load average {load_before:.1f} at the start,"
          f" {os.getloadavg()[0]:.1f} at the end (the machine is shared)")  # fmt: skip
    print(f"cold (default workers) / pySigma : {cold.ratio(ref)}  (target <= 0.5)")
    print(f"cold (--workers 1) / pySigma     : {cold1.ratio(ref)}  (target <= 0.5)")
    print(f"incremental (one rule) / cold    : {one.ratio(cold)}  (target <= 0.05)")
    print(f"incremental (one macro) / cold   : {macro.ratio(cold)}")
    print(f"incremental (nothing) / cold     : {none.ratio(cold)}")
    for name, _, report in rows:
        if report is not None:
            phases = ", ".join(f"{k} {v:.2f}" for k, v in report.phases.items())
            print(f"phases of {name}: {phases}")


def report_rows(
    ref: Timing, folders: int, rounds: int, rows: list[tuple[str, Timing, Any]]
) -> None:
    print(f"best of {rounds} rounds; seconds wall-clock and CPU (this process + workers)")
    print(f"{'pySigma load_ruleset, ' + str(folders) + ' Sigma folders':44s}: "
          f"{ref.wall:7.2f} wall {ref.cpu:7.2f} CPU  (the reference)")  # fmt: skip
    for name, t, report in rows:
        read = f", {report.files_read} files read" if report and report.incremental else ""
        print(f"{name:44s}: {t.wall:7.2f} wall {t.cpu:7.2f} CPU  ({t.ratio(ref)} "
              f"x pySigma){read}")  # fmt: skip


if __name__ == "__main__":
    main()
