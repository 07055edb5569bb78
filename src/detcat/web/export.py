"""``detcat export-site``: the whole site as static files with relative links.

Each page is written at the path ``Links(static=True)`` gives it, next to its
JSON twin under ``api/``; the search page runs in the browser over
``search-index.js`` (a script, not a fetched JSON file, because browsers refuse
``fetch`` from ``file://``). Rendering is split over worker processes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time
import unicodedata
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

from detcat import reach, similar, store
from detcat.errors import DetcatError
from detcat.web import pages, queries
from detcat.web.templating import render
from detcat.web.urls import Links

MARKER = ".detcat-export"  # marks a directory this command may empty and rewrite
_ROOT = Links(static=True)
_TOKEN = re.compile(r"[^\W_]+")

Builder = Callable[[sqlite3.Connection], pages.Page]
Progress = Callable[[int, int], None]


class ExportError(DetcatError):
    pass


@dataclass(frozen=True, slots=True)
class ExportReport:
    out: Path
    pages: int
    files: int
    bytes: int
    seconds: float


def jobs(conn: sqlite3.Connection) -> Iterator[tuple[str, Builder]]:
    """Every page of the site: (path under the export root, page builder)."""
    yield _ROOT.home(), pages.overview
    yield _ROOT.problems(), pages.problems
    yield _ROOT.clusters(), pages.clusters
    yield _ROOT.search(), partial(pages.search, query="")
    for tid in queries.technique_ids(conn):
        yield _ROOT.technique(tid), partial(pages.technique, tid=tid)
    for vendor, rule_id in queries.rule_keys(conn):
        yield _ROOT.rule(vendor, rule_id), partial(pages.rule, vendor=vendor, rule_id=rule_id)
    for name in queries.field_names(conn):
        yield _ROOT.field(name), partial(pages.field_, name=name)
    for event_id in queries.event_ids(conn):
        yield _ROOT.event(event_id), partial(pages.event, event_id=event_id)
    for field, op, value in queries.shared_indicators(conn):
        path = _ROOT.indicator(field, op, value)
        yield path, partial(pages.indicator, field_name=field, op=op, value=value or "")


def _write_page(out: Path, conn: sqlite3.Connection, path: str, build: Builder, twins: bool) -> int:
    page = build(conn)
    links = Links(static=True, depth=path.count("/"))
    twin = twins and path != _ROOT.search()  # the static search has no server to ask
    html = render(page, links, api=links.api(links.root + path) if twin else None)
    written = _write(out / path, html)
    if twin:
        written += _write(out / _ROOT.api(path), json.dumps(page.data, ensure_ascii=False))
    return written


def _write(path: Path, text: str) -> int:
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode()
    path.write_bytes(data)
    return len(data)


def _render_chunk(db: Path, out: Path, twins: bool, chunk: list[tuple[str, Builder]]) -> int:
    conn = store.connect(db)
    try:
        return sum(_write_page(out, conn, path, build, twins) for path, build in chunk)
    finally:
        conn.close()


def search_index(conn: sqlite3.Connection) -> dict[str, Any]:
    """Rows [vendor, id, title, href, [technique ids], tokens] for site.js, and
    the href of each technique once (rules share techniques)."""
    rules, techniques = [], {}
    for r in queries.search_rows(conn):
        tids = sorted((r["techniques"] or "").split())
        techniques.update((t, _ROOT.technique(t)) for t in tids)
        text = f"{r['title'] or ''} {r['description'] or ''}"
        rules.append([r["vendor"], r["id"], r["title"], _ROOT.rule(r["vendor"], r["id"]), tids,
                      " ".join(dict.fromkeys(tokens(text)))])  # fmt: skip
    return {"rules": rules, "techniques": techniques}


def tokens(text: str) -> list[str]:
    """Words as FTS5's unicode61 tokenizer sees them: case-folded, no diacritics."""
    plain = unicodedata.normalize("NFD", text.casefold())
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    return _TOKEN.findall(plain)


def _prepare(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise ExportError(f"{out} is not empty and is not a detcat export: refusing to write")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by detcat export-site; emptied on the next export\n")
    static = resources.files("detcat.web") / "static"
    (out / "static").mkdir()
    for item in static.iterdir():
        if item.is_file():
            (out / "static" / item.name).write_bytes(item.read_bytes())


def export_site(
    db: Path,
    out: Path,
    *,
    workers: int | None = None,
    json_twins: bool = True,
    progress: Progress | None = None,
) -> ExportReport:
    """Write the whole site under ``out`` (with each page's JSON twin under ``api/``
    unless ``json_twins`` is false); ``progress(done, total)`` after each chunk."""
    started = time.perf_counter()
    out = Path(out)
    similar.try_ensure(db)  # near-duplicate tables, once per catalog (if writable)
    reach.try_ensure(db)  # corpus reach of every indicator, likewise
    conn = store.connect(db)
    try:
        todo = list(jobs(conn))
        index = search_index(conn)
        layer = pages.layer(conn, events=()).data
    finally:
        conn.close()
    _prepare(out)
    size = _write(out / "search-index.js", "window.DETCAT_INDEX = " + json.dumps(index) + ";\n")
    size += _write(out / _ROOT.layer(), json.dumps(layer, ensure_ascii=False))
    render_chunk = partial(_render_chunk, Path(db), out, json_twins)
    size += _render_all(render_chunk, todo, workers or os.cpu_count() or 1, progress)
    files = sum(1 for p in out.rglob("*") if p.is_file())
    return ExportReport(out, len(todo), files, size, time.perf_counter() - started)


def _render_all(
    render_chunk: Callable[[list[tuple[str, Builder]]], int],
    todo: list[tuple[str, Builder]],
    workers: int,
    progress: Progress | None,
) -> int:
    # Small chunks keep the progress bar moving and the workers evenly loaded.
    chunks = [todo[i : i + 50] for i in range(0, len(todo), 50)]
    done = size = 0
    if workers <= 1:
        results: Iterator[tuple[int, int]] = ((len(c), render_chunk(c)) for c in chunks)
    else:
        pool = ProcessPoolExecutor(max_workers=workers)
        results = zip((len(c) for c in chunks), pool.map(render_chunk, chunks), strict=True)
    try:
        for n, written in results:
            done += n
            size += written
            if progress:
                progress(done, len(todo))
    finally:
        if workers > 1:
            pool.shutdown()
    return size
