"""The build pipeline: sources -> parse -> normalize -> store.

Vendors are read (and their rules normalized and made rows) in worker processes
(``catalog.read``); a reader that works file by file (``rule_files`` +
``read_file``) is split across the workers. The parent writes each vendor's rows
to a temporary catalog as soon as they arrive, in one transaction, and swaps it
in at the end (``store.writing``). When the previous catalog was built from the
same folders, a build updates a copy of it instead, reading only the files that
changed (``catalog.update``); both end in ``catalog.write``.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from itertools import zip_longest
from pathlib import Path
from typing import Any

from detcat import attack as attack_mod
from detcat import store
from detcat.catalog import update as catalog_update
from detcat.catalog.read import (
    FileResult,
    VendorResult,
    folder_stamps,
    read_vendor,
    shared_stamp,
)
from detcat.catalog.update import Progress, ReadOptions, loader_phases, timed
from detcat.catalog.write import Loader, TechniqueIndex
from detcat.errors import DetcatError
from detcat.model import Problem
from detcat.sources import files as source_files
from detcat.sources import registry
from detcat.workers import workers_pool


class BuildError(DetcatError):
    """The build cannot start or cannot finish; the previous catalog is kept."""


@dataclass
class BuildReport:
    db: Path
    vendors: dict[str, dict[str, int]]
    problems: list[Problem]
    unknown_techniques: dict[str, int]
    seconds: float
    # Vendors with fewer rules than the catalog this build replaced: (before, now).
    dropped: dict[str, tuple[int, int]] = field(default_factory=dict)
    incremental: bool = False  # an update of the previous catalog
    files_read: int | None = None  # by an incremental build (a full one reads them all)
    phases: dict[str, float] = field(default_factory=dict)  # seconds, by part of the build

    @property
    def problem_count(self) -> int:
        return len(self.problems)


def _shards(vendor: str, root: Path, include_deprecated: bool, n: int) -> list[list[Path]] | None:
    """Split a vendor's files into ``n`` interleaved parts (rule files are sorted by
    folder, and folders differ in cost); None when it must read the folder whole."""
    try:
        reader = registry.get(vendor)
        files = reader.rule_files(root, include_deprecated) if n > 1 else None
    except Exception:  # read_vendor records a missing reader (or listing failure) itself
        return None
    return None if files is None else [files[i::n] for i in range(n)]


@dataclass(frozen=True, slots=True)
class Collection:
    """One sources folder and the name its rules keep (``public``, ``mycompany``)."""

    name: str
    root: Path


def collections(specs: Sequence[str | Path]) -> list[Collection]:
    """``--sources`` values: ``DIR`` or ``NAME=DIR``. The first bare ``DIR`` is the
    ``public`` collection; later bare ones are named after their folder."""
    out: list[Collection] = []
    for spec in specs:
        text = str(spec)
        name, sep, path = text.partition("=")
        if not sep or not _COLLECTION_NAME.match(name):
            path = text
            public = any(c.name == "public" for c in out)
            name = Path(text).resolve().name if public else "public"
        if any(c.name == name for c in out):
            raise BuildError(f"two sources folders named {name!r}: name them with NAME=DIR")
        out.append(Collection(name, Path(path)))
    return out


_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def build(
    sources: Path | Sequence[Collection],
    db: Path,
    *,
    include_deprecated: bool = False,
    vendors: tuple[str, ...] | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    max_file_bytes: int = source_files.DEFAULT_MAX_BYTES,
    incremental: bool = True,
) -> BuildReport:
    """Build the catalog from one sources folder, or several collections (each
    rule keeps its collection's name; the ATT&CK bundle comes from the first
    collection that has one).

    ``incremental``: when the catalog at ``db`` was built by this detcat from the
    same folders, options and bundle, update a copy of it, reading only the files
    that changed (and those whose macros or lookups changed); the result is the
    catalog a full build would write. Otherwise (or when ``incremental`` is
    False) every file is read."""
    started = time.perf_counter()
    colls = [Collection("public", Path(sources))] if isinstance(sources, (str, Path)) else sources
    attack_path = next(
        (
            c.root / attack_mod.BUNDLE_FILE
            for c in colls
            if (c.root / attack_mod.BUNDLE_FILE).exists()
        ),
        None,
    )
    if attack_path is None:
        where = ", ".join(str(c.root / attack_mod.BUNDLE_FILE) for c in colls)
        raise BuildError(f"{where} not found: the sources directory needs the ATT&CK bundle")
    vendors = vendors or registry.names()
    jobs = [(c, v) for c in colls for v in vendors if (c.root / v).is_dir()]
    if not jobs:
        roots = ", ".join(str(c.root) for c in colls)
        raise BuildError(f"{roots} holds none of the vendor folders {', '.join(vendors)}")
    before = {_label(Collection(c, Path()), v): n for (c, v), n in store.rule_counts(db).items()}
    options = ReadOptions(include_deprecated, max_file_bytes)
    plain_jobs = [catalog_update.Job(c.name, c.root, v, _label(c, v)) for c, v in jobs]
    phases: dict[str, float] = {}
    with timed(phases, "fingerprint"):
        previous = catalog_update.previous_inputs(db) if incremental else None
        key, inputs = catalog_update.fingerprint(plain_jobs, options, attack_path, previous)
    meta = {
        "build_key": key,
        "build_inputs": inputs,
        "collections": sorted({c.name for c, _ in jobs}),
    }
    files_read = None
    if incremental:
        files_read = catalog_update.update(db, plain_jobs, options, meta, phases, progress)
    if files_read is None:
        with timed(phases, "folder stamps"):  # before the folders are listed and read
            stamps = {(c.name, v): _stamps_before(c.root / v, v) for c, v in jobs}
        workers = workers or os.cpu_count() or 1
        results = _read_all(jobs, options, workers, progress)
        _write(db, attack_path, results, meta, phases, progress, stamps, workers)
    with timed(phases, "report"):
        report = _report(db, time.perf_counter() - started)
    report.dropped = _drops(before, report.vendors)
    report.incremental = files_read is not None
    report.files_read = files_read
    report.phases = {k: round(v, 3) for k, v in phases.items()}
    return report


def _stamps_before(folder: Path, vendor: str) -> tuple[list[tuple[str, str]], str]:
    """The build cache's stamps of a vendor folder, taken before it is read: of
    its folders, and of the files of its shared definitions (``catalog.read``)."""
    dirs = folder_stamps(folder) or []
    try:
        reader = registry.get(vendor)
    except (ImportError, DetcatError):  # read_vendor records a missing reader
        return dirs, ""
    return dirs, shared_stamp(reader, folder)


def _drops(before: dict[str, int], after: dict[str, dict[str, int]]) -> dict[str, tuple[int, int]]:
    """Vendors with fewer rules than in the catalog this build replaced: (before, now)."""
    now = {v: s["rules"] for v, s in after.items()}
    return {v: (n, now.get(v, 0)) for v, n in before.items() if now.get(v, 0) < n}


def _label(c: Collection, vendor: str) -> str:
    """How progress and the build summary name one collection's vendor."""
    return vendor if c.name == "public" else f"{c.name}/{vendor}"


