"""What changed between two catalogs: rules added, removed and changed (and how),
and per technique the rules gained or lost and the indicators added or removed.

This is how a user reviews an upstream update before adopting it. Rules are
identified by (vendor, id). A rule's *detection* is its predicates (canonical
field, operator, case-folded value, negation, stage role; restated ``implied``
predicates left out) plus its Opaque texts; its *exclusions* are the predicates
under top-level NOTs. A change to neither, nor to techniques, is *metadata only*.
Indicators follow the technique guide: non-negated events-stage predicates with
a value, of the rules tagged with exactly that technique id.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

# Columns whose change is metadata (the query text shows up as predicates too).
METADATA = ("title", "description", "author", "status", "severity", "type", "language",
            "source_path", "upstream_url", "refs", "tags", "query", "collection")  # fmt: skip
_NO_VALUE_OPS = ("exists", "is_null")

Key = tuple[str, str]  # (vendor, id)
Indicator = tuple[str, str, str]  # (field, op, value_key)


@dataclass
class Snapshot:
    """One rule as the diff sees it."""

    meta: dict[str, Any]
    techniques: set[str] = field(default_factory=set)
    detection: set[str] = field(default_factory=set)
    exclusions: set[str] = field(default_factory=set)
    indicators: set[Indicator] = field(default_factory=set)


@dataclass
class Side:
    rules: dict[Key, Snapshot]
    names: dict[str, str]  # technique id -> name
    spelling: dict[Indicator, str]  # an indicator's value as some rule writes it


def _columns(conn: sqlite3.Connection) -> list[str]:
    have = {r[1] for r in conn.execute("PRAGMA table_info(rules)")}
    return [c for c in METADATA if c in have]  # a catalog from before collections


def load(conn: sqlite3.Connection) -> Side:
    cols = _columns(conn)
    rules: dict[int, tuple[Key, Snapshot]] = {}
    for row in conn.execute(f"SELECT pk, vendor, id, {', '.join(cols)} FROM rules"):
        rules[row[0]] = ((row[1], row[2]), Snapshot(dict(zip(cols, row[3:], strict=True))))
    for pk, tid in conn.execute("SELECT rule_pk, technique_id FROM rule_techniques"):
        rules[pk][1].techniques.add(tid)
    spelling: dict[Indicator, str] = {}
    for pk, role, f, op, value, vkey, negated, excl in conn.execute(
        """SELECT rule_pk, stage_role, field, op, value, value_key, negated, exclusion
        FROM predicates WHERE kind != 'implied'"""
    ):
        snap = rules[pk][1]
        text = _pred_text(f, op, value)
        if excl:
            snap.exclusions.add(text)
        else:
            snap.detection.add(f"{role}: {'NOT ' if negated else ''}{text}")
        if role == "events" and not negated and op not in _NO_VALUE_OPS:
            key = (f or "", op, vkey)
            snap.indicators.add(key)
            spelling.setdefault(key, "" if value is None else str(value))
    for pk, text in conn.execute("SELECT rule_pk, text FROM opaque"):
        rules[pk][1].detection.add(f"opaque: {text}")
    names = dict(conn.execute("SELECT id, name FROM techniques").fetchall())
    return Side(dict(rules.values()), names, spelling)


def _pred_text(f: str | None, op: str, value: Any) -> str:
    shown = "" if value is None else f" {json.dumps(value, ensure_ascii=False)}"
    return f"{f or '(keyword)'} {op}{shown}"


def _ref(key: Key, snap: Snapshot) -> dict[str, str]:
    return {"vendor": key[0], "id": key[1], "title": snap.meta.get("title", "")}


def diff(old_conn: sqlite3.Connection, new_conn: sqlite3.Connection) -> dict[str, Any]:
    """``{"added", "removed", "changed", "techniques", "summary"}``."""
    old, new = load(old_conn), load(new_conn)
    added = [_ref(k, new.rules[k]) for k in sorted(new.rules.keys() - old.rules.keys())]
    removed = [_ref(k, old.rules[k]) for k in sorted(old.rules.keys() - new.rules.keys())]
    changed = []
    for k in sorted(old.rules.keys() & new.rules.keys()):
        change = _rule_change(old.rules[k], new.rules[k])
        if change:
            changed.append({**_ref(k, new.rules[k]), **change})
    techniques = _techniques(old, new)
    kinds = defaultdict(int)
    for c in changed:
        kinds[c["kind"]] += 1
    return {
        "summary": {"rules_before": len(old.rules), "rules_after": len(new.rules),
                    "added": len(added), "removed": len(removed), "changed": dict(kinds),
                    "techniques_changed": len(techniques)},
        "added": added,
        "removed": removed,
        "changed": changed,
        "techniques": techniques,
    }  # fmt: skip


def _rule_change(a: Snapshot, b: Snapshot) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for name, before, after in (
        ("predicates", a.detection, b.detection),
        ("exclusions", a.exclusions, b.exclusions),
        ("techniques", a.techniques, b.techniques),
    ):
        if before != after:
            out[f"{name}_added"] = sorted(after - before)
            out[f"{name}_removed"] = sorted(before - after)
    metadata = [c for c in a.meta if c in b.meta and a.meta[c] != b.meta[c]]
    if not out and not metadata:
        return None
    if "predicates_added" in out or "exclusions_added" in out:
        kind = "detection"
    elif "techniques_added" in out:
        kind = "techniques"
    else:
        kind = "metadata only"
    return {"kind": kind, **out, "metadata": metadata}


def _techniques(old: Side, new: Side) -> list[dict[str, Any]]:
    def tagged(side: Side) -> dict[str, dict[Key, Snapshot]]:
        out: dict[str, dict[Key, Snapshot]] = defaultdict(dict)
        for k, snap in side.rules.items():
            for t in snap.techniques:
                out[t][k] = snap
        return out

    before, after = tagged(old), tagged(new)
    rows = []
    for tid in sorted(before.keys() | after.keys()):
        was, now = before.get(tid, {}), after.get(tid, {})
        ind_was = set().union(*(s.indicators for s in was.values()))
        ind_now = set().union(*(s.indicators for s in now.values()))
        row = {
            "id": tid,
            "name": new.names.get(tid) or old.names.get(tid, ""),
            "rules_before": len(was),
            "rules_after": len(now),
            "rules_gained": [_ref(k, now[k]) for k in sorted(now.keys() - was.keys())],
            "rules_lost": [_ref(k, was[k]) for k in sorted(was.keys() - now.keys())],
            "indicators_added": _indicators(ind_now - ind_was, new.spelling),
            "indicators_removed": _indicators(ind_was - ind_now, old.spelling),
        }
        if any(row[k] for k in ("rules_gained", "rules_lost", "indicators_added",
                                "indicators_removed")):  # fmt: skip
            rows.append(row)
    return rows


def _indicators(keys: set[Indicator], spelling: dict[Indicator, str]) -> list[dict[str, str]]:
    return [
        {"field": f or None, "op": op, "value": spelling.get((f, op, vk), vk)}
        for f, op, vk in sorted(keys)
    ]
