"""The SQLite catalog: schema, one-transaction writes, read-only connections.

A build writes a temporary file next to the catalog and renames it over the old
one only when everything succeeded, so an interrupted or failed build never
destroys the previous catalog.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detcat.attack import Analytic, Attack, Technique
from detcat.errors import DetcatError
from detcat.model import (
    Leaf,
    Opaque,
    Predicate,
    Problem,
    Rule,
    Stage,
    leaves,
    stage_to_json,
    value_text,
)
from detcat.normalize import fold_value

DEFAULT_DB = Path("detcat.sqlite")
# Recorded in ``meta`` by every build and checked by every reader: change it with
# any change to the schema or to the meaning of a column, so that a catalog from
# another detcat version is refused with "run detcat build", never misread.
SCHEMA_VERSION = "4"  # 2: rules.collection; 3: opaque.detail; 4: ATT&CK analytics
# (technique_sections came later without a new version: it only adds a table, which
# older readers ignore, and a reader finding it missing or stale ranks live.)

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE rules (
    pk INTEGER PRIMARY KEY,
    vendor TEXT NOT NULL, id TEXT NOT NULL, title TEXT NOT NULL, description TEXT,
    author TEXT, status TEXT, severity TEXT, type TEXT, language TEXT,
    source_path TEXT, query TEXT, upstream_url TEXT,
    refs TEXT, tags TEXT, context TEXT, extra TEXT,
    has_query INTEGER NOT NULL, fully_parsed INTEGER NOT NULL, n_opaque INTEGER NOT NULL,
    collection TEXT NOT NULL DEFAULT 'public',
    UNIQUE (vendor, id)
);
CREATE TABLE stages (
    rule_pk INTEGER NOT NULL REFERENCES rules(pk), idx INTEGER NOT NULL,
    name TEXT, role TEXT, negated INTEGER, join_keys TEXT, params TEXT, expr TEXT,
    PRIMARY KEY (rule_pk, idx)
);
-- One row per predicate leaf. field is canonical (field_raw when not normalized),
-- value_key the case-folded value that identifies an indicator.
CREATE TABLE predicates (
    rule_pk INTEGER NOT NULL REFERENCES rules(pk), stage_idx INTEGER NOT NULL,
    stage_role TEXT NOT NULL, field TEXT, field_raw TEXT, op TEXT NOT NULL,
    value TEXT, value_key TEXT NOT NULL, syntax TEXT, case_sensitive INTEGER,
    negated INTEGER NOT NULL, exclusion INTEGER NOT NULL, kind TEXT NOT NULL
);
CREATE TABLE opaque (
    rule_pk INTEGER NOT NULL REFERENCES rules(pk), stage_idx INTEGER NOT NULL,
    text TEXT, reason TEXT, detail TEXT
);
CREATE TABLE tactics (id TEXT, shortname TEXT PRIMARY KEY, name TEXT, ord INTEGER);
CREATE TABLE techniques (
    id TEXT PRIMARY KEY, name TEXT, description TEXT, tactics TEXT, parent TEXT,
    revoked INTEGER, deprecated INTEGER, known INTEGER
);
CREATE TABLE rule_techniques (
    rule_pk INTEGER NOT NULL REFERENCES rules(pk), technique_id TEXT NOT NULL,
    PRIMARY KEY (rule_pk, technique_id)
);
-- ATT&CK detection strategies' analytics, per technique the strategy detects, and
-- their log-source references with the catalog events they map to (JSON list).
CREATE TABLE analytics (
    id TEXT NOT NULL, technique_id TEXT NOT NULL, strategy_id TEXT, strategy TEXT,
    platforms TEXT, description TEXT, PRIMARY KEY (id, technique_id)
);
CREATE TABLE analytic_sources (
    analytic_id TEXT NOT NULL, idx INTEGER NOT NULL, name TEXT, channel TEXT, events TEXT,
    PRIMARY KEY (analytic_id, idx)
);
CREATE TABLE events (id TEXT PRIMARY KEY, provider TEXT, event_id TEXT, title TEXT);
CREATE TABLE rule_events (
    rule_pk INTEGER NOT NULL REFERENCES rules(pk), event TEXT NOT NULL, stage_idx INTEGER,
    PRIMARY KEY (rule_pk, event, stage_idx)
);
CREATE TABLE problems (
    vendor TEXT, path TEXT, line INTEGER, col INTEGER, message TEXT, rule_id TEXT
);
-- The build cache (catalog_update.py): what each source file gave, so that the next build
-- reads only the files that changed. path "" holds what no one file owns (shared
-- macros' and lookups' problems); rules and problems are JSON lists of rules.pk and
-- problems.rowid; uses the shared definitions the file looked up, uses_digest
-- their digest then; dup 1 when a rule id of the file clashed with another's;
-- stamp the file's size, time and inode, which spare reading it when unchanged.
CREATE TABLE build_files (
    collection TEXT NOT NULL, vendor TEXT NOT NULL, path TEXT NOT NULL, digest TEXT NOT NULL,
    stamp TEXT NOT NULL,
    uses TEXT NOT NULL, uses_digest TEXT NOT NULL, rules TEXT NOT NULL, problems TEXT NOT NULL,
    dup INTEGER NOT NULL, PRIMARY KEY (collection, vendor, path)
);
-- Each technique family's first guide rows (guide_sections.py), written by every
-- build: stamp the ranking they follow, members a digest of the family's rules.
CREATE TABLE technique_sections (
    family TEXT PRIMARY KEY, stamp TEXT NOT NULL, members TEXT NOT NULL, sections TEXT NOT NULL
);
-- Every folder under a vendor folder ("" the vendor folder itself) with its stamp at
-- the build: while none changed, no file was added, removed or renamed there, and the
-- build cache's paths are the rule files (catalog_update.py). No rows for a vendor
-- folder when one of its folders changed too recently to trust its stamp.
CREATE TABLE build_dirs (
    collection TEXT NOT NULL, vendor TEXT NOT NULL, path TEXT NOT NULL, stamp TEXT NOT NULL,
    PRIMARY KEY (collection, vendor, path)
);
CREATE VIRTUAL TABLE rules_fts USING fts5(
    title, description, content='rules', content_rowid='pk', tokenize='unicode61'
);
"""