def _read_all(
    jobs: list[tuple[Collection, str]],
    options: ReadOptions,
    workers: int,
    progress: Progress | None,
) -> Iterator[VendorResult]:
    """Each vendor's result in order, as soon as it is read: the caller writes one
    vendor to the store while the workers still parse the next."""
    notify = progress or (lambda *_: None)
    for c, v in jobs:
        notify(_label(c, v), "start", 0)
    read = partial(_read_shard, options=options)
    if workers == 1:
        for c, v in jobs:
            result = read(v, c.root / v, None, True)
            result.collection = c.name
            notify(_label(c, v), "done", result.rule_count)
            yield result
        return
    with workers_pool(workers) as pool:
        futures: list[tuple[Collection, str, list[tuple[Any, Future[VendorResult]]]]] = []
        for c, v in jobs:  # the largest vendor first, split across the workers
            root = c.root / v
            shards = _shards(v, root, options.include_deprecated, workers) or [None]
            futs = [(s, pool.submit(read, v, root, s, i == 0)) for i, s in enumerate(shards)]
            futures.append((c, v, futs))
        for c, v, futs in futures:
            root = c.root / v
            parts = [_shard_result(read, v, root, s, i == 0, f) for i, (s, f) in enumerate(futs)]
            result = _merge(v, parts)
            result.collection = c.name
            notify(_label(c, v), "done", result.rule_count)
            yield result


def _read_shard(
    vendor: str, root: Path, files: list[Path] | None, first: bool, *, options: ReadOptions
) -> VendorResult:
    return read_vendor(
        vendor,
        root,
        options.include_deprecated,
        files,
        report_shared=first,
        max_file_bytes=options.max_file_bytes,
    )


def _shard_result(
    read: Callable[..., VendorResult],
    vendor: str,
    root: Path,
    shard: list[Path] | None,
    first: bool,
    future: Future[VendorResult],
) -> VendorResult:
    """A worker's result; when the worker failed as a whole (it died, or its
    result could not travel back), its files are read again here, one by one,
    so that only the file at fault is lost."""
    try:
        return future.result()
    except Exception:
        return read(vendor, root, shard, first)


