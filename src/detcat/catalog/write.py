"""Writing read files into a catalog, fresh or updated, the same way.

A ``Loader`` inserts each ``FileResult`` (techniques resolved against ATT&CK,
rule ids kept unique) and remembers what the file gave for the build cache
(table ``build_files``); ``finish`` writes what depends on every rule: unknown
techniques, the near-duplicate tables, the guides' stored sections (ranked by
worker processes meanwhile), the cache rows and ``meta``. A full build
and an incremental one both end here, which is what keeps their catalogs equal.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from detcat import similar, store
from detcat.attack import Attack, Technique
from detcat.catalog.read import FileResult
from detcat.guide import sections as guide_sections
from detcat.model import Problem
from detcat.similar import update as similar_update

# The meta keys a build writes (catalog, catalog.update, ``finish``), and
# the near-duplicate summary, which it writes too.
BUILD_META = (
    "schema_version", "build_key", "build_inputs", "collections", "built_at", "vendor_seconds",
    "unknown_techniques", "attack_version", "similar",
)  # fmt: skip


class Clash(Exception):
    """An update met a duplicate rule id: which copy a full build keeps depends on
    the order of every file, so the build starts over, in full."""


@dataclass
class TechniqueIndex:
    """What resolving a rule's techniques needs from ATT&CK."""

    names: dict[str, str]  # lower-cased names (and "Parent: Child") -> ids
    bundle: set[str]  # ids the bundle has (revoked and deprecated too)
    unknown: set[str] = field(default_factory=set)  # ids rules use that it lacks

    @classmethod
    def of(cls, attack: Attack) -> TechniqueIndex:
        return cls(attack.ids_by_name(), {t for t, x in attack.techniques.items() if x.known})

    @classmethod
    def of_catalog(cls, conn: sqlite3.Connection) -> TechniqueIndex:
        """The index of a catalog's bundle (its techniques table, in bundle order)."""
        techniques = {}
        for tid, name, parent, revoked, deprecated in conn.execute(
            "SELECT id, name, parent, revoked, deprecated FROM techniques WHERE known = 1"
            " ORDER BY rowid"
        ):
            techniques[tid] = Technique(tid, name, parent=parent, revoked=bool(revoked),
                                        deprecated=bool(deprecated))  # fmt: skip
        return cls.of(Attack(techniques, []))

    def resolve(self, rule: store.RuleRows) -> None:
        """Map technique names to ids; keep unknown ids (flagged) rather than drop
        them. An unknown name is a problem only when the rule names no technique
        otherwise."""
        had_ids = bool(rule.techniques)
        for name in rule.technique_names:
            tid = self.names.get(name.strip().lower())
            if tid:
                rule.techniques.append(tid)
            elif not had_ids:
                msg = f"unknown ATT&CK technique {name!r}"
                rule.problems.append(Problem(rule.source_path, msg))
        rule.techniques = list(dict.fromkeys(t.upper() for t in rule.techniques))

    def note_stored(self, rule: store.RuleRows) -> None:
        self.unknown.update(t for t in rule.techniques if t not in self.bundle)


