"""The ranked sections of a technique guide (fields, indicators, exclusions), and
their first rows stored per technique at build time.

Ranking everything a technique's rules check is most of a guide's time (T1219:
3,800 predicates, 2,500 indicators; T1059: 40,000 predicates). So every build
stores, per technique family (a technique with its sub-techniques), the first
``HEAD`` rows of each section and the section sizes (table
``technique_sections``); a guide of at most ``HEAD`` rows over all vendors reads
them, and any other guide (one vendor, more rows) ranks live with the same code
(``Predicates.sections``), so both give the same rows.

Corpus reach is not stored: it counts every rule of the catalog, so a change to
any rule changes it. Guides join it at read time (``reach.py``).

Rules are stored as positions in the family's rules in page order (vendor, then
id), with a digest of those rules: a guide whose rules differ (an updated
catalog, another family definition) ranks live instead.

Incremental builds: a family's rows depend only on its rules' event-stage
predicates and their (vendor, id). ``refresh`` recomputes the families whose
rules changed (their digest) or hold a rule this build wrote, and drops the
families no rule belongs to any more. Since a family's rows depend on nothing
else, a build shares the families among worker processes (``refreshing``),
each ranking its share from those rules' rows alone.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain, count, groupby
from operator import itemgetter
from typing import Any

from detcat import jsonio
from detcat.guide.text import GUIDE
from detcat.sources import registry
from detcat.tables import load
from detcat.workers import workers_pool

HEAD = 50  # rows stored per section: the web page's and the CLI's default
VERSION = "1"  # bump when what a stored row holds, or how it is ranked, changes
# Operators that say a field is present or absent carry no indicator value.
NO_VALUE_OPS = ("exists", "is_null")
_SAMPLES = 5

Key = tuple[str | None, str, str]  # (canonical field or None, op, value_key)
Ref = tuple[str, str]  # (vendor, rule id)
# field, field_raw, op, value, value_key, negated, exclusion, kind, rule_pk
Row = tuple[str | None, str | None, str, Any, str, int, int, str, int]
ROW_COLUMNS = (
    "p.field, p.field_raw, p.op, p.value, p.value_key, p.negated, p.exclusion, p.kind, p.rule_pk"
)
# A compact row: (field, op, value_key, value shown, rule positions, implied, selector).
Compact = list[Any]

_KEY = itemgetter(0, 2, 4)  # a row's indicator key
_FIELD_OP = itemgetter(0, 2)
_SAMPLE = itemgetter(0, 4)
_FIELD = itemgetter(0)


class Predicates:
    """Event-stage predicate rows taken apart per rule, so that the sections of any
    set of those rules are counted by merging per-rule sets (``Counter`` over
    chained sets runs in C), not by walking every row again for every technique
    the rule belongs to."""

    def __init__(self, rows: list[Row], refs: dict[int, Ref]):
        self.refs = refs
        self.rows = rows
        # Tuples (indicator keys, (field, vendor, raw), (field, op), (field, vkey)) are
        # counted as small ints: hashing a tuple hashes its items every time.
        ids: dict[tuple[Any, ...], int] = {}
        fresh = count()
        self.intern: Callable[[Iterable[tuple[Any, ...]]], Iterator[int]] = lambda tuples: map(
            ids.setdefault, tuples, fresh
        )
        # rule key -> [fields, [alias id...], {(field, op) id}, {(field, vkey) id},
        #              {indicator key id}, {written (not only implied) key id}, {exclusion key id}]
        self.parts: dict[int, list[Any]] = {}
        # The rules and spellings of the keys some guide shows, filled on demand.
        self.spellings: dict[tuple[str, Any], dict[int, list[Any]]] = {}
        rows.sort(key=itemgetter(8))
        for pk, group in groupby(rows, itemgetter(8)):
            self.parts[pk] = self._parts(list(group), refs[pk][0])
        self.tuples = {i: t for t, i in ids.items()}

    def _parts(self, rows: list[Row], vendor: str) -> list[Any]:
        """One rule's contribution to the sections."""
        fielded = [r for r in rows if r[0] is not None and r[7] != "implied"]
        valued = [r for r in fielded if not r[5] and r[3] is not None]
        tested = [r for r in rows if r[2] not in NO_VALUE_OPS and r[7] != "selector"]
        positive = [r for r in tested if not r[5]]  # guide.rules.is_indicator
        excluded = [r for r in tested if r[6] and r[7] != "implied"]  # guide.rules.is_exclusion
        ids = self.intern
        return [
            set(map(_FIELD, fielded)),
            list(ids([(r[0], vendor, r[1]) for r in fielded])),
            set(ids(map(_FIELD_OP, fielded))),
            set(ids(map(_SAMPLE, valued))),
            set(ids(map(_KEY, positive))),
            set(ids(map(_KEY, [r for r in positive if r[7] != "implied"]))),
            set(ids(map(_KEY, excluded))),
        ]

    def sections(self, members: Iterable[int], limit: int | None) -> dict[str, Any]:
        """The three sections of the rules ``members``, ``limit`` rows each (None:
        all), compact (``expand`` makes guide rows of them)."""
        ranked = self.rank(members, limit)
        self.index_spellings([ranked])
        return self.details(ranked)

    def rank(self, members: Iterable[int], limit: int | None) -> dict[str, Any]:
        """What the sections show, before the rules and spellings of each row."""
        members = set(members)
        parts = [self.parts[pk] for pk in sorted(members) if pk in self.parts]
        field_rules = Counter(chain.from_iterable(p[0] for p in parts))
        order = sorted(field_rules, key=lambda f: (-field_rules[f], f))
        # Ties among indicators go to the fields most filtered (all of them).
        field_rank = {f: i for i, f in enumerate(order)}
        indicators = Counter(chain.from_iterable(p[4] for p in parts))
        exclusions = Counter(chain.from_iterable(p[6] for p in parts))
        written = set().union(*(p[5] for p in parts))
        shown = order[:limit]
        top = _top(indicators, self.tuples, field_rank, limit, screen=True)
        return {
            "members": members,
            "order": _ref_order(self.refs, members),
            "fields": shown,
            "field_rules": field_rules,
            "field_parts": _field_parts(parts, set(shown), self.tuples),
            "field_count": len(field_rules),
            "indicators": [self.tuples[i] for i in top],
            "written": {self.tuples[i] for i in top if i in written},
            "indicator_count": len(indicators),
            "exclusions": [self.tuples[i] for i in _top(exclusions, self.tuples, field_rank,
                                                         limit, screen=False)],
            "exclusion_count": len(exclusions),
        }  # fmt: skip

    def index_spellings(self, ranked: list[dict[str, Any]]) -> None:
        """Collect, in one pass over the rows, the rules and spellings of the keys
        the ``ranked`` sections show (most keys are never shown)."""
        samples: set[tuple[str, str]] = set()
        indicators: set[Key] = set()
        exclusions: set[Key] = set()
        for r in ranked:
            for f, top in r["field_parts"]["samples"].items():
                samples.update((f, v) for _, v in top)
            indicators.update(r["indicators"])
            exclusions.update(r["exclusions"])
        found = self.spellings
        samples -= {k for t, k in found if t == "s"}
        indicators -= {k for t, k in found if t == "i"}
        exclusions -= {k for t, k in found if t == "x"}
        for f, _raw, op, value, vkey, negated, excl, kind, pk in self.rows:
            key = (f, op, vkey)
            if key in indicators and not negated and kind != "selector":
                _add(found, ("i", key), pk, value)
            if key in exclusions and excl and kind not in ("implied", "selector"):
                _add(found, ("x", key), pk, value)
            if not negated and value is not None and kind != "implied" and (f, vkey) in samples:
                _add(found, ("s", (f, vkey)), pk, value)
        # Every shown key has a row, so this only makes the lookups total.
        for tag, keys in (("s", samples), ("i", indicators), ("x", exclusions)):
            for k in keys:
                found.setdefault((tag, k), {})

    def details(self, r: dict[str, Any]) -> dict[str, Any]:
        """The compact sections of ``rank``'s result (after ``index_spellings``)."""
        members, order = r["members"], r["order"]
        selectors = set(load(GUIDE)["ranking"]["selector_fields"])
        fields = []
        for f in r["fields"]:
            fp = r["field_parts"]
            fields.append({
                "field": f,
                "aliases": _aliases(fp["aliases"][f]),
                "rules": r["field_rules"][f],
                "operators": {op: n for op, n in sorted(fp["ops"][f].items(), key=_by_count)},
                "samples": [self._shown(("s", (f, v)), members)[1]
                            for _, v in fp["samples"][f]],
            })  # fmt: skip
        rows = {}
        for name, tag in (("indicators", "i"), ("exclusions", "x")):
            rows[name] = []
            for key in r[name]:
                pks, spelling = self._shown((tag, key), members)
                implied = tag == "i" and key not in r["written"]
                rows[name].append([*key, spelling, sorted(order[pk] for pk in pks), implied,
                                   key[0] in selectors])  # fmt: skip
        return {
            "fields": fields, "field_count": r["field_count"],
            "indicators": rows["indicators"], "indicator_count": r["indicator_count"],
            "exclusions": rows["exclusions"], "exclusion_count": r["exclusion_count"],
        }  # fmt: skip

    def _shown(self, tag_key: tuple[str, Any], members: set[int]) -> tuple[set[int], Any]:
        """The rules of ``members`` with one key, and how the key is shown: the
        spelling they write most often (None when none writes one)."""
        by_rule = self.spellings[tag_key]
        pks = members.intersection(by_rule)
        return pks, _spelling([v for pk in pks for v in by_rule[pk]])


