"""The catalog as spreadsheets: rules, techniques, indicators, exclusions, fields.

Every cell is spreadsheet-safe: text starting with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return would be read as a formula by Excel, LibreOffice or
Google Sheets, so it gets a leading apostrophe (OWASP's advice for CSV
injection); a command-line flag such as ``-enc`` then reads ``'-enc``.
Indicators follow the technique guide: non-negated events-stage predicates with
a value; ``rules`` counts the exported rules (after ``--vendor`` /
``--collection``) that check one, ``corpus_reach`` every rule of the catalog.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from detcat.coverage import rule_filter

FILES = ("rules.csv", "techniques.csv", "indicators.csv", "exclusions.csv", "fields.csv")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def safe(cell: Any) -> Any:
    """A cell no spreadsheet evaluates as a formula."""
    if isinstance(cell, str) and cell.startswith(_FORMULA):
        return "'" + cell
    return "" if cell is None else cell


def export_csv(
    conn: sqlite3.Connection,
    out: Path,
    vendors: Sequence[str] | None = None,
    collection: str | None = None,
) -> dict[str, int]:
    """Write the five files into ``out``; returns rows written per file."""
    out.mkdir(parents=True, exist_ok=True)
    conn.execute("DROP TABLE IF EXISTS temp.chosen")
    conn.execute("CREATE TEMP TABLE chosen (pk INTEGER PRIMARY KEY)")
    where, args = rule_filter(vendors, collection)
    conn.execute(f"INSERT INTO temp.chosen SELECT pk FROM rules{where}", args)
    written = {}
    for name, (header, rows) in {
        "rules.csv": _rules(conn),
        "techniques.csv": _techniques(conn),
        "indicators.csv": _values(conn, exclusion=False),
        "exclusions.csv": _values(conn, exclusion=True),
        "fields.csv": _fields(conn),
    }.items():
        written[name] = _write(out / name, header, rows)
    conn.execute("DROP TABLE temp.chosen")
    return written


def _write(path: Path, header: list[str], rows: Iterable[Sequence[Any]]) -> int:
    n = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in rows:
            w.writerow([safe(c) for c in row])
            n += 1
    return n


Table = tuple[list[str], Iterator[Sequence[Any]]]


def _rules(conn: sqlite3.Connection) -> Table:
    header = ["vendor", "id", "title", "techniques", "language", "events", "fully_parsed",
              "source_path", "url", "collection"]  # fmt: skip
    rows = conn.execute(
        """SELECT r.vendor, r.id, r.title,
           (SELECT group_concat(technique_id, ' ') FROM
              (SELECT technique_id FROM rule_techniques WHERE rule_pk = r.pk ORDER BY 1)),
           r.language,
           (SELECT group_concat(event, ' ') FROM
              (SELECT DISTINCT event FROM rule_events WHERE rule_pk = r.pk ORDER BY 1)),
           r.fully_parsed, r.source_path, r.upstream_url, r.collection
        FROM rules r JOIN temp.chosen c ON c.pk = r.pk ORDER BY r.vendor, r.id"""
    )
    return header, (tuple(r) for r in rows)


def _techniques(conn: sqlite3.Connection) -> Table:
    vendors = [v for (v,) in conn.execute(
        "SELECT DISTINCT vendor FROM rules JOIN temp.chosen USING (pk) ORDER BY 1")]  # fmt: skip
    counts: dict[str, dict[str, int]] = {}
    for tid, vendor, n in conn.execute(
        """SELECT rt.technique_id, r.vendor, COUNT(*) FROM rule_techniques rt
        JOIN temp.chosen c ON c.pk = rt.rule_pk JOIN rules r ON r.pk = rt.rule_pk
        GROUP BY 1, 2"""
    ):
        counts.setdefault(tid, {})[vendor] = n
    header = ["id", "name", "tactics", "parent", "rules", *vendors]
    rows = conn.execute(
        "SELECT id, name, tactics, parent FROM techniques WHERE revoked = 0 ORDER BY id"
    )

    def table() -> Iterator[Sequence[Any]]:
        for tid, name, tactics, parent in rows:
            by_vendor = counts.get(tid, {})
            yield (tid, name, " ".join(json.loads(tactics)), parent,
                   sum(by_vendor.values()), *(by_vendor.get(v, 0) for v in vendors))  # fmt: skip

    return header, table()


def _values(conn: sqlite3.Connection, exclusion: bool) -> Table:
    which = "p.exclusion = 1" if exclusion else "p.negated = 0 AND p.stage_role = 'events'"
    reach = "" if exclusion else ", reach.n"
    header = ["field", "op", "value", "rules", *([] if exclusion else ["corpus_reach"]),
              "vendors", "techniques"]  # fmt: skip
    rows = conn.execute(
        f"""WITH vals AS (
            SELECT p.field, p.op, p.value_key, MIN(p.value) AS value,
                   COUNT(DISTINCT p.rule_pk) AS rules,
                   group_concat(DISTINCT r.vendor) AS vendors
            FROM predicates p JOIN temp.chosen c ON c.pk = p.rule_pk
            JOIN rules r ON r.pk = p.rule_pk
            WHERE {which} AND p.op NOT IN ('exists', 'is_null')
            GROUP BY p.field, p.op, p.value_key),
        reach AS (
            SELECT p.field, p.op, p.value_key, COUNT(DISTINCT p.rule_pk) AS n
            FROM predicates p WHERE p.negated = 0 AND p.stage_role = 'events'
            GROUP BY 1, 2, 3),
        tech AS (
            SELECT DISTINCT p.field, p.op, p.value_key, rt.technique_id
            FROM predicates p JOIN temp.chosen c ON c.pk = p.rule_pk
            JOIN rule_techniques rt ON rt.rule_pk = p.rule_pk
            WHERE {which} AND p.op NOT IN ('exists', 'is_null'))
        SELECT v.field, v.op, v.value, v.rules{reach}, v.vendors,
               (SELECT group_concat(technique_id, ' ') FROM tech t WHERE t.field IS v.field
                AND t.op = v.op AND t.value_key = v.value_key) AS techniques
        FROM vals v LEFT JOIN reach ON reach.field IS v.field AND reach.op = v.op
             AND reach.value_key = v.value_key
        ORDER BY v.rules DESC, v.field, v.op, v.value_key"""
    )
    return header, (_sorted_lists(r) for r in rows)


def _sorted_lists(row: Sequence[Any]) -> tuple[Any, ...]:
    """The vendors and techniques columns with their items sorted (group_concat
    gives them in no defined order)."""
    *head, vendors, techniques = row
    return (*head, _sorted(vendors, ","), _sorted(techniques, " "))


def _sorted(text: str | None, sep: str) -> str:
    return " ".join(sorted(set((text or "").split(sep)) - {""}))


def _fields(conn: sqlite3.Connection) -> Table:
    header = ["field", "rules", "predicates", "operators", "aliases"]
    ops: dict[str, list[str]] = {}
    for f, op, n in conn.execute(
        """SELECT field, op, COUNT(DISTINCT rule_pk) AS n FROM predicates
        JOIN temp.chosen c ON c.pk = rule_pk WHERE kind != 'implied'
        GROUP BY field, op ORDER BY field, n DESC, op"""
    ):
        ops.setdefault(f, []).append(f"{op} {n}")
    aliases: dict[str, list[str]] = {}
    for f, vendor, raw in conn.execute(
        """SELECT DISTINCT p.field, r.vendor, p.field_raw FROM predicates p
        JOIN temp.chosen c ON c.pk = p.rule_pk JOIN rules r ON r.pk = p.rule_pk
        WHERE p.kind != 'implied' AND p.field_raw IS NOT NULL ORDER BY 1, 2, 3"""
    ):
        aliases.setdefault(f, []).append(f"{vendor}:{raw}")
    rows = conn.execute(
        """SELECT field, COUNT(DISTINCT rule_pk) AS rules, COUNT(*) FROM predicates
        JOIN temp.chosen c ON c.pk = rule_pk WHERE kind != 'implied' AND field IS NOT NULL
        GROUP BY field ORDER BY rules DESC, field"""
    )
    return header, (
        (f, n, k, "; ".join(ops.get(f, [])), "; ".join(aliases.get(f, []))) for f, n, k in rows
    )
