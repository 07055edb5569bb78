"""Catalog search: FTS5 full text over titles and descriptions, plus structured
``field:value`` terms matched against predicates (canonical or raw field name,
value as a case-insensitive substring)."""

from __future__ import annotations

import re
import shlex
import sqlite3
from typing import Any

from detcat.errors import UsageProblem

_FIELD_TERM = re.compile(r"^([A-Za-z_@][\w.@\-\[\]\"]*):(.*)$")
# NUL ends a string inside SQLite's FTS5 query parser ("unterminated string"); no
# title or description holds one, so it is dropped from what the user typed.
_NUL = "\x00"


def parse_query(query: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Split a query into free-text words and (field, value) terms; a field term
    without a value (``process.name:``) is refused with what to write instead."""
    query = query.replace(_NUL, "")
    try:
        tokens = shlex.split(query)
    except ValueError:  # unbalanced quotes: fall back to plain words
        tokens = query.split()
    words, fields = [], []
    for tok in tokens:
        m = _FIELD_TERM.match(tok)
        if m and not m.group(2):
            raise UsageProblem(
                f"{tok} has no value: write {tok}VALUE (e.g. process.name:anydesk), "
                f'or quote a value with spaces ({tok}"a b")'
            )
        if m and not m.group(2).startswith("/"):  # keep URLs as words
            fields.append((m.group(1), m.group(2)))
        else:
            words.append(tok)
    return words, fields


def _fts_expr(words: list[str]) -> str:
    # Every word quoted: user text never reaches FTS5's own query syntax.
    return " ".join('"' + w.replace('"', '""') + '"' for w in words if w.strip())


def search(
    conn: sqlite3.Connection,
    query: str,
    limit: int | None = 50,
    *,
    vendor: str | None = None,
    technique: str | None = None,
    field: str | None = None,
    value: str | None = None,
) -> dict[str, Any]:
    """Rules matching every term of ``query`` and every filter given: ``vendor``,
    ``technique`` (with its sub-techniques), and a predicate on ``field`` (canonical
    or raw) whose value contains ``value`` (either may be given alone). ``limit``
    None for all. Raises ``UsageProblem`` for a query that cannot be meant as written."""
    words, fields = parse_query(query)
    clauses, args = [], []
    if fts := _fts_expr(words):
        clauses.append("r.pk IN (SELECT rowid FROM rules_fts WHERE rules_fts MATCH ?)")
        args.append(fts)
    if field is not None or value is not None:
        fields.append((field, value or ""))
    for name, text in fields:
        clauses.append(
            "r.pk IN (SELECT rule_pk FROM predicates"
            " WHERE (? IS NULL OR field = ? OR field_raw = ?) AND value_key LIKE ? ESCAPE '\\')"
        )
        args += [name, name, name, _like(text)]
    if vendor is not None:
        clauses.append("r.vendor = ?")
        args.append(vendor)
    if technique is not None:
        tid = technique.upper()
        clauses.append(
            "r.pk IN (SELECT rule_pk FROM rule_techniques WHERE technique_id = ?"
            " OR technique_id LIKE ? ESCAPE '\\')"
        )
        args += [tid, _escape(tid) + ".%"]
    if not clauses:
        return {"query": query, "total": 0, "rules": []}
    where = " AND ".join(clauses)
    total = conn.execute(f"SELECT COUNT(*) FROM rules r WHERE {where}", args).fetchone()[0]
    rows = conn.execute(
        f"""SELECT r.vendor, r.id, r.title, r.language, r.upstream_url,
               (SELECT group_concat(technique_id, ' ') FROM rule_techniques t
                WHERE t.rule_pk = r.pk) AS techniques
        FROM rules r WHERE {where} ORDER BY r.vendor, r.title LIMIT ?""",
        [*args, -1 if limit is None else limit],  # LIMIT -1: no limit
    ).fetchall()
    return {
        "query": query,
        "total": total,
        "rules": [
            {"vendor": r["vendor"], "id": r["id"], "title": r["title"],
             "techniques": sorted((r["techniques"] or "").split()),
             "language": r["language"], "url": r["upstream_url"]}
            for r in rows
        ],
    }  # fmt: skip


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like(value: str) -> str:
    """A LIKE pattern for case-folded values containing ``value``."""
    return "%" + _escape(value.casefold()) + "%"