INDEXES = """
CREATE INDEX predicates_indicator ON predicates (field, op, value_key);
CREATE INDEX predicates_rule ON predicates (rule_pk);
CREATE INDEX rule_techniques_technique ON rule_techniques (technique_id);
CREATE INDEX rule_events_event ON rule_events (event);
CREATE INDEX opaque_rule ON opaque (rule_pk);
CREATE INDEX analytics_technique ON analytics (technique_id);
"""


@dataclass(frozen=True, slots=True)
class EventRow:
    id: str
    provider: str
    event_id: str
    title: str


value_key = fold_value  # the indicator identity of a value (case-folded text)


def _text(value: Any) -> str | None:
    return None if value is None else value_text(value)


_JSON = json.JSONEncoder(ensure_ascii=False, default=str)  # json.dumps makes one per call


def _dump(obj: Any) -> str:
    return _JSON.encode(obj)


class UnstorableRule(DetcatError):
    """A rule whose rows cannot be prepared; nothing of it was written."""


@dataclass(slots=True)
class RuleRows:
    """One rule as the rows the catalog stores, prepared where the rule was read: a
    worker ships these (tuples of strings travel back cheaper than trees of objects),
    and the parent resolves techniques, keys and collections as it inserts them."""

    vendor: str
    id: str
    source_path: str
    title: str
    description: str
    row: tuple[Any, ...]  # the ``rules`` row without collection and pk
    stages: list[tuple[tuple[Any, ...], list[Any], list[Any], list[Any]]]
    techniques: list[str]
    technique_names: list[str]
    problems: list[Problem]
    features: frozenset[str] = frozenset()  # similar.rule_features, set by the reader


def rule_rows(rule: Rule) -> RuleRows:
    """A rule's rows; ``UnstorableRule`` when its metadata cannot be serialized."""
    try:
        walked = [leaves(stage.expr) for stage in rule.stages]  # one walk per stage
        row = _rule_row(rule, walked)
        stages = [_stage_rows(i, s, walked[i]) for i, s in enumerate(rule.stages)]
    except Exception as e:  # e.g. metadata JSON cannot encode
        raise UnstorableRule(f"cannot be stored: {type(e).__name__}: {e}") from e
    names = [str(n) for n in rule.context.get("technique_names", [])]
    return RuleRows(
        rule.vendor, rule.id, rule.source_path, rule.title, rule.description, row, stages,
        list(rule.techniques), names, list(rule.problems),
    )  # fmt: skip


