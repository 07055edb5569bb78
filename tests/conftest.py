"""Shared fixtures. Tests that need the real rule corpora use ``corpora`` and
skip, saying why, when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def corpora_dir() -> Path | None:
    env = os.environ.get("DETCAT_SOURCES")
    for cand in ([Path(env)] if env else []) + [ROOT.parent / "shared" / "corpora"]:
        if (cand / "attack" / "enterprise-attack.json").exists():
            return cand
    return None


@pytest.fixture(scope="session")
def corpora() -> Path:
    d = corpora_dir()
    if d is None:
        pytest.skip("rule corpora not found: set DETCAT_SOURCES or provide ../shared/corpora")
    return d


@pytest.fixture(scope="session")
def corpus_db(corpora: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole catalog built once from the real corpora, shared by the session."""
    from detcat import catalog

    db = tmp_path_factory.mktemp("catalog") / "detcat.sqlite"
    catalog.build(corpora, db)
    return db
