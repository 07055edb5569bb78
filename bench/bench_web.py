"""Web catalog speed: page times over loopback, and the static export.

    python bench/bench_web.py [--db CATALOG | --sources DIR] [--requests 200] [--no-export]

Serves the catalog with uvicorn in a subprocess, twice: as ``detcat serve`` runs
(rendered pages cached per catalog generation) and with the cache off, where
every request recomputes the page (the cold cost). Each URL gets N sequential
keep-alive requests; p50/p95 of the server's own time (its Server-Timing header)
and of the round trip are printed. Reference, measured in the same run: the
page's data computed in-process by calling guide/search directly; the ratio is
page p95 / direct p95. Targets: /techniques/T1219 p95 <= 50 ms and
/search?q=anydesk p95 <= 100 ms. Then the whole site is exported and timed
against the catalog build of the same run (when the bench built it).
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from detcat import catalog, guide, search, store
from detcat.web.export import export_site

URLS = {"/techniques/T1219": 50.0, "/search?q=anydesk": 100.0}
SERVER = """
import sys, uvicorn
from detcat.web.app import create_app, settle_gc
app = create_app(sys.argv[1], cache_bytes=int(sys.argv[2]))
settle_gc()  # as `detcat serve` does
uvicorn.run(app, host="127.0.0.1",
            port=int(sys.argv[3]), log_level="warning")
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: Path, cache_bytes: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(db), str(cache_bytes), str(port)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start")


def measure(port: int, url: str, n: int) -> tuple[list[float], list[float]]:
    """Server times (from Server-Timing) and round trips, in ms, after one warm-up."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    server, trip = [], []
    for i in range(n + 1):
        start = time.perf_counter()
        conn.request("GET", url)
        resp = conn.getresponse()
        resp.read()
        elapsed = (time.perf_counter() - start) * 1000
        assert resp.status == 200, (url, resp.status)
        if i:  # the first request compiles templates and warms SQLite's cache
            trip.append(elapsed)
            server.append(float(resp.getheader("server-timing", "app;dur=0").split("=")[1]))
    conn.close()
    return server, trip


def direct(db: Path, url: str, n: int) -> list[float]:
    conn = store.connect(db)
    call: Callable[[], object] = (
        (lambda: guide.technique_guide(conn, "T1219"))
        if url.startswith("/techniques")
        else (lambda: search.search(conn, "anydesk"))
    )
    times = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return times


def bench_pages(db: Path, n: int) -> None:
    print(f"{'url':22} {'cache':5} {'server p50':>10} {'p95':>7} {'trip p50':>9} {'p95':>7}"
          f" {'direct p95':>10} {'ratio':>6}  target")  # fmt: skip
    for cache_bytes, label in ((64_000_000, "warm"), (0, "cold")):
        proc, port = start_server(db, cache_bytes)
        try:
            for url, target in URLS.items():
                server, trip = measure(port, url, n)
                ref = pct(direct(db, url, n), 95)
                p95 = pct(server, 95)
                verdict = "OK" if p95 <= target else "MISSED"
                print(f"{url:22} {label:5} {pct(server, 50):8.2f}ms {p95:5.2f}ms"
                      f" {pct(trip, 50):7.2f}ms {pct(trip, 95):5.2f}ms {ref:8.2f}ms"
                      f" {p95 / ref:6.2f}  p95 <= {target:.0f} ms {verdict}")  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(10)


def bench_export(db: Path, build_seconds: float | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for twins in (True, False):
            r = export_site(
                db, Path(tmp) / f"site-{twins}", workers=os.cpu_count(), json_twins=twins
            )
            what = "with JSON twins" if twins else "HTML only     "
            ratio = (
                f"; ratio export / build {r.seconds / build_seconds:.2f}" if build_seconds else ""
            )
            print(f"export {what}: {r.pages} pages, {r.files} files, {r.bytes / 1e6:.0f} MB in "
                  f"{r.seconds:.1f} s ({r.pages / r.seconds:.0f} pages/s){ratio}")  # fmt: skip


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "corpora"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", type=Path, help="an existing catalog (else built from --sources)")
    ap.add_argument("--sources", type=Path, default=Path(os.environ.get("DETCAT_SOURCES", default)))
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--no-export", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db, built = args.db, None
        if db is None:
            db = Path(tmp) / "detcat.sqlite"
            start = time.perf_counter()
            catalog.build(args.sources, db)
            built = time.perf_counter() - start
            print(f"catalog built from {args.sources} in {built:.1f} s")
        rules = store.connect(db).execute("SELECT COUNT(*) FROM rules").fetchone()[0]
        print(f"{rules} rules; {args.requests} sequential requests per URL on loopback,"
              f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        bench_pages(db, args.requests)
        if not args.no_export:
            bench_export(db, built)


if __name__ == "__main__":
    main()