def _rule_row(rule: Rule, walked: list[list[Leaf]]) -> tuple[Any, ...]:
    """The ``rules`` row; ``walked``: the leaves of each stage."""
    n_opaque = sum(isinstance(lf.node, Opaque) for w in walked for lf in w)
    fully_parsed = rule.has_query and n_opaque == 0  # Rule.fully_parsed, without a walk
    return (
        rule.vendor, rule.id, rule.title, rule.description, rule.author, rule.status,
        rule.severity, rule.type, rule.language, rule.source_path, rule.query,
        rule.upstream_url, _dump(rule.references), _dump(rule.tags),
        _dump(rule.context), _dump(rule.extra), int(rule.has_query),
        int(fully_parsed), n_opaque,
    )  # fmt: skip


def _stage_rows(
    i: int, stage: Stage, walked: list[Leaf]
) -> tuple[tuple[Any, ...], list[Any], list[Any], list[Any]]:
    """One stage's rows (without the rule key): the stage, predicates, opaque
    nodes and events; ``walked``: its leaves."""
    d = stage_to_json(stage)
    row = (i, stage.name, str(stage.role), int(stage.negated), _dump(d["join_keys"]),
           _dump(d["params"]), _dump(d["expr"]))  # fmt: skip
    preds, opaque = [], []
    for lf in walked:
        n = lf.node
        if isinstance(n, Predicate):
            preds.append((
                i, str(stage.role), n.field or n.field_raw, n.field_raw, str(n.op),
                _text(n.value), fold_value(n.value), n.syntax, int(n.case_sensitive),
                int(lf.negated), int(lf.exclusion), n.kind,
            ))  # fmt: skip
        else:
            opaque.append((i, n.text, str(n.reason), n.detail))
    events = [(e, i) for e in dict.fromkeys(stage.events)]
    return row, preds, opaque, events


_RULE_COLUMNS = (
    "vendor, id, title, description, author, status, severity, type, language, source_path,"
    " query, upstream_url, refs, tags, context, extra, has_query, fully_parsed, n_opaque,"
    " collection, pk"
)
_RULE_TABLES = ("stages", "predicates", "opaque", "rule_events", "rule_techniques")


