"""Per-technique authoring guides and catalog statistics, over the store.

SQL selects (a technique's rules, events, event-stage predicates, corpus reach);
the field, indicator and exclusion sections come from ``guide.sections``: stored
by the build for the usual guide (all vendors, up to 50 rows), else ranked from
one fetch of the technique's predicates.
Everything here speaks canonical terms only: no vendor-specific branches.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from typing import Any

from detcat import jsonio, reach, similar
from detcat.errors import DetcatError
from detcat.guide import rules as rule_data
from detcat.guide import sections as guide_sections
from detcat.normalize import fold_value
from detcat.normalize.fields import vendor_specific_reason
from detcat.sources import registry

_NO_VALUE_OPS = guide_sections.NO_VALUE_OPS


class UnknownTechnique(DetcatError, LookupError):
    pass


class UnknownRule(DetcatError, LookupError):
    pass


def _family(technique_id: str) -> tuple[str, str]:
    """SQL parameters selecting a technique and, for a parent, its sub-techniques
    (ids ``T1059.000`` to ``T1059.999`` sort between ``T1059.`` and ``T1059/``)."""
    tid = technique_id.strip().upper()
    return tid, (tid + ".") if "." not in tid else tid


# Rules tagged with the technique or one of its sub-techniques (of one vendor, when
# :vendor is not null).
_IN_FAMILY = """(technique_id = :tid OR (technique_id > :sub AND technique_id < :tid || '/'))
    AND (:vendor IS NULL OR rule_pk IN (SELECT pk FROM rules WHERE vendor = :vendor))"""
_HERE = f"""
here AS (SELECT DISTINCT rule_pk FROM rule_techniques WHERE {_IN_FAMILY})"""


def technique_guide(
    conn: sqlite3.Connection,
    technique_id: str,
    limit: int | None = 50,
    vendor: str | None = None,
) -> dict[str, Any]:
    """The authoring guide of one technique (DESIGN.md, "the page it must produce"),
    from the rules of every vendor or of ``vendor`` only; ``limit`` rows per
    section, None for all."""
    tid, sub = _family(technique_id)
    header = _technique_header(conn, tid)
    args = {"tid": tid, "sub": sub, "limit": limit, "vendor": vendor}
    rules, refs = _rules(conn, args)
    counts = Counter(r["vendor"] for r in rules)
    vendors = {v: counts[v] for v in registry.display_order({*registry.names(), *counts})}
    compact = None if vendor else guide_sections.stored(conn, tid, refs, limit)
    if compact is None:  # one vendor's rules, or more rows than a build stores
        predicates = guide_sections.Predicates(_event_predicates(conn, args), refs)
        compact = predicates.sections(refs, limit)
    sections = guide_sections.expand(compact, refs)
    readers = _readers(conn, refs)
    return {
        "technique": header,
        "vendors": vendors,
        "rules": rules,
        "events": _events(conn, readers),
        "fields": sections["fields"],
        "field_count": sections["field_count"],
        "indicators": _with_reach(conn, sections["indicators"]),
        "indicator_count": sections["indicator_count"],
        "exclusions": [_without_key(row) for row in sections["exclusions"]],
        "exclusion_count": sections["exclusion_count"],
        "attack_detection": attack_detection(conn, args, readers),
    }


Readers = dict[str, dict[int, str]]  # event -> the rules reading it -> their vendor


def _readers(conn: sqlite3.Connection, refs: dict[int, guide_sections.Ref]) -> Readers:
    """The events the rules ``refs`` read, each with those rules: one query
    serves the events table and the detection-strategy coverage."""
    out: Readers = {}
    for event, pk in conn.execute(
        "SELECT event, rule_pk FROM rule_events WHERE rule_pk IN (SELECT value FROM json_each(?))",
        (json.dumps(list(refs)),),
    ):
        out.setdefault(event, {})[pk] = refs[pk][0]
    return out


def attack_detection(
    conn: sqlite3.Connection, args: dict[str, Any], readers: Readers
) -> dict[str, Any]:
    """What ATT&CK's detection strategies for this exact technique watch: each
    analytic's log sources, mapped to catalog events where they map, marked
    covered when a rule of the technique (sub-techniques included; ``readers``)
    reads one of those events. ``gap``: mapped log sources no such rule reads."""
    analytics: dict[str, dict[str, Any]] = {}
    for row in conn.execute(
        """SELECT a.id, a.strategy_id, a.strategy, a.platforms, a.description,
           s.name, s.channel, s.events
        FROM analytics a JOIN analytic_sources s ON s.analytic_id = a.id
        WHERE a.technique_id = :tid ORDER BY a.strategy_id, a.id, s.idx""",
        args,
    ):
        a = analytics.setdefault(row["id"], {
            "id": row["id"], "strategy_id": row["strategy_id"], "strategy": row["strategy"],
            "platforms": jsonio.loads(row["platforms"]), "description": row["description"],
            "log_sources": [],
        })  # fmt: skip
        events = jsonio.loads(row["events"])
        vendors = registry.display_order({v for e in events for v in readers.get(e, {}).values()})
        a["log_sources"].append({"name": row["name"], "channel": row["channel"],
                                 "events": events, "covered": bool(vendors),
                                 "vendors": vendors})  # fmt: skip
    return {
        "summary": _detection_summary(analytics),
        "gap": _refs(analytics, "gap"),
        "unmapped": _refs(analytics, "unmapped"),
        "analytics": list(analytics.values()),
    }


def _ref_state(src: dict[str, Any]) -> str:
    return "unmapped" if not src["events"] else ("covered" if src["covered"] else "gap")


def _refs(analytics: dict[str, dict[str, Any]], state: str) -> list[dict[str, Any]]:
    """Distinct log-source references in one state, with the analytics naming them."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for a in analytics.values():
        for src in a["log_sources"]:
            if _ref_state(src) == state:
                item = out.setdefault((src["name"], src["channel"]), {
                    "name": src["name"], "channel": src["channel"], "events": src["events"],
                    "analytics": []})  # fmt: skip
                item["analytics"].append(a["id"])
    return list(out.values())


