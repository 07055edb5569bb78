"""``detcat backtest`` throughput: the whole catalog on synthetic events shaped like
SigmaHQ's regression events, per engine, with peak memory.

    python bench/bench_backtest.py [SOURCES_DIR] [--db CATALOG] [--events N [N …]]
                                   [--python-events N] [--threads 2] [--spark]

SigmaHQ's regression events are normalized to Parquet, then copied by DuckDB to
N rows (10M by default) in the same event-kind proportions, each copy with its
own label, time and command line (a per-row token, so no two rows share the
tested text). Each engine runs in a child process (peak RSS is the child's):

- duckdb: ``detcat backtest`` on the N rows (the SQL engine, ``--threads``);
- spark (``--spark``, needs pyspark): the same on ``local[threads]``;
- python: the reference, the Python matcher on ``--python-events`` of the
  regression events repeated (it runs at a few thousand events/s: the whole N
  would take hours), every rule including multi-event ones.

Several sizes (``--events 300000 1000000 3000000``) run the SQL engines once per
size: peak RSS by size shows whether memory stays flat. Prints per engine and
size events/s, its ratio to the Python matcher, CPU seconds (all threads; on a
shared machine events per CPU second moves less with the load than events/s),
peak RSS, and the load average before and after. The goal for DuckDB: at least
50,000 events/s on 2 cores, with flat memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# How copies vary, per field: every copy's command lines (and the document's text)
# get a token of their own; by the copy's mode (one in four each) the user, the
# folders of paths, the file names or the hashes change too, so that no single
# column's values stay those of the regression events. Inserted text is lower
# case: the same edit fits a field's text, folded and list columns.
MODES = 4
VARIED = {
    "token": ("process.command_line", "process.parent.command_line", "process.args", "_text"),
    "user": ("user.name",),
    "folder": ("process.executable", "process.parent.executable", "file.path",
               "process.working_directory", "registry.path", "dll.path"),
    "name": ("process.executable", "process.name", "process.pe.original_file_name",
             "file.path", "file.name", "dll.path", "dll.name"),
    "hash": ("process.hash.md5", "process.hash.sha256", "process.pe.imphash", "dll.hash.md5"),
}  # fmt: skip
EDITS = {  # (mode that applies it, SQL of one value {x}; i is the copy's number)
    "token": (None, "{x} || ' ' || i"),
    "user": (1, "{x} || (i % 997)"),
    "folder": (2, r"regexp_replace({x}, '^.*[\\/]', 'c:\\users\\u' || (i % 997) || '\\appdata\\')"),
    "name": (3, r"regexp_replace({x}, '[^\\/]*$', 'app' || (i % 4999) || '.exe')"),
    "hash": (1, "left({x}, length({x}) - 6) || lpad(to_hex(i % 16777216), 6, '0')"),
}


def varied(column: str, quoted: str) -> str:
    """The SQL of ``column`` in copy ``i``: its field's edits, each in its mode."""
    from detcat.sqlgen.rows import split_name

    col = split_name(column)
    out = quoted
    for edit, fields in VARIED.items():
        if col.field not in fields or col.variant.value in ("#num", "#ip"):
            continue
        mode, sql = EDITS[edit]
        if col.variant.value in ("#list", "#key"):  # a key is its value's text after a type letter
            new = f"list_transform({out}, lambda v: {sql.format(x='v')})"
        else:  # a joined value: the edit applies to the (last) value, inside its separators
            inner = f"substr({out}, 2, length({out}) - 2)"
            new = f"chr(31) || {sql.format(x=inner)} || chr(31)"
            new = f"CASE WHEN length({out}) > 1 THEN {new} ELSE {out} END"
        out = new if mode is None else f"CASE WHEN i % {MODES} = {mode} THEN {new} ELSE {out} END"
    return out


def build_catalog(sources: Path, db: Path) -> None:
    from detcat import catalog

    catalog.build(sources, db)


def regression_files(sources: Path) -> list[str]:
    return sorted(str(p) for p in (sources / "sigma" / "regression_data").rglob("*.json"))


def synthesize(base: Path, out: Path, rows: int) -> int:
    """``rows`` rows copied from the normalized ``base`` folder, kind by kind."""
    import duckdb

    from detcat.backtest.parquet import MANIFEST, ROW_GROUP_ROWS, Manifest

    manifest = Manifest.read(base)
    assert manifest is not None
    total = sum(manifest.kinds.values())
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    written = 0
    for kind, n in sorted(manifest.kinds.items()):
        copies = max(1, round(rows * n / total / n))
        src = f"read_parquet('{base}/detcat_kind={kind}/*.parquet', union_by_name = true)"
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()]
        select = []
        for c in cols:
            q = '"' + c.replace('"', '""') + '"'
            if c == "_label":
                select.append(f"{q} || '#' || i AS {q}")
            elif c == "_seconds":  # the time multi-event rules count with
                select.append(f"{q} + i AS {q}")
            elif c == "_time":
                select.append(
                    f"strftime(CAST({q} AS TIMESTAMP) + to_seconds(i), '%Y-%m-%dT%H:%M:%S') AS {q}"
                )
            else:
                select.append(f"{varied(c, q)} AS {q}")
        target = out / f"detcat_kind={kind}"
        target.mkdir(parents=True)
        con.execute(
            # row k is copy i = k // n of event k % n: the first rows of a kind mix
            # all its regression events (the plan samples a route's first rows)
            f"COPY (SELECT {', '.join(select)} FROM (SELECT k, k // {n} AS i FROM "
            f"range({copies * n}) AS t(k)) AS t JOIN (SELECT *, row_number() OVER () - 1 "
            f"AS _event FROM {src}) AS s ON s._event = t.k % {n}) "
            f"TO '{target}/part-0.parquet' (FORMAT parquet, COMPRESSION zstd, "
            f"ROW_GROUP_SIZE {ROW_GROUP_ROWS})"
        )
        written += copies * n
        manifest.kinds[kind] = copies * n
    manifest.write(out)
    assert (out / MANIFEST).exists()
    return written


