"""Fixtures of the command-line tests: a small catalog built through the real
pipeline (see ``cli_helpers``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import RULES, write_sources

from detcat import catalog


@pytest.fixture(scope="session")
def faces_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = write_sources(tmp_path_factory.mktemp("faces") / "sources")
    db = src.parent / "catalog.sqlite"
    report = catalog.build(src, db, workers=1, vendors=("sigma",))
    assert report.vendors["sigma"]["rules"] == len(RULES), report.problems
    return db
