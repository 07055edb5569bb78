"""Web catalog speed and size, now against a reference revision, in one run.

    python bench/bench_web.py [--db CATALOG | --sources DIR] [--requests 200]
                              [--reference REV] [--no-export | --export-only]
                              [--export-rounds 2]

Both code versions run on the same catalog in the same run: this tree's and
``--reference``'s (default: the last commit before issue 13's site work), taken
from git into a temporary folder. Printed:

0. What storing the guides' sections (``guide_sections.refresh``, every technique)
   costs a build, with one worker and with the default workers: seconds, and the
   share of the catalog build when built here.
1. The technique guide T1219 computed in-process (``guide.technique_guide``), p95
   over N calls, each version in its own process. Target: <= 20 ms.
2. Pages over loopback (uvicorn in a subprocess, N sequential keep-alive requests,
   the server's own time from its Server-Timing header): this version with its
   page cache (as ``detcat serve`` runs) and without (every request recomputes),
   and the reference without. Target: /techniques/T1219 uncached p95 <= 20 ms.
3. ``export-site`` of the reference (its defaults: JSON twins) and of this version
   (its defaults: Pagefind search, no twins), alternating, ``--export-rounds`` each:
   pages, files, MB (sizes added up, and disk usage as ``du -s`` counts), seconds
   (wall clock, and CPU of the exporting process tree: steadier on a shared
   machine), the ratios of the best of each, and the median of each round's ratio
   (the two versions of a round run back to back, under much the same load).
   Targets: <= 150 MB both ways, <= 0.5x the reference's time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

from detcat import catalog, store
from detcat.guide import sections as guide_sections

REPO = Path(__file__).resolve().parents[1]
REFERENCE = "9e48fe7"  # main before issue 13's guide and export work
URLS = {"/techniques/T1219": 20.0, "/search?q=anydesk": 100.0}

# Each script runs with the version's source folder first on sys.path (argv[1]).
SERVER = """
import sys; sys.path.insert(0, sys.argv[1])
import uvicorn
from detcat.web.app import create_app, settle_gc
app = create_app(sys.argv[2], cache_bytes=int(sys.argv[3]))
settle_gc()  # as `detcat serve` does
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[4]), log_level="warning")
"""
GUIDE = """
import sys, json, time; sys.path.insert(0, sys.argv[1])
from detcat import guide, store
conn = store.connect(sys.argv[2])
guide.technique_guide(conn, "T1219")
times = []
for _ in range(int(sys.argv[3])):
    start = time.perf_counter()
    guide.technique_guide(conn, "T1219")
    times.append((time.perf_counter() - start) * 1000)
print(json.dumps(times))
"""
# What an export derives once per catalog and caches in it (near-duplicates, and
# corpus reach where the version has it), computed before the timed exports.
PREPARE = """
import sys, importlib; sys.path.insert(0, sys.argv[1])
from pathlib import Path
from detcat import store
for name in ("similar", "reach"):
    try:
        module = importlib.import_module("detcat." + name)
    except ImportError:
        continue
    if hasattr(store, "derive_if_writable"):
        store.derive_if_writable(module.ensure, Path(sys.argv[2]))
    else:  # an older revision
        module.try_ensure(Path(sys.argv[2]))
