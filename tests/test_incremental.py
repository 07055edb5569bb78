"""Incremental builds write the catalog a full build writes.

One real-corpus sources folder (Sigma, Elastic, Splunk with its macros and
lookups, Chronicle) goes through a sequence of changes; after each, the catalog
updated from the previous one is compared, table by table, with a catalog built
from nothing. Rule keys (``pk``) are compared through the rules they name:
which number a rule gets is not part of the catalog's meaning.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from detcat import catalog, reach, similar
from detcat.similar import update as similar_update

# meta keys that say when and how fast, not what
_TIMING_META = {"built_at", "vendor_seconds", "build_inputs"}
_SIGMA = "sigma/rules/windows/process_creation"


def _copy_some(src: Path, dest: Path, pattern: str, n: int, must: str = "") -> list[Path]:
    picked = [p for p in sorted(src.glob(pattern)) if must in p.read_text(errors="replace")][:n]
    for p in picked:
        target = dest / p.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, target)
    return picked


@pytest.fixture(scope="module")
def sources(corpora: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("incremental") / "sources"
    sigma = _copy_some(corpora, dest, f"{_SIGMA}/*.yml", 81)
    (dest / _SIGMA / sigma[-1].name).replace(dest / "spare.yml")  # added by a scenario
    _copy_some(corpora, dest, "elastic/rules/windows/*.toml", 25)
    _copy_some(corpora, dest, "splunk/detections/endpoint/*.yml", 25, "`sysmon`")
    _copy_some(corpora, dest, "splunk/detections/endpoint/*.yml", 6, "| lookup remote_access")
    for folder in ("macros", "lookups"):
        shutil.copytree(corpora / "splunk" / folder, dest / "splunk" / folder)
    _copy_some(corpora, dest, "chronicle/rules/community/*/*.yaral", 15)
    shutil.copytree(corpora / "attack", dest / "attack")
    return dest


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path}: {old!r} not found"
    path.write_text(text.replace(old, new, 1))


def _first(folder: Path, pattern: str, must: str = "") -> Path:
    return next(p for p in sorted(folder.glob(pattern)) if must in p.read_text())


def _mentioning(sources: Path, text: str) -> int:
    found = sources.glob("splunk/detections/**/*.yml")
    return sum(text in p.read_text() for p in found)


# How the near-duplicate tables follow (``similar_update``): the pairs of the rules
# whose weights changed found again, or (the number of compared rules changed, so
# every weight did) everything computed anew.
PAIRS, WHOLE = "pairs of the touched rules", "computed whole"

# (what changes, how, how many files an incremental build reads, how the
# near-duplicate tables follow); None for both: a full build.
Change = Callable[[Path], Any]
SCENARIOS: list[tuple[str, Change, Callable[[Path], int | None], str | None]] = [
    ("nothing", lambda s: None, lambda s: 0, PAIRS),
    ("a Sigma rule's detection",
     lambda s: _edit(_first(s, f"{_SIGMA}/*.yml", "|endswith"), "|endswith", "|startswith"),
     lambda s: 1, PAIRS),
    ("a Sigma rule's title", lambda s: _edit(_first(s, f"{_SIGMA}/*.yml"), "title: ", "title: X "),
     lambda s: 1, PAIRS),
    ("an Elastic query's value and a Sigma detection", lambda s: (
        _edit(_first(s, "elastic/rules/windows/*.toml", '.exe"'), '.exe"', 'z.exe"'),
        _edit(_first(s, f"{_SIGMA}/*.yml", "|contains"), "|contains", "|endswith")),
     lambda s: 2, PAIRS),
    ("a Sigma file renamed", lambda s: _first(s, f"{_SIGMA}/*.yml").rename(s / _SIGMA / "zz_a.yml"),
     lambda s: 1, PAIRS),
    ("a file removed", lambda s: _first(s, "elastic/rules/windows/*.toml").unlink(), lambda s: 0,
     WHOLE),
    ("a file added", lambda s: (s / "spare.yml").replace(s / _SIGMA / "zz_added.yml"),
     lambda s: 1, WHOLE),
    ("a bad file", lambda s: (s / _SIGMA / "zz_bad.yml").write_text("title: [unclosed\n"),
     lambda s: 1, PAIRS),
    ("nothing, with a bad file cached", lambda s: None, lambda s: 0, PAIRS),
    ("a Splunk macro",
     lambda s: _edit(s / "splunk/macros/sysmon.yml", "definition: ", "definition: host=x OR "),
     lambda s: _mentioning(s, "`sysmon`"), PAIRS),
    ("a Splunk lookup's rows", lambda s: (s / "splunk/lookups/remote_access_software20240726.csv")
     .open("a").write("zz_tool.exe,zz tool,TRUE,,\n"), lambda s: -1, PAIRS),
    ("a chronicle rule removed, a duplicate id added", lambda s: (
        _first(s, "chronicle/rules/community/*/*.yaral").unlink(),
        shutil.copy(_first(s, f"{_SIGMA}/*.yml"), s / _SIGMA / "zz_duplicate.yml")),
     lambda s: None, None),
    ("the duplicate removed", lambda s: (s / _SIGMA / "zz_duplicate.yml").unlink(),
     lambda s: None, None),
]  # fmt: skip


def test_every_change_gives_the_catalog_a_full_build_gives(
    sources: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    followed: list[str] = []  # how the near-duplicate tables followed each build
    update = similar_update.update

    def spy(*args: Any) -> Any:
        got = update(*args)
        followed.append(WHOLE if got is None else PAIRS)
        return got

    monkeypatch.setattr(similar_update, "update", spy)
    updated = tmp_path / "updated.sqlite"
    catalog.build(sources, updated, workers=1, incremental=False)
    for name, change, reads, sim in SCENARIOS:
        reach.ensure(updated)  # derived after a build, as `detcat build` does
        with closing(sqlite3.connect(updated)) as conn, conn:  # derived, kept by no one
            conn.execute("CREATE TABLE zz_derived (x)")
            conn.execute("INSERT INTO meta VALUES ('zz_derived', 'of the old rules')")
        change(sources)
        followed.clear()
        report = catalog.build(sources, updated, workers=1)
        with closing(sqlite3.connect(updated)) as conn:  # an update keeps reach up to date
            assert reach.available(conn) == report.incremental, name
        cold = tmp_path / f"cold-{len(name)}.sqlite"
        cold_report = catalog.build(sources, cold, workers=2, incremental=False)
        for db in (updated, cold):
            reach.ensure(db)  # derived where it was not kept (or is not yet)
        expected = reads(sources)
        if expected is None:
            assert not report.incremental, f"{name}: a clash needs a full build"
        elif expected < 0:  # some of the files naming the lookup look it up
            assert report.incremental and 0 < (report.files_read or 0) <= 6, name
        else:
            assert (report.incremental, report.files_read) == (True, expected), name
        assert followed == ([sim] if sim else []), name
        assert _tables(updated) == _tables(cold), f"{name}: the catalogs differ"
        assert _fts_ok(updated), name
        assert Counter(map(repr, report.problems)) == Counter(map(repr, cold_report.problems))
        assert report.vendors == cold_report.vendors, name
        cold.unlink()


def test_a_cached_bad_file_still_reports_its_problem(sources: Path, tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    (sources / _SIGMA / "zz_bad_again.yml").write_text("title: [unclosed\n")
    try:
        first = catalog.build(sources, db, workers=1, incremental=False)
        again = catalog.build(sources, db, workers=1)
    finally:
        (sources / _SIGMA / "zz_bad_again.yml").unlink()
    assert again.incremental and again.files_read == 0
    bad = [p for p in again.problems if p.path.endswith("zz_bad_again.yml")]
    assert bad and bad == [p for p in first.problems if p.path.endswith("zz_bad_again.yml")]
    assert "invalid YAML" in bad[0].message and bad[0].line == 2


def _fts_ok(db: Path) -> bool:
    conn = sqlite3.connect(db)
    try:  # raises when the index does not match the rules table
        conn.execute("INSERT INTO rules_fts(rules_fts, rank) VALUES ('integrity-check', 1)")
    except sqlite3.DatabaseError:
        return False
    finally:
        conn.close()
    return True


def _tables(db: Path) -> dict[str, Any]:
    """Every table's rows as a multiset, rule keys replaced by (vendor, id)."""
    conn = sqlite3.connect(db)
    key = {pk: (v, i) for pk, v, i in conn.execute("SELECT pk, vendor, id FROM rules")}
    names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    out: dict[str, Any] = {}
    for table in names:
        if table.startswith(("sqlite_", "rules_fts")) or table == "build_dirs":
            continue  # statistics; the full-text index (checked by integrity-check);
            # the file system's stamps of the folders, not the catalog's
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        rows = [dict(zip(cols, r, strict=True)) for r in conn.execute(f"SELECT * FROM {table}")]
        out[table] = Counter(repr(_row(table, r, key, conn)) for r in rows)
    out["sim_clusters"] = sorted(
        sorted(key[pk] for pk in members)
        for members in _clusters(conn).values()  # cluster numbers are names too
    )
    conn.close()
    return out


