"""Coverage for the user's own log sources: which techniques their events can
detect, and which one more event would unlock the most.

A rule is *runnable* on a set of catalog events when every one of its events
stages (the stages that read events, as opposed to aggregations over them) can
read at least one of the user's events. The events of one stage are
alternatives: a Sigma ``process_creation`` stage reads Sysmon 1 *or* Security
4688. A multi-stage rule (an EQL sequence, a YARA-L rule over two event
variables, a Sigma correlation) needs every stage covered, so it counts as
runnable only when all the event kinds it joins are collected. A rule with an
events stage detcat could not tie to any catalog event is never runnable (we
cannot tell what it reads); ``summary.rules_without_events`` counts them.

Techniques are counted by the exact id a rule is tagged with (a sub-technique is
its own entry, as in ATT&CK Navigator); ``family_cells`` rolls them up to the
parent techniques of the matrix. Everything here reads canonical catalog facts
only: no vendor-specific branches.
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detcat.errors import DetcatError


class UnknownEvent(DetcatError, ValueError):
    """An event id the catalog's event dictionary does not know."""


@dataclass(frozen=True, slots=True)
class RuleFacts:
    pk: int
    vendor: str
    id: str
    title: str
    collection: str
    techniques: tuple[str, ...]
    stages: tuple[frozenset[str], ...]  # per events stage: the catalog events it can read

    def runnable(self, have: frozenset[str] | set[str]) -> bool:
        return bool(self.stages) and all(s & have for s in self.stages)

    def missing(self, have: frozenset[str] | set[str]) -> list[frozenset[str]]:
        """The events stages none of whose events are collected."""
        return [s for s in self.stages if not s & have]


@dataclass
class Catalog:
    """The facts coverage needs, read once from the store (optionally narrowed to
    some vendors or one collection)."""

    rules: list[RuleFacts]
    names: dict[str, str]  # technique id -> name
    events: dict[str, dict[str, str]]  # event id -> {"provider", "title"}
    parents: dict[str, str | None] = field(default_factory=dict)


def rule_filter(vendors: Sequence[str] | None, collection: str | None) -> tuple[str, list[Any]]:
    """A WHERE clause (and its parameters) over ``rules`` for the vendor and
    collection options every coverage-like command takes."""
    clauses, args = [], []
    if vendors:
        clauses.append(f"vendor IN ({','.join('?' * len(vendors))})")
        args += list(vendors)
    if collection:
        clauses.append("collection = ?")
        args.append(collection)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def load(
    conn: sqlite3.Connection,
    vendors: Sequence[str] | None = None,
    collection: str | None = None,
) -> Catalog:
    where, args = rule_filter(vendors, collection)
    rows = conn.execute(f"SELECT pk, vendor, id, title, collection FROM rules{where}", args)
    base = {r[0]: tuple(r) for r in rows}
    techniques: dict[int, list[str]] = defaultdict(list)
    for pk, tid in conn.execute("SELECT rule_pk, technique_id FROM rule_techniques ORDER BY 2"):
        if pk in base:
            techniques[pk].append(tid)
    stages: dict[int, dict[int, set[str]]] = defaultdict(dict)
    for pk, idx in conn.execute("SELECT rule_pk, idx FROM stages WHERE role = 'events'"):
        if pk in base:
            stages[pk][idx] = set()
    for pk, event, idx in conn.execute("SELECT rule_pk, event, stage_idx FROM rule_events"):
        if idx in stages.get(pk, {}):
            stages[pk][idx].add(event)
    rules = [
        RuleFacts(pk, vendor, rid, title, coll, tuple(techniques[pk]),
                  tuple(frozenset(s) for _, s in sorted(stages[pk].items())))
        for pk, (_, vendor, rid, title, coll) in base.items()
    ]  # fmt: skip
    names, parents = {}, {}
    for tid, name, parent in conn.execute("SELECT id, name, parent FROM techniques"):
        names[tid], parents[tid] = name, parent
    events = {
        eid: {"provider": provider, "title": title}
        for eid, provider, title in conn.execute("SELECT id, provider, title FROM events")
    }
    return Catalog(rules, names, events, parents)


