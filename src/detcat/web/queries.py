"""Page-specific SQL beyond ``guide``: the overview matrix, field, event and
indicator pages, and the enumerations the static export walks.

Like ``guide`` this speaks canonical terms only. Indicator counts use the
same definition as ``guide.corpus_reach`` (not negated, event stages), so a
number on one page equals the number of rules listed on the page it links to.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

from detcat import guide
from detcat.store import value_key

# The family of a technique id: "T1219.002" -> "T1219".
_FAMILY = "substr(rt.technique_id, 1, instr(rt.technique_id || '.', '.') - 1)"
_RULE_TECHNIQUES = (
    "(SELECT group_concat(technique_id, ' ') FROM rule_techniques t WHERE t.rule_pk = r.pk)"
)
_USES = "p.negated = 0 AND p.stage_role = 'events'"


def _rule_rows(rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
    return [
        {"vendor": r["vendor"], "id": r["id"], "title": r["title"],
         "techniques": sorted((r["techniques"] or "").split())}
        for r in rows
    ]  # fmt: skip


def overview(conn: sqlite3.Connection) -> dict[str, Any]:
    """Coverage per vendor, problem count and the ATT&CK matrix with rule counts."""
    stats = guide.stats(conn)
    total = conn.execute("SELECT COUNT(*) FROM rules").fetchone()[0]
    problems = conn.execute("SELECT COUNT(*) FROM problems").fetchone()[0]
    return {"rules": total, "problems": problems, "stats": stats, **matrix(conn)}


def _family_counts(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for tid, vendor, n in conn.execute(
        f"""SELECT {_FAMILY} AS family, r.vendor, COUNT(DISTINCT r.pk)
        FROM rule_techniques rt JOIN rules r ON r.pk = rt.rule_pk
        GROUP BY family, r.vendor ORDER BY family, r.vendor"""
    ):
        row = counts.setdefault(tid, {"all": 0})
        row[vendor] = n
        row["all"] += n  # a rule has one vendor, so vendor counts add up
    return counts


def matrix(conn: sqlite3.Connection) -> dict[str, Any]:
    """Tactics (columns, ATT&CK order) x parent techniques, counting the rules
    tagged with a technique or any of its sub-techniques."""
    counts = _family_counts(conn)
    tactics = [dict(t, techniques=[]) for t in conn.execute(
        "SELECT id, shortname, name FROM tactics ORDER BY ord")]  # fmt: skip
    by_short = {t["shortname"]: t for t in tactics}
    for t in conn.execute(
        """SELECT id, name, tactics FROM techniques
        WHERE parent IS NULL AND revoked = 0 AND deprecated = 0 AND known = 1 ORDER BY name"""
    ):
        cell = {"id": t["id"], "name": t["name"], "rules": counts.get(t["id"], {"all": 0})}
        for short in json.loads(t["tactics"]):
            if short in by_short:
                by_short[short]["techniques"].append(cell)
    unknown = [
        {"id": t["id"], "rules": counts.get(t["id"], {"all": 0})}
        for t in conn.execute("SELECT id FROM techniques WHERE known = 0 AND parent IS NULL")
    ]
    return {"tactics": tactics, "unlisted_techniques": unknown}


def field_page(
    conn: sqlite3.Connection, name: str, limit: int = 50, rule_limit: int = 500
) -> dict[str, Any] | None:
    """One canonical field: vendor aliases, operators, top values, rules."""
    n_rules = conn.execute(
        "SELECT COUNT(DISTINCT rule_pk) FROM predicates WHERE field = ?", (name,)
    ).fetchone()[0]
    if not n_rules:
        return None
    aliases: dict[str, list[dict[str, Any]]] = {}
    for r in conn.execute(
        """SELECT r.vendor, p.field_raw, COUNT(DISTINCT p.rule_pk) AS n
        FROM predicates p JOIN rules r ON r.pk = p.rule_pk
        WHERE p.field = ? AND p.kind != 'implied' AND p.field_raw IS NOT NULL
        GROUP BY r.vendor, p.field_raw ORDER BY r.vendor, n DESC, p.field_raw""",
        (name,),
    ):
        aliases.setdefault(r["vendor"], []).append({"field_raw": r["field_raw"], "rules": r["n"]})
    implied = conn.execute(
        "SELECT COUNT(DISTINCT rule_pk) FROM predicates WHERE field = ? AND kind = 'implied'",
        (name,),
    ).fetchone()[0]
    operators = dict(conn.execute(
        """SELECT op, COUNT(DISTINCT rule_pk) AS n FROM predicates WHERE field = ?
        GROUP BY op ORDER BY n DESC, op""", (name,)).fetchall())  # fmt: skip
    values = [dict(v) for v in conn.execute(
        f"""SELECT p.op, MIN(p.value) AS value, COUNT(DISTINCT p.rule_pk) AS rules
        FROM predicates p WHERE p.field = ? AND {_USES} AND p.op NOT IN ('exists', 'is_null')
        GROUP BY p.op, p.value_key ORDER BY rules DESC, p.op, p.value_key LIMIT ?""",
        (name, limit))]  # fmt: skip
    rules = conn.execute(
        f"""SELECT r.vendor, r.id, r.title, {_RULE_TECHNIQUES} AS techniques FROM rules r
        WHERE r.pk IN (SELECT rule_pk FROM predicates WHERE field = ?)
        ORDER BY r.vendor, r.title LIMIT ?""",
        (name, rule_limit),
    ).fetchall()
    return {
        "field": name,
        "rules": n_rules,
        "aliases": aliases,
        "implied_rules": implied,
        "operators": operators,
        "values": values,
        "rule_list": _rule_rows(rules),
    }


def event_page(conn: sqlite3.Connection, event_id: str, limit: int = 30) -> dict[str, Any] | None:
    """One catalog event: the rules covering it, their techniques and fields."""
    row = conn.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
    if row is None:
        return None
    rules = conn.execute(
        f"""SELECT r.vendor, r.id, r.title, {_RULE_TECHNIQUES} AS techniques FROM rules r
        WHERE r.pk IN (SELECT rule_pk FROM rule_events WHERE event = ?)
        ORDER BY r.vendor, r.title""",
        (event_id,),
    ).fetchall()
    techniques = conn.execute(
        """SELECT rt.technique_id AS id, t.name, COUNT(DISTINCT rt.rule_pk) AS rules
        FROM rule_techniques rt LEFT JOIN techniques t ON t.id = rt.technique_id
        WHERE rt.rule_pk IN (SELECT rule_pk FROM rule_events WHERE event = ?)
        GROUP BY rt.technique_id ORDER BY rules DESC, rt.technique_id LIMIT ?""",
        (event_id, limit),
    ).fetchall()
    fields = conn.execute(
        """SELECT p.field, COUNT(DISTINCT p.rule_pk) AS rules
        FROM rule_events re JOIN predicates p
             ON p.rule_pk = re.rule_pk AND p.stage_idx = re.stage_idx
        WHERE re.event = ? AND p.field IS NOT NULL AND p.kind != 'implied'
        GROUP BY p.field ORDER BY rules DESC, p.field LIMIT ?""",
        (event_id, limit),
    ).fetchall()
    return {
        **dict(row),
        "rules": _rule_rows(rules),
        "techniques": [dict(t) for t in techniques],
        "fields": [dict(f) for f in fields],
    }


def indicator_page(
    conn: sqlite3.Connection, field: str | None, op: str, value: str
) -> dict[str, Any] | None:
    """Every rule checking one (field, op, case-folded value), and those excluding it."""
    rows = conn.execute(
        f"""SELECT r.vendor, r.id, r.title, {_RULE_TECHNIQUES} AS techniques,
               MIN(p.value) AS value, MAX({_USES}) AS uses, MAX(p.exclusion) AS excludes
        FROM predicates p JOIN rules r ON r.pk = p.rule_pk
        WHERE p.field IS ? AND p.op = ? AND p.value_key = ?
        GROUP BY r.pk ORDER BY r.vendor, r.title""",
        (field, op, value_key(value)),
    ).fetchall()
    if not rows:
        return None
    uses = [r for r in rows if r["uses"]]
    techniques: dict[str, int] = {}
    for r in _rule_rows(uses):
        for t in r["techniques"]:
            techniques[t] = techniques.get(t, 0) + 1
    shown = [r["value"] for r in rows if r["value"] is not None]
    return {
        "field": field,
        "op": op,
        "value": min(shown) if shown else None,
        "corpus_reach": len(uses),
        "rules": _rule_rows(uses),
        "excluded_by": _rule_rows([r for r in rows if r["excludes"]]),
        "techniques": dict(sorted(techniques.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def technique_names(conn: sqlite3.Connection, ids: list[str]) -> dict[str, str]:
    """Names of the given technique ids that have a page (known or not)."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(f"SELECT id, name FROM techniques WHERE id IN ({marks})", ids)
    return {r["id"]: r["name"] or "" for r in rows}


# -- what the static export walks -------------------------------------------


def technique_ids(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT id FROM techniques ORDER BY id")]


def field_names(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT DISTINCT field FROM predicates WHERE field IS NOT NULL")
    return sorted(r[0] for r in rows)


def event_ids(conn: sqlite3.Connection) -> list[str]:
    """Events some rule covers (the dictionary holds many more; no page links to those)."""
    rows = conn.execute("SELECT id FROM events WHERE id IN (SELECT event FROM rule_events)")
    return sorted(r[0] for r in rows)


def shared_indicators(conn: sqlite3.Connection) -> Iterator[tuple[str | None, str, str]]:
    """Indicators checked by more than one rule: the ones pages link to."""
    yield from conn.execute(
        f"""SELECT p.field, p.op, MIN(p.value) FROM predicates p
        WHERE {_USES} AND p.op NOT IN ('exists', 'is_null')
        GROUP BY p.field, p.op, p.value_key HAVING COUNT(DISTINCT p.rule_pk) > 1"""
    )