class CatalogWriter:
    """Writes one catalog inside one transaction on a temporary file: a fresh one
    (its full-text index is built once, at the end), or a copy of the previous
    catalog that a build updates (``updating``: the index follows each change)."""

    def __init__(self, conn: sqlite3.Connection, *, updating: bool = False):
        self.conn = conn
        self.updating = updating
        self.seen: dict[tuple[str, str], str] = {}  # (vendor, id) -> collection
        self.problem_ids: list[int] = []  # rowids of the problems written, in order
        self.clashes: set[tuple[str, str]] = set()  # (vendor, id) of the duplicates met

    def add_rule(self, rule: RuleRows, collection: str, pk: int | None = None) -> int | None:
        """Insert a rule (under ``pk``, or the next free one) and return its pk; a
        duplicate (vendor, id) becomes a problem instead (the first one read is
        kept, whatever its collection) and returns None."""
        key = (rule.vendor, rule.id)
        if key in self.seen:
            first = self.seen[key]
            where = "" if first == collection else f" (collection {collection} "
            where += f"clashes with collection {first})" if where else ""
            self.clashes.add(key)
            msg = f"duplicate rule id {rule.id}{where}"
            self.add_problem(Problem(rule.source_path, msg, vendor=rule.vendor))
            return None
        self.seen[key] = collection
        cur = self.conn.execute(
            f"INSERT INTO rules ({_RULE_COLUMNS}) VALUES ({','.join('?' * 21)})",
            (*rule.row, collection, pk),
        )
        pk = int(cur.lastrowid or 0)
        self._insert_rows(pk, rule)
        if self.updating:
            self.conn.execute(
                "INSERT INTO rules_fts (rowid, title, description) VALUES (?,?,?)",
                (pk, rule.title, rule.description),
            )
        for p in rule.problems:
            p.vendor = p.vendor or rule.vendor
            p.rule_id = p.rule_id or rule.id
            self.add_problem(p)
        return pk

    def _insert_rows(self, pk: int, rule: RuleRows) -> None:
        self.conn.executemany(
            "INSERT INTO stages VALUES (?,?,?,?,?,?,?,?)", [(pk, *r[0]) for r in rule.stages]
        )
        self.conn.executemany(
            "INSERT INTO predicates VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(pk, *p) for r in rule.stages for p in r[1]],
        )
        self.conn.executemany(
            "INSERT INTO opaque VALUES (?,?,?,?,?)", [(pk, *o) for r in rule.stages for o in r[2]]
        )
        self.conn.executemany(
            "INSERT OR IGNORE INTO rule_events VALUES (?,?,?)",
            [(pk, *e) for r in rule.stages for e in r[3]],
        )
        self.conn.executemany(
            "INSERT OR IGNORE INTO rule_techniques VALUES (?, ?)",
            [(pk, t) for t in dict.fromkeys(rule.techniques)],
        )

    def remove_rule(self, pk: int) -> None:
        """Delete a rule and every row of it (an update replacing its file)."""
        row = self.conn.execute(
            "SELECT vendor, id, title, description FROM rules WHERE pk = ?", (pk,)
        ).fetchone()
        if row is None:
            return
        self.conn.execute(
            "INSERT INTO rules_fts (rules_fts, rowid, title, description)"
            " VALUES ('delete', ?, ?, ?)",
            (pk, row[2], row[3]),
        )
        for table in _RULE_TABLES:
            self.conn.execute(f"DELETE FROM {table} WHERE rule_pk = ?", (pk,))
        self.conn.execute("DELETE FROM rules WHERE pk = ?", (pk,))
        self.seen.pop((row[0], row[1]), None)

    def add_problem(self, p: Problem) -> None:
        cur = self.conn.execute(
            "INSERT INTO problems VALUES (?,?,?,?,?,?)",
            (p.vendor, p.path, p.line, p.column, p.message, p.rule_id),
        )
        self.problem_ids.append(int(cur.lastrowid or 0))

    def remove_problems(self, rowids: Iterable[int]) -> None:
        self.conn.executemany("DELETE FROM problems WHERE rowid = ?", [(i,) for i in rowids])

    def add_attack(self, attack: Attack) -> None:
        self.conn.executemany(
            "INSERT INTO tactics VALUES (?,?,?,?)",
            [(t.id, t.shortname, t.name, i) for i, t in enumerate(attack.tactics)],
        )
        self.add_techniques(attack.techniques.values())

    def add_techniques(self, techniques: Iterable[Technique]) -> None:
        self.conn.executemany(
            "INSERT INTO techniques VALUES (?,?,?,?,?,?,?,?)",
            [
                (t.id, t.name, t.description, _dump(t.tactics), t.parent, int(t.revoked),
                 int(t.deprecated), int(t.known))
                for t in techniques
            ],
        )  # fmt: skip

    def add_analytics(self, analytics: Iterable[Analytic], events: Any) -> None:
        """Analytics with the catalog events of each log-source reference
        (``events(name, channel) -> list[str]``)."""
        for a in analytics:
            self.conn.executemany(
                "INSERT OR IGNORE INTO analytics VALUES (?,?,?,?,?,?)",
                [(a.id, t, a.strategy_id, a.strategy, _dump(a.platforms), a.description)
                 for t in a.techniques],
            )  # fmt: skip
            self.conn.executemany(
                "INSERT OR IGNORE INTO analytic_sources VALUES (?,?,?,?,?)",
                [(a.id, i, s.name, s.channel, _dump(events(s.name, s.channel)))
                 for i, s in enumerate(a.log_sources)],
            )  # fmt: skip

    def add_events(self, events: Iterable[EventRow]) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO events VALUES (?,?,?,?)",
            [(e.id, e.provider, e.event_id, e.title) for e in events],
        )

    def set_meta(self, **items: Any) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [(k, v if isinstance(v, str) else _dump(v)) for k, v in items.items()],
        )


@contextmanager
def writing(db: Path, *, update: bool = False) -> Iterator[CatalogWriter]:
    """Yield a writer on a temporary catalog, fresh or (``update``) a copy of
    ``db`` to change; replace ``db`` on success only.

    The temporary file is named after this process (``.NAME.<pid>.<random>.tmp``)
    so a later build can tell the debris of a killed build from the file of one
    still running, and remove it. It is created like any other output file
    (mode 0666 less the user's umask), and ``os.replace`` keeps that mode."""
    db = Path(db)
    db.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(db)
    tmp = db.parent / f".{db.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        if update:
            shutil.copyfile(db, tmp)
        conn = sqlite3.connect(tmp)
        try:
            conn.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
            if not update:
                conn.executescript(SCHEMA)
            conn.execute("BEGIN")
            writer = CatalogWriter(conn, updating=update)
            writer.set_meta(schema_version=SCHEMA_VERSION)
            yield writer
            if not update:  # indexes and statistics built once, after the load
                conn.executescript(INDEXES)
                conn.execute("INSERT INTO rules_fts(rules_fts) VALUES ('rebuild')")
            conn.commit()
            if not update:  # an update keeps the statistics: the data changed little
                conn.execute("PRAGMA analysis_limit = 1000")
                conn.execute("ANALYZE")
        finally:
            conn.close()
        os.replace(tmp, db)
    finally:
        tmp.unlink(missing_ok=True)


