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
