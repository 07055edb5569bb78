"""ATT&CK Navigator layers (layer format 4.5) from the catalog.

One entry per technique id a rule is tagged with, scored by the rules tagged
with that exact id (a sub-technique is its own entry, as Navigator expects; the
parent's entry does not add its sub-techniques' rules). With events, the score
counts the rules runnable on them (see ``coverage``), and techniques whose rules
are all missing an event stay in the layer with score 0, so the gaps show.
Revoked, deprecated and unknown technique ids are left out (Navigator cannot
place them); the layer's description says how many.
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from detcat import coverage
from detcat.errors import DetcatError

LAYER_VERSION = "4.5"
NAVIGATOR_VERSION = "5.1.0"  # the spec asks for at least 4.9.0
DOMAIN = "enterprise-attack"
SCORES = ("rules", "runnable", "vendors")
GRADIENT = ["#f5f9ff", "#8ec5ff", "#1f5fbf"]  # few rules -> many rules


class BadScore(DetcatError, ValueError):
    pass


def layer(
    conn: sqlite3.Connection,
    *,
    vendors: Sequence[str] | None = None,
    collection: str | None = None,
    events: Sequence[str] = (),
    score: str | None = None,
) -> dict[str, Any]:
    """The layer document; ``score`` defaults to ``runnable`` with events, else
    ``rules``. Unknown event ids raise ``coverage.UnknownEvent``."""
    score = score or ("runnable" if events else "rules")
    if score not in SCORES:
        raise BadScore(f"unknown score {score!r}: one of {', '.join(SCORES)}")
    cat = coverage.load(conn, vendors, collection)
    have = frozenset(coverage.check_events(cat, events))
    placeable = _placeable(conn)
    tagged: dict[str, Counter[str]] = defaultdict(Counter)
    ready: dict[str, Counter[str]] = defaultdict(Counter)
    for r in cat.rules:
        ok = r.runnable(have)
        for tid in r.techniques:
            tagged[tid][r.vendor] += 1
            ready[tid][r.vendor] += ok
    entries = []
    for tid in sorted(t for t in tagged if t in placeable):
        by_vendor = ready[tid] if have else tagged[tid]
        value = {
            "rules": sum(tagged[tid].values()),
            "runnable": sum(ready[tid].values()),
            "vendors": sum(1 for n in by_vendor.values() if n),
        }[score]
        comment = _comment(tagged[tid], ready[tid], bool(have))
        entries.append({"techniqueID": tid, "score": value, "comment": comment, "enabled": True})
    left_out = sorted(t for t in tagged if t not in placeable)
    top = max((e["score"] for e in entries), default=0)
    versions = {"navigator": NAVIGATOR_VERSION, "layer": LAYER_VERSION}
    if attack_version := _meta(conn, "attack_version"):
        versions = {"attack": attack_version, **versions}
    return {
        "name": _name(score, have, vendors, collection),
        "versions": versions,
        "domain": DOMAIN,
        "description": _description(score, bool(have), len(cat.rules), left_out),
        "sorting": 3,  # descending by score
        "layout": {"layout": "side", "showID": True, "showName": True,
                   "showAggregateScores": False, "expandedSubtechniques": "annotated"},
        "hideDisabled": False,
        "techniques": entries,
        "gradient": {"colors": GRADIENT, "minValue": 0, "maxValue": max(top, 1)},
        "legendItems": [],
        "metadata": [{"name": "generator", "value": "detcat"},
                     *([{"name": "events", "value": ", ".join(sorted(have))}] if have else [])],
    }  # fmt: skip


def _name(
    score: str, events: frozenset[str], vendors: Sequence[str] | None, collection: str | None
) -> str:
    what = {"rules": "rules", "runnable": "runnable rules", "vendors": "vendors"}[score]
    scope = ", ".join([*(vendors or ()), *([collection] if collection else [])])
    on = f" on {len(events)} event kinds" if events else ""
    return f"detcat: {what} per technique{on}" + (f" ({scope})" if scope else "")


def _description(score: str, events: bool, n_rules: int, left_out: list[str]) -> str:
    text = f"Score = {score} per technique id (exact tag), from {n_rules} catalog rules."
    if events:
        text += " Runnable: every events stage of the rule reads one of the chosen events."
    if left_out:
        text += f" Left out (not placeable in ATT&CK): {', '.join(left_out)}."
    return text


def _comment(tagged: Counter[str], ready: Counter[str], events: bool) -> str:
    parts = []
    for vendor, n in sorted(tagged.items()):
        parts.append(f"{vendor} {ready[vendor]}/{n} runnable" if events else f"{vendor} {n}")
    return "rules: " + ", ".join(parts)


def _placeable(conn: sqlite3.Connection) -> set[str]:
    """Technique ids of the catalog's ATT&CK bundle that Navigator can show."""
    sql = "SELECT id FROM techniques WHERE known = 1 AND revoked = 0 AND deprecated = 0"
    return {r[0] for r in conn.execute(sql)}


def _meta(conn: sqlite3.Connection, key: str) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else ""
