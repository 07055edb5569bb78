"""Rules as ``detcat rule --json`` shows them, for many rules at once.

One rule's detail reads a dozen tables (stages, predicates, techniques, events,
near-duplicates, Opaque nodes, problems, corpus reach): about sixteen statements
per rule, one of them a scan of the problems table. The static export's rule
pages read them per table for the rules of a page instead, a dozen statements
per page; ``guide.rule_detail`` (one rule) is a batch of one, so both give the
same answer.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from detcat import jsonio, reach, similar, store
from detcat.guide import sections as guide_sections

# The rule's own columns, as the detail names them.
_COLUMNS = ("vendor", "id", "title", "description", "author", "status", "severity", "type",
            "language", "source_path", "upstream_url", "query", "collection")  # fmt: skip
_NEIGHBOURS = 10  # similar rules shown per rule
_NO_VALUE_OPS = guide_sections.NO_VALUE_OPS

Rows = dict[int, list[sqlite3.Row]]


def is_indicator(negated: Any, op: str, kind: str) -> bool:
    """A positive value test that is not an event selector (Splunk ``sourcetype=``);
    implied ones count: they make ``Image|endswith \\x.exe`` and ``process.name : x.exe``
    one indicator."""
    return not negated and op not in _NO_VALUE_OPS and kind != "selector"


def is_exclusion(exclusion: Any, op: str, kind: str) -> bool:
    """The one definition of an exclusion, for the technique page and the rule page
    alike: a value test under a top-level NOT, as the rule wrote it (an implied
    restatement such as ``process.name eq brave.exe`` is not listed again)."""
    return bool(exclusion) and op not in _NO_VALUE_OPS and kind not in ("implied", "selector")


def details(conn: sqlite3.Connection, pks: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The detail of each rule (by primary key), in the order given."""
    out: dict[int, dict[str, Any]] = {}
    for chunk in store.chunks(list(pks)):
        out.update(_chunk(conn, chunk))
    return out


def _rows(conn: sqlite3.Connection, sql: str, pks: list[int]) -> Iterator[sqlite3.Row]:
    """Rows of ``sql`` with each ``{pks}`` in it bound to the keys, over slices of them."""
    for chunk in store.chunks(pks):
        marks = ",".join("?" * len(chunk))
        yield from conn.execute(sql.format(pks=marks), chunk * sql.count("{pks}"))


def _by_rule(conn: sqlite3.Connection, sql: str, pks: list[int]) -> Rows:
    """Rows of ``sql`` (its first column the rule's pk) per rule, in their order."""
    rows: Rows = defaultdict(list)
    for row in _rows(conn, sql, pks):
        rows[row[0]].append(row)
    return rows


def _chunk(conn: sqlite3.Connection, pks: list[int]) -> Iterator[tuple[int, dict[str, Any]]]:
    """The details of a slice of rules: each table read once for all of them."""
    rules = _by_rule(conn, "SELECT pk, * FROM rules WHERE pk IN ({pks})", pks)
    stages = _by_rule(conn, "SELECT rule_pk, * FROM stages WHERE rule_pk IN ({pks})"
                      " ORDER BY rule_pk, idx", pks)  # fmt: skip
    preds = _by_rule(conn, "SELECT rule_pk, field, op, value_key, value, kind, negated, exclusion"
                     " FROM predicates WHERE rule_pk IN ({pks}) AND stage_role = 'events'"
                     " ORDER BY rule_pk, stage_idx, rowid", pks)  # fmt: skip
    techniques = _by_rule(conn, "SELECT rule_pk, technique_id FROM rule_techniques"
                          " WHERE rule_pk IN ({pks}) ORDER BY 1, 2", pks)  # fmt: skip
    events = _by_rule(conn, "SELECT re.rule_pk, e.* FROM rule_events re JOIN events e"
                      " ON e.id = re.event WHERE re.rule_pk IN ({pks}) GROUP BY re.rule_pk, e.id"
                      " ORDER BY re.rule_pk, e.provider, e.event_id", pks)  # fmt: skip
    opaque = _by_rule(conn, "SELECT rule_pk, stage_idx, text, reason, detail FROM opaque"
                      " WHERE rule_pk IN ({pks}) ORDER BY rule_pk, rowid", pks)  # fmt: skip
    problems = _by_rule(conn, "SELECT r.pk, p.path, p.line, p.col, p.message FROM problems p"
                        " JOIN rules r ON r.vendor = p.vendor AND r.id = p.rule_id"
                        " WHERE r.pk IN ({pks}) ORDER BY r.pk, p.rowid", pks)  # fmt: skip
    signals = {pk: _signals(preds.get(pk, [])) for pk in pks}
    reaches = reach.counts(conn, {i["key"] for _, ind in signals.values() for i in ind})
    near = _neighbours(conn, pks) if similar.available(conn) else None
    for pk in pks:
        r = rules[pk][0]
        exclusions, indicators = signals[pk]
        for i in indicators:
            i["corpus_reach"] = reaches[i.pop("key")]
        yield (
            pk,
            {
                **{k: r[k] for k in _COLUMNS},
                "references": jsonio.loads(r["refs"]),
                "tags": jsonio.loads(r["tags"]),
                "context": jsonio.loads(r["context"]),
                "extra": jsonio.loads(r["extra"]),
                "fully_parsed": bool(r["fully_parsed"]),
                "techniques": [t[1] for t in techniques.get(pk, [])],
                "events": [_without_pk(e) for e in events.get(pk, [])],
                "stages": [_stage(s) for s in stages.get(pk, [])],
                "exclusions": exclusions,
                "indicators": indicators,
                "similar": near[0].get(pk, []) if near else [],
                "cluster": near[1].get(pk) if near else None,
                "opaque": [_without_pk(o) for o in opaque.get(pk, [])],
                "problems": [_without_pk(p) for p in problems.get(pk, [])],
            },
        )


