"""The build pipeline: sources -> parse -> normalize -> store.

Vendors are read (and their rules normalized) in worker processes; a reader
that works file by file (``rule_files`` + ``read_file``) is split across the
workers. The parent writes each vendor's rules to a temporary catalog as soon as
they arrive, in one transaction, and swaps it in at the end (``store.writing``).
"""

from __future__ import annotations

import importlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from detcat import attack as attack_mod
from detcat import store
from detcat.errors import DetcatError
from detcat.model import Opaque, Problem, QueryError, Rule, check_depth
from detcat.sources import VENDORS
from detcat.sources import files as source_files
from detcat.workers import workers_pool

ATTACK_FILE = Path("attack") / "enterprise-attack.json"

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
    source_files.set_max_bytes(max_file_bytes)
    try:
        module = importlib.import_module(f"detcat.sources.{vendor}")
    except ImportError as e:
        result.problems.append(Problem(str(root), f"no reader for {vendor}: {e}", vendor=vendor))
        return result
    shared = _guarded(vendor, root, root, lambda: getattr(module, "prepare", lambda _: [])(root))
    if report_shared:
        result.problems += [p for p in shared if isinstance(p, Problem)]
    if files is None:
        files = module.rule_files(root, include_deprecated)
    for path in files:
        for item in read_one(module, vendor, path, root):
            if isinstance(item, Problem):
                result.problems.append(item)
            else:
                result.rules.append(item)
    result.seconds = time.perf_counter() - started
    return result


def read_one(module: Any, vendor: str, path: Path, root: Path) -> list[Rule | Problem]:
    """The rules of one file, bounded and normalized, or problems naming it.

    This is the one place a file is isolated: whatever goes wrong while it is
    read, decoded, loaded, shape-checked, parsed or normalized costs this file
    only (``RecursionError`` and ``MemoryError`` included)."""

    def work() -> list[Rule | Problem]:
        got = module.read_file(path, root)
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
            stage.expr = Opaque(rule.query, "nested too deeply")
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


def _shards(files: list[Path], n: int) -> list[list[Path]]:
    """``n`` interleaved parts of a vendor's files (rule files are sorted by folder,
    and folders differ in cost)."""
    return [files[i::n] for i in range(n)]


def build(
    sources: Path,
    db: Path,
    *,
    include_deprecated: bool = False,
    vendors: tuple[str, ...] = VENDORS,
    workers: int | None = None,
    progress: Progress | None = None,
    max_file_bytes: int = source_files.DEFAULT_MAX_BYTES,
) -> BuildReport:
    started = time.perf_counter()
    sources = Path(sources)
    attack_path = sources / ATTACK_FILE
    if not attack_path.exists():
        raise BuildError(f"{attack_path} not found: the sources directory needs the ATT&CK bundle")
    present = [v for v in vendors if (sources / v).is_dir()]
    if not present:
        raise BuildError(f"{sources} holds none of the vendor folders {', '.join(vendors)}")
    before = store.rule_counts(db)
    attack = attack_mod.load(attack_path)
    options = ReadOptions(include_deprecated, max_file_bytes)
    results = _read_all(sources, present, options, workers, progress)
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


def _read_all(
    sources: Path,
    vendors: list[str],
    options: ReadOptions,
    workers: int | None,
    progress: Progress | None,
) -> Iterator[VendorResult]:
    """Each vendor's result in order, as soon as it is read: the caller writes one
    vendor to the store while the workers still parse the next."""
    notify = progress or (lambda *_: None)
    for v in vendors:
        notify(v, "start", 0)
    workers = workers or os.cpu_count() or 1
    read = partial(_read_shard, options=options)
    if workers == 1:
        for v in vendors:
            result = read(v, sources / v, None, True)
            notify(v, "done", len(result.rules))
            yield result
        return
    with workers_pool(workers) as pool:
        futures: dict[str, list[tuple[list[Path] | None, Future[VendorResult]]]] = {}
        for v in vendors:  # the largest vendor first, split across the workers
            shards = _vendor_shards(v, sources / v, options, workers)
            futures[v] = [
                (shard, pool.submit(read, v, sources / v, shard, i == 0))
                for i, shard in enumerate(shards)
            ]
        for v, futs in futures.items():
            result = _merge(v, [_shard_result(read, v, sources / v, s, i == 0, f)
                                for i, (s, f) in enumerate(futs)])  # fmt: skip
            notify(v, "done", len(result.rules))
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


def _vendor_shards(
    vendor: str, root: Path, options: ReadOptions, n: int
) -> list[list[Path] | None]:
    try:
        module = importlib.import_module(f"detcat.sources.{vendor}")
        files = module.rule_files(root, options.include_deprecated)
    except Exception:  # read_vendor reports a missing reader (or listing failure) itself
        return [None]
    return list(_shards(files, n))


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

    names = attack.ids_by_name()
    unknown: Counter[str] = Counter()
    problems: list[Problem] = []
    summary: dict[str, dict[str, int]] = {}
    seconds: dict[str, float] = {}
    with store.writing(db) as w:
        for res in results:
            for rule in res.rules:
                _resolve_techniques(rule, attack, names, unknown)
            res.rules = [r for r in res.rules if _store(w, r, res.problems)]
            problems += [p for r in res.rules for p in r.problems]
            for p in res.problems:
                w.add_problem(p)
            problems += res.problems
            summary[res.vendor] = _vendor_summary(res)
            seconds[res.vendor] = round(res.seconds, 3)
            if progress:
                progress("store", "vendor", len(res.rules))
        w.add_attack(attack)
        w.add_events(store.EventRow(e.id, e.provider, e.event_id, e.title) for e in event_catalog())
        w.set_meta(
            built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            unknown_techniques=dict(unknown),
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