def child(args: argparse.Namespace) -> None:
    """One engine's run; prints JSON (events, seconds, hits, peak RSS)."""
    from detcat.backtest import backtest, select_rules
    from detcat.store import connect

    plans, techniques = select_rules(connect(args.db))
    start = time.perf_counter()  # compiling the rules counts
    if args.engine == "python":
        files = regression_files(Path(args.sources))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "events.jsonl"
            docs = [line for f in files for line in _documents(f)]
            with open(path, "w", encoding="utf-8") as fh:
                for i in range(args.python_events):
                    fh.write(docs[i % len(docs)] + "\n")
            result = backtest([str(path)], plans, techniques, "python")
    else:
        result = backtest(
            [args.data],
            plans,
            techniques,
            args.engine,
            spark_master=f"local[{args.threads}]",
            threads=args.threads,
        )
    seconds = time.perf_counter() - start
    peak = peak_rss()
    cpu = os.times()
    print(
        json.dumps(
            {
                "events": result.events,
                "seconds": seconds,
                "cpu": cpu.user + cpu.system,
                "fired": len(result.fired()),
                "hits": sum(result.hits_by_rule().values()),
                "rss": peak,
            }
        )
    )


def peak_rss() -> int:
    """This process's peak resident memory in bytes (VmHWM: unlike ru_maxrss it
    starts afresh at exec, not at the parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _documents(path: str) -> list[str]:
    from detcat.match.reading import read_documents

    return [json.dumps(doc) for _, doc in read_documents(path)]


def run_child(args: argparse.Namespace, engine: str, data: Path) -> dict[str, float]:
    cmd = [
        sys.executable,
        __file__,
        args.sources,
        "--db",
        str(args.db),
        "--child",
        engine,
        "--data",
        str(data),
        "--threads",
        str(args.threads),
        "--python-events",
        str(args.python_events),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    default = ROOT.parent / "shared" / "corpora"
    ap = argparse.ArgumentParser()
    ap.add_argument("sources", nargs="?", default=os.environ.get("DETCAT_SOURCES", str(default)))
    ap.add_argument("--db", type=Path)
    ap.add_argument("--events", type=int, nargs="+", default=[10_000_000], help="synthetic rows")
    ap.add_argument("--python-events", type=int, default=5_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--spark", action="store_true", help="also time Spark local[threads]")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.engine = args.child
        child(args)
        return
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as tmp:
        work = Path(tmp)
        base = prepare(args, work)
        runs = [("python", args.python_events, run_child(args, "python", base))]
        for n in args.events:
            data = work / f"synthetic-{n}"
            start = time.perf_counter()
            rows = synthesize(base, data, n)
            made = time.perf_counter() - start
            size = sum(f.stat().st_size for f in data.rglob("*.parquet"))
            mib = size / 2**20
            print(f"{rows:,} synthetic events ({mib:,.0f} MiB Parquet, made in {made:.0f} s)")
            for engine in ["duckdb"] + (["spark"] if args.spark else []):
                runs.append((engine, rows, run_child(args, engine, data)))
            shutil.rmtree(data)
    report(runs, load, os.getloadavg())


def prepare(args: argparse.Namespace, work: Path) -> Path:
    """The catalog (built unless ``--db``) and the regression events normalized."""
    if args.db is None:
        args.db = work / "catalog.sqlite"
        build_catalog(Path(args.sources), args.db)
    from detcat.backtest import select_rules
    from detcat.backtest.parquet import normalize_files
    from detcat.sqlgen import compile_rules
    from detcat.sqlgen.rules import wanted_columns
    from detcat.store import connect

    plans, _ = select_rules(connect(args.db))
    columns, nonnull = wanted_columns(compile_rules(plans))
    base = work / "base"
    normalize_files(regression_files(Path(args.sources)), base, columns, nonnull, print)
    print(f"{len(plans)} rules; {args.threads} threads")
    return base


def report(runs: list[tuple[str, int, dict[str, float]]], before: tuple, after: tuple) -> None:
    ref = next(r["events"] / r["seconds"] for e, _, r in runs if e == "python")
    print(
        f"{'engine':<8} {'events':>12} {'seconds':>9} {'events/s':>10} {'x python':>9} "
        f"{'CPU s':>8} {'ev/CPU s':>9} {'peak RSS':>9} {'rules fired':>11}"
    )
    for e, _, r in runs:
        rate = r["events"] / r["seconds"]
        print(
            f"{e:<8} {r['events']:>12,} {r['seconds']:>9.1f} {rate:>10,.0f} {rate / ref:>9.1f} "
            f"{r['cpu']:>8.1f} {r['events'] / r['cpu']:>9,.0f} {r['rss'] / 2**20:>8,.0f}M "
            f"{r['fired']:>11}"
        )
    loads = " ".join(f"{x:.1f}" for x in before), " ".join(f"{x:.1f}" for x in after)
    print("load average (1, 5, 15 min): before {}, after {}".format(*loads))
    best = max((r["events"] / r["seconds"] for e, _, r in runs if e == "duckdb"), default=0)
    print(f"duckdb goal >= 50,000 events/s on 2 cores: {'met' if best >= 50_000 else 'NOT met'}")
    print("rules fired: python also runs multi-event rules, on the regression events unchanged")


if __name__ == "__main__":
    main()
