"""One bad file must cost exactly one problem.

Each case of ``hostile_cases.CASES`` is built beside the good rules of
``hostile_sources`` with ``detcat build``. Every build must finish with exit
code 0 or 1 and no traceback, keep every good rule, name the hostile file
(as a rule or a problem), quote no file content from outside the sources
folder, and keep problem messages short. One more build puts every hostile
file in one folder and reads it with two worker processes.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hostile_cases import CASES, SECRET, SIZE_LIMIT_KIB, Case
from hostile_sources import good_ids, make_sources

from detcat.cli import main

MAX_MESSAGE = 320  # the catalog keeps 300 characters of a message, plus a marker
SECRET_MARK = SECRET.split(":")[4]


def build_cli(src: Path, db: Path, *extra: str) -> tuple[int, str]:
    args = ["build", "--sources", str(src), "--db", str(db), "--json",
            "--max-file-size", str(SIZE_LIMIT_KIB), *extra]  # fmt: skip
    result = CliRunner().invoke(main, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"build raised {result.exception!r}") from result.exception
    return result.exit_code, result.output


def catalog_of(db: Path) -> tuple[set[tuple[str, str]], set[tuple[str, str]], list[str]]:
    """(vendor, rule id)s, (vendor, path)s named by rules or problems, and the
    text of every problem and rule row."""
    conn = sqlite3.connect(db)
    ids = set(conn.execute("SELECT vendor, id FROM rules"))
    named = set(conn.execute("SELECT vendor, source_path FROM rules"))
    named |= set(conn.execute("SELECT vendor, path FROM problems"))
    messages = [m for (m,) in conn.execute("SELECT message FROM problems")]
    messages += [" ".join(map(str, r)) for r in conn.execute("SELECT * FROM rules")]
    return ids, named, messages


def assert_survived(case_paths: dict[str, tuple[str, str | None]], db: Path, output: str) -> None:
    ids, named, messages = catalog_of(db)
    assert good_ids() <= ids, f"good rules lost: {sorted(good_ids() - ids)}"
    for case_id, (vendor, path) in case_paths.items():
        if path is not None:
            assert (vendor, path) in named, f"{case_id}: {vendor}/{path} named nowhere"
    assert "Traceback" not in output
    assert SECRET_MARK not in output and not any(SECRET_MARK in m for m in messages)
    problems = sqlite3.connect(db).execute("SELECT message FROM problems").fetchall()
    assert all(len(m) <= MAX_MESSAGE for (m,) in problems), max(problems, key=len)[0][:400]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_one_hostile_file_costs_one_problem(case: Case, tmp_path: Path) -> None:
    src = make_sources(tmp_path)
    path = case.write(src, tmp_path / "outside")
    code, output = build_cli(src, tmp_path / "c.sqlite", "--workers", "1")
    assert code in (0, 1)
    assert_survived({case.id: (case.vendor, path)}, tmp_path / "c.sqlite", output)


def test_all_hostile_files_at_once_with_workers(tmp_path: Path) -> None:
    """The same in one folder, read by worker processes (results are pickled
    back to the parent), through the installed command line."""
    src = make_sources(tmp_path)
    paths = {c.id: (c.vendor, c.write(src, tmp_path / "outside")) for c in CASES}
    db = tmp_path / "c.sqlite"
    run = subprocess.run(
        [sys.executable, "-c", "from detcat.cli import main; main()", "build",
         "--sources", str(src), "--db", str(db), "--workers", "2", "--json",
         "--max-file-size", str(SIZE_LIMIT_KIB)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode in (0, 1), run.stderr[-2000:]
    assert_survived(paths, db, run.stdout + run.stderr)
    report = json.loads(run.stdout)
    assert report["vendors"]["splunk"]["rules"] >= 2


def test_every_category_covers_every_vendor_it_can() -> None:
    """The suite's own shape: depth, size, encoding and links for all four
    vendors; aliases for the YAML ones; macro growth and loops for Splunk."""
    by_category: dict[str, set[str]] = {}
    for c in CASES:
        by_category.setdefault(c.category, set()).add(c.vendor)
    everyone = {"sigma", "elastic", "splunk", "chronicle"}
    for category in ("depth", "size", "encoding", "link", "shape"):
        assert by_category[category] == everyone, category
    assert by_category["aliases"] == {"sigma", "splunk"}
    assert {"splunk"} <= by_category["macro"] and {"splunk"} <= by_category["loop"]
    assert len({c.id for c in CASES}) == len(CASES)