def check_events(cat: Catalog, events: Iterable[str]) -> list[str]:
    """The ids as the catalog spells them (case-insensitively), in the order given;
    an unknown id raises UnknownEvent naming close ones."""
    folded = {e.casefold(): e for e in cat.events}
    out: list[str] = []
    for raw in events:
        eid = folded.get(raw.strip().casefold())
        if eid is None:
            provider = raw.split(":", 1)[0].casefold()
            near = sorted(e for e in cat.events if e.casefold().startswith(provider + ":"))[:8]
            hint = (f"known {provider} events: {', '.join(near)}" if near
                    else "an event id is <provider>:<event>, as on the event pages")  # fmt: skip
            raise UnknownEvent(f"unknown event {raw!r} ({hint})")
        out.append(eid)
    return list(dict.fromkeys(out))


def coverage(cat: Catalog, events: Iterable[str]) -> dict[str, Any]:
    """The ``detcat coverage --json`` document (see the module docstring)."""
    have = frozenset(events)
    runnable = {r.pk for r in cat.rules if r.runnable(have)}
    techniques = _techniques(cat, runnable)
    covered = {t["id"] for t in techniques if t["runnable"]}
    unlock = unlock_events(cat, have, runnable, covered)
    return {
        "events": sorted(have),
        "summary": {
            "rules": len(cat.rules),
            "runnable_rules": len(runnable),
            "rules_without_events": sum(not r.stages or not all(r.stages) for r in cat.rules),
            "techniques": len(techniques),
            "runnable_techniques": len(covered),
        },
        "techniques": techniques,
        "unlock": unlock,
    }


def report(
    conn: sqlite3.Connection,
    events: Iterable[str],
    vendors: Sequence[str] | None = None,
    collection: str | None = None,
) -> tuple[Catalog, dict[str, Any]]:
    """The catalog facts and the coverage document for ``events`` (what the CLI
    prints and the web twin returns); with a collection, ``adopt`` lists the
    techniques only the other collections cover."""
    cat = load(conn, vendors, collection)
    data = coverage(cat, check_events(cat, events))
    if collection:
        others = load(conn, vendors)
        others.rules = [r for r in others.rules if r.collection != collection]
        data["adopt"] = adopt(cat, others)
    return cat, data


def _techniques(cat: Catalog, runnable: set[int]) -> list[dict[str, Any]]:
    rules: dict[str, Counter[str]] = defaultdict(Counter)
    ready: dict[str, Counter[str]] = defaultdict(Counter)
    for r in cat.rules:
        for tid in r.techniques:
            rules[tid][r.vendor] += 1
            ready[tid][r.vendor] += r.pk in runnable
    return [
        {
            "id": tid,
            "name": cat.names.get(tid, ""),
            "rules": sum(rules[tid].values()),
            "runnable": sum(ready[tid].values()),
            "vendors": {
                v: {"rules": n, "runnable": ready[tid][v]} for v, n in sorted(rules[tid].items())
            },
        }  # fmt: skip
        for tid in sorted(rules)
    ]


def unlock_events(
    cat: Catalog, have: frozenset[str], runnable: set[int], covered: set[str]
) -> list[dict[str, Any]]:
    """Each event not collected that would make rules runnable on its own, with
    the techniques that would get their first runnable rule; best first.

    A rule is unlocked by an event when that event alone covers all its missing
    stages (a sequence missing two event kinds is unlocked by neither)."""
    gained_rules: dict[str, int] = Counter()
    gained_techniques: dict[str, set[str]] = defaultdict(set)
    for r in cat.rules:
        if r.pk in runnable or not r.stages:
            continue
        missing = r.missing(have)
        for event in frozenset.intersection(*missing):
            gained_rules[event] += 1
            gained_techniques[event].update(t for t in r.techniques if t not in covered)
    out = [
        {
            "event": e,
            "title": cat.events.get(e, {}).get("title", ""),
            "techniques_gained": len(gained_techniques[e]),
            "rules_gained": n,
            "techniques": sorted(gained_techniques[e]),
        }
        for e, n in gained_rules.items()
    ]
    out.sort(key=lambda u: (-u["techniques_gained"], -u["rules_gained"], u["event"]))
    return out


