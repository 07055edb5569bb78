"""Coverage per ATT&CK technique: PROVISIONAL, until the coverage issue lands.

Today this counts, per technique id a rule is tagged with, the catalog rules (of
one vendor, when asked) tagged with it, and optionally only the rules that read at
least one of the given catalog events (``sysmon:1``, ``security:4688``): "what could
I detect with these log sources". It is not yet an ATT&CK Navigator layer and does
not evaluate rules against a user's events.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from detcat.errors import DetcatError

PROVISIONAL = (
    "provisional: rules tagged with each technique (of the vendor, reading one of the "
    "events, when given); not yet an ATT&CK Navigator layer"
)


class UnknownEvent(DetcatError, LookupError):
    pass


def technique_counts(
    conn: sqlite3.Connection,
    vendor: str | None = None,
    events: list[str] | None = None,
    limit: int = 1000,
) -> dict[str, Any]:
    """Techniques by how many rules are tagged with them, most first."""
    args: list[Any] = []
    where = ["1"]
    if vendor is not None:
        where.append("r.vendor = ?")
        args.append(vendor)
    if events is not None:
        _check_events(conn, events)
        where.append(
            "r.pk IN (SELECT rule_pk FROM rule_events"
            " WHERE event IN (SELECT value FROM json_each(?)))"
        )
        args.append(json.dumps(events))
    rows = conn.execute(
        f"""SELECT rt.technique_id AS id, t.name, r.vendor, COUNT(*) AS n
        FROM rule_techniques rt JOIN rules r ON r.pk = rt.rule_pk
        LEFT JOIN techniques t ON t.id = rt.technique_id
        WHERE {" AND ".join(where)} GROUP BY rt.technique_id, r.vendor""",
        args,
    ).fetchall()
    techniques: dict[str, dict[str, Any]] = {}
    for r in rows:
        row = techniques.setdefault(r["id"], {"id": r["id"], "name": r["name"], "rules": 0,
                                              "by_vendor": {}})  # fmt: skip
        row["rules"] += r["n"]  # a rule has one vendor, so vendor counts add up
        row["by_vendor"][r["vendor"]] = r["n"]
    ranked = sorted(techniques.values(), key=lambda t: (-t["rules"], t["id"]))
    return {
        "vendor": vendor,
        "events": events,
        "total": len(ranked),
        "techniques": ranked[:limit],
        "method": PROVISIONAL,
    }


def _check_events(conn: sqlite3.Connection, events: list[str]) -> None:
    known = {e for (e,) in conn.execute("SELECT id FROM events")}
    unknown = [e for e in events if e not in known]
    if unknown:
        raise UnknownEvent(
            f"unknown catalog event(s): {', '.join(unknown[:10])} (ids look like "
            "'sysmon:1' or 'security:4688')"
        )
