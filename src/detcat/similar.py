"""Rules similar to a rule: PROVISIONAL, until near-duplicate detection lands.

Today a rule's *indicators* are the distinct (canonical field, operator,
case-folded value) triples its event stages check positively (not negated, not
``exists``/``is_null``, not the predicates normalization implies from a log
source, which would make every rule of one log source look alike). Two rules are
as similar as the Jaccard index of their indicator sets, shared / (mine + theirs
- shared), a score in [0, 1]: 1 when they check exactly the same values.

This finds rules that look for the same things; it does not compare logic (an
``and`` and an ``or`` of the same values score 1), which the authoring issue's
near-duplicate detection is to do.
"""

from __future__ import annotations

import sqlite3
from typing import Any

PROVISIONAL = (
    "provisional: rules sharing the most indicators (field, operator, case-folded value), "
    "scored by the Jaccard index of the two indicator sets; logic is not compared"
)

# One rule's indicators, as defined in the module docstring.
_INDICATORS = """SELECT DISTINCT field, op, value_key FROM predicates
    WHERE rule_pk = ? AND negated = 0 AND stage_role = 'events' AND kind != 'implied'
      AND op NOT IN ('exists', 'is_null')"""


def similar_rules(conn: sqlite3.Connection, rule_pk: int, limit: int = 10) -> dict[str, Any]:
    """The rules sharing indicators with the rule ``rule_pk``, best score first."""
    mine = conn.execute(_INDICATORS, (rule_pk,)).fetchall()
    shared = _shared_counts(conn, rule_pk, [tuple(m) for m in mine])
    sizes = _indicator_counts(conn, list(shared))
    scored = sorted(
        ((n / (len(mine) + sizes[pk] - n), n, pk) for pk, n in shared.items()),
        key=lambda t: (-t[0], -t[1], t[2]),
    )
    return {
        "indicators": len(mine),
        "total": len(scored),
        "similar": [_row(conn, pk, n, score, sizes[pk]) for score, n, pk in scored[:limit]],
        "method": PROVISIONAL,
    }


def _shared_counts(
    conn: sqlite3.Connection, rule_pk: int, mine: list[tuple[Any, ...]]
) -> dict[int, int]:
    """Other rule -> how many of ``mine`` it checks (indexed look-ups per indicator)."""
    shared: dict[int, set[tuple[Any, ...]]] = {}
    for key in mine:
        for (pk,) in conn.execute(
            """SELECT DISTINCT rule_pk FROM predicates
            WHERE field IS ? AND op = ? AND value_key = ? AND rule_pk != ?
              AND negated = 0 AND stage_role = 'events' AND kind != 'implied'""",
            (*key, rule_pk),
        ):
            shared.setdefault(pk, set()).add(key)
    return {pk: len(keys) for pk, keys in shared.items()}


def _indicator_counts(conn: sqlite3.Connection, pks: list[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for pk in pks:
        counts[pk] = conn.execute(f"SELECT COUNT(*) FROM ({_INDICATORS})", (pk,)).fetchone()[0]
    return counts


def _row(conn: sqlite3.Connection, pk: int, shared: int, score: float, size: int) -> dict[str, Any]:
    r = conn.execute("SELECT vendor, id, title FROM rules WHERE pk = ?", (pk,)).fetchone()
    techniques = [
        t for (t,) in conn.execute(
            "SELECT technique_id FROM rule_techniques WHERE rule_pk = ? ORDER BY 1", (pk,)
        )
    ]  # fmt: skip
    return {
        "vendor": r["vendor"],
        "id": r["id"],
        "title": r["title"],
        "techniques": techniques,
        "shared": shared,
        "indicators": size,
        "score": round(score, 4),
    }
