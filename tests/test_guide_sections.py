"""The guide sections a build stores per technique (guide_sections.py) are the
sections ranked live, for every technique of the real corpora, and stay so when
rules change (what an incremental build's ``refresh`` recomputes)."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from detcat import guide, store
from detcat.guide import sections as guide_sections


@pytest.fixture(scope="module")
def pair(corpus_db: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The catalog as built (sections stored) and a copy without stored sections."""
    live = tmp_path_factory.mktemp("sections") / "live.sqlite"
    shutil.copy(corpus_db, live)
    with store.deriving(live) as conn:
        conn.execute("DELETE FROM technique_sections")
    return corpus_db, live


def _refs(
    conn: sqlite3.Connection, tid: str, vendor: str | None = None
) -> dict[int, guide_sections.Ref]:
    """The rules a guide of ``tid`` lists, as ``guide.technique_guide`` finds them."""
    return guide._rules(conn, {"tid": tid, "sub": tid + ".", "vendor": vendor})[1]


def _known(conn: sqlite3.Connection) -> Iterator[str]:
    """Every technique family with rules that has a technique row to show."""
    have = {t for (t,) in conn.execute("SELECT id FROM techniques")}
    return (f for f in sorted(guide_sections.families(conn)) if f in have)


def test_every_technique_reads_its_stored_sections_as_ranked_live(
    pair: tuple[Path, Path],
) -> None:
    built, live = (store.connect(p) for p in pair)
    tids = list(_known(built))
    assert len(tids) > 400
    for tid in tids:
        assert guide_sections.stored(built, tid, _refs(built, tid), 50) is not None, tid
        assert guide_sections.stored(live, tid, _refs(live, tid), 50) is None, tid
        assert guide.technique_guide(built, tid) == guide.technique_guide(live, tid), tid


@pytest.mark.parametrize(
    ("tid", "limit", "vendor", "reads_stored"),
    [  # fewer rows are a prefix of the stored ones; more rows or one vendor rank live
        ("T1219", 7, None, True),
        ("T1059", 1, None, True),
        ("T1218.011", 50, None, True),
        ("T1219", 51, None, False),
        ("T1059.001", None, None, False),
        ("T1219", 50, "splunk", False),
    ],
)
def test_limits_and_vendors(
    pair: tuple[Path, Path], tid: str, limit: int | None, vendor: str | None, reads_stored: bool
) -> None:
    built, live = (store.connect(p) for p in pair)
    # One vendor's rules are not the family's stored rules (their digest differs).
    stored = guide_sections.stored(built, tid, _refs(built, tid, vendor), limit)
    assert (stored is not None) == reads_stored
    got = guide.technique_guide(built, tid, limit=limit, vendor=vendor)
    assert got == guide.technique_guide(live, tid, limit=limit, vendor=vendor)
    if limit is not None:
        assert 0 < len(got["indicators"]) <= limit


def test_refresh_recomputes_the_families_whose_rules_changed(
    corpus_db: Path, tmp_path: Path
) -> None:
    db = tmp_path / "changed.sqlite"
    shutil.copy(corpus_db, db)
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    before = dict(conn.execute("SELECT family, sections FROM technique_sections"))
    # A rule of T1219 written again (an update re-read its file): its families only.
    pk = conn.execute(
        "SELECT rule_pk FROM rule_techniques WHERE technique_id = 'T1219'"
    ).fetchone()[0]
    tids = {t for (t,) in conn.execute(
        "SELECT technique_id FROM rule_techniques WHERE rule_pk = ?", (pk,))}  # fmt: skip
    expected = tids | {t.split(".")[0] for t in tids}
    assert guide_sections.refresh(conn, [pk]) == len(expected)
    assert guide_sections.refresh(conn, []) == 0  # nothing changed
    assert dict(conn.execute("SELECT family, sections FROM technique_sections")) == before
    # The rule loses T1219 (its rows stay): T1219 is ranked again without it.
    conn.execute("DELETE FROM rule_techniques WHERE rule_pk = ? AND technique_id = 'T1219'", (pk,))
    assert guide_sections.refresh(conn, []) == 1
    conn.commit()
    live = tmp_path / "live.sqlite"
    shutil.copy(db, live)
    with store.deriving(live) as lconn:
        lconn.execute("DELETE FROM technique_sections")
    changed, fresh = store.connect(db), store.connect(live)
    assert guide_sections.stored(changed, "T1219", _refs(changed, "T1219"), 50) is not None
    assert guide.technique_guide(changed, "T1219") == guide.technique_guide(fresh, "T1219")
    assert guide.technique_guide(changed, "T1219") != guide.technique_guide(
        store.connect(corpus_db), "T1219"
    )
    # Families with no rule left (T1219 and its sub-techniques) are dropped.
    conn.execute("DELETE FROM rule_techniques WHERE technique_id LIKE 'T1219%'")
    guide_sections.refresh(conn, [])
    left = conn.execute("SELECT family FROM technique_sections WHERE family LIKE 'T1219%'")
    assert left.fetchall() == []


@pytest.mark.parametrize("workers", [1, 2])
def test_a_refresh_stores_the_same_rows_with_any_number_of_workers(
    corpus_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """Ranked in one process or shared among worker processes (each ranking its
    techniques from their rules' rows only), every family's row is the same."""
    db = tmp_path / "again.sqlite"
    shutil.copy(corpus_db, db)
    conn = sqlite3.connect(db)
    sql = "SELECT family, stamp, members, sections FROM technique_sections"
    built = sorted(conn.execute(sql))
    pools: list[int] = []
    real_pool = guide_sections.workers_pool

    def counted_pool(n: int, *args: Any) -> Any:
        pools.append(n)
        return real_pool(n, *args)

    monkeypatch.setattr(guide_sections, "workers_pool", counted_pool)
    assert guide_sections.refresh(conn, None, workers) == len(built)
    assert pools == ([] if workers == 1 else [workers])  # the corpora: enough rows to share
    assert sorted(conn.execute(sql)) == built


def _die(todo: list[str]) -> list[tuple[str, str]]:
    """A refresh worker that dies (killed, out of memory) instead of ranking."""
    os._exit(1)


def test_a_worker_that_dies_has_its_share_ranked_by_the_build(
    corpus_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "again.sqlite"
    shutil.copy(corpus_db, db)
    conn = sqlite3.connect(db)
    sql = "SELECT family, stamp, members, sections FROM technique_sections"
    built = sorted(conn.execute(sql))
    monkeypatch.setattr(guide_sections, "_sections_of", _die)
    assert guide_sections.refresh(conn, None, 2) == len(built)
    assert sorted(conn.execute(sql)) == built
