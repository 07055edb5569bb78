"""Build hardening, measured on the real corpora plus the hostile set.

    python bench/build_hardening.py [--corpora ../shared/corpora] [--workers 2]

1. Copies the corpora to a temporary sources folder and adds every hostile file
   of ``tests/hostile/hostile_cases.py``; builds it with ``detcat build`` and
   reports the peak memory of the whole process tree (parent + workers, sampled
   from /proc) and of its largest process.
2. Kills the build with SIGKILL at several points; after each kill: is the old
   catalog byte-identical, is any worker still alive one second later, which
   temporary files are left. A last full build must remove them all.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "hostile"))

from hostile_cases import CASES  # noqa: E402

from detcat import store  # noqa: E402


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in task.read_text().split()]
    return out


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def build_cmd(src: Path, db: Path, workers: int) -> list[str]:
    code = "from detcat.cli import main; main()"
    return [sys.executable, "-c", code, "build", "--sources", str(src), "--db", str(db),
            "--workers", str(workers), "--json"]  # fmt: skip


def measured_build(src: Path, db: Path, workers: int) -> dict[str, float]:
    """Run one build to its end, sampling the memory of its process tree."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        build_cmd(src, db, workers), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    peak_tree = peak_one = 0
    while proc.poll() is None:
        sizes = [rss_kib(p) for p in tree(proc.pid)]
        peak_tree, peak_one = max(peak_tree, sum(sizes)), max(peak_one, *sizes, 0)
        time.sleep(0.05)
    out, err = proc.communicate()
    assert b"Traceback" not in err, err.decode()[-2000:]
    return {"exit": proc.returncode, "seconds": time.perf_counter() - started,
            "peak_tree_mib": peak_tree / 1024, "peak_process_mib": peak_one / 1024}  # fmt: skip


def kill_during(src: Path, db: Path, workers: int, after: float) -> dict[str, object]:
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    proc = subprocess.Popen(
        build_cmd(src, db, workers), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(after)
    pids = tree(proc.pid)[1:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)
    return {
        "kill_after_s": after,
        "workers_seen": len(pids),
        "alive_1s_later": sum(alive(p) for p in pids),
        "catalog_identical": hashlib.sha256(db.read_bytes()).hexdigest() == before,
        "temp_files_left": len(store.temp_files(db)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", type=Path, default=ROOT.parent / "shared" / "corpora")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kill-after", type=float, nargs="*", default=[0.5, 2, 5, 10, 20, 30])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="detcat-hardening-") as tmp:
        src = Path(tmp) / "sources"
        shutil.copytree(args.corpora, src, ignore=shutil.ignore_patterns("regression_data"))
        for case in CASES:
            case.write(src, Path(tmp) / "outside")
        db = Path(tmp) / "out" / "detcat.sqlite"
        print(f"hostile cases added: {len(CASES)}")
        print("full build (corpora + hostile):", measured_build(src, db, args.workers))
        for after in args.kill_after:
            print("kill -9:", kill_during(src, db, args.workers, after))
        final = measured_build(src, db, args.workers)
        print("next build:", final, "temp files left:", len(store.temp_files(db)))
        mode = oct(db.stat().st_mode & 0o777)
        umask = os.umask(0)
        os.umask(umask)
        print(f"catalog mode {mode} (umask {oct(umask)})")


if __name__ == "__main__":
    main()
