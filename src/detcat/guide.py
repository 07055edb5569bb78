"""Per-technique authoring guides and catalog statistics, as SQL over the store.

Everything here speaks canonical terms only: no vendor-specific branches.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from typing import Any

from detcat.sources import VENDORS

# Operators that say a field is present or absent carry no indicator value.
_NO_VALUE_OPS = ("exists", "is_null")
_SAMPLES = 5


class UnknownTechnique(LookupError):
    pass


def _family(technique_id: str) -> tuple[str, str]:
    """SQL parameters selecting a technique and, for a parent, its sub-techniques
    (ids ``T1059.000`` to ``T1059.999`` sort between ``T1059.`` and ``T1059/``)."""
    tid = technique_id.upper()
    return tid, (tid + ".") if "." not in tid else tid


# Rules tagged with the technique or one of its sub-techniques.
_IN_FAMILY = "(technique_id = :tid OR (technique_id > :sub AND technique_id < :tid || '/'))"
_HERE = f"""
here AS (SELECT DISTINCT rule_pk FROM rule_techniques WHERE {_IN_FAMILY})"""


def technique_guide(conn: sqlite3.Connection, technique_id: str, limit: int = 50) -> dict[str, Any]:
    """The authoring guide of one technique (DESIGN.md, "the page it must produce")."""
    tid, sub = _family(technique_id)
    header = _technique_header(conn, tid)
    args = {"tid": tid, "sub": sub, "limit": limit}
    rules = _rules(conn, args)
    vendors = {v: 0 for v in VENDORS}
    for r in rules:
        vendors[r["vendor"]] = vendors.get(r["vendor"], 0) + 1
    fields = _fields(conn, args)
    indicators = _indicators(conn, args, exclusion=False)
    exclusions = _indicators(conn, args, exclusion=True)
    return {
        "technique": header,
        "vendors": vendors,
        "rules": rules,
        "events": _events(conn, args),
        "fields": fields["rows"],
        "field_count": fields["distinct"],
        "indicators": indicators["rows"],
        "indicator_count": indicators["distinct"],
        "exclusions": exclusions["rows"],
        "exclusion_count": exclusions["distinct"],
    }


def _technique_header(conn: sqlite3.Connection, tid: str) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM techniques WHERE id = ?", (tid,)).fetchone()
    if row is None:
        raise UnknownTechnique(f"unknown technique {tid}")
    tactic_names = dict(conn.execute("SELECT shortname, name FROM tactics").fetchall())
    subs = conn.execute(
        "SELECT id, name FROM techniques WHERE parent = ? AND revoked = 0 ORDER BY id", (tid,)
    ).fetchall()
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "tactics": [tactic_names.get(t, t) for t in json.loads(row["tactics"])],
        "subtechniques": [{"id": s["id"], "name": s["name"]} for s in subs],
        "parent": row["parent"],
        "url": "https://attack.mitre.org/techniques/" + row["id"].replace(".", "/") + "/",
        "revoked": bool(row["revoked"]),
        "deprecated": bool(row["deprecated"]),
        "known": bool(row["known"]),
    }


def _rules(conn: sqlite3.Connection, args: dict[str, Any]) -> list[dict[str, Any]]:
    rows = conn.execute(
        f"""SELECT r.pk, r.vendor, r.id, r.title, r.language, r.severity, r.fully_parsed,
               group_concat(rt.technique_id, ' ') AS techniques
        FROM (SELECT * FROM rule_techniques WHERE {_IN_FAMILY}) rt
        JOIN rules r ON r.pk = rt.rule_pk
        GROUP BY r.pk ORDER BY r.vendor, r.title""",
        args,
    ).fetchall()
    return [
        {
            "vendor": r["vendor"],
            "id": r["id"],
            "title": r["title"],
            "techniques": sorted(r["techniques"].split()),
            "language": r["language"],
            "severity": r["severity"],
            "fully_parsed": bool(r["fully_parsed"]),
        }
        for r in rows
    ]


def _events(conn: sqlite3.Connection, args: dict[str, Any]) -> list[dict[str, Any]]:
    rows = conn.execute(
        f"""WITH {_HERE}
        SELECT e.id, e.provider, e.event_id, e.title, COUNT(DISTINCT re.rule_pk) AS rules
        FROM here JOIN rule_events re ON re.rule_pk = here.rule_pk
        JOIN events e ON e.id = re.event
        GROUP BY e.id ORDER BY rules DESC, e.provider, e.event_id""",
        args,
    ).fetchall()
    return [dict(r) for r in rows]


def _fields(conn: sqlite3.Connection, args: dict[str, Any]) -> dict[str, Any]:
    """Top canonical fields: rules, vendor aliases, operator histogram, samples."""
    base = f"""WITH {_HERE}, p AS MATERIALIZED (
        SELECT p.*, r.vendor FROM predicates p JOIN here USING (rule_pk)
        JOIN rules r ON r.pk = p.rule_pk
        WHERE p.field IS NOT NULL AND p.stage_role = 'events' AND p.kind != 'implied')"""
    top = conn.execute(
        base
        + """ SELECT field, COUNT(DISTINCT rule_pk) AS rules, COUNT(*) OVER () AS n_fields
        FROM p GROUP BY field ORDER BY rules DESC, field LIMIT :limit""",
        args,
    ).fetchall()
    detail = {
        r["field"]: {"field": r["field"], "aliases": {}, "rules": r["rules"], "operators": {},
                     "samples": []}
        for r in top
    }  # fmt: skip
    # One pass over the technique's predicates of the top fields, three groupings.
    rows = conn.execute(
        base
        + """, top AS (SELECT value AS field FROM json_each(:fields))
        SELECT 'alias' AS kind, field, vendor AS a, field_raw AS b, COUNT(*) AS n
            FROM p JOIN top USING (field) GROUP BY field, vendor, field_raw
        UNION ALL
        SELECT 'op', field, op, NULL, COUNT(DISTINCT rule_pk)
            FROM p JOIN top USING (field) GROUP BY field, op
        UNION ALL
        SELECT 'sample', field, MIN(value), value_key, COUNT(DISTINCT rule_pk)
            FROM p JOIN top USING (field) WHERE negated = 0 AND value IS NOT NULL
            GROUP BY field, value_key
        ORDER BY kind, field, n DESC, a, b""",
        {**args, "fields": json.dumps(list(detail))},
    ).fetchall()
    for kind, field, a, b, n in rows:
        row = detail[field]
        if kind == "alias":
            row["aliases"].setdefault(a, []).append(b)
        elif kind == "op":
            row["operators"][a] = n
        elif len(row["samples"]) < _SAMPLES:
            row["samples"].append(a)
    return {"rows": list(detail.values()), "distinct": top[0]["n_fields"] if top else 0}


def _indicators(conn: sqlite3.Connection, args: dict[str, Any], exclusion: bool) -> dict[str, Any]:
    """Top (field, op, value) combinations; exclusions are those under top-level NOTs."""
    where = "p.exclusion = 1" if exclusion else "p.negated = 0"
    no_value = ",".join(f"'{o}'" for o in _NO_VALUE_OPS)
    rows = conn.execute(
        f"""WITH {_HERE}
        SELECT p.field, p.op, p.value_key, MIN(p.value) AS value,
               COUNT(DISTINCT p.rule_pk) AS rules,
               json_group_array(DISTINCT r.vendor || char(31) || r.id) AS rule_keys,
               MIN(p.kind = 'implied') AS implied, COUNT(*) OVER () AS n_distinct
        FROM predicates p JOIN here USING (rule_pk) JOIN rules r ON r.pk = p.rule_pk
        WHERE {where} AND p.stage_role = 'events' AND p.op NOT IN ({no_value})
        GROUP BY p.field, p.op, p.value_key
        ORDER BY rules DESC, p.field, p.op, p.value_key LIMIT :limit""",
        args,
    ).fetchall()
    out = []
    for r in rows:
        keys = sorted(k.split("\x1f", 1) for k in json.loads(r["rule_keys"]))
        item: dict[str, Any] = {
            "field": r["field"],
            "op": r["op"],
            "value": r["value"],
            "rules": r["rules"],
            "rule_ids": [k[1] for k in keys],
            "rule_refs": [{"vendor": v, "id": i} for v, i in keys],
            "implied": bool(r["implied"]),
        }
        if not exclusion:
            reach = corpus_reach(conn, r["field"], r["op"], r["value_key"])
            item["corpus_reach"] = reach
            item["specific"] = reach == r["rules"]
        out.append(item)
    return {"rows": out, "distinct": rows[0]["n_distinct"] if rows else 0}


def corpus_reach(conn: sqlite3.Connection, field: str | None, op: str, key: str) -> int:
    """Rules anywhere in the catalog checking the same (field, op, value)."""
    return conn.execute(
        """SELECT COUNT(DISTINCT rule_pk) FROM predicates
        WHERE field IS ? AND op = ? AND value_key = ? AND negated = 0
          AND stage_role = 'events'""",
        (field, op, key),
    ).fetchone()[0]


def rule_detail(conn: sqlite3.Connection, vendor: str | None, rule_id: str) -> list[dict[str, Any]]:
    """Every rule with this id (optionally of one vendor), with stages and indicators."""
    sql = "SELECT * FROM rules WHERE id = ?" + (" AND vendor = ?" if vendor else "")
    rows = conn.execute(sql, (rule_id, vendor) if vendor else (rule_id,)).fetchall()
    return [_rule_json(conn, r) for r in rows]


def _rule_json(conn: sqlite3.Connection, r: sqlite3.Row) -> dict[str, Any]:
    pk = r["pk"]
    stages = [
        {
            "name": s["name"],
            "role": s["role"],
            "negated": bool(s["negated"]),
            "join_keys": json.loads(s["join_keys"]),
            "params": json.loads(s["params"]),
            "expr": json.loads(s["expr"]),
        }
        for s in conn.execute("SELECT * FROM stages WHERE rule_pk = ? ORDER BY idx", (pk,))
    ]
    preds = conn.execute(
        "SELECT * FROM predicates WHERE rule_pk = ? ORDER BY stage_idx, rowid", (pk,)
    ).fetchall()
    indicators = []
    seen: set[tuple[Any, ...]] = set()
    for p in preds:
        key = (p["field"], p["op"], p["value_key"])
        if p["negated"] or p["op"] in _NO_VALUE_OPS or p["stage_role"] != "events" or key in seen:
            continue
        seen.add(key)
        indicators.append(
            {"field": p["field"], "op": p["op"], "value": p["value"], "kind": p["kind"],
             "corpus_reach": corpus_reach(conn, *key)}
        )  # fmt: skip
    return {
        **{k: r[k] for k in ("vendor", "id", "title", "description", "author", "status",
                             "severity", "type", "language", "source_path", "upstream_url",
                             "query")},
        "references": json.loads(r["refs"]),
        "tags": json.loads(r["tags"]),
        "context": json.loads(r["context"]),
        "extra": json.loads(r["extra"]),
        "fully_parsed": bool(r["fully_parsed"]),
        "techniques": [t[0] for t in conn.execute(
            "SELECT technique_id FROM rule_techniques WHERE rule_pk = ? ORDER BY 1", (pk,))],
        "events": [dict(e) for e in conn.execute(
            "SELECT e.* FROM rule_events re JOIN events e ON e.id = re.event"
            " WHERE re.rule_pk = ? GROUP BY e.id ORDER BY e.provider, e.event_id", (pk,))],
        "stages": stages,
        "exclusions": [
            {"field": p["field"], "op": p["op"], "value": p["value"]}
            for p in preds if p["exclusion"] and p["kind"] != "implied"
        ],
        "indicators": indicators,
        "opaque": [dict(o) for o in conn.execute(
            "SELECT stage_idx, text, reason FROM opaque WHERE rule_pk = ?", (pk,))],
        "problems": [dict(p) for p in conn.execute(
            "SELECT path, line, col, message FROM problems WHERE vendor = ? AND rule_id = ?",
            (r["vendor"], r["id"]))],
    }  # fmt: skip


def stats(conn: sqlite3.Connection) -> dict[str, Any]:
    """Per-vendor coverage: rules, with query, fully parsed, with Opaque, problems."""
    vendors: dict[str, dict[str, Any]] = defaultdict(_empty_vendor_stats)
    for r in conn.execute(
        """SELECT vendor, COUNT(*) AS rules, SUM(has_query) AS with_query,
           SUM(fully_parsed) AS fully_parsed, SUM(n_opaque > 0) AS with_opaque
        FROM rules GROUP BY vendor ORDER BY vendor"""
    ):
        counts = dict(zip(r.keys(), r, strict=True))
        vendors[counts.pop("vendor")].update(counts)
    for v, n in conn.execute("SELECT vendor, COUNT(*) FROM problems GROUP BY vendor"):
        vendors[v]["problems"] = n
    # Predicates on event fields; post-aggregation filters (count > 5) compare
    # computed values no schema names, so they are counted apart.
    for v, n, mapped, aggregate in conn.execute(
        """SELECT r.vendor, SUM(p.stage_role = 'events'),
           SUM(p.stage_role = 'events' AND p.field IS NOT NULL AND instr(p.field, ':') = 0),
           SUM(p.stage_role != 'events')
        FROM predicates p JOIN rules r ON r.pk = p.rule_pk WHERE p.kind != 'implied'
        GROUP BY r.vendor"""
    ):
        vendors[v].update(predicates=n, mapped_predicates=mapped, aggregate_predicates=aggregate)
    reasons: dict[str, dict[str, int]] = defaultdict(dict)
    for v, reason, n in conn.execute(
        """SELECT r.vendor, o.reason, COUNT(DISTINCT o.rule_pk) AS n FROM opaque o
        JOIN rules r ON r.pk = o.rule_pk GROUP BY r.vendor, o.reason ORDER BY n DESC"""
    ):
        reasons[v][reason] = n
    for v, rs in reasons.items():
        vendors[v]["opaque"] = rs
    techniques = conn.execute("SELECT COUNT(DISTINCT technique_id) FROM rule_techniques")
    return {"vendors": dict(vendors), "techniques": techniques.fetchone()[0]}


def _empty_vendor_stats() -> dict[str, Any]:
    return {
        "rules": 0,
        "with_query": 0,
        "fully_parsed": 0,
        "with_opaque": 0,
        "problems": 0,
        "predicates": 0,
        "mapped_predicates": 0,
        "aggregate_predicates": 0,
        "opaque": {},
    }


def unmapped_fields(conn: sqlite3.Connection, limit: int = 200) -> list[dict[str, Any]]:
    """Fields without a canonical name (namespaced ``vendor:raw``), by frequency."""
    rows = conn.execute(
        """SELECT r.vendor, p.field_raw, COUNT(*) AS predicates,
           COUNT(DISTINCT p.rule_pk) AS rules
        FROM predicates p JOIN rules r ON r.pk = p.rule_pk
        WHERE p.field_raw IS NOT NULL AND (p.field IS NULL OR instr(p.field, ':') > 0)
        GROUP BY r.vendor, p.field_raw ORDER BY rules DESC, predicates DESC LIMIT ?""",
        (limit,),
    )
    return [dict(r) for r in rows]


def problems(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM problems ORDER BY vendor, path, line")
    return [dict(r) for r in rows]
