"""Cold and incremental builds against pySigma's own loading of the Sigma folders.

    python bench/bench_build.py [SOURCES_DIR] [--rounds N]

All in this process, on a private copy of the sources (so that a rule can be
changed): pySigma's ``SigmaCollection.load_ruleset`` of the Sigma ``rules*``
folders (the reference), a cold build of all four vendors + ATT&CK with the
default workers and with ``--workers 1``, then incremental builds after changing
one Sigma rule (its detection, then its title), one Splunk macro, and nothing.
Each time is the best of N rounds (the machine is shared); a build includes its
near-duplicate tables. Prints the ratios (targets: cold <= 0.5 x pySigma,
incremental <= 0.05 x cold) and each build's phases in seconds (with workers,
"read (waiting on workers)" is the time the parent waited for parsed files).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sigma.collection import SigmaCollection

from detcat import catalog

RULE = "sigma/rules/windows/process_creation/proc_creation_win_remote_access_tools_anydesk.yml"
MACRO = "splunk/macros/sysmon.yml"


def best(rounds: int, fn: Callable[[], catalog.BuildReport | None]) -> tuple[float, object]:
    times, last = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        last = fn()
        times.append(time.perf_counter() - start)
    return min(times), last


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path}: {old!r} not found"
    path.write_text(text.replace(old, new, 1))


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "corpora"
    ap = argparse.ArgumentParser()
    ap.add_argument("sources", nargs="?", default=os.environ.get("DETCAT_SOURCES", default))
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "sources"
        shutil.copytree(args.sources, src, ignore=shutil.ignore_patterns("regression_data"))
        db = Path(tmp) / "catalog.sqlite"
        folders = sorted(p for p in (src / "sigma").glob("rules*") if p.is_dir())
        ref, _ = best(args.rounds, lambda: SigmaCollection.load_ruleset(folders))
        rows: list[tuple[str, float, catalog.BuildReport]] = []

        def run(name: str, change: Callable[[], None] | None = None, **kw: object) -> float:
            def once() -> catalog.BuildReport:
                if change:
                    change()
                return catalog.build(src, db, **kw)  # type: ignore[arg-type]

            seconds, report = best(args.rounds, once)
            rows.append((name, seconds, report))  # type: ignore[arg-type]
            return seconds

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
    print(f"pySigma load_ruleset of {len(folders)} Sigma folders : {ref:7.2f} s (best of "
          f"{args.rounds}, the reference)")  # fmt: skip
    for name, seconds, report in rows:
        read = "" if report.files_read is None else f", {report.files_read} files read"
        print(f"{name:42s}: {seconds:7.2f} s{read}")
    print(f"ratio cold (default workers) / pySigma      : {cold / ref:7.3f}  (target <= 0.5)")
    print(f"ratio cold (--workers 1) / pySigma          : {cold1 / ref:7.3f}  (target <= 0.5)")
    print(f"ratio incremental (one rule) / cold         : {one / cold:7.3f}  (target <= 0.05)")
    print(f"ratio incremental (one macro) / cold        : {macro / cold:7.3f}")
    print(f"ratio incremental (nothing) / cold          : {none / cold:7.3f}")
    for name, _, report in rows:
        phases = ", ".join(f"{k} {v:.2f}" for k, v in report.phases.items())
        print(f"phases of {name}: {phases}")


if __name__ == "__main__":
    main()
