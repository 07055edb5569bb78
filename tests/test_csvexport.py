"""``detcat export-csv``: the five files, their columns, counts that agree with
the store, and no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from detcat import guide, store
from detcat.cli import main
from detcat.csvexport import safe

HEADERS = {
    "rules.csv": ["vendor", "id", "title", "techniques", "language", "events", "fully_parsed",
                  "source_path", "url", "collection"],
    "indicators.csv": ["field", "op", "value", "rules", "corpus_reach", "vendors", "techniques"],
    "exclusions.csv": ["field", "op", "value", "rules", "vendors", "techniques"],
    "fields.csv": ["field", "rules", "predicates", "operators", "aliases"],
}  # fmt: skip


@pytest.mark.parametrize(
    ("cell", "written"),
    [("=1+1", "'=1+1"), ("+cmd", "'+cmd"), ("-enc", "'-enc"), ("@SUM(A1)", "'@SUM(A1)"),
     ("\tx", "'\tx"), ("cmd.exe", "cmd.exe"), (-1, -1), (None, "")],
)  # fmt: skip
def test_safe_cells(cell: object, written: object) -> None:
    assert safe(cell) == written


@pytest.fixture(scope="module")
def exported(corpus_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("csv")
    result = CliRunner().invoke(main, ["export-csv", str(out), "--db", str(corpus_db)])
    assert result.exit_code == 0, result.output
    return out


def read(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def test_files_and_headers(exported: Path) -> None:
    for name, header in HEADERS.items():
        assert read(exported / name)[0] == header
    assert read(exported / "techniques.csv")[0][:5] == ["id", "name", "tactics", "parent", "rules"]


def test_no_cell_starts_a_formula(exported: Path) -> None:
    escaped = 0
    for name in HEADERS:
        for row in read(exported / name):
            for cell in row:
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (name, cell)
                escaped += cell.startswith(("'-", "'="))
    assert escaped, "the corpora hold values such as -enc, which must come out escaped"


def test_counts_agree_with_the_store(exported: Path, corpus_db: Path) -> None:
    conn = store.connect(corpus_db)
    rules = read(exported / "rules.csv")[1:]
    assert len(rules) == conn.execute("SELECT COUNT(*) FROM rules").fetchone()[0]
    raw = sqlite3.connect(corpus_db)
    tagged = dict(raw.execute("SELECT technique_id, COUNT(*) FROM rule_techniques GROUP BY 1"))
    for row in read(exported / "techniques.csv")[1:]:
        assert int(row[4]) == tagged.get(row[0], 0), row[0]
    for field, op, value, n, reach, *_ in read(exported / "indicators.csv")[1:30]:
        value = value[1:] if value.startswith("'") else value
        key = store.value_key(value)
        assert int(reach) == guide.corpus_reach(conn, field or None, op, key) >= int(n)