def _detection_summary(analytics: dict[str, dict[str, Any]]) -> dict[str, int]:
    states = Counter(_ref_state(s) for a in analytics.values() for s in a["log_sources"])
    return {"analytics": len(analytics), "log_sources": sum(states.values()),
            "mapped": states["covered"] + states["gap"], "covered": states["covered"]}  # fmt: skip


def _technique_header(conn: sqlite3.Connection, tid: str) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM techniques WHERE id = ?", (tid,)).fetchone()
    if row is None:
        raise UnknownTechnique(f"unknown technique {tid}")
    tactic_names = dict(conn.execute("SELECT shortname, name FROM tactics").fetchall())
    # Sub-technique ids sort between "T1059." and "T1059/" (``_family``): the id
    # range reads them off the primary key (``parent`` has no index).
    subs = conn.execute(
        "SELECT id, name FROM techniques WHERE id > ? || '.' AND id < ? || '/'"
        " AND parent = ? AND revoked = 0 ORDER BY id",
        (tid, tid, tid),
    ).fetchall()
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "tactics": [tactic_names.get(t, t) for t in jsonio.loads(row["tactics"])],
        "subtechniques": [{"id": s["id"], "name": s["name"]} for s in subs],
        "parent": row["parent"],
        "url": "https://attack.mitre.org/techniques/" + row["id"].replace(".", "/") + "/",
        "revoked": bool(row["revoked"]),
        "deprecated": bool(row["deprecated"]),
        "known": bool(row["known"]),
    }


def _rules(
    conn: sqlite3.Connection, args: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[int, tuple[str, str]]]:
    """The technique's rules, and (vendor, id) by rule key for the tallies."""
    rows = conn.execute(
        f"""SELECT r.pk, r.vendor, r.id, r.title, r.language, r.severity, r.fully_parsed,
               group_concat(rt.technique_id, ' ') AS techniques
        FROM (SELECT * FROM rule_techniques WHERE {_IN_FAMILY}) rt
        JOIN rules r ON r.pk = rt.rule_pk
        GROUP BY r.pk ORDER BY r.title""",
        args,
    ).fetchall()
    vendors = registry.display_order({r["vendor"] for r in rows})
    rows.sort(key=lambda r: vendors.index(r["vendor"]))  # stable: titles stay sorted
    refs = {r["pk"]: (r["vendor"], r["id"]) for r in rows}
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
    ], refs


def _events(conn: sqlite3.Connection, readers: Readers) -> list[dict[str, Any]]:
    """The catalog events the rules read, the most read first, each with how many
    rules read it and which vendors' (in page order)."""
    rows = conn.execute(
        "SELECT id, provider, event_id, title FROM events"
        " WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(list(readers)),),
    ).fetchall()
    out = [{**dict(r), "rules": len(readers[r["id"]]),
            "vendors": registry.display_order(set(readers[r["id"]].values()))}
           for r in rows]  # fmt: skip
    # (provider, event id) names one catalog event: the order leaves no ties.
    out.sort(key=lambda e: (-e["rules"], e["provider"], e["event_id"]))
    return out


def _event_predicates(conn: sqlite3.Connection, args: dict[str, Any]) -> list[guide_sections.Row]:
    """The predicates of events stages of the technique's rules: the one query the
    field and indicator sections aggregate (a few thousand rows at most)."""
    cur = conn.cursor()
    cur.row_factory = None  # plain tuples: this is the hot loop of a guide
    return cur.execute(
        f"""WITH {_HERE}
        SELECT {guide_sections.ROW_COLUMNS}
        FROM predicates p JOIN here USING (rule_pk) WHERE p.stage_role = 'events'""",
        args,
    ).fetchall()