def _row(table: str, row: dict[str, Any], key: dict[int, Any], conn: sqlite3.Connection) -> Any:
    import json

    row.pop("pk", None)
    if "rule_pk" in row:
        row["rule_pk"] = key[row["rule_pk"]]
    if table == "sim_pairs":
        row["a"], row["b"] = sorted((key[row["a"]], key[row["b"]]))
    if table == "sim_clusters":
        row.pop("cluster")
    if table == "meta" and row["key"] in _TIMING_META:
        row["value"] = "-"
    if table == "meta" and row["key"] == "reach":  # its version, then the build's time
        row["value"] = row["value"].split()[0]
    if table == "meta" and row["key"] == "similar":
        row["value"] = {k: v for k, v in json.loads(row["value"]).items() if k != "seconds"}
    if table == "build_files":
        row.pop("stamp")  # the file system's, not the catalog's
        row["rules"] = sorted(key[pk] for pk in json.loads(row["rules"]))
        row["problems"] = sorted(
            repr(conn.execute("SELECT * FROM problems WHERE rowid = ?", (i,)).fetchone())
            for i in json.loads(row["problems"])
        )
    return sorted(row.items())


def _clusters(conn: sqlite3.Connection) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for pk, cid in conn.execute("SELECT rule_pk, cluster FROM sim_clusters"):
        out.setdefault(cid, []).append(pk)
    return out