def temp_files(db: Path) -> list[Path]:
    """Temporary catalogs of ``db``, left by running or killed builds."""
    return sorted(Path(db).parent.glob(f".{Path(db).name}.*.tmp"))


def remove_stale_temps(db: Path) -> list[Path]:
    """Remove the temporary catalogs of ``db`` whose build process is gone."""
    removed = []
    for tmp in temp_files(db):
        if not _owner_alive(tmp.name[len(Path(db).name) + 2 :]):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _owner_alive(suffix: str) -> bool:
    """Whether the process in ``<pid>.<random>.tmp`` still runs (older builds
    named the file ``<random>.tmp``: no owner, stale)."""
    pid = suffix.split(".", 1)[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def chunks(items: list[Any], size: int = 500) -> Iterator[list[Any]]:
    """``items`` in slices of ``size``: SQLite caps a statement's bound parameters."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def rule_counts(db: Path) -> dict[tuple[str, str], int]:
    """Rules per (collection, vendor) in the catalog at ``db``; empty when there is
    none (or it is not one this version can read)."""
    if not Path(db).is_file():
        return {}
    try:
        with closing(connect(db)) as conn:
            rows = conn.execute(
                "SELECT collection, vendor, count(*) FROM rules GROUP BY collection, vendor"
            ).fetchall()
    except (sqlite3.Error, DetcatError):
        return {}
    return {(str(c), str(v)): int(n) for c, v, n in rows}


@contextmanager
def deriving(db: Path) -> Iterator[sqlite3.Connection]:
    """A read-write connection for tables derived from a built catalog (computed
    on first use and cached in the file), inside one transaction. ``BEGIN
    IMMEDIATE`` makes a second process wait, then see the first one's tables."""
    if not Path(db).exists():
        raise MissingCatalog(f"no catalog at {db}: run `detcat build` first")
    conn = sqlite3.connect(db, timeout=120, isolation_level=None)
    try:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:  # read-only file or directory
            raise CatalogReadOnly(f"cannot add derived tables to {db}: {e}") from None
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.close()


class CatalogReadOnly(DetcatError):
    """The catalog file cannot be written to cache derived tables."""


def derive_if_writable(ensure: Callable[[Path], object], db: Path) -> str | None:
    """``ensure(db)`` (tables derived once and cached in the catalog), or why it
    could not: a read-only catalog keeps working without them."""
    try:
        ensure(db)
    except CatalogReadOnly as e:
        return e.message
    return None


class MissingCatalog(DetcatError, FileNotFoundError):
    """No catalog at the path."""


class NotACatalog(MissingCatalog):
    """A file that is not a catalog of this detcat version."""


def connect(db: Path) -> sqlite3.Connection:
    """A read-only connection to a catalog of this version; rows behave like dicts.
    Raises ``MissingCatalog`` (or ``NotACatalog``) with the message for the user."""
    db = Path(db)
    if not db.exists():
        raise MissingCatalog(f"no catalog at {db}: run `detcat build` first")
    if not db.is_file():
        raise NotACatalog(f"{db} is not a detcat catalog (it is a directory)")
    if not os.access(db, os.R_OK):
        raise NotACatalog(f"cannot read the catalog {db}: permission denied")
    conn = sqlite3.connect(f"file:{db.resolve()}?mode=ro", uri=True, check_same_thread=False)
    if schema_version(conn) != SCHEMA_VERSION:
        conn.close()
        raise NotACatalog(
            f"{db} is not a detcat catalog (or was built by an incompatible version): "
            "run `detcat build`"
        )
    conn.row_factory = sqlite3.Row
    return conn


def schema_version(conn: sqlite3.Connection) -> str | None:
    """The catalog's recorded schema version; None for any other file (not SQLite,
    empty, another application's database)."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError:  # not a database, or no meta table
        return None
    return row[0] if row and isinstance(row[0], str) else None


def replaceable(db: Path) -> bool:
    """Whether a build may write ``db``: nothing there yet, or a detcat catalog of
    any version. Anything else is someone's file, kept unless the user insists."""
    db = Path(db)
    if not db.exists():
        return True
    if not db.is_file():
        return False
    if db.stat().st_size == 0:  # nothing to lose
        return True
    try:
        conn = sqlite3.connect(f"file:{db.resolve()}?mode=ro", uri=True)
    except sqlite3.DatabaseError:
        return False
    try:
        return schema_version(conn) is not None
    finally:
        conn.close()