def _with_reach(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Indicator rows with their corpus reach, read now: it counts every rule."""
    reaches = corpus_reaches(conn, [tuple(row["key"]) for row in rows])
    out = []
    for row in rows:
        item = _without_key(row)
        item["corpus_reach"] = reaches[tuple(row["key"])]
        item["specific"] = item["corpus_reach"] == item["rules"]
        out.append(item)
    return out


def _without_key(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "key"}


def corpus_reach(conn: sqlite3.Connection, field: str | None, op: str, key: str) -> int:
    """Rules anywhere in the catalog checking the same (field, op, value)."""
    return reach.count(conn, field, op, key)


corpus_reaches = reach.counts  # ``corpus_reach`` of each of several keys


def indicator_reach(
    conn: sqlite3.Connection,
    value: str,
    field: str | None = None,
    op: str | None = None,
    limit: int = 20,
) -> dict[str, Any]:
    """Rules anywhere checking ``value`` (case-folded), on ``field`` with ``op`` when
    given, else on any field or operator: ``reach`` is ``corpus_reach`` summed over
    the (field, op) pairs, counting each rule once. ``by_field`` ranks the pairs."""
    rows = conn.execute(
        """SELECT r.vendor, r.id, r.title, p.field, p.op,
               (SELECT group_concat(technique_id, ' ') FROM rule_techniques t
                WHERE t.rule_pk = r.pk) AS techniques
        FROM predicates p JOIN rules r ON r.pk = p.rule_pk
        WHERE p.value_key = :key AND (:field IS NULL OR p.field = :field)
          AND (:op IS NULL OR p.op = :op) AND p.negated = 0 AND p.stage_role = 'events'
        GROUP BY r.pk, p.field, p.op ORDER BY r.vendor, r.title, r.id""",
        {"key": fold_value(value), "field": field, "op": op},
    ).fetchall()
    rules: dict[tuple[str, str], dict[str, Any]] = {}
    pairs: dict[tuple[str | None, str], set[tuple[str, str]]] = defaultdict(set)
    for r in rows:
        ref = (r["vendor"], r["id"])
        pairs[(r["field"], r["op"])].add(ref)
        rules.setdefault(ref, {
            "vendor": r["vendor"], "id": r["id"], "title": r["title"],
            "techniques": sorted((r["techniques"] or "").split()),
        })  # fmt: skip
    by_vendor = Counter(v for v, _ in rules)
    ranked = sorted(pairs, key=lambda k: (-len(pairs[k]), k[0] or "", k[1]))
    return {
        "value": value,
        "field": field,
        "op": op,
        "reach": len(rules),
        "by_vendor": dict(sorted(by_vendor.items(), key=lambda kv: (-kv[1], kv[0]))),
        "by_field": [{"field": f, "op": o, "rules": len(pairs[(f, o)])} for f, o in ranked[:limit]],
        "by_field_count": len(pairs),
        "rules": list(rules.values())[:limit],
    }


def rule_detail(conn: sqlite3.Connection, vendor: str | None, rule_id: str) -> list[dict[str, Any]]:
    """Every rule with this id (optionally of one vendor), with stages and indicators."""
    sql = "SELECT pk FROM rules WHERE id = ?" + (" AND vendor = ?" if vendor else "")
    pks = [pk for (pk,) in conn.execute(sql, (rule_id, vendor) if vendor else (rule_id,))]
    found = rule_data.details(conn, pks)
    return [found[pk] for pk in pks]


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
    refs, mapped = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(events != '[]'), 0) FROM analytic_sources"
    ).fetchone()
    out = {"vendors": dict(vendors), "techniques": techniques.fetchone()[0],
           "attack_log_sources": {"references": refs, "mapped": mapped}}  # fmt: skip
    if similar.available(conn):  # computed by `detcat build` or on first use
        out["near_duplicates"] = similar.cluster_summary(conn)
    return out


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
    """Fields without a canonical name (namespaced ``vendor:raw``), by frequency, with
    the reason when the tables list the field as vendor-specific."""
    rows = conn.execute(
        """SELECT r.vendor, p.field_raw, COUNT(*) AS predicates,
           COUNT(DISTINCT p.rule_pk) AS rules, MAX(p.kind = 'derived') AS computed
        FROM predicates p JOIN rules r ON r.pk = p.rule_pk
        WHERE p.field_raw IS NOT NULL AND (p.field IS NULL OR instr(p.field, ':') > 0)
        GROUP BY r.vendor, p.field_raw ORDER BY rules DESC, predicates DESC LIMIT ?""",
        (limit,),
    )
    out = []
    for r in rows:
        kind = "derived" if r["computed"] else ""
        out.append({**dict(r), "reason": vendor_specific_reason(r["vendor"], r["field_raw"], kind)})
    return out


def problems(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM problems ORDER BY vendor, path, line")
    return [dict(r) for r in rows]