def _add(found: dict[Any, dict[int, list[Any]]], tag_key: Any, pk: int, value: Any) -> None:
    values = found.setdefault(tag_key, {}).setdefault(pk, [])
    if value is not None:
        values.append(value)


def _field_parts(
    parts: list[list[Any]], shown: set[str], tuples: dict[int, tuple[Any, ...]]
) -> dict[str, dict[str, Any]]:
    """Aliases, operators and the top samples of the fields shown."""
    aliases: dict[str, list[tuple[tuple[str, Any], int]]] = {f: [] for f in shown}
    for i, n in Counter(chain.from_iterable(p[1] for p in parts)).items():
        f, vendor, raw = tuples[i]
        if f in shown:
            aliases[f].append(((vendor, raw), n))
    ops: dict[str, dict[str, int]] = {f: {} for f in shown}
    for i, n in Counter(chain.from_iterable(p[2] for p in parts)).items():
        f, op = tuples[i]
        if f in shown:
            ops[f][op] = n
    samples: dict[str, list[tuple[int, str]]] = {f: [] for f in shown}
    for i, n in Counter(chain.from_iterable(p[3] for p in parts)).items():
        f, vkey = tuples[i]
        if f in shown:
            samples[f].append((-n, vkey))
    top = {f: heapq.nsmallest(_SAMPLES, s) for f, s in samples.items()}
    return {"aliases": aliases, "ops": ops, "samples": top}