class Loader:
    """Inserts files' rows through a ``CatalogWriter`` and keeps the cache rows."""

    def __init__(self, writer: store.CatalogWriter, index: TechniqueIndex, workers: int = 1):
        self.w = writer
        self.index = index
        self.workers = workers  # processes ``finish`` may use
        self.features: dict[int, frozenset[str]] = {}  # of the rules added
        self.entries: dict[tuple[str, str, str], list[Any]] = {}
        self.owner: dict[tuple[str, str], tuple[str, str, str]] = {}  # rule key -> file
        # (collection, vendor) -> its folders' stamps (``build_dirs``), to write anew
        self.dirs: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self.seconds: dict[str, float] = {}  # of ``finish``'s costly parts (build phases)

    def add_file(
        self, collection: str, vendor: str, fr: FileResult, reuse: dict[tuple[str, str], int]
    ) -> None:
        """Insert one file's rules and problems (a rule under its old pk when it had
        one: ``reuse``, keyed by (vendor, id))."""
        key = (collection, vendor, fr.path)
        first, pks, dup = len(self.w.problem_ids), [], 0
        for item in fr.items:
            if isinstance(item, Problem):
                self.w.add_problem(item)
                continue
            self.index.resolve(item)
            rule_key = (item.vendor, item.id)
            pk = self.w.add_rule(item, collection, reuse.get(rule_key))
            if pk is None:
                if self.w.updating:
                    raise Clash(f"duplicate rule id {item.id} in {fr.path}")
                dup = 1
                if (owner := self.owner.get(rule_key)) in self.entries:
                    self.entries[owner][9] = 1  # type: ignore[index]
                continue
            self.index.note_stored(item)
            self.owner[rule_key] = key
            self.features[pk] = item.features
            pks.append(pk)
        self.entries[key] = [
            collection, vendor, fr.path, fr.digest, fr.stamp, json.dumps(list(fr.uses)),
            fr.uses_digest,
            json.dumps(pks), json.dumps(self.w.problem_ids[first:]), dup,
        ]  # fmt: skip

    def finish(
        self, meta: dict[str, Any], removed: dict[int, frozenset[str]] | None = None
    ) -> None:
        """Everything that depends on all the rules, then ``meta``. ``removed``: an
        update's removed rules with their similarity features (None: a full build)."""
        conn = self.w.conn
        conn.executemany(
            "INSERT OR REPLACE INTO build_files VALUES (?,?,?,?,?,?,?,?,?,?)", self.entries.values()
        )
        for (c, v), stamps in self.dirs.items():
            conn.execute("DELETE FROM build_dirs WHERE collection = ? AND vendor = ?", (c, v))
            conn.executemany(
                "INSERT INTO build_dirs VALUES (?,?,?,?)", [(c, v, d, s) for d, s in stamps]
            )
        # The guides' stored sections of the techniques whose rules changed, ranked
        # by worker processes while this one computes the near-duplicates.
        started = time.perf_counter()
        written = None if removed is None else self.features
        with guide_sections.refreshing(conn, written, self.workers):
            near = time.perf_counter()
            self._near_duplicates(removed)
            self.seconds["near-duplicates"] = time.perf_counter() - near
        self.seconds["guide sections"] = (
            time.perf_counter() - started - self.seconds["near-duplicates"]
        )
        unknown = dict(
            conn.execute(
                "SELECT rt.technique_id, COUNT(*) FROM rule_techniques rt"
                " JOIN techniques t ON t.id = rt.technique_id WHERE t.known = 0"
                " GROUP BY rt.technique_id ORDER BY rt.technique_id"
            ).fetchall()
        )
        self.w.set_meta(unknown_techniques=unknown, **meta)

    def _near_duplicates(self, removed: dict[int, frozenset[str]] | None) -> None:
        conn = self.w.conn
        if removed is None:
            similar.write_tables(conn, {pk: set(fs) for pk, fs in self.features.items()})
        elif similar_update.update(conn, removed, self.features) is None:
            # Every weight changed (or most rules did): recomputed whole, rows
            # written where they differ.
            previous = similar.stored_weights(conn)
            kept = {pk: set(ws) for pk, ws in previous.items() if pk not in removed}
            features = kept | {pk: set(fs) for pk, fs in self.features.items()}
            similar.write_tables(conn, features, previous)


def add_unknown_techniques(writer: store.CatalogWriter, ids: set[str]) -> None:
    """An update's techniques table: rows for the unknown ids its rules now use
    (as ``Attack.add_unknown`` makes them), none for those no rule uses any more."""
    conn = writer.conn
    have = {t for (t,) in conn.execute("SELECT id FROM techniques")}
    new = [Attack({}, []).add_unknown(t) for t in sorted(ids - have)]
    writer.add_techniques(new)
    conn.execute(
        "DELETE FROM techniques WHERE known = 0"
        " AND id NOT IN (SELECT technique_id FROM rule_techniques)"
    )
