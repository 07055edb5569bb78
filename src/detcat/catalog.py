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
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from detcat import attack as attack_mod
from detcat import store
from detcat.errors import DetcatError
from detcat.model import Problem, Rule
from detcat.sources import registry

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

    @property
    def problem_count(self) -> int:
        return len(self.problems)


def read_vendor(
    vendor: str, root: Path, include_deprecated: bool, files: list[Path] | None = None
) -> VendorResult:
    """Read and normalize one vendor's rules, or the given files of it (runs in a
    worker process)."""
    from detcat.normalize import normalize_rule

    started = time.perf_counter()
    result = VendorResult(vendor)
    try:
        reader = registry.get(vendor)
    except (ImportError, DetcatError) as e:
        result.problems.append(Problem(str(root), f"no reader for {vendor}: {e}", vendor=vendor))
        return result
    if files is None:
        items = reader.read(root, include_deprecated=include_deprecated)
    else:
        items = (reader.read_file(f, root) for f in files)
    try:
        for item in items:
            if isinstance(item, Problem):
                item.vendor = item.vendor or vendor
                result.problems.append(item)
                continue
            try:
                normalize_rule(item)
            except Exception as e:  # a normalization bug must not lose the rule
                item.problems.append(
                    Problem(item.source_path, f"normalization failed: {type(e).__name__}: {e}")
                )
            result.rules.append(item)
    except Exception as e:  # a reader bug costs that vendor's remaining rules, not the build
        result.problems.append(
            Problem(str(root), f"{vendor} reader failed: {type(e).__name__}: {e}", vendor=vendor)
        )
    result.seconds = time.perf_counter() - started
    return result


def _shards(vendor: str, root: Path, include_deprecated: bool, n: int) -> list[list[Path]] | None:
    """Split a vendor's files into ``n`` parts when its reader works file by file
    (``rule_files`` + ``read_file``); None when it must read the folder whole."""
    try:
        reader = registry.get(vendor)
    except (ImportError, DetcatError):
        return None  # read_vendor records the missing reader as a problem
    files = reader.rule_files(root, include_deprecated) if n > 1 else None
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
    attack = attack_mod.load(attack_path)
    results = _read_all(jobs, include_deprecated, workers, progress)
    return _write(db, attack, results, started, progress)


def _label(c: Collection, vendor: str) -> str:
    """How progress and the build summary name one collection's vendor."""
    return vendor if c.name == "public" else f"{c.name}/{vendor}"


def _read_all(
    jobs: list[tuple[Collection, str]],
    include_deprecated: bool,
    workers: int | None,
    progress: Progress | None,
) -> Iterator[VendorResult]:
    """Each vendor's result in order, as soon as it is read: the caller writes one
    vendor to the store while the workers still parse the next."""
    notify = progress or (lambda *_: None)
    for c, v in jobs:
        notify(_label(c, v), "start", 0)
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        for c, v in jobs:
            result = read_vendor(v, c.root / v, include_deprecated)
            result.collection = c.name
            notify(_label(c, v), "done", len(result.rules))
            yield result
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures: list[tuple[Collection, str, list[Future[VendorResult]]]] = []
        for c, v in jobs:  # the largest vendor first, split across the workers
            root = c.root / v
            shards = _shards(v, root, include_deprecated, workers) or [None]
            futures.append((c, v, [pool.submit(read_vendor, v, root, include_deprecated, s)
                                   for s in shards]))  # fmt: skip
        for c, v, futs in futures:
            result = _merge(v, [f.result() for f in futs])
            result.collection = c.name
            notify(_label(c, v), "done", len(result.rules))
            yield result


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
                w.add_rule(rule)
                problems += rule.problems
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