def _aliases(counted: list[tuple[tuple[str, Any], int]]) -> dict[str, list[Any]]:
    """Vendor names of a field, by vendor in page order, most used first."""
    by_vendor: dict[str, list[Any]] = {}
    for (vendor, raw), _n in sorted(counted, key=lambda i: (-i[1], i[0][1] or "")):
        by_vendor.setdefault(vendor, []).append(raw)
    return {v: by_vendor[v] for v in registry.display_order(by_vendor)}


def _top(
    counts: Counter[int],
    tuples: dict[int, tuple[Any, ...]],
    field_rank: dict[str, int],
    limit: int | None,
    screen: bool,
) -> list[int]:
    """The first ``limit`` (field, op, value) keys by rules, ties to the fields ranked
    first; indicators (``screen``) spread their first screen over fields."""
    items: Iterable[tuple[int, int]] = counts.items()
    prefix = limit if limit is None or not screen else 4 * limit + 20  # the screen settles
    if prefix is not None and len(counts) > prefix:  # sort only the keys that can come first
        floor = heapq.nlargest(prefix, counts.values())[-1]
        items = [(i, n) for i, n in items if n >= floor]
    last = len(field_rank)
    decorated = []
    for i, n in items:
        f, op, vkey = tuples[i]
        decorated.append((-n, field_rank.get(f, last), f or "", op, vkey, i))  # type: ignore[arg-type]
    decorated.sort()
    ranked = [t[5] for t in decorated]
    if screen:
        settled = screen_first(ranked, lambda i: tuples[i][0], len(ranked) == len(counts))
        if settled is None:  # the screen did not fill within the prefix: rank them all
            return _top(counts, tuples, field_rank, None, screen)[:limit]
        ranked = settled
    return ranked[:limit]


