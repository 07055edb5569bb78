"""The derived corpus-reach table (reach.py) says exactly what counting live says,
and guides read from it are the guides computed without it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from detcat import guide, reach, store

# Techniques whose guides differ in shape: many lookup values (T1219), a parent
# with sub-techniques (T1059), exclusions (T1218.011), none at all (T1001.003).
TECHNIQUES = ["T1219", "T1059", "T1218.011", "T1003.001", "T1001.003"]


@pytest.fixture(scope="module")
def pair(corpus_db: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The catalog without the table (a copy) and with it."""
    root = tmp_path_factory.mktemp("reach")
    live, derived = root / "live.sqlite", root / "derived.sqlite"
    shutil.copy(corpus_db, live)
    shutil.copy(corpus_db, derived)
    with store.deriving(live) as conn:  # other tests' servers may have derived it
        conn.execute("DROP TABLE IF EXISTS indicator_reach")
        conn.execute("DELETE FROM meta WHERE key = 'reach'")
    reach.ensure(derived)
    return live, derived


def test_table_equals_live_counts_for_every_indicator(pair: tuple[Path, Path]) -> None:
    live, derived = (store.connect(p) for p in pair)
    keys = [tuple(k) for k in derived.execute("SELECT field, op, value_key FROM indicator_reach")]
    assert reach.available(derived) and not reach.available(live)
    assert len(keys) > 10_000
    assert reach.counts(derived, keys) == reach.counts(live, keys)
    # A key no rule checks counts 0 both ways.
    assert reach.count(derived, "no.such.field", "eq", "x") == 0
    assert reach.count(live, "no.such.field", "eq", "x") == 0


@pytest.mark.parametrize("tid", TECHNIQUES)
@pytest.mark.parametrize("limit", [50, None])
def test_guide_is_the_same_with_the_table(
    pair: tuple[Path, Path], tid: str, limit: int | None
) -> None:
    live, derived = (store.connect(p) for p in pair)
    assert guide.technique_guide(derived, tid, limit=limit) == guide.technique_guide(
        live, tid, limit=limit
    )


def test_ensure_twice_keeps_one_table(pair: tuple[Path, Path]) -> None:
    _, derived = pair
    reach.ensure(derived)
    conn = store.connect(derived)
    n = conn.execute("SELECT COUNT(*) FROM indicator_reach").fetchone()[0]
    distinct = conn.execute(
        "SELECT COUNT(*) FROM (SELECT DISTINCT field, op, value_key FROM indicator_reach)"
    ).fetchone()[0]
    assert n == distinct > 0


def test_a_later_build_makes_the_table_stale(pair: tuple[Path, Path], tmp_path: Path) -> None:
    """An incremental build updates the catalog in place: the table counted before
    it is not read (counts are live) until it is derived again."""
    stale = tmp_path / "stale.sqlite"
    shutil.copy(pair[1], stale)
    with store.deriving(stale) as conn:
        conn.execute("UPDATE meta SET value = 'later' WHERE key = 'built_at'")
        conn.execute("UPDATE indicator_reach SET rules = rules + 1000")  # visibly wrong
    conn = store.connect(stale)
    key = tuple(conn.execute("SELECT field, op, value_key FROM indicator_reach LIMIT 1").fetchone())
    live = store.connect(pair[0])
    assert not reach.available(conn)
    assert reach.counts(conn, [key]) == reach.counts(live, [key])
    reach.ensure(stale)
    assert reach.available(store.connect(stale))
    assert reach.counts(store.connect(stale), [key]) == reach.counts(live, [key])
