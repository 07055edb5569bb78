"""The build pipeline: sources -> parse -> normalize -> store.

Vendors are read (and their rules normalized) in worker processes; a reader
that works file by file (``rule_files`` + ``read_file``) is split across the
workers. The parent writes each vendor's rules to a temporary catalog as soon as
they arrive, in one transaction, and swaps it in at the end (``store.writing``).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from detcat import attack as attack_mod
from detcat import store
from detcat.errors import DetcatError
from detcat.model import Problem, Rule
from detcat.sources import registry

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


def build(
    sources: Path,
    db: Path,
    *,
    include_deprecated: bool = False,
    vendors: tuple[str, ...] | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> BuildReport:
    started = time.perf_counter()
    sources = Path(sources)
    attack_path = sources / ATTACK_FILE
    if not attack_path.exists():
        raise BuildError(f"{attack_path} not found: the sources directory needs the ATT&CK bundle")
    vendors = vendors or registry.names()
    present = [v for v in vendors if (sources / v).is_dir()]
    if not present:
        raise BuildError(f"{sources} holds none of the vendor folders {', '.join(vendors)}")
    attack = attack_mod.load(attack_path)
    results = _read_all(sources, present, include_deprecated, workers, progress)
    return _write(db, attack, results, started, progress)


def _read_all(
    sources: Path,
    vendors: list[str],
    include_deprecated: bool,
    workers: int | None,
    progress: Progress | None,
) -> Iterator[VendorResult]:
    """Each vendor's result in order, as soon as it is read: the caller writes one
    vendor to the store while the workers still parse the next."""
    notify = progress or (lambda *_: None)
    for v in vendors:
        notify(v, "start", 0)
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        for v in vendors:
            result = read_vendor(v, sources / v, include_deprecated)
            notify(v, "done", len(result.rules))
            yield result
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures: dict[str, list[Future[VendorResult]]] = {}
        for v in vendors:  # the largest vendor first, split across the workers
            shards = _shards(v, sources / v, include_deprecated, workers) or [None]
            futures[v] = [pool.submit(read_vendor, v, sources / v, include_deprecated, s)
                          for s in shards]  # fmt: skip
        for v, futs in futures.items():
            result = _merge(v, [f.result() for f in futs])
            notify(v, "done", len(result.rules))
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

    names = attack.ids_by_name()
    unknown: Counter[str] = Counter()
    problems: list[Problem] = []
    summary: dict[str, dict[str, int]] = {}
    seconds: dict[str, float] = {}
    with store.writing(db) as w:
        for res in results:
            for rule in res.rules:
                _resolve_techniques(rule, attack, names, unknown)
                w.add_rule(rule)
                problems += rule.problems
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