def event_choices(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """The catalog events some rule reads, with how many rules, grouped by
    provider: what a user can tick. Providers with the most rules come first,
    their events in dictionary order."""
    groups: dict[str, dict[str, Any]] = {}
    for eid, provider, title, n in conn.execute(
        """SELECT e.id, e.provider, e.title, COUNT(DISTINCT re.rule_pk)
        FROM events e JOIN rule_events re ON re.event = e.id
        GROUP BY e.id ORDER BY e.rowid"""
    ):
        group = groups.setdefault(provider, {"provider": provider, "rules": 0, "events": []})
        group["events"].append({"id": eid, "title": title, "rules": n})
        group["rules"] += n
    return sorted(groups.values(), key=lambda g: (-g["rules"], g["provider"]))


def family_cells(cat: Catalog, events: Iterable[str]) -> dict[str, dict[str, int]]:
    """Per parent technique (the matrix cells): rules tagged with it or a
    sub-technique, and how many of them are runnable."""
    have = frozenset(events)
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"rules": 0, "runnable": 0})
    for r in cat.rules:
        families = {cat.parents.get(t) or t.split(".")[0] for t in r.techniques}
        ok = r.runnable(have)
        for fam in families:
            out[fam]["rules"] += 1
            out[fam]["runnable"] += ok
    return dict(out)


def adopt(mine: Catalog, others: Catalog) -> list[dict[str, Any]]:
    """Techniques other collections' rules cover and ``mine`` does not: candidates
    to adopt, with the rules that cover them elsewhere."""
    have = {t for r in mine.rules for t in r.techniques}
    by_technique: dict[str, list[RuleFacts]] = defaultdict(list)
    for r in others.rules:
        for t in r.techniques:
            if t not in have:
                by_technique[t].append(r)
    return [
        {
            "id": t,
            "name": others.names.get(t, ""),
            "rules": len(rs),
            "collections": dict(Counter(r.collection for r in rs)),
            "vendors": dict(Counter(r.vendor for r in rs)),
        }
        for t, rs in sorted(by_technique.items(), key=lambda i: (-len(i[1]), i[0]))
    ]


# -- the user's events ---------------------------------------------------------------


@dataclass
class EventsFile:
    events: list[str]
    documents: int = 0  # JSON documents read (0: the file listed ids)
    recognized: dict[str, int] = field(default_factory=dict)
    unrecognized: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"documents": self.documents, "recognized": self.recognized,
                "unrecognized": self.unrecognized}  # fmt: skip


def read_events_file(path: Path) -> EventsFile:
    """Event ids from a file: one id per line (blank lines and ``#`` comments
    skipped), or a JSON / JSON-lines sample of the user's own events whose kinds
    are recognized as ``detcat match`` recognizes them."""
    from detcat.match.events import canonical_event
    from detcat.match.reading import EventFileError, read_documents

    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise EventFileError(f"{path}: cannot read: {e}") from None
    if text.lstrip()[:1] not in ("{", "["):
        lines = (ln.split("#", 1)[0].strip() for ln in text.splitlines())
        return EventsFile([ln for ln in lines if ln])
    seen: Counter[str] = Counter()
    out = EventsFile([])
    for label, doc in read_documents(path):
        out.documents += 1
        kind = canonical_event(label, doc).catalog_id
        if kind:
            seen[kind] += 1
        else:
            out.unrecognized += 1
    out.recognized = dict(seen.most_common())
    out.events = list(out.recognized)
    return out
