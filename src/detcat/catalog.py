"""The build pipeline: sources -> parse -> normalize -> store.

Vendors are read (and their rules normalized) in worker processes; a reader
that works file by file (``rule_files`` + ``read_file``) is split across the
workers. The parent writes each vendor's rules to a temporary catalog as soon as
they arrive, in one transaction, and swaps it in at the end (``store.writing``).
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from detcat import attack as attack_mod
from detcat import store
from detcat.errors import DetcatError
from detcat.model import Opaque, Problem, QueryError, Reason, Rule, check_depth
from detcat.sources import files as source_files
from detcat.sources import registry
from detcat.workers import workers_pool

# (vendor, event, rules) -> None; events: "start", "done" (per vendor read),
# "vendor" (one vendor written to the store)
Progress = Callable[[str, str, int], None]


class BuildError(DetcatError):
    """The build cannot start or cannot finish; the previous catalog is kept."""


@dataclass
class VendorResult:
    vendor: str
    rules: list[Rule] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0
    collection: str = "public"


@dataclass
class BuildReport:
    db: Path
    vendors: dict[str, dict[str, int]]
    problems: list[Problem]
    unknown_techniques: dict[str, int]
    seconds: float
    # Vendors with fewer rules than the catalog this build replaced: (before, now).
    dropped: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def problem_count(self) -> int:
        return len(self.problems)


def read_vendor(
    vendor: str,
    root: Path,
    include_deprecated: bool,
    files: list[Path] | None = None,
    *,
    report_shared: bool = True,
    max_file_bytes: int = source_files.DEFAULT_MAX_BYTES,
) -> VendorResult:
    """Read and normalize one vendor's rules, or the given files of it (runs in a
    worker process). ``report_shared``: also return the problems of the files
    every rule shares (Splunk macros and lookups), which one shard reports."""
    started = time.perf_counter()
    result = VendorResult(vendor)
    with source_files.size_limit(max_file_bytes):
        _read_into(result, vendor, root, include_deprecated, files, report_shared)
    result.seconds = time.perf_counter() - started
    return result


def _read_into(
    result: VendorResult,
    vendor: str,
    root: Path,
    include_deprecated: bool,
    files: list[Path] | None,
    report_shared: bool,
) -> None:
    try:
        reader = registry.get(vendor)
    except (ImportError, DetcatError) as e:
        result.problems.append(Problem(str(root), f"no reader for {vendor}: {e}", vendor=vendor))
        return
    shared = _guarded(
        vendor, root, root, lambda: reader.prepare(root, include_deprecated=include_deprecated)
    )
    if report_shared:
        result.problems += [p for p in shared if isinstance(p, Problem)]
    if files is None:
        try:
            files = reader.rule_files(root, include_deprecated)
        except Exception as e:  # an unreadable folder: its rules are lost, said once
            failed = f"cannot list the rule files: {type(e).__name__}: {e}"
            result.problems.append(_clean(Problem(str(root), failed, vendor=vendor)))
            files = []
    if files is None:  # a vendor that reads its folder whole: isolated per rule only
        items: Iterable[Rule | Problem] = _read_whole(reader, vendor, root, include_deprecated)
    else:
        items = (x for f in files for x in read_one(reader, vendor, f, root))
    for item in items:
        (result.problems if isinstance(item, Problem) else result.rules).append(item)


def _read_whole(
    reader: Any, vendor: str, root: Path, include_deprecated: bool
) -> Iterator[Rule | Problem]:
    """A folder read whole (no ``rule_files``): an exception ends the folder's
    remaining rules (the vendor cannot say which file failed), with a problem."""
    try:
        for item in reader.read(root, include_deprecated=include_deprecated):
            yield _finish(item, vendor)
    except Exception as e:
        yield _clean(
            Problem(str(root), f"{vendor} reader failed: {type(e).__name__}: {e}", vendor=vendor)
        )


def read_one(reader: Any, vendor: str, path: Path, root: Path) -> list[Rule | Problem]:
    """The rules of one file, bounded and normalized, or problems naming it.

    This is the one place a file is isolated: whatever goes wrong while it is
    read, decoded, loaded, shape-checked, parsed or normalized costs this file
    only (``RecursionError`` and ``MemoryError`` included)."""

    def work() -> list[Rule | Problem]:
        got = reader.read_file(path, root)
        items = [got] if isinstance(got, Rule | Problem) else list(got)
        return [_finish(item, vendor) for item in items]

    return _guarded(vendor, path, root, work)


def _guarded(vendor: str, path: Path, root: Path, work: Callable[[], Any]) -> list[Any]:
    try:
        return list(work())
    except RecursionError:
        message = "nested too deeply to read (RecursionError)"
    except MemoryError:
        message = "ran out of memory reading this file"
    except Exception as e:  # a reader bug or a shape nobody foresaw: this file only
        message = f"could not be read: {type(e).__name__}: {e}"
    return [_clean(Problem(_rel(path, root), message, vendor=vendor))]


def _finish(item: Rule | Problem, vendor: str) -> Rule | Problem:
    """Bound a rule's depth (before anything walks or pickles it), normalize it,
    and make every problem safe to show."""
    from detcat.normalize import normalize_rule

    if isinstance(item, Problem):
        item.vendor = item.vendor or vendor
        return _clean(item)
    _bound_depth(item)
    try:
        normalize_rule(item)
    except Exception as e:  # a normalization bug must not lose the rule
        item.problems.append(
            Problem(item.source_path, f"normalization failed: {type(e).__name__}: {e}")
        )
    item.problems = [_clean(p) for p in item.problems]
    return item


def _bound_depth(rule: Rule) -> None:
    """A stage nested deeper than ``MAX_DEPTH`` becomes Opaque, with a problem."""
    for stage in rule.stages:
        try:
            check_depth(stage.expr)
        except QueryError as e:
            stage.expr = Opaque(rule.query, Reason.SYNTAX_ERROR, e.message)
            rule.problems.append(Problem(rule.source_path, e.message, rule_id=rule.id))


_EXCERPT = 300  # characters of a problem message kept; messages may quote the file


def _clean(p: Problem) -> Problem:
    """One short line: control characters escaped, long quotes cut."""
    text = p.message
    if not text.isprintable():
        text = "".join(c if c.isprintable() else _escape(c) for c in text)
    p.message = text if len(text) <= _EXCERPT else text[:_EXCERPT] + "… (cut)"
    return p


def _escape(c: str) -> str:
    return c.encode("unicode_escape").decode("ascii")


def _rel(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


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
) -> BuildReport:
    """Build the catalog from one sources folder, or several collections (each
    rule keeps its collection's name; the ATT&CK bundle comes from the first
    collection that has one)."""
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
    attack = attack_mod.load(attack_path)
    options = ReadOptions(include_deprecated, max_file_bytes)
    results = _read_all(jobs, options, workers, progress)
    report = _write(db, attack, results, started, progress)
    report.dropped = _drops(before, report.vendors)
    return report


@dataclass(frozen=True)
class ReadOptions:
    include_deprecated: bool = False
    max_file_bytes: int = source_files.DEFAULT_MAX_BYTES


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
    workers: int | None,
    progress: Progress | None,
) -> Iterator[VendorResult]:
    """Each vendor's result in order, as soon as it is read: the caller writes one
    vendor to the store while the workers still parse the next."""
    notify = progress or (lambda *_: None)
    for c, v in jobs:
        notify(_label(c, v), "start", 0)
    workers = workers or os.cpu_count() or 1
    read = partial(_read_shard, options=options)
    if workers == 1:
        for c, v in jobs:
            result = read(v, c.root / v, None, True)
            result.collection = c.name
            notify(_label(c, v), "done", len(result.rules))
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
            notify(_label(c, v), "done", len(result.rules))
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
    return VendorResult(
        vendor,
        rules=[r for p in parts for r in p.rules],
        problems=[x for p in parts for x in p.problems],
        seconds=sum(p.seconds for p in parts),
    )


def _write(
    db: Path,
    attack: attack_mod.Attack,
    results: Iterable[VendorResult],
    started: float,
    progress: Progress | None,
) -> BuildReport:
    from detcat.normalize import event_catalog
    from detcat.normalize.attack_sources import log_source_events

    names = attack.ids_by_name()
    unknown: Counter[str] = Counter()
    problems: list[Problem] = []
    summary: dict[str, dict[str, int]] = {}
    seconds: dict[str, float] = {}
    names_seen: set[str] = set()
    with store.writing(db) as w:
        for res in results:
            names_seen.add(res.collection)
            for rule in res.rules:
                rule.collection = res.collection
                _resolve_techniques(rule, attack, names, unknown)
            res.rules = [r for r in res.rules if _store(w, r, res.problems)]
            problems += [p for r in res.rules for p in r.problems]
            for p in res.problems:
                w.add_problem(p)
            problems += res.problems
            label = _label(Collection(res.collection, Path()), res.vendor)
            summary[label] = _vendor_summary(res)
            seconds[label] = round(res.seconds, 3)
            if progress:
                progress("store", "vendor", len(res.rules))
        w.add_attack(attack)
        w.add_analytics(attack.analytics, log_source_events)
        w.add_events(store.EventRow(e.id, e.provider, e.event_id, e.title) for e in event_catalog())
        w.set_meta(
            built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            unknown_techniques=dict(unknown),
            attack_version=attack.version,
            collections=sorted(names_seen),
            vendor_seconds=seconds,
        )
    return BuildReport(db, summary, problems, dict(unknown), time.perf_counter() - started)


def _store(w: store.CatalogWriter, rule: Rule, problems: list[Problem]) -> bool:
    """Write one rule; one that cannot be serialized is a problem naming its file
    (``add_rule`` prepares every row before it inserts any). Storage failures
    (a full disk) still end the build: they are not this file's fault."""
    try:
        return w.add_rule(rule)
    except store.UnstorableRule as e:
        problems.append(_clean(Problem(rule.source_path, e.message, vendor=rule.vendor)))
        return False


def _resolve_techniques(
    rule: Rule, attack: attack_mod.Attack, names: dict[str, str], unknown: Counter[str]
) -> None:
    """Map technique names to ids; keep unknown ids (flagged) rather than drop them.
    An unknown name is a problem only when the rule names no technique otherwise."""
    had_ids = bool(rule.techniques)
    for name in rule.context.get("technique_names", []):
        tid = names.get(str(name).strip().lower())
        if tid:
            rule.techniques.append(tid)
        elif not had_ids:
            rule.problems.append(Problem(rule.source_path, f"unknown ATT&CK technique {name!r}"))
    rule.techniques = list(dict.fromkeys(t.upper() for t in rule.techniques))
    for tid in rule.techniques:
        if not (attack.get(tid) or attack.add_unknown(tid)).known:
            unknown[tid] += 1


def _vendor_summary(res: VendorResult) -> dict[str, int]:
    return {
        "rules": len(res.rules),
        "with_query": sum(r.has_query for r in res.rules),
        "fully_parsed": sum(r.fully_parsed for r in res.rules),
        "problems": len(res.problems) + sum(len(r.problems) for r in res.rules),
    }
