"""Incremental builds: update a copy of the previous catalog, reading only what changed.

The previous catalog holds the build cache (table ``build_files``): for each
source file, the digest of its bytes, the shared definitions it looked up (Splunk
macros and lookups, with their digest then) and the rules and problems it gave.
Its ``meta.build_key`` digests everything else a rule's rows depend on: detcat's
own code and tables, the versions of the libraries that parse, the options, the
folders and the ATT&CK bundle. When that key matches, a build

- reads again only the files whose bytes changed, the new ones, and those whose
  macros or lookups changed; deletes the rows of those and of the removed files;
- reads the shared definitions again (their problems are replaced every time);
- brings what depends on every rule up to date (``catalog.write``): the
  unknown techniques, and the near-duplicate pairs of the rules whose features
  or weights changed (``similar.update``; all of them when the number of rules
  changed, as every weight does then),

into a temporary copy that replaces the catalog only when all went well.

Finding what changed costs one ``stat`` per file: a file whose stamp (size,
times, inode) is what the cache recorded is not read (``catalog_read.file_stamp``
says why that is safe); one whose stamp moved is hashed, and stamped anew when
its bytes are the same. The rule folders are not even listed again while every
folder under a vendor folder keeps the stamp recorded in ``build_dirs``.

A file that clashes on a rule id (before or after), a changed key, a missing or
foreign catalog: a full build instead (``update`` returns None).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import detcat
from detcat import reach, similar, store
from detcat.catalog.read import (
    FileResult,
    file_digest,
    file_stamp,
    folder_stamps,
    prepare,
    read_source,
    shared_stamp,
    uses_digest,
)
from detcat.catalog.write import (
    BUILD_META,
    Clash,
    Loader,
    TechniqueIndex,
    add_unknown_techniques,
)
from detcat.errors import DetcatError
from detcat.sources import files as source_files
from detcat.sources import registry

# (vendor, event, rules) -> None; events: "start", "done" (per vendor read),
# "vendor" (one vendor written to the store)
Progress = Callable[[str, str, int], None]
# An update reads its files in this process: past this share of all the files, a
# full build (all the workers) is faster.
_MOST_READ = 0.25
# Libraries whose output becomes rows: another version may parse differently.
_LIBRARIES = ("pysigma", "lark", "pyyaml", "google-re2")


@dataclass(frozen=True)
class ReadOptions:
    include_deprecated: bool = False
    max_file_bytes: int = source_files.DEFAULT_MAX_BYTES


@dataclass(frozen=True)
class Job:
    """One collection's vendor folder."""

    collection: str
    root: Path  # the collection's sources folder
    vendor: str
    label: str  # how the report names it

    @property
    def folder(self) -> Path:
        return self.root / self.vendor

    @property
    def key(self) -> tuple[str, str]:
        return (self.collection, self.vendor)


def fingerprint(
    jobs: list[Job], options: ReadOptions, attack_path: Path, previous: str | None = None
) -> tuple[str, str]:
    """The build key: what every rule's rows depend on besides its own file; and
    the stamps of the files it read (``meta.build_inputs``). ``previous``: those
    of the last build, whose digest of the files' bytes holds while every stamp
    is the same (``file_stamp``), so that their 35 MB are not read again."""
    h = hashlib.blake2b(digest_size=16)
    for lib in _LIBRARIES:
        h.update(f"{lib}={_version(lib)}\0".encode())
    h.update(f"{sys.version}\0{store.SCHEMA_VERSION}\0{similar.VERSION}\0".encode())
    h.update(repr(options).encode())
    h.update(repr([(j.collection, str(j.root.resolve()), j.vendor) for j in jobs]).encode())
    inputs = _inputs(jobs, attack_path, previous)
    h.update(inputs["digest"].encode())
    return h.hexdigest(), json.dumps(inputs)