def test_similarity_tables_come_with_the_build(sources: Path, tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    catalog.build(sources, db, workers=1, incremental=False)
    conn = sqlite3.connect(db)
    summary = similar.cached_summary(conn)
    assert summary is not None and summary["rules"] > 0
    assert conn.execute("SELECT COUNT(*) FROM sim_features").fetchone()[0] > 0


def _keep_size_and_mtime(path: Path) -> None:
    """An edit that keeps the file's size and sets its modification time back (as
    ``touch -r`` or ``rsync -t`` can): only its change time tells."""
    st = path.stat()
    text = path.read_text()
    path.write_text(text.replace("title: Y", "title: Q", 1))
    assert path.stat().st_size == st.st_size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


_SPLUNK = "splunk/detections/endpoint"

# (what changes, whether rule folders are listed again, how many files' bytes are
# read to compare them, how many files are read as rules, whether Splunk's macros
# and lookups are read again)
LISTING: list[tuple[str, Change, bool, int, int, bool]] = [
    ("nothing", lambda s: None, False, 0, 0, False),
    ("a rule edited in place", lambda s: _edit(_first(s, f"{_SIGMA}/*.yml"), "title: ", "title: Y"),
     False, 1, 1, False),
    ("a rule edited, its size and modification time kept",
     lambda s: _keep_size_and_mtime(_first(s, f"{_SIGMA}/*.yml", "title: Y")), False, 1, 1, False),
    ("a file touched, its bytes the same", lambda s: _first(s, f"{_SIGMA}/*.yml").touch(),
     False, 1, 0, False),
    ("nothing, after the touch (stamped anew)", lambda s: None, False, 0, 0, False),
    ("a file added", lambda s: (s / "spare1.yml").rename(s / _SIGMA / "zz.yml"),
     True, 0, 1, False),
    ("nothing, after a file was added", lambda s: None, False, 0, 0, False),
    ("a file renamed", lambda s: (s / _SIGMA / "zz.yml").rename(s / _SIGMA / "zz_renamed.yml"),
     True, 0, 1, False),
    ("a file removed", lambda s: (s / _SIGMA / "zz_renamed.yml").unlink(), True, 0, 0, False),
    ("an empty folder added", lambda s: (s / _SIGMA / "empty").mkdir(), True, 0, 0, False),
    ("a rule file in a new folder",
     lambda s: (s / "spare2.yml").rename(s / _SIGMA / "empty" / "zz_deeper.yml"),
     True, 0, 1, False),
    # A Splunk detection read again needs the macros (prepared, as a full build does).
    ("a Splunk detection edited", lambda s: _edit(_first(s, f"{_SPLUNK}/*.yml"), "name: ",
     "name: Edited "), False, 1, 1, True),
    ("a Splunk macro edited",
     lambda s: _edit(s / "splunk/macros/sysmon.yml", "definition: ", "definition: host=x OR "),
     False, 0, 3, True),
    ("nothing, after the macro", lambda s: None, False, 0, 0, False),
]  # fmt: skip


def test_rule_folders_are_listed_again_only_when_one_changed(
    corpora: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from detcat.catalog import read as catalog_read
    from detcat.catalog import update as catalog_update

    sources = tmp_path / "sources"
    spares = _copy_some(corpora, sources, f"{_SIGMA}/*.yml", 14)[-2:]  # added by scenarios
    for i, spare in enumerate(spares, 1):
        (sources / spare.relative_to(corpora)).rename(sources / f"spare{i}.yml")
    _copy_some(corpora, sources, f"{_SPLUNK}/*.yml", 3, "`sysmon`")
    for folder in ("macros", "lookups"):
        shutil.copytree(corpora / "splunk" / folder, sources / "splunk" / folder)
    (sources / "attack").symlink_to(corpora / "attack")
    # Stamps of whatever just changed are trusted here (the "racy" guard is for
    # edits within one tick of the file system's clock; these are a build apart).
    monkeypatch.setattr(catalog_read, "_RACY_SECONDS", 0)
    listed: list[Path] = []
    hashed: list[Path] = []
    prepared: list[str] = []
    stamps, digest, prepare = (
        catalog_update.folder_stamps, catalog_update.file_digest, catalog_update.prepare
    )  # fmt: skip
    monkeypatch.setattr(
        catalog_update, "folder_stamps", lambda folder: listed.append(folder) or stamps(folder)
    )
    monkeypatch.setattr(
        catalog_update, "file_digest", lambda p, root: hashed.append(p) or digest(p, root)
    )
    monkeypatch.setattr(
        catalog_update, "prepare", lambda r, v, *a: prepared.append(v) or prepare(r, v, *a)
    )
    db = tmp_path / "c.sqlite"
    catalog.build(sources, db, workers=1, incremental=False)
    for name, change, relisted, compared, reads, splunk in LISTING:
        change(sources)
        listed.clear()
        hashed.clear()
        prepared.clear()
        report = catalog.build(sources, db, workers=1)
        assert (report.incremental, report.files_read) == (True, reads), name
        assert (bool(listed), len(hashed)) == (relisted, compared), name
        assert ("splunk" in prepared) == splunk, name
    cold = tmp_path / "cold.sqlite"
    catalog.build(sources, cold, workers=1, incremental=False)
    assert _tables(db) == _tables(cold)


def test_the_build_key_follows_the_bytes_of_its_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from detcat.catalog import read as catalog_read
    from detcat.catalog.update import ReadOptions, fingerprint

    monkeypatch.setattr(catalog_read, "_RACY_SECONDS", 0)  # see the listing test
    bundle = tmp_path / "enterprise-attack.json"
    bundle.write_text('{"a": 1}')
    key, inputs = fingerprint([], ReadOptions(), bundle)
    # A previous build's digest is taken as it is while the stamps hold: a forged
    # one shows that the bytes were not read again.
    forged = json.dumps({**json.loads(inputs), "digest": "forged"})
    assert fingerprint([], ReadOptions(), bundle, inputs)[0] == key
    assert fingerprint([], ReadOptions(), bundle, forged)[0] != key
    # (change to the bundle, whether the key stays)
    changes = [
        ("touched, the same bytes", bundle.touch, True),
        ("other bytes of the same size", lambda: bundle.write_text('{"a": 2}'), False),
    ]
    for name, change, same in changes:
        change()
        got, _ = fingerprint([], ReadOptions(), bundle, forged)
        assert got == fingerprint([], ReadOptions(), bundle)[0], name  # read again
        assert (got == key) == same, name
