"""``detcat export-site``: the whole site as static files with relative links.

Each page is written at the path ``Links(static=True)`` gives it; rules, fields
and events are articles of shared pages (``export_pages``). JSON twins go under
``api/`` when asked (one per page, or per article of a shared page): they repeat
what the pages show, so they are off by default. The search page runs Pagefind
in the browser over the index ``static_search`` builds in ``pagefind/``, while
worker processes render pages.
Pages open from ``file://``; search needs the folder served over HTTP (any
static server), because browsers refuse ``fetch`` and WebAssembly there.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from importlib import resources
from multiprocessing import get_context
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from detcat import reach, similar, store
from detcat.errors import DetcatError
from detcat.web import export_pages, pages, queries, static_search
from detcat.web.templating import render
from detcat.web.urls import Links, indicator_group, indicator_key
from detcat.workers import pool_context

MARKER = ".detcat-export"  # marks a directory this command may empty and rewrite
_ROOT = Links(static=True)
SEARCH_DIR = "pagefind"

Builder = export_pages.Builder
Progress = Callable[[int, int], None]


class ExportError(DetcatError):
    pass


@dataclass(frozen=True, slots=True)
class ExportReport:
    out: Path
    pages: int
    files: int
    bytes: int  # the files' sizes added up
    disk_bytes: int  # what they take on this disk (whole blocks, as du counts)
    seconds: float


def jobs(conn: sqlite3.Connection) -> Iterator[tuple[str, Builder]]:
    """Every page of the site: (path under the export root, page builder)."""
    yield _ROOT.home(), pages.overview
    yield _ROOT.problems(), pages.problems
    yield _ROOT.clusters(), pages.clusters
    yield _ROOT.search(), partial(pages.search, query="")
    for tid in queries.technique_ids(conn):
        yield _ROOT.technique(tid), partial(pages.technique, tid=tid)
    yield from export_pages.jobs(conn)  # rules, fields and events
    groups: dict[str, list[tuple[str | None, str, str]]] = {}
    for field, op, value in queries.shared_indicators(conn):
        key = indicator_key(field, op, value)
        groups.setdefault(indicator_group(key), []).append((field, op, value or ""))
    for path, items in sorted(groups.items()):
        yield path, partial(pages.indicator_group, items=items)


def _write_page(out: Path, conn: sqlite3.Connection, path: str, build: Builder, twins: bool) -> int:
    page = build(conn)
    links = Links(static=True, depth=path.count("/"))
    pairs = _twins(path, page) if twins else []
    own = any(twin == _ROOT.api(path) for twin, _ in pairs)  # linked from the page
    written = _write(
        out / path, render(page, links, api=links.api(links.root + path) if own else None)
    )
    for twin, data in pairs:
        written += _write(out / twin, json.dumps(data, ensure_ascii=False))
    return written


def _twins(path: str, page: pages.Page) -> list[tuple[str, Any]]:
    """The JSON twins of a page: (path under the export root, data). The static
    search has no server to ask; a shared page's articles have a twin each."""
    if path == _ROOT.search():
        return []
    if page.template == export_pages.TEMPLATE:
        return export_pages.twins(page)
    return [(_ROOT.api(path), page.data)]


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


class _SearchIndex:
    """Builds the Pagefind index in a process of its own while the workers render
    (it takes the CPU they leave). A process, not a thread: the render workers
    are forked after it starts, and forking a process that runs threads can copy
    a lock one of them holds (the worker then waits forever)."""

    def __init__(self, db: Path, out: Path):
        context = get_context()
        self._answer, answer = context.Pipe(duplex=False)
        self._proc = context.Process(target=_index, args=(db, out, answer), name="pagefind")
        self._proc.start()

    def finish(self) -> None:
        self._proc.join()
        error = self._answer.recv() if self._answer.poll() else "the indexing process died"
        if error:
            raise ExportError(f"the search index was not written: {error}")


def _index(db: Path, out: Path, answer: Connection) -> None:
    """In the indexing process: the index, then "" or the error."""
    try:
        conn = store.connect(db)
        try:
            static_search.write_index(conn, out)
        finally:
            conn.close()
    except Exception as e:  # told to the exporting process, which raises it
        answer.send(f"{type(e).__name__}: {e}")
    else:
        answer.send("")


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
    json_twins: bool = False,
    progress: Progress | None = None,
) -> ExportReport:
    """Write the whole site under ``out`` (with each page's JSON twin under ``api/``
    when ``json_twins``); ``progress(done, total)`` after each chunk."""
    started = time.perf_counter()
    out = Path(out)
    store.derive_if_writable(similar.ensure, db)  # near-duplicate tables, once per catalog
    store.derive_if_writable(reach.ensure, db)  # corpus reach of every indicator, likewise
    conn = store.connect(db)
    try:
        todo = list(jobs(conn))
        layer = pages.layer(conn, events=()).data
    finally:
        conn.close()
    _prepare(out)
    search = _SearchIndex(Path(db), out / SEARCH_DIR)
    try:
        _write(out / _ROOT.layer(), json.dumps(layer, ensure_ascii=False))
        render_chunk = partial(_render_chunk, Path(db), out, json_twins)
        _render_all(render_chunk, todo, workers or os.cpu_count() or 1, progress)
    finally:
        search.finish()
    files, size, disk = _sizes(out)
    return ExportReport(out, len(todo), files, size, disk, time.perf_counter() - started)


def _sizes(out: Path) -> tuple[int, int, int]:
    """Files, their bytes, and their disk usage in bytes."""
    stats = [p.stat() for p in out.rglob("*") if p.is_file()]
    return len(stats), sum(s.st_size for s in stats), sum(s.st_blocks * 512 for s in stats)


def _yield_to_search() -> None:
    """In a render worker: a lower priority than the search index's process, the
    longest single task of an export (with as many workers as cores, it would
    otherwise get a share of a core and end last, alone)."""
    if hasattr(os, "nice"):
        os.nice(5)


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
        pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=pool_context(False), initializer=_yield_to_search
        )
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
