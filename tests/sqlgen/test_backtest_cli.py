"""``detcat events normalize``, ``detcat backtest`` and ``detcat sql-report`` as a
user runs them, on a one-rule catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from detcat.cli import main
from tests.match_helpers import rule_catalog
from tests.sqlgen.cases import EVENTS, sigma


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rule = sigma(
        "cmd-from-explorer",
        "    sel:\n        ParentImage|endswith: '\\explorer.exe'\n    condition: sel",
    ).replace("status: test", "status: test\ntags:\n    - attack.t1059")
    return rule_catalog(tmp_path_factory.mktemp("cat"), "sigma", "r.yml", rule)


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ev") / "events.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in EVENTS.values()) + "not json\n")
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("engine", ["duckdb", "python", "normalized"])
def test_backtest_reports_hits_days_samples_and_techniques(
    db: Path, events: Path, tmp_path: Path, engine: str
) -> None:
    source, reads_bad_line = [str(events)], True
    if engine == "normalized":  # normalize once, backtest the Parquet folder
        res = run(
            "events",
            "normalize",
            str(events),
            "--out",
            str(tmp_path / "p"),
            "--db",
            str(db),
            "--json",
        )
        assert res.exit_code == 1  # the bad line is reported, the rest written
        assert json.loads(res.stdout)["events"] == len(EVENTS)
        assert "bad event" in res.stderr
        source, engine, reads_bad_line = [str(tmp_path / "p")], "duckdb", False
    res = run("backtest", *source, "--engine", engine, "--db", str(db), "--json")
    assert res.exit_code == (1 if reads_bad_line else 0), res.output
    got = json.loads(res.stdout)
    assert got["events"] == len(EVENTS)
    (rule,) = got["rules"]
    assert (rule["title"], rule["hits"], rule["first_seen"]) == (
        "cmd-from-explorer",
        1,
        "2024-05-01T10:00:00",
    )
    assert rule["per_day"] == {"2024-05-01": 1} and rule["samples"] == [f"{events}:1"]
    assert got["techniques"] == {"T1059": [f"sigma:{rule['id']}"]}


def test_sql_report_counts_the_rule_exact(db: Path) -> None:
    res = run("sql-report", "--db", str(db), "--json")
    assert res.exit_code == 0, res.output
    (vendor,) = json.loads(res.stdout)["vendors"]
    assert (vendor["vendor"], vendor["exact"], vendor["exact_share"]) == ("sigma", 1, 1.0)


def test_backtest_text_output(db: Path, events: Path) -> None:
    res = run("backtest", str(events), "--db", str(db))
    assert "1 rule fired" in res.stdout and "cmd-from-explorer" in res.stdout


def test_backtest_a_draft_rule_file(db: Path, events: Path, tmp_path: Path) -> None:
    draft = tmp_path / "draft.yml"
    draft.write_text(
        sigma(
            "draft-percent", "    sel:\n        CommandLine|contains: '%TEMP%'\n    condition: sel"
        )
    )
    res = run("backtest", str(events), "--rules", str(draft), "--db", str(db), "--json")
    got = json.loads(res.stdout)
    assert [(r["title"], r["hits"]) for r in got["rules"]] == [("draft-percent", 1)]


def test_backtest_a_list_of_rule_ids(db: Path, events: Path, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("# none of the catalog's\nsigma:00000000-0000-0000-0000-000000000000\n")
    res = run("backtest", str(events), "--rules", str(ids), "--db", str(db), "--json")
    assert json.loads(res.stdout)["rules"] == []