def screen_first(
    ranked: list[int], field: Callable[[int], Any], complete: bool
) -> list[int] | None:
    """``ranked`` with its first screen spread over fields: in the first ``screen``
    rows, at most ``per_field`` rows of one field; the rows held back follow in
    their rank order, so one field with many equally used values (tool names)
    does not fill the screen. ``ranked`` may be a prefix of the ranking
    (``complete`` False): then None unless the screen fills within it."""
    conf = load(GUIDE)["ranking"]
    screen: list[int] = []
    held: list[int] = []
    used: Counter[Any] = Counter()
    for i, key in enumerate(ranked):
        if len(screen) == conf["screen"]:
            return screen + held + ranked[i:]  # held rows all rank before ranked[i:]
        if used[field(key)] < conf["per_field"]:
            screen.append(key)
            used[field(key)] += 1
        else:
            held.append(key)
    return screen + held if complete or len(screen) == conf["screen"] else None


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def _ref_order(refs: dict[int, Ref], members: set[int]) -> dict[int, int]:
    """Each rule's position among ``members`` in page order: vendor (as
    ``registry.display_order``), then id."""
    return {pk: i for i, pk in enumerate(sorted(members, key=_page_order(refs)))}


def _page_order(refs: dict[int, Ref]) -> Callable[[int], tuple[int, str, str]]:
    return lambda pk: (*registry.display_key(refs[pk][0]), refs[pk][1])


def _spelling(written: list[Any]) -> Any:
    """How a value is shown: the spelling written most often (values that differ
    only in case are one indicator), ties by sort order; None for no spelling."""
    if not written:
        return None
    if written.count(written[0]) == len(written):  # one spelling: most keys
        return written[0]
    counts = Counter(written)
    return min(counts, key=lambda v: (-counts[v], v))


def expand(sections: dict[str, Any], refs: dict[int, Ref]) -> dict[str, Any]:
    """Guide rows of compact sections over the rules ``refs`` (indicator rows keep
    their ``key`` for the corpus reach)."""
    ordered = [refs[pk] for pk in sorted(refs, key=_page_order(refs))]
    out = dict(sections)
    for name in ("indicators", "exclusions"):
        out[name] = [_row(c, ordered) for c in sections[name]]
    return out


def _row(c: Compact, ordered: list[Ref]) -> dict[str, Any]:
    field, op, vkey, value, positions, implied, selector = c
    rules = [ordered[i] for i in positions]
    return {"field": field, "op": op, "value": value, "rules": len(rules),
            "rule_ids": [i for _, i in rules],
            "rule_refs": [{"vendor": v, "id": i} for v, i in rules],
            "implied": implied, "selector": selector, "key": (field, op, vkey)}  # fmt: skip


# -- stored per technique family ---------------------------------------------------


def _stamp() -> str:
    """What stored rows depend on besides the rules: this code and the ranking settings."""
    ranking = json.dumps(load(GUIDE)["ranking"], sort_keys=True)
    return VERSION + ":" + hashlib.blake2b(ranking.encode(), digest_size=8).hexdigest()


def families(conn: sqlite3.Connection) -> dict[str, set[int]]:
    """Rule keys per technique family: a technique's own rules and, for a parent,
    its sub-techniques' (``T1059.001`` belongs to ``T1059`` too)."""
    out: dict[str, set[int]] = {}
    for pk, tid in conn.execute("SELECT rule_pk, technique_id FROM rule_techniques"):
        out.setdefault(tid, set()).add(pk)
        if "." in tid:
            out.setdefault(tid.split(".", 1)[0], set()).add(pk)
    return out


