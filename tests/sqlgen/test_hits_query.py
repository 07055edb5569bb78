"""Hits counted by DuckDB (``DuckDB.hits_query``: per rule code and day) add up to
what reading the route query's rows one by one gives (``RuleHits.hit``): hits,
unknown counts, first and last seen, hits per day; the samples are the earliest."""

from __future__ import annotations

import duckdb
import pytest

from detcat.backtest.results import SAMPLES, RuleHits
from detcat.sqlgen.duckdb import DuckDB
from detcat.sqlgen.plan import decode

# A route query's rows: label, time (None: the event states none), codes (k: rule k
# holds, -1 - k: unknown).
ROWS = [
    ("f:1", "2024-05-02T10:00:00", [0, -2]),
    ("f:2", "2024-05-01T23:59:59", [0]),
    ("f:3", None, [0, 1]),
    ("f:4", "2024-05-01T00:00:00", [0, -2]),
    ("f:5", "2024-05-03T08:00:00", [1]),
    ("f:6", "2024-05-01T12:00:00", [0]),
    ("f:7", None, [-1]),
    ("f:8", "2024-04-30T09:00:00", [0, 1, -2]),
]


def route_sql(rows: list[tuple[str, str | None, list[int]]]) -> str:
    d = DuckDB()

    def value(v: str | None) -> str:
        return "CAST(NULL AS VARCHAR)" if v is None else d.literal(v)

    values = ", ".join(
        f"({d.literal(label)}, {value(when)}, CAST({codes} AS INTEGER[]))"
        for label, when, codes in rows
    )
    return f'SELECT * FROM (VALUES {values}) AS t("_label", "_time", codes)'


def by_rows(rows: list[tuple[str, str | None, list[int]]]) -> dict[int, RuleHits]:
    out: dict[int, RuleHits] = {}
    for label, when, codes in sorted(rows, key=lambda r: (r[1] is None, r[1] or "", r[0])):
        for code in codes:
            rule, holds = decode(code)
            h = out.setdefault(rule, RuleHits("v", str(rule), ""))
            if holds:
                h.hit(label, when)
            else:
                h.unknown += 1
    return out


def counted(rows: list[tuple[str, str | None, list[int]]]) -> dict[int, RuleHits]:
    out: dict[int, RuleHits] = {}
    sql = DuckDB().hits_query(route_sql(rows), SAMPLES)
    for code, hits, first, last, samples in duckdb.connect().execute(sql).fetchall():
        rule, holds = decode(code)
        h = out.setdefault(rule, RuleHits("v", str(rule), ""))
        if holds:
            h.add(hits, first, last, samples)
        else:
            h.unknown += hits
    return out


@pytest.mark.parametrize(
    "rows",
    [
        ROWS,
        ROWS[:1],  # one row
        [r for r in ROWS if r[1] is None],  # no times: no days, no first or last
        [(f"g:{i}", f"2024-06-{i % 28 + 1:02d}T00:00:{i % 60:02d}", [3]) for i in range(100)],
    ],
)
def test_counted_hits_are_the_row_by_row_hits(rows: list) -> None:
    want, got = by_rows(rows), counted(rows)
    assert {k: v.to_json() for k, v in got.items()} == {k: v.to_json() for k, v in want.items()}


def test_samples_are_the_earliest_events() -> None:
    got = counted(ROWS)[0]
    assert got.samples == ["f:8", "f:4", "f:6"][:SAMPLES]
    assert (got.hits, got.first, got.last) == (6, "2024-04-30T09:00:00", "2024-05-02T10:00:00")
