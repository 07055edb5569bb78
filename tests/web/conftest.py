"""Fixtures of the web tests: a tiny hostile catalog built through the real
pipeline, live servers on loopback, static exports and Debian's Chromium."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web_helpers import CHROMIUM, CHROMIUM_ARGS, LiveServer, StaticServer, write_sources

from detcat import catalog


@pytest.fixture(scope="session")
def hostile_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    db = root / "hostile.sqlite"
    catalog.build(write_sources(root / "sources"), db, workers=1, vendors=("sigma",))
    return db


def serve(db: Path) -> LiveServer:
    from detcat.web.app import create_app

    return LiveServer(create_app(db))


@pytest.fixture(scope="session")
def hostile_server(hostile_db: Path) -> Iterator[str]:
    with serve(hostile_db) as s:
        yield s.url


@pytest.fixture(scope="session")
def hostile_export(hostile_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from detcat.web.export import export_site

    out = tmp_path_factory.mktemp("hostile-site") / "site"
    export_site(hostile_db, out, workers=1, json_twins=True)
    return out


@pytest.fixture(scope="session")
def hostile_export_server(hostile_export: Path) -> Iterator[str]:
    with StaticServer(hostile_export) as s:
        yield s.url


@pytest.fixture(scope="session")
def corpus_server(corpus_db: Path) -> Iterator[str]:
    with serve(corpus_db) as s:
        yield s.url


@pytest.fixture(scope="session")
def corpus_export(corpus_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from detcat.web.export import export_site

    out = tmp_path_factory.mktemp("corpus-site") / "site"
    export_site(corpus_db, out, workers=2)  # as `detcat export-site` does: no JSON twins
    return out


@pytest.fixture(scope="session")
def corpus_export_server(corpus_export: Path) -> Iterator[str]:
    with StaticServer(corpus_export) as s:
        yield s.url


# -- the browser ---------------------------------------------------------------------


# Per module, not per session: Playwright's sync API keeps an asyncio loop running in
# the main thread while it is open, and later modules (the MCP tests) start their own.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        # In CI a missing browser is a broken set-up, not a reason to pass quietly.
        missing = pytest.fail if os.environ.get("CI") else pytest.skip
        missing(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    yield pg
    context.close()
