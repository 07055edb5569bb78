"""Near-duplicate rules: features in canonical terms, weighted Jaccard, the
cached catalog-wide clusters and the `similar` / `clusters` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from detcat import similar
from detcat.cli import main
from detcat.parse import parse_rules
from detcat.store import connect

ANYDESK = "b52e84a3-029e-4529-b09b-71d19dd27e94"  # Sigma: Remote Access Tool - AnyDesk Execution
ANYDESK_FOLDER = "065b00ca-5d5c-4557-ac95-64a6d0b64d86"  # ... Execution From Suspicious Folder

SIGMA = """
title: t
logsource: {category: process_creation, product: windows}
detection:
  sel: {Image|endswith: '\\AnyDesk.exe'}
  filter: {ParentImage|endswith: '\\explorer.exe'}
  condition: sel and not filter
"""

# One detection spelled by each language: the same indicator and exclusion features.
SPELLINGS = [
    ("sigma", SIGMA),
    ("kql", 'process.name : "AnyDesk.exe" and not process.parent.name : "explorer.exe"'),
    ("eql", 'process where process.executable : "*\\\\AnyDesk.exe" and '
            'not process.parent.executable : "*\\\\explorer.exe"'),
    ("spl", "Processes.process_name=AnyDesk.exe NOT Processes.parent_process_name=explorer.exe"),
]  # fmt: skip


@pytest.mark.parametrize(("language", "text"), SPELLINGS)
def test_one_detection_has_the_same_features_in_every_language(language: str, text: str) -> None:
    feats = similar.rule_features(parse_rules(language, text)[0])
    kinds = {f for f in feats if not f.startswith("e\t")}
    assert kinds == {"i\tprocess.name\teq\tanydesk.exe", "x\tprocess.parent.name\teq\texplorer.exe"}


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"x": 1.0, "y": 2.0}, {"x": 1.0, "y": 2.0}, 1.0),
        ({"x": 1.0}, {"y": 1.0}, 0.0),
        ({"x": 1.0, "y": 3.0}, {"x": 1.0}, 0.25),  # shared weight / union weight
        ({}, {}, 0.0),
    ],
)
def test_weighted_jaccard(a: dict[str, float], b: dict[str, float], expected: float) -> None:
    assert similar.score(a, b) == pytest.approx(expected)
    assert similar.score(b, a) == pytest.approx(expected)


@pytest.fixture(scope="module")
def sim_db(corpus_db: Path) -> Path:
    similar.ensure(corpus_db)
    return corpus_db


def test_tables_are_computed_once_and_consistent(sim_db: Path) -> None:
    first = similar.ensure(sim_db)
    assert similar.ensure(sim_db) == first  # cached: the same summary, not a new run
    conn = connect(sim_db)
    cfg = similar.settings()["thresholds"]
    low = conn.execute("SELECT COUNT(*) FROM sim_pairs WHERE score < ?", (cfg["pairs"],))
    assert low.fetchone()[0] == 0 and first["pairs"] > 0
    pk = {(v, i): p for p, v, i in conn.execute("SELECT pk, vendor, id FROM rules")}
    for c in similar.clusters(conn)[:20]:  # each a connected component of strong pairs
        members = [pk[(r["vendor"], r["id"])] for r in c["rules"]]
        marks = ",".join("?" * len(members))
        strong = conn.execute(
            f"SELECT COUNT(*) FROM sim_pairs WHERE a IN ({marks}) AND b IN ({marks})"
            " AND score >= ?", (*members, *members, cfg["cluster"]),
        ).fetchone()[0]  # fmt: skip
        assert strong >= len(members) - 1
    sizes = [c["size"] for c in similar.clusters(conn)]
    summary = similar.cluster_summary(conn)
    assert min(sizes) >= 2 and summary["clusters"] == len(sizes)
    assert summary["biggest"] == max(sizes) and 0 < summary["cross_vendor"] <= len(sizes)


def test_similar_rules_of_a_catalog_rule(sim_db: Path) -> None:
    conn = connect(sim_db)
    found = similar.similar_rules(conn, "sigma", ANYDESK)
    assert found and ANYDESK not in [n["id"] for n in found]
    assert found[0]["id"] == ANYDESK_FOLDER and found[0]["score"] >= 0.7
    assert [n["score"] for n in found] == sorted((n["score"] for n in found), reverse=True)
    assert similar.similar_rules(conn, None, "no-such-rule") is None


def test_similar_command_json(sim_db: Path) -> None:
    args = ["similar", ANYDESK, "--vendor", "sigma", "--limit", "3", "--json", "--db", str(sim_db)]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0
    rows: list[dict[str, Any]] = json.loads(out.output)
    assert 0 < len(rows) <= 3
    assert set(rows[0]) == {"vendor", "id", "title", "score", "shared"}
    assert CliRunner().invoke(main, ["similar", "nope", "--db", str(sim_db)]).exit_code == 3


def test_clusters_command_cross_vendor(sim_db: Path) -> None:
    out = CliRunner().invoke(main, ["clusters", "--cross-vendor", "--json", "--db", str(sim_db)])
    doc = json.loads(out.output)
    assert doc["clusters"] and all(len(c["vendors"]) > 1 for c in doc["clusters"])
    assert doc["summary"]["cross_vendor"] == len(
        [c for c in similar.clusters(connect(sim_db)) if len(c["vendors"]) > 1]
    )


def test_settings_are_read_and_well_formed() -> None:
    cfg = similar.settings()
    assert set(cfg["multipliers"]) == {"indicator", "exclusion", "event"}
    t = cfg["thresholds"]
    assert 0 < t["related"] < t["pairs"] <= t["cluster"]
    source = Path(similar.__file__).read_text()
    for section, keys in cfg.items():
        for key in keys if section != "multipliers" else ():
            assert f'["{key}"]' in source, f"{section}.{key} is never read"


def _brute_force(weighted: dict[int, dict[str, float]], threshold: float) -> list[tuple]:
    out = []
    for a in sorted(weighted):
        for b in sorted(weighted):
            shares = any(f[0] != "e" and f in weighted[b] for f in weighted[a])
            s = similar.score(weighted[a], weighted[b])
            if a < b and shares and s >= threshold:
                out.append((a, b, round(s, 4)))
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_prefix_filtering_finds_exactly_the_pairs_a_full_scan_finds(
    seed: int, threshold: float
) -> None:
    import random

    rng = random.Random(seed)
    vocab = [f"{k}\tf{i}" for k in "iiixe" for i in range(12)]
    feats = {pk: set(rng.sample(vocab, rng.randint(1, 8))) for pk in range(60)}
    feats = {pk: fs | {"i\tcommon"} for pk, fs in feats.items()}  # one feature everyone has
    weighted = similar.weigh(feats)
    expected = _brute_force(weighted, threshold)
    assert expected, "the draw must hold pairs for the check to mean something"
    assert similar.exact_pairs(weighted, threshold) == expected


def _sim_tables(conn: Any) -> dict[str, Any]:
    summary = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'similar'").fetchone()[0])
    clusters: dict[int, list[int]] = {}
    for pk, cid in conn.execute("SELECT rule_pk, cluster FROM sim_clusters"):
        clusters.setdefault(cid, []).append(pk)
    return {
        "features": sorted(conn.execute("SELECT * FROM sim_features")),
        "pairs": sorted(conn.execute("SELECT * FROM sim_pairs")),
        "clusters": sorted(sorted(m) for m in clusters.values()),
        "summary": {k: v for k, v in summary.items() if k != "seconds"},
    }


def _sim_db(feats: dict[int, set[str]]) -> Any:
    import sqlite3

    conn = sqlite3.connect(":memory:")
    conn.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);" + similar.DDL)
    similar.write_tables(conn, feats)
    return conn


# How an incremental build changes rules: (name, pks changed, whether a new key
# replaces the old one, whether the number of compared rules may change)
EDITS = [
    ("one rule's features", 1, False),
    ("five rules' features", 5, False),
    ("a rule under a new key (a renamed file)", 1, True),
    ("a rule's features unchanged (a title edit)", 0, False),
]


@pytest.mark.parametrize("seed", range(4))
def test_an_update_gives_the_tables_a_full_computation_gives(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import random

    from detcat.similar import update as similar_update

    # In so small a draw an edit touches many rules: update them all the same.
    monkeypatch.setattr(similar_update, "_MOST_TOUCHED", 1.0)
    rng = random.Random(seed)
    vocab = [f"{k}\tf{i}" for k in "iiixe" for i in range(14)]
    draw = lambda: set(rng.sample(vocab, rng.randint(1, 7))) | {"i\tcommon"}  # noqa: E731
    feats = {pk: draw() for pk in range(1, 80)}
    conn = _sim_db(feats)
    updated = 0
    for step in range(24):
        name, k, rekey = EDITS[step % len(EDITS)]
        pks = rng.sample(sorted(feats), k or 1)
        removed = {pk: frozenset(feats.pop(pk)) for pk in pks}
        added = {}
        for pk in pks:
            new_pk = max([*feats, *removed]) + 1 if rekey else pk
            added[new_pk] = frozenset(draw() if k else removed[pk])
        feats.update({pk: set(fs) for pk, fs in added.items()})
        got = similar_update.update(conn, removed, added)
        assert got is not None, f"step {step} ({name}): the number of rules is the same"
        updated += 1
        assert _sim_tables(conn) == _sim_tables(_sim_db(feats)), f"step {step}: {name}"
    assert updated == 24


def test_an_update_leaves_a_change_in_the_number_of_rules_to_a_full_computation() -> None:
    from detcat.similar import update as similar_update

    feats = {pk: {"i\tcommon", f"i\tf{pk % 7}", f"x\tg{pk % 3}"} for pk in range(1, 40)}
    conn = _sim_db(feats)
    before = _sim_tables(conn)
    cases = [  # (removed, added)
        ({1: frozenset(feats[1])}, {}),  # a rule gone
        ({}, {99: frozenset({"i\tnew"})}),  # a rule added
        ({1: frozenset(feats[1])}, {1: frozenset({"e\tonly-an-event"})}),  # no indicator left
    ]
    for removed, added in cases:
        assert similar_update.update(conn, removed, added) is None
        assert _sim_tables(conn) == before  # nothing written