def _without_pk(row: sqlite3.Row) -> dict[str, Any]:
    return dict(zip(row.keys()[1:], tuple(row)[1:], strict=True))


def _stage(s: sqlite3.Row) -> dict[str, Any]:
    return {
        "name": s["name"],
        "role": s["role"],
        "negated": bool(s["negated"]),
        "join_keys": jsonio.loads(s["join_keys"]),
        "params": jsonio.loads(s["params"]),
        "expr": jsonio.loads(s["expr"]),
    }


def _signals(preds: list[sqlite3.Row]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A rule's exclusions and indicators from its events stages' predicates (each
    key once per list; an indicator keeps its reach key until the reach is read)."""
    indicators: list[dict[str, Any]] = []
    exclusions: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()  # (list, key): each key once per list
    for _, field, op, value_key, value, kind, negated, exclusion in preds:
        key = (field, op, value_key)
        if is_exclusion(exclusion, op, kind) and ("x", *key) not in seen:
            seen.add(("x", *key))
            exclusions.append({"field": field, "op": op, "value": value})
        if is_indicator(negated, op, kind) and ("i", *key) not in seen:
            seen.add(("i", *key))
            indicators.append({"field": field, "op": op, "value": value, "kind": kind,
                               "key": key})  # fmt: skip
    return exclusions, indicators


def _neighbours(
    conn: sqlite3.Connection, pks: list[int]
) -> tuple[dict[int, list[dict[str, Any]]], dict[int, int]]:
    """Each rule's stored near-duplicate pairs, best first (as
    ``similar.neighbours``), and its cluster."""
    pairs: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for pk, other, score in _rows(conn, "SELECT a, b, score FROM sim_pairs WHERE a IN ({pks})"
                                  " UNION ALL SELECT b, a, score FROM sim_pairs"
                                  " WHERE b IN ({pks})", pks):  # fmt: skip
        pairs[pk].append((score, other))
    best = {pk: sorted(found, key=lambda so: (-so[0], so[1]))[:_NEIGHBOURS]
            for pk, found in pairs.items()}  # fmt: skip
    others = sorted({o for found in best.values() for _, o in found})
    feats = similar.stored_features(conn, sorted({*best, *others}))
    names = {row[0]: tuple(row)[1:] for row in _rows(
        conn, "SELECT pk, vendor, id, title FROM rules WHERE pk IN ({pks})", others)}  # fmt: skip
    shared = lambda a, b: sorted(set(feats.get(a, {})) & set(feats.get(b, {})))  # noqa: E731
    near = {pk: [similar.neighbour(names[o], s, shared(pk, o)) for s, o in found]
            for pk, found in best.items()}  # fmt: skip
    clusters = dict(map(tuple, _rows(conn, "SELECT rule_pk, cluster FROM sim_clusters"
                                  " WHERE rule_pk IN ({pks})", pks)))  # fmt: skip
    return near, clusters
