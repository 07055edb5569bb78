"""Corpus reach of every indicator, derived once per catalog and cached in it.

Corpus reach is the number of rules anywhere in the catalog that check the same
(field, operator, case-folded value) in an events stage, not negated. Technique
guides and rule pages show it for every indicator they list; counting it live
costs one ``COUNT(DISTINCT)`` per indicator (a third of a guide's time), the
table one indexed lookup. It is derived like the near-duplicate tables
(``store.deriving``): by ``detcat build``, or on first use by ``serve`` and
``export-site`` when the file is writable. A read-only catalog without it still
works: ``counts`` then counts live. The table names the build it was counted
from (``meta.built_at``): an incremental build updates the catalog in place, and
a table from before it is never read, only derived again, unless the build
kept it up to date (``recount``: the keys of the rules it removed and added).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from detcat import store

VERSION = "1"  # bump when the definition or the table changes

Key = tuple[str | None, str, str]  # (canonical field or None, op, value_key)

# The one definition of "a rule checks this indicator", shared by both paths.
_USES = "negated = 0 AND stage_role = 'events'"
_TABLE = f"""
CREATE TABLE indicator_reach (field TEXT, op TEXT NOT NULL, value_key TEXT NOT NULL,
                              rules INTEGER NOT NULL);
INSERT INTO indicator_reach
    SELECT field, op, value_key, COUNT(DISTINCT rule_pk) FROM predicates
    WHERE {_USES} GROUP BY field, op, value_key;
CREATE UNIQUE INDEX indicator_reach_key ON indicator_reach (field, op, value_key);
"""


def ensure(db: Path) -> None:
    """Derive the table in the catalog at ``db`` unless it is there already."""
    conn = store.connect(db)
    try:
        if available(conn):
            return
    finally:
        conn.close()
    with store.deriving(db) as wconn:
        if available(wconn):  # another process derived it meanwhile
            return
        wconn.execute("DROP TABLE IF EXISTS indicator_reach")  # from an older VERSION
        for statement in _TABLE.split(";"):
            if statement.strip():
                wconn.execute(statement)
        wconn.execute("INSERT OR REPLACE INTO meta VALUES ('reach', ?)", (_stamp(wconn),))


TABLE, META = "indicator_reach", "reach"  # what an incremental build keeps (recount)


def keys_of(conn: sqlite3.Connection, pks: Iterable[int]) -> set[Key]:
    """The keys the given rules check (those whose reach they count in)."""
    out: set[Key] = set()
    for chunk in store.chunks(sorted(pks)):
        marks = ",".join("?" * len(chunk))
        out.update(conn.execute(
            f"SELECT DISTINCT field, op, value_key FROM predicates"
            f" WHERE rule_pk IN ({marks}) AND {_USES}", chunk,
        ).fetchall())  # fmt: skip
    return out


def recount(conn: sqlite3.Connection, keys: Iterable[Key]) -> None:
    """Count ``keys`` again, as ``ensure`` counts them, and stamp the table with
    the catalog's build (an incremental build that removed and added the rules
    checking them; it has written its ``meta.built_at``)."""
    for key in sorted(set(keys), key=repr):
        conn.execute(
            "DELETE FROM indicator_reach WHERE field IS ? AND op = ? AND value_key = ?", key
        )
        conn.execute(
            f"""INSERT INTO indicator_reach
            SELECT field, op, value_key, COUNT(DISTINCT rule_pk) FROM predicates
            WHERE field IS ? AND op = ? AND value_key = ? AND {_USES}
            GROUP BY field, op, value_key""",
            key,
        )
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('reach', ?)", (_stamp(conn),))


def available(conn: sqlite3.Connection) -> bool:
    """Whether the table holds the counts of this catalog as built now."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'reach'").fetchone()
    return row is not None and row[0] == _stamp(conn)


def _stamp(conn: sqlite3.Connection) -> str:
    built = conn.execute("SELECT value FROM meta WHERE key = 'built_at'").fetchone()
    return f"{VERSION} {built[0] if built else ''}"


def counts(conn: sqlite3.Connection, keys: Iterable[Key]) -> dict[Key, int]:
    """Corpus reach of each key (0 for a key no rule checks)."""
    keys = list(keys)
    out = dict.fromkeys(keys, 0)
    if not keys:
        return out
    if available(conn):  # one indexed lookup per key, a few hundred keys per statement
        for chunk in store.chunks(keys, 300):
            rows = conn.execute(
                f"""WITH k(field, op, value_key) AS (VALUES {",".join(["(?,?,?)"] * len(chunk))})
                SELECT r.field, r.op, r.value_key, r.rules FROM k JOIN indicator_reach r
                ON r.field IS k.field AND r.op = k.op AND r.value_key = k.value_key""",
                [part for key in chunk for part in key],
            )
            out.update(((f, op, vkey), n) for f, op, vkey, n in rows)
        return out
    sql = f"""SELECT COUNT(DISTINCT rule_pk) FROM predicates
        WHERE field IS ? AND op = ? AND value_key = ? AND {_USES}"""
    for key in keys:
        out[key] = conn.execute(sql, key).fetchone()[0]
    return out


def count(conn: sqlite3.Connection, field: str | None, op: str, key: str) -> int:
    return counts(conn, [(field, op, key)])[(field, op, key)]