def _merge(vendor: str, parts: list[VendorResult]) -> VendorResult:
    """The shards' files back in listing order (shard i holds files i, i+n, …), so
    that any number of workers writes the same rules under the same keys."""
    files = [f for group in zip_longest(*(p.files for p in parts)) for f in group if f]
    return VendorResult(
        vendor,
        files=files,
        shared=[x for p in parts for x in p.shared],
        seconds=sum(p.seconds for p in parts),
    )


def _write(
    db: Path,
    attack_path: Path,
    results: Iterable[VendorResult],
    meta: dict[str, Any],
    phases: dict[str, float],
    progress: Progress | None,
    stamps: dict[tuple[str, str], tuple[list[tuple[str, str]], str]],
    workers: int,
) -> None:
    from detcat.normalize import event_catalog
    from detcat.normalize.attack_sources import log_source_events

    seconds: dict[str, float] = {}
    with store.writing(db) as w:
        attack, loader = None, None
        for res in _waited(results, phases):
            if attack is None:  # read while the workers parse the next vendors
                attack, loader = _attack(attack_path, w, phases, workers)
            with timed(phases, "store rules"):
                shared = FileResult("", res.shared, stamp=stamps[(res.collection, res.vendor)][1])
                loader.add_file(res.collection, res.vendor, shared, {})
                for fr in res.files:
                    loader.add_file(res.collection, res.vendor, fr, {})
            seconds[_label(Collection(res.collection, Path()), res.vendor)] = round(res.seconds, 3)
            if progress:
                progress("store", "vendor", res.rule_count)
        if attack is None:
            attack, loader = _attack(attack_path, w, phases, workers)
        with timed(phases, "ATT&CK and events tables"):
            for tid in sorted(loader.index.unknown):
                attack.add_unknown(tid)
            w.add_attack(attack)
            w.add_analytics(attack.analytics, log_source_events)
            w.add_events(
                store.EventRow(e.id, e.provider, e.event_id, e.title) for e in event_catalog()
            )
        with timed(phases, "derived tables and cache"), loader_phases(loader, phases):
            loader.dirs = {job: dirs for job, (dirs, _) in stamps.items()}
            loader.finish({**meta, **_build_meta(seconds), "attack_version": attack.version})
        started = time.perf_counter()
    phases["indexes, full-text, statistics"] = time.perf_counter() - started


def _attack(
    path: Path, w: store.CatalogWriter, phases: dict[str, float], workers: int
) -> tuple[attack_mod.Attack, Loader]:
    with timed(phases, "ATT&CK bundle"):
        attack = attack_mod.load(path)
    return attack, Loader(w, TechniqueIndex.of(attack), workers)


def _waited(results: Iterable[VendorResult], phases: dict[str, float]) -> Iterator[VendorResult]:
    """``results``, the time spent waiting for each counted as reading."""
    it = iter(results)
    while True:
        with timed(phases, "read (waiting on workers)"):
            res = next(it, None)
        if res is None:
            return
        yield res


def _build_meta(seconds: dict[str, float]) -> dict[str, Any]:
    return {
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "vendor_seconds": seconds,
    }


def _report(db: Path, seconds: float) -> BuildReport:
    """The report of the catalog just written, from the catalog itself (a full and
    an incremental build report the same way)."""
    conn = sqlite3.connect(f"file:{Path(db).resolve()}?mode=ro", uri=True)
    try:
        summary: dict[str, dict[str, int]] = {}
        for c, v, problems in conn.execute(
            "SELECT collection, vendor, SUM(json_array_length(problems)) FROM build_files"
            " GROUP BY collection, vendor ORDER BY MIN(rowid)"
        ):
            s = summary.setdefault(_label(Collection(c, Path()), v), _empty_summary())
            s["problems"] += problems
        for c, v, n, with_query, full in conn.execute(
            "SELECT collection, vendor, COUNT(*), SUM(has_query), SUM(fully_parsed)"
            " FROM rules GROUP BY collection, vendor"
        ):
            s = summary.setdefault(_label(Collection(c, Path()), v), _empty_summary())
            s.update(rules=n, with_query=with_query, fully_parsed=full)
        problems = [
            Problem(path, message, line, col, vendor or "", rule_id or "")
            for vendor, path, line, col, message, rule_id in conn.execute(
                "SELECT vendor, path, line, col, message, rule_id FROM problems ORDER BY rowid"
            )
        ]
        row = conn.execute("SELECT value FROM meta WHERE key = 'unknown_techniques'").fetchone()
    finally:
        conn.close()
    unknown = json.loads(row[0]) if row else {}
    return BuildReport(Path(db), summary, problems, unknown, seconds)


def _empty_summary() -> dict[str, int]:
    return {"rules": 0, "with_query": 0, "fully_parsed": 0, "problems": 0}
