"""The Python matcher and DuckDB give identical per-rule hits: on fixture events
built for the edges of SQL (missing fields under NOT, backslashes, literal % and
_, Unicode case folding, newlines, numbers as strings, CIDR), each rule held to
the events it must fire on; and on SigmaHQ's regression events, whole catalog."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from detcat.backtest import backtest, results, select_rules
from detcat.match import RulePlan
from detcat.parse import parse_rules
from detcat.store import connect
from tests.sqlgen.cases import CASES, EVENTS, sigma


def fixture_rules() -> list[RulePlan]:
    plans = []
    for rule_id, detection, category, _ in CASES:
        (rule,) = parse_rules("sigma", sigma(rule_id, detection, category))
        plans.append(RulePlan.from_rule(rule))
    return plans


@pytest.fixture(scope="module")
def event_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("events") / "events.jsonl"
    path.write_text("".join(json.dumps(doc) + "\n" for doc in EVENTS.values()), encoding="utf-8")
    return path


def fired(result, path: Path) -> dict[str, set[str]]:
    """rule title -> the EVENTS it fired on (all are samples: see ``engines``)."""
    names = {f"{path}:{i + 1}": name for i, name in enumerate(EVENTS)}
    out: dict[str, set[str]] = {}
    for r in result.rules.values():
        assert len(r.samples) == r.hits
        out[r.title] = {names[s] for s in r.samples}
    return out


@pytest.fixture(scope="module")
def engines(event_file: Path) -> dict[str, dict[str, set[str]]]:
    plans = fixture_rules()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(results, "SAMPLES", len(EVENTS))  # every hit a sample: the labels
        return {
            engine: fired(backtest([str(event_file)], plans, {}, engine), event_file)
            for engine in ("python", "duckdb")
        }


@pytest.mark.parametrize(("rule_id", "want"), [(c[0], c[3]) for c in CASES])
@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_fixture_rule_fires_on_its_events(
    engines: dict[str, dict[str, set[str]]], engine: str, rule_id: str, want: set[str]
) -> None:
    assert engines[engine][rule_id] == want


# Fixture rules SQL hands to the Python matcher on purpose: a field-less regex is
# searched in each value, which a regex over the joined text is not.
ON_PYTHON = {"keyword-regex"}


def test_every_fixture_rule_compiles_to_sql_exactly() -> None:
    from detcat.sqlgen import Status, compile_rules

    compiled = compile_rules(fixture_rules())
    inexact = {c.key for c in compiled if c.status is not Status.EXACT}
    assert inexact == {f"sigma:{uuid.uuid5(uuid.NAMESPACE_URL, n)}" for n in ON_PYTHON}


@pytest.fixture(scope="module")
def regression_files(corpora: Path) -> list[str]:
    files = sorted(str(p) for p in (corpora / "sigma" / "regression_data").rglob("*.json"))
    assert len(files) >= 100, f"expected SigmaHQ's regression events, found {len(files)}"
    return files


def test_regression_events_same_hits_whole_catalog(
    corpus_db: Path, regression_files: list[str]
) -> None:
    """Every single-event rule of every vendor: the same hits and the same unknown
    counts on the Python matcher and on DuckDB (multi-event rules run on Python only)."""
    plans, techniques = select_rules(connect(corpus_db))
    single = {f"{p.vendor}:{p.id}" for p in plans if p.single_event}
    got = {e: backtest(regression_files, plans, techniques, e) for e in ("python", "duckdb")}
    py, sql = got["python"], got["duckdb"]
    assert py.events == sql.events >= len(regression_files)
    hits = {
        e: {k: (r.hits, r.unknown) for k, r in b.rules.items() if k in single}
        for e, b in got.items()
    }
    differ = {
        k: (v, hits["duckdb"][k]) for k, v in hits["python"].items() if v != hits["duckdb"][k]
    }
    assert not differ
    assert sum(1 for h, _ in hits["python"].values() if h) >= 150  # the comparison is not empty
    assert {r.vendor for r in sql.fired()} >= {"sigma", "elastic", "splunk"}


@pytest.mark.slow
def test_spark_gives_the_same_hits_on_fixtures(
    event_file: Path, engines: dict[str, dict[str, set[str]]], tmp_path: Path
) -> None:
    """Spark local[2] on the same normalized rows: every rule, the same events."""
    pytest.importorskip("pyspark", reason="the spark engine is optional: detcat[spark]")
    from detcat.backtest.parquet import normalize_files
    from detcat.sqlgen import compile_rules
    from detcat.sqlgen.rules import wanted_columns

    plans = fixture_rules()
    columns, nonnull = wanted_columns(compile_rules(plans))
    normalize_files([event_file], tmp_path / "rows", columns, nonnull, print)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(results, "SAMPLES", len(EVENTS))
        got = fired(backtest([str(tmp_path / "rows")], plans, {}, "spark"), event_file)
    assert got == engines["python"]