def _inputs(jobs: list[Job], attack_path: Path, previous: str | None) -> dict[str, str]:
    """detcat's code and tables, a vendor plugin's module and the ATT&CK bundle:
    a digest of their stamps and one of their bytes (the last build's while the
    stamps are the same)."""
    package = Path(detcat.__file__).parent
    files = [p for p in sorted(package.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    for job in jobs:  # a vendor plugin's own module, when it lives elsewhere
        file = _module_file(job.vendor)
        if file and not file.is_relative_to(package):
            files.append(file)
    files.append(attack_path)
    stamps = [file_stamp(p) for p in files]
    listed = "\n".join(f"{p}\0{s}" for p, s in zip(files, stamps, strict=True))
    stamp = hashlib.blake2b(listed.encode(), digest_size=16).hexdigest() if all(stamps) else ""
    try:
        last = json.loads(previous or "{}")
    except ValueError:
        last = {}
    if stamp and last.get("stamps") == stamp and last.get("digest"):
        return {"stamps": stamp, "digest": last["digest"]}
    h = hashlib.blake2b(digest_size=16)
    for p in files:
        h.update(f"{p.name}\0".encode() + p.read_bytes())
    return {"stamps": stamp, "digest": h.hexdigest()}


def previous_inputs(db: Path) -> str | None:
    """``meta.build_inputs`` of the catalog at ``db``, if it has one."""
    try:
        with closing(store.connect(db)) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'build_inputs'").fetchone()
    except (sqlite3.Error, store.MissingCatalog, DetcatError):
        return None
    return str(row[0]) if row else None


def _module_file(vendor: str) -> Path | None:
    try:
        module = sys.modules.get(type(registry.get(vendor)).__module__)
    except (ImportError, DetcatError):  # no reader: a full build reports it
        return None
    return Path(module.__file__) if module and module.__file__ else None


def _version(lib: str) -> str:
    try:
        return metadata.version(lib)
    except metadata.PackageNotFoundError:
        return "-"


@dataclass
class _Entry:
    """One ``build_files`` row; its JSON lists are read only when needed (most
    entries are only compared by digest)."""

    path: str
    digest: str
    stamp: str
    uses_json: str
    uses_digest: str
    rules_json: str
    problems_json: str
    dup: bool

    @property
    def uses(self) -> list[str]:
        return [] if self.uses_json == "[]" else list(json.loads(self.uses_json))

    @property
    def rules(self) -> list[int]:
        return list(json.loads(self.rules_json))

    @property
    def problems(self) -> list[int]:
        return list(json.loads(self.problems_json))


@dataclass
class _Plan:
    """What an update does for one job."""

    job: Job
    reader: Any
    folder: Path
    shared: list[Any] = field(default_factory=list)  # the shared entry's new items
    read: list[Path] = field(default_factory=list)  # files to read
    drop: list[_Entry] = field(default_factory=list)  # entries whose rows go
    reuse: dict[tuple[str, str], int] = field(default_factory=dict)  # (vendor, id) -> old pk
    # (path, stamp) of files whose bytes were read and found unchanged: stamped anew
    restamp: list[tuple[str, str]] = field(default_factory=list)
    dirs: list[tuple[str, str]] | None = None  # new folder stamps; None: keep the old
    shared_stamp: str = ""  # of the files of the shared definitions (catalog.read)
    keep_shared: bool = False  # they are as the last build read them: its "" entry stays


def update(
    db: Path,
    jobs: list[Job],
    options: ReadOptions,
    meta: dict[str, Any],
    phases: dict[str, float],
    progress: Progress | None = None,
) -> int | None:
    """Update the catalog at ``db`` from what changed; the number of files read,
    or None when a full build is needed (nothing was written then)."""
    started = time.perf_counter()
    got = _cached(db, meta["build_key"], jobs)
    if got is None:
        return None
    cached, dirs = got
    total = sum(len(entries) for entries in cached.values())
    with source_files.size_limit(options.max_file_bytes):
        plans = [_plan(job, options, cached[job.key], dirs.get(job.key)) for job in jobs]
        if any(p is None or any(e.dup for e in p.drop) for p in plans):
            return None
        if sum(len(p.read) for p in plans if p) > _MOST_READ * total:
            return None  # a full build reads them in parallel, on every worker
        phases["find changed files"] = time.perf_counter() - started
        try:
            return _apply(db, [p for p in plans if p], meta, phases, progress)
        except Clash:
            return None


JobKey = tuple[str, str]  # (collection, vendor)
Stamps = list[tuple[str, str]]  # (folder relative to the vendor folder, its stamp)


def _cached(
    db: Path, key: str, jobs: list[Job]
) -> tuple[dict[JobKey, dict[str, _Entry]], dict[JobKey, Stamps]] | None:
    """The previous catalog's cache entries and folder stamps by job, when its
    build key is ``key`` and it was built for the same jobs."""
    try:
        with closing(store.connect(db)) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'build_key'").fetchone()
            if row is None or row[0] != key:
                return None
            rows = conn.execute(
                "SELECT collection, vendor, path, digest, stamp, uses, uses_digest, rules,"
                " problems, dup FROM build_files"
            ).fetchall()
            dir_rows = conn.execute("SELECT collection, vendor, path, stamp FROM build_dirs")
            dirs: dict[JobKey, Stamps] = {}
            for c, v, path, stamp in dir_rows:
                dirs.setdefault((c, v), []).append((path, stamp))
    except (sqlite3.Error, store.MissingCatalog):
        return None
    out: dict[JobKey, dict[str, _Entry]] = {}
    for c, v, path, *fields, dup in rows:
        out.setdefault((c, v), {})[path] = _Entry(path, *fields, bool(dup))
    return (out, dirs) if set(out) == {j.key for j in jobs} else None


def _plan(
    job: Job, options: ReadOptions, entries: dict[str, _Entry], dirs: Stamps | None
) -> _Plan | None:
    """Which files of one job to read again and which entries to drop; None when
    the vendor reads its folder whole (a full build then)."""
    try:
        reader = registry.get(job.vendor)
        plan = _Plan(job, reader, job.folder)
        files = _listing(plan, options, entries, dirs)
    except Exception:  # a full build records why
        return None
    if files is None:
        return None
    plan.shared_stamp = shared_stamp(reader, job.folder)  # before they are read
    shared = entries.pop("", _Entry("", "", "", "[]", "", "[]", "[]", False))
    plan.keep_shared = bool(plan.shared_stamp) and shared.stamp == plan.shared_stamp
    if not plan.keep_shared:
        plan.shared = prepare(reader, job.vendor, job.folder, options.include_deprecated)
        plan.drop.append(shared)
    memo: dict[str, str] = {}
    prefix = f"{job.folder}{os.sep}"
    for name in files:  # the relative path by slicing: Path.relative_to is slow
        rel = name[len(prefix) :] if name.startswith(prefix) else Path(name).relative_to(job.folder)
        entry = entries.pop(Path(rel).as_posix() if os.sep != "/" else str(rel), None)
        if entry is None or not _unchanged(entry, name, plan, memo):
            plan.read.append(Path(name))
            if entry is not None:
                plan.drop.append(entry)
    plan.drop += entries.values()  # files that are gone
    if plan.keep_shared and plan.read:  # read as a full build reads them: prepared
        prepare(reader, job.vendor, job.folder, options.include_deprecated)
    return plan


def _listing(
    plan: _Plan, options: ReadOptions, entries: dict[str, _Entry], dirs: Stamps | None
) -> list[str] | None:
    """The job's rule files, as text under its folder; None when the vendor reads
    its folder whole. While every folder under it has the stamp the last build
    recorded, no file was added, removed or renamed there: the cache's paths are
    the list (a vendor chooses its rule files by their names, see
    ``Vendor.rule_files``), and the folders are not listed again."""
    top = os.fspath(plan.folder)
    if dirs and all(file_stamp(os.path.join(top, d) if d else top) == s for d, s in dirs):
        return [os.path.join(top, path) for path in entries if path]
    plan.dirs = folder_stamps(plan.folder) or []  # before listing: a change shows next time
    files = plan.reader.rule_files(plan.folder, options.include_deprecated)
    return None if files is None else [str(f) for f in files]


def _unchanged(entry: _Entry, path: str, plan: _Plan, memo: dict[str, str]) -> bool:
    stamp = file_stamp(path)
    if not entry.stamp or entry.stamp != stamp:  # else: its bytes are the same
        digest = file_digest(Path(path), plan.folder)
        if not digest or digest != entry.digest:
            return False
        if stamp:  # the same bytes: spare reading them next time
            plan.restamp.append((entry.path, stamp))
    if plan.keep_shared:  # every shared definition is as it was
        return True
    return uses_digest(plan.reader, plan.folder, entry.uses, memo) == entry.uses_digest


def _apply(
    db: Path,
    plans: list[_Plan],
    meta: dict[str, Any],
    phases: dict[str, float],
    progress: Progress | None,
) -> int:
    notify = progress or (lambda *_: None)
    started = time.perf_counter()
    with store.writing(db, update=True) as w:
        phases["copy the previous catalog"] = time.perf_counter() - started
        with timed(phases, "remove changed rows"):
            keep_reach = reach.available(w.conn)
            _drop_derived(w, keep_reach)
            gone = [pk for plan in plans for e in plan.drop for pk in e.rules]
            reach_keys = reach.keys_of(w.conn, gone) if keep_reach else set()
            removed = _remove(w, plans)
            # The rule ids taken, from their index (a clash means a full build, so the
            # collection of the copy kept does not matter here).
            w.seen = dict.fromkeys(w.conn.execute("SELECT vendor, id FROM rules"), "")
            loader = Loader(w, TechniqueIndex.of_catalog(w.conn))
            _restamp(w, plans, loader)
        seconds: dict[str, float] = {}
        for plan in plans:
            job = plan.job
            notify(job.label, "start", 0)
            start = time.perf_counter()
            read = [read_source(plan.reader, job.vendor, p, job.folder) for p in plan.read]
            seconds[job.label] = round(time.perf_counter() - start, 3)
            phases["read changed files"] = phases.get("read changed files", 0) + seconds[job.label]
            notify(job.label, "done", sum(len(f.rules) for f in read))
            with timed(phases, "store rules"):
                if not plan.keep_shared:
                    shared = FileResult("", plan.shared, stamp=plan.shared_stamp)
                    loader.add_file(job.collection, job.vendor, shared, {})
                for fr in read:
                    loader.add_file(job.collection, job.vendor, fr, plan.reuse)
            notify("store", "vendor", 0)
        with timed(phases, "derived tables and cache"), loader_phases(loader, phases):
            add_unknown_techniques(w, loader.index.unknown)
            built_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            loader.finish({**meta, "built_at": built_at, "vendor_seconds": seconds}, removed)
            if keep_reach:
                reach.recount(w.conn, reach_keys | reach.keys_of(w.conn, loader.features))
        started = time.perf_counter()
    phases["commit"] = time.perf_counter() - started
    return sum(len(p.read) for p in plans)


def _restamp(w: store.CatalogWriter, plans: list[_Plan], loader: Loader) -> None:
    """New stamps: of the files found unchanged by their bytes, and of the folders
    listed again (the loader writes those)."""
    for plan in plans:
        c, v = plan.job.key
        w.conn.executemany(
            "UPDATE build_files SET stamp = ? WHERE collection = ? AND vendor = ? AND path = ?",
            [(stamp, c, v, path) for path, stamp in plan.restamp],
        )
        if plan.dirs is not None:
            loader.dirs[plan.job.key] = plan.dirs


def _drop_derived(w: store.CatalogWriter, keep_reach: bool) -> None:
    """Tables derived from the catalog after its build (computed on first use)
    describe the old rules: the copy loses them, and their ``meta`` keys, as a
    full build's file never had them; they are derived again. ``keep_reach``:
    but ``reach``'s, which this build keeps up to date (``reach.recount``)."""
    built = {*re.findall(r"CREATE (?:VIRTUAL )?TABLE (\w+)", store.SCHEMA), *similar.TABLES}
    if keep_reach:
        built.add(reach.TABLE)
    tables = w.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    for (name,) in tables:
        if name not in built and not name.startswith(("sqlite_", "rules_fts_")):
            w.conn.execute(f'DROP TABLE "{name}"')
    keys = (*BUILD_META, reach.META) if keep_reach else BUILD_META
    w.conn.execute(f"DELETE FROM meta WHERE key NOT IN ({','.join('?' * len(keys))})", keys)


def _remove(w: store.CatalogWriter, plans: list[_Plan]) -> dict[int, frozenset[str]]:
    """Delete the dropped entries' rows (remembering each rule's pk, so that a rule
    read again keeps it); the similarity features of the rules deleted (their
    ``sim_features`` rows stay until ``Loader.finish``)."""
    gone: set[int] = set()
    for plan in plans:
        for e in plan.drop:
            for pk in e.rules:
                row = w.conn.execute("SELECT vendor, id FROM rules WHERE pk = ?", (pk,)).fetchone()
                if row:
                    plan.reuse[(row[0], row[1])] = pk
                w.remove_rule(pk)
                gone.add(pk)
            w.remove_problems(e.problems)
            w.conn.execute(
                "DELETE FROM build_files WHERE collection = ? AND vendor = ? AND path = ?",
                (plan.job.collection, plan.job.vendor, e.path),
            )
    return similar.features_of(w.conn, sorted(gone))


@contextmanager
def loader_phases(loader: Loader, phases: dict[str, float]) -> Iterator[None]:
    """Inside ``timed(phases, "derived tables and cache")``: ``Loader.finish``'s
    costly parts as phases of their own (taken out of that one)."""
    yield
    phases.update(loader.seconds)
    phases["derived tables and cache"] = phases.get("derived tables and cache", 0.0) - sum(
        loader.seconds.values()
    )


@contextmanager
def timed(phases: dict[str, float], name: str) -> Iterator[None]:
    """Add the time spent inside to ``phases[name]`` (the build report's breakdown)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = phases.get(name, 0.0) + time.perf_counter() - start