print("{}")
"""
EXPORT = """
import sys, json, os, resource; sys.path.insert(0, sys.argv[1])
from pathlib import Path
from detcat.web.export import export_site
r = export_site(Path(sys.argv[2]), Path(sys.argv[3]), workers=os.cpu_count())
# CPU of this process and of every process it waited for (workers, Pagefind).
use = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
cpu = sum(u.ru_utime + u.ru_stime for u in use)
print(json.dumps({"pages": r.pages, "seconds": r.seconds, "cpu": cpu}))
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def source_tree(rev: str, into: Path) -> Path:
    """The ``src`` folder of revision ``rev``, extracted under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "src"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def run_json(script: str, *args: object) -> Any:
    out = subprocess.run([sys.executable, "-c", script, *map(str, args)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(src: Path, db: Path, cache_bytes: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(src), str(db), str(cache_bytes),
                             str(port)])  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start")


def measure(port: int, url: str, n: int) -> list[float]:
    """Server times (from Server-Timing), in ms, after one warm-up request."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    server = []
    for i in range(n + 1):
        conn.request("GET", url)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, (url, resp.status)
        if i:  # the first request compiles templates and warms SQLite's cache
            server.append(float(resp.getheader("server-timing", "app;dur=0").split("=")[1]))
    conn.close()
    return server


def verdict(value: float, target: float) -> str:
    return f"target <= {target:g}: {'OK' if value <= target else 'MISSED'}"


def bench_sections(db: Path, tmp: Path, build_seconds: float | None) -> None:
    """Every technique's sections ranked again, as a build from nothing does: in
    this process (``--workers 1``) and shared among the build's default workers
    (CPU: this process and the workers)."""
    for workers in (1, os.cpu_count() or 1):
        copy = tmp / "sections.sqlite"
        shutil.copy(db, copy)
        conn = sqlite3.connect(copy)
        wall, cpu = time.perf_counter(), _cpu()
        n = guide_sections.refresh(conn, None, workers)
        conn.commit()
        wall, cpu = time.perf_counter() - wall, _cpu() - cpu
        conn.close()
        copy.unlink()
        share = f"; {wall / build_seconds:.3f} of the catalog build" if build_seconds else ""
        print(f"guide sections of {n} techniques stored with {workers} worker(s) in {wall:.2f} s"
              f" ({cpu:.2f} s CPU){share}")  # fmt: skip


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def bench_guide(now: Path, ref: Path, db: Path, n: int) -> None:
    p95 = {name: pct(run_json(GUIDE, src, db, n), 95) for name, src in (("ref", ref), ("now", now))}
    print(f"guide T1219 in-process p95: reference {p95['ref']:.2f} ms, now {p95['now']:.2f} ms"
          f" (ratio {p95['now'] / p95['ref']:.2f}); {verdict(p95['now'], 20)}")  # fmt: skip


def bench_pages(now: Path, ref: Path, db: Path, n: int) -> None:
    print(f"{'url':22} {'version':17} {'p50':>8} {'p95':>8}")
    runs = (("reference, uncached", ref, 0), ("now, uncached", now, 0),
            ("now, cached", now, 64_000_000))  # fmt: skip
    results: dict[str, dict[str, float]] = {}
    for label, src, cache_bytes in runs:
        proc, port = start_server(src, db, cache_bytes)
        try:
            for url in URLS:
                times = measure(port, url, n)
                results.setdefault(url, {})[label] = pct(times, 95)
                print(f"{url:22} {label:19} {pct(times, 50):6.2f}ms {pct(times, 95):6.2f}ms")
        finally:
            proc.terminate()
            proc.wait(10)
    for url, target in URLS.items():
        got = results[url]
        ratio = got["now, uncached"] / got["reference, uncached"]
        print(f"{url}: uncached p95 now / reference = {ratio:.2f};"
              f" {verdict(got['now, uncached'], target)} ms")  # fmt: skip


def site_size(out: Path) -> tuple[int, float, float]:
    """Files, MB (their sizes added up) and MB on disk: the blocks of the files and
    of the folders themselves, as ``du -s`` counts them."""
    entries = [out, *out.rglob("*")]
    files = [p.stat() for p in entries if p.is_file()]
    disk = sum(p.stat().st_blocks * 512 for p in entries)
    return len(files), sum(s.st_size for s in files) / 1e6, disk / 1e6