def _digest(rules: Iterable[Ref]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for vendor, rid in sorted(rules):
        h.update(f"{vendor}\0{rid}\0".encode())
    return h.hexdigest()


def refresh(
    conn: sqlite3.Connection, written: Iterable[int] | None = None, workers: int = 1
) -> int:
    """Store the sections of every family whose rules changed; ``written``: the
    rule keys this build (an update) wrote, None for a build from nothing (all
    families). Returns the number of families computed."""
    with refreshing(conn, written, workers) as todo:
        pass
    return len(todo)


@contextmanager
def refreshing(
    conn: sqlite3.Connection, written: Iterable[int] | None, workers: int
) -> Iterator[list[str]]:
    """``refresh``, with the ranking done by ``workers`` processes while the
    ``with`` body runs (a build computes its near-duplicates meanwhile); the rows
    are written when the body ends. Yields the families it computes. One worker,
    or little to rank: all of it is done here, after the body. So is an update's
    (``written``): it ranks the few families of the rules it wrote, and forking
    the build's process would cost about as much."""
    job = _Job.of(conn, written)
    pooled = written is None and workers > 1 and job.rows >= _POOL_ROWS
    chunks = job.chunks(workers) if pooled else []
    if not chunks:
        yield job.todo
        job.write(conn, job.sections(job.todo))
        return
    with workers_pool(len(chunks), _receive, job) as pool:
        futures = [pool.submit(_sections_of, chunk) for chunk in chunks]
        yield job.todo
        job.write(conn, [row for chunk, f in zip(chunks, futures, strict=True)
                         for row in _result(job, chunk, f)])  # fmt: skip


def _result(job: _Job, chunk: list[str], future: Future[list[tuple[str, str]]]) -> Any:
    """A worker's share; when the worker failed as a whole (it died), ranked here."""
    try:
        return future.result()
    except BrokenProcessPool:
        return job.sections(chunk)


# Below this many predicate rows to rank (a small catalog), starting worker
# processes costs more than it saves.
_POOL_ROWS = 30_000


@dataclass
class _Job:
    """What a refresh ranks: the families to compute and their rules' rows."""

    stamp: str
    fams: dict[str, set[int]]
    refs: dict[int, Ref]
    digests: dict[str, str]
    todo: list[str]
    by_rule: dict[int, list[Row]]  # the rows of the rules of the families in ``todo``

    @classmethod
    def of(cls, conn: sqlite3.Connection, written: Iterable[int] | None) -> _Job:
        """The families whose rules changed (all when ``written`` is None), their
        stale rows deleted."""
        stamp = _stamp()
        fams = families(conn)
        refs: dict[int, Ref] = {
            pk: (v, i) for pk, v, i in conn.execute("SELECT pk, vendor, id FROM rules")
        }
        digests = {f: _digest(refs[pk] for pk in pks) for f, pks in fams.items()}
        todo = _todo(conn, stamp, fams, digests, written)
        by_rule: dict[int, list[Row]] = {}
        if todo:
            needed = set().union(*(fams[f] for f in todo))
            for row in _rows(conn, needed if written is not None else None):
                by_rule.setdefault(row[8], []).append(row)
        return cls(stamp, fams, refs, digests, todo, by_rule)

    @property
    def rows(self) -> int:
        return sum(map(len, self.by_rule.values()))

    def chunks(self, n: int) -> list[list[str]]:
        """``todo`` in at most ``n`` shares of about the same work (rows ranked),
        a technique with its sub-techniques in one share (they share rules)."""
        roots: dict[str, list[str]] = {}
        for f in self.todo:
            roots.setdefault(f.split(".")[0], []).append(f)
        cost = {r: sum(len(self.by_rule.get(pk, ())) for f in fs for pk in self.fams[f])
                for r, fs in roots.items()}  # fmt: skip
        shares: list[tuple[int, int, list[str]]] = [(0, i, []) for i in range(n)]
        for root in sorted(roots, key=lambda r: (-cost[r], r)):  # the largest first
            load_, i, fams = heapq.heappop(shares)
            fams.extend(roots[root])
            heapq.heappush(shares, (load_ + cost[root], i, fams))
        return [fams for _, _, fams in sorted(shares, key=itemgetter(1)) if fams]

    def sections(self, todo: list[str]) -> list[tuple[str, str]]:
        """(family, its sections as JSON) of the families ``todo``, ranked from
        their rules' rows only (a family's sections depend on nothing else)."""
        needed = sorted(set().union(*(self.fams[f] for f in todo)))
        rows = [row for pk in needed for row in self.by_rule.get(pk, ())]
        predicates = Predicates(rows, self.refs)
        ranked = [predicates.rank(self.fams[f], HEAD) for f in todo]
        predicates.index_spellings(ranked)
        return [(f, json.dumps(predicates.details(r), separators=(",", ":")))
                for f, r in zip(todo, ranked, strict=True)]  # fmt: skip

    def write(self, conn: sqlite3.Connection, sections: list[tuple[str, str]]) -> None:
        got = dict(sections)
        conn.executemany(
            "INSERT OR REPLACE INTO technique_sections VALUES (?, ?, ?, ?)",
            ((f, self.stamp, self.digests[f], got[f]) for f in self.todo),
        )


def _todo(
    conn: sqlite3.Connection,
    stamp: str,
    fams: dict[str, set[int]],
    digests: dict[str, str],
    written: Iterable[int] | None,
) -> list[str]:
    """The families to compute: all of them (``written`` None), else those whose
    rules changed or hold a rule written again; the rows of the others that
    are stale (their family is gone, or another ``stamp``) are deleted."""
    if written is None:
        conn.execute("DELETE FROM technique_sections")
        return list(fams)
    changed = set(written)
    sql = "SELECT family, members FROM technique_sections WHERE stamp = ?"
    stored = dict(conn.execute(sql, (stamp,)))
    gone = [(f,) for f in set(stored) - set(fams)]
    conn.executemany("DELETE FROM technique_sections WHERE family = ?", gone)
    conn.execute("DELETE FROM technique_sections WHERE stamp != ?", (stamp,))
    return [f for f in fams if stored.get(f) != digests[f] or not changed.isdisjoint(fams[f])]


_JOB: _Job | None = None  # in a worker process: the refresh it ranks a share of


def _receive(job: _Job) -> None:
    global _JOB
    _JOB = job


def _sections_of(todo: list[str]) -> list[tuple[str, str]]:
    assert _JOB is not None, "a refresh worker runs _receive first"
    return _JOB.sections(todo)


def _rows(conn: sqlite3.Connection, pks: set[int] | None) -> list[Row]:
    cur = conn.cursor()
    cur.row_factory = None  # plain tuples
    sql = f"SELECT {ROW_COLUMNS} FROM predicates p WHERE p.stage_role = 'events'"
    if pks is None:
        return cur.execute(sql).fetchall()
    return cur.execute(sql + " AND p.rule_pk IN (SELECT value FROM json_each(?))",
                       (json.dumps(sorted(pks)),)).fetchall()  # fmt: skip


def stored(
    conn: sqlite3.Connection, family: str, refs: dict[int, Ref], limit: int | None
) -> dict[str, Any] | None:
    """The stored sections of ``family`` cut to ``limit`` rows, when the build
    stored them for the rules ``refs`` and ``limit`` is within what it stored;
    else None (rank live)."""
    if limit is None or limit > HEAD:
        return None
    try:
        row = conn.execute(
            "SELECT members, sections FROM technique_sections WHERE family = ? AND stamp = ?",
            (family, _stamp()),
        ).fetchone()
    except sqlite3.OperationalError:  # a catalog from before the table
        return None
    if row is None or row[0] != _digest(refs.values()):
        return None
    sections = jsonio.loads(row[1])
    for name in ("fields", "indicators", "exclusions"):
        sections[name] = sections[name][:limit]
    return dict(sections)
