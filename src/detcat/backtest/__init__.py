"""``detcat backtest``: how often would these rules have fired on this history?

Three engines give the same per-rule hits (the equality tests hold them to it):

- ``duckdb`` (default): the catalog compiled to SQL (``detcat.sqlgen``) and run by
  embedded DuckDB over normalized events (``detcat events normalize``: a local
  folder or Parquet on object storage), one query per event kind;
- ``spark``: the same SQL on a Spark session (``pip install 'detcat[spark]'``);
- ``python``: the Python matcher (``match.Matcher``) on every event, the reference,
  and the only engine that runs every multi-event (stateful) rule it evaluates
  (SQL runs those window functions express exactly: ``sqlgen.stateful``).

JSON event files given to a SQL engine are normalized into a temporary folder
first. Single-event rules SQL cannot express exactly run on the Python matcher
for the rows their SQL prefilter keeps; multi-event rules SQL cannot express are
reported as not compiled on the SQL engines.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from detcat.backtest.results import Backtest, RuleHits
from detcat.errors import UsageProblem
from detcat.match import Matcher, RulePlan, load_rules
from detcat.match.reading import BadEvent, read_events
from detcat.sqlgen import CompiledRule, Status, as_backtested, compile_rules
from detcat.sqlgen.rules import wanted_columns

ENGINES = ("duckdb", "spark", "python")


def select_rules(
    conn: sqlite3.Connection,
    vendor: str | None = None,
    technique: str | None = None,
    rules_file: Path | None = None,
) -> tuple[list[RulePlan], dict[str, list[str]]]:
    """The catalog rules to backtest, and each one's techniques (``vendor:id`` keys).
    ``rules_file``: a draft rule file of any vendor (its rules need not be in the
    catalog), or rule ids (``vendor:id`` or ``id``, one a line, ``#`` comments)."""
    techniques: dict[str, list[str]] = defaultdict(list)
    for v, rid, t in conn.execute(
        "SELECT r.vendor, r.id, t.technique_id FROM rules r"
        " JOIN rule_techniques t ON t.rule_pk = r.pk ORDER BY t.technique_id"
    ):
        techniques[f"{v}:{rid}"].append(t)
    drafts = _draft_rules(rules_file, techniques) if rules_file is not None else None
    if drafts is not None:
        plans = drafts
    else:
        plans = load_rules(conn, vendor)
        if rules_file is not None:
            wanted = _rule_ids(rules_file)
            plans = [p for p in plans if f"{p.vendor}:{p.id}" in wanted or p.id in wanted]
    if vendor:
        plans = [p for p in plans if p.vendor == vendor]
    if technique:
        t = technique.upper()
        plans = [
            p
            for p in plans
            if any(x == t or x.startswith(t + ".") for x in techniques[f"{p.vendor}:{p.id}"])
        ]
    return plans, techniques


def _rule_ids(path: Path) -> set[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageProblem(f"{path}: cannot read the rule list: {e}") from None
    return {ln.split("#", 1)[0].strip() for ln in lines} - {""}


def _draft_rules(path: Path, techniques: dict[str, list[str]]) -> list[RulePlan] | None:
    """The rules of a draft rule file (any vendor's format, as ``detcat lint``
    reads it), or None when the file is no rule file (then: a list of ids)."""
    from detcat.drafts import DraftError, detect_format, read_draft

    try:
        detect_format(path, path.read_text(encoding="utf-8"))
    except (DraftError, OSError, UnicodeDecodeError):
        return None
    draft = read_draft(path)
    if not draft.rules:
        why = "; ".join(str(p) for p in draft.problems) or "no rule in it"
        raise UsageProblem(f"{path}: {why}")
    for r in draft.rules:
        techniques[f"{r.vendor}:{r.id}"] = list(r.techniques)
    return [RulePlan.from_rule(r) for r in draft.rules]


def new_result(engine: str, plans: list[RulePlan], techniques: dict[str, list[str]]) -> Backtest:
    result = Backtest(engine)
    for p in plans:
        key = f"{p.vendor}:{p.id}"
        result.rules[key] = RuleHits(p.vendor, p.id, p.title, techniques.get(key, []))
    return result


def is_normalized(paths: list[str]) -> bool:
    """One folder or URL written by ``detcat events normalize``."""
    from detcat.backtest.parquet import MANIFEST

    if len(paths) != 1:
        return False
    p = paths[0]
    return "://" in p or (Path(p).is_dir() and (Path(p) / MANIFEST).exists())


def backtest(
    paths: list[str],
    plans: list[RulePlan],
    techniques: dict[str, list[str]],
    engine: str = "duckdb",
    on_bad: Callable[[BadEvent], None] | None = None,
    spark_master: str | None = None,
    threads: int | None = None,
) -> Backtest:
    """Backtest ``plans`` on the events of ``paths`` (JSON files, or one normalized
    folder / URL) with ``engine``."""
    if engine not in ENGINES:
        raise UsageProblem(f"unknown engine {engine!r}: one of {', '.join(ENGINES)}")
    plans = as_backtested(plans)
    result = new_result(engine, plans, techniques)
    on_bad = on_bad or (lambda bad: None)
    if engine == "python":
        run_python(plans, _events(paths, on_bad), result)
        return result
    compiled = compile_rules(plans)
    _report_compile(compiled, result)
    if is_normalized(paths):
        _run_sql(paths[0], compiled, engine, result, spark_master, threads)
        return result
    from detcat.backtest.parquet import normalize_files

    columns, nonnull = wanted_columns(compiled)
    with tempfile.TemporaryDirectory(prefix="detcat-backtest-") as tmp:
        normalize_files(paths, Path(tmp), columns, nonnull, on_bad)
        _run_sql(tmp, compiled, engine, result, spark_master, threads)
    return result


def _report_compile(compiled: list[CompiledRule], result: Backtest) -> None:
    for c in compiled:
        entry = {"rule": c.key, "title": c.plan.title, "reason": "; ".join(c.reasons)}
        if c.status is Status.NOT_COMPILED:
            result.not_compiled.append(entry)
        elif c.status is Status.FALLBACK:
            result.fallback.append(entry)


def _run_sql(
    root: str,
    compiled: list[CompiledRule],
    engine: str,
    result: Backtest,
    spark_master: str | None,
    threads: int | None,
) -> None:
    from detcat.backtest.sql import SqlBacktest

    if engine == "spark":
        from detcat.backtest.spark_engine import SparkSource

        source: Any = SparkSource(root, spark_master)
    else:
        from detcat.backtest.duckdb_engine import DuckDBSource

        source = DuckDBSource(root, threads)
    SqlBacktest(source, compiled, result.rules).run(result)
    stateful = [c for c in compiled if c.status is Status.STATEFUL]
    if stateful:
        from detcat.backtest.stateful import StatefulBacktest

        single = [c.plan for c in compiled if c.plan.single_event]
        StatefulBacktest(source, stateful, result.rules, single).run(result)


def _events(paths: list[str], on_bad: Callable[[BadEvent], None]) -> Iterator[Any]:
    """Canonical events of JSON files, or of a normalized folder's raw JSON."""
    if is_normalized(paths):
        from detcat.backtest.duckdb_engine import DuckDBSource
        from detcat.match.events import canonical_event

        source = DuckDBSource(paths[0])
        if not source.routes():
            return
        # In time order across kinds: multi-event rules see events as they happened,
        # by the time they count with (``_seconds``; older folders: ``_time``).
        routes = source.routes()
        every = source.table(*routes)
        order = "_seconds" if all("_seconds" in source.columns(r) for r in routes) else "_time"
        sql = f"SELECT _label, _raw FROM {every} ORDER BY {order} NULLS LAST, _label"
        for label, raw in source.rows(sql):
            yield canonical_event(label, json.loads(raw))
        return
    for path in paths:
        yield from read_events(path, on_bad)


def run_python(plans: Iterable[RulePlan], events: Iterable[Any], result: Backtest) -> None:
    """The Python matcher on every event (multi-event rules too, in input order)."""
    from detcat.sqlgen.rows import event_time

    started = time.perf_counter()
    matcher = Matcher(plans)
    for ev in events:
        result.events += 1
        got = matcher.match(ev)
        when = event_time(ev)
        for m in got.matches:
            result.rules[f"{m['vendor']}:{m['id']}"].hit(ev.label, when)
        for u in got.undetermined:
            result.rules[f"{u['vendor']}:{u['id']}"].unknown += 1
    result.seconds = time.perf_counter() - started