def bench_export(now: Path, ref: Path, db: Path, tmp: Path, rounds: int) -> None:
    """Each version's export ``rounds`` times, alternating (a shared machine's load
    drifts): the best time of each, and their ratio. Each version exports its own
    copy of the catalog, prepared before the timed runs: the two versions cache
    near-duplicates in different forms, and would otherwise recompute them in
    each other's turn."""
    versions = {"reference": ref, "now": now}
    catalogs = {name: tmp / f"{name}.sqlite" for name in versions}
    for name, src in versions.items():
        shutil.copy(db, catalogs[name])
        run_json(PREPARE, src, catalogs[name])
    best: dict[str, dict[str, float]] = {"seconds": {}, "cpu": {}}
    paired: dict[str, list[float]] = {"seconds": [], "cpu": []}  # now / reference, per round
    for r in range(rounds):
        this_round = {}
        for name, src in versions.items():
            out = tmp / f"site-{name}"
            # Both versions delete an earlier export inside their timed run: 46,867
            # files for the reference, 2,250 for now. Delete it untimed, so each
            # round times the export alone, as the first does.
            shutil.rmtree(out, ignore_errors=True)
            got = this_round[name] = run_json(EXPORT, src, catalogs[name], out)
            for kind, seen in best.items():
                seen[name] = min(seen.get(name, got[kind]), got[kind])
            files, mb, disk = site_size(out)
            print(f"export {name:9} (round {r + 1}): {got['pages']} pages, {files} files,"
                  f" {mb:.1f} MB ({disk:.1f} MB on disk, as du -s) in {got['seconds']:.1f} s"
                  f" ({got['cpu']:.1f} s CPU), load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        for kind, ratios in paired.items():
            ratios.append(this_round["now"][kind] / this_round["reference"][kind])
    print(f"  size: {verdict(round(mb, 1), 150)} MB ({verdict(round(disk, 1), 150)} MB on disk)")
    for kind, label in (("seconds", "time"), ("cpu", "CPU time")):
        now_s, ref_s = best[kind]["now"], best[kind]["reference"]
        ratio = round(now_s / ref_s, 2)
        print(f"  best {label} now / reference = {now_s:.1f} / {ref_s:.1f} s = {ratio:.2f},"
              f" {verdict(ratio, 0.5)}")  # fmt: skip
        # The two versions of one round ran back to back, under much the same load:
        # the median of those pairs drifts less than the ratio of two best times.
        median = round(statistics.median(paired[kind]), 2)
        pairs = ", ".join(f"{x:.2f}" for x in paired[kind])
        print(f"  paired {label} ratios per round: {pairs}; median {median:.2f},"
              f" {verdict(median, 0.5)}")  # fmt: skip


def main() -> None:
    default = REPO.parent / "shared" / "corpora"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", type=Path, help="an existing catalog (else built from --sources)")
    ap.add_argument("--sources", type=Path, default=Path(os.environ.get("DETCAT_SOURCES", default)))
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--reference", default=REFERENCE, help="git revision to compare with")
    ap.add_argument("--no-export", action="store_true")
    ap.add_argument("--export-only", action="store_true", help="measure the export alone")
    ap.add_argument("--export-rounds", type=int, default=2, help="exports of each version")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        db, built = args.db, None
        if db is None:
            db = tmp / "detcat.sqlite"
            start = time.perf_counter()
            catalog.build(args.sources, db)
            built = time.perf_counter() - start
            print(f"catalog built from {args.sources} in {built:.1f} s")
        ref, now = source_tree(args.reference, tmp / "reference"), REPO / "src"
        rules = store.connect(db).execute("SELECT COUNT(*) FROM rules").fetchone()[0]
        print(f"{rules} rules; reference {args.reference}; {args.requests} calls or requests"
              f" each; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        if not args.export_only:
            bench_sections(db, tmp, built)
            bench_guide(now, ref, db, args.requests)
            bench_pages(now, ref, db, args.requests)
        if not args.no_export:
            bench_export(now, ref, db, tmp, args.export_rounds)
        print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
