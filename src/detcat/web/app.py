"""The FastAPI application: HTML pages and their JSON twins, read-only.

Every page is rendered from ``pages.py``; the JSON twin under ``/api`` returns the
page's data as is (``/api/techniques/T1219`` is ``detcat technique T1219 --json``).
The catalog file is immutable between builds, so rendered bodies are cached per
catalog generation; a rebuild (which replaces the file) invalidates them.
"""

from __future__ import annotations

import gc
import inspect
import json
import os
import queue
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import HTTPException
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from detcat import reach, schemas, similar, store
from detcat.errors import UsageProblem
from detcat.web import pages
from detcat.web.templating import CSP, render
from detcat.web.urls import Links

CACHE_BYTES = 64_000_000  # rendered pages and JSON kept per catalog generation

_SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeaders:
    """Adds the CSP and friends to every response (plain ASGI: no per-request task),
    and a ``Server-Timing`` header with the time spent producing the response."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - started) * 1000
                timing = (b"server-timing", f"app;dur={ms:.2f}".encode())
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS, timing]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Catalog:
    """A pool of read-only connections and an LRU of rendered bodies, both tied to
    the catalog file's identity so that a rebuild is picked up. Connections are
    pooled rather than per thread: the server's worker threads then share warm
    SQLite page caches instead of each paying a cold start."""

    def __init__(self, db: Path, cache_bytes: int = CACHE_BYTES):
        self.db = Path(db)
        store.connect(self.db).close()  # fail now, clearly, when there is no catalog
        self.cache_bytes = cache_bytes
        self._cached_bytes = 0
        self._pool: queue.SimpleQueue[tuple[tuple[int, int], sqlite3.Connection]] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._generation: tuple[int, int] | None = None

    def generation(self) -> tuple[int, int]:
        st = os.stat(self.db)
        gen = (st.st_ino, st.st_mtime_ns)
        if gen != self._generation:
            with self._lock:
                self._generation = gen
                self._cache.clear()
                self._cached_bytes = 0
        return gen

    @contextmanager
    def conn(self) -> Iterator[tuple[tuple[int, int], sqlite3.Connection]]:
        """A connection of the current catalog generation, returned to the pool after."""
        gen = self.generation()
        held = None
        while held is None:
            try:
                held = self._pool.get_nowait()
            except queue.Empty:
                held = (gen, store.connect(self.db))
            if held[0] != gen:  # from before a rebuild
                held[1].close()
                held = None
        try:
            yield held
        finally:
            self._pool.put(held)

    def cached(self, key: tuple[Any, ...], make: Callable[[sqlite3.Connection], bytes]) -> bytes:
        with self.conn() as (gen, conn):
            if self.cache_bytes <= 0:
                return make(conn)
            # A body computed while a rebuild lands is filed under the old generation.
            key = (gen, *key)
            with self._lock:
                body = self._cache.get(key)
                if body is not None:
                    self._cache.move_to_end(key)
                    return body
            body = make(conn)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = body
                self._cached_bytes += len(body)
            while self._cached_bytes > self.cache_bytes:
                self._cached_bytes -= len(self._cache.popitem(last=False)[1])
        return body


def _href(request: Request) -> str:
    """The request's own URL as sent (still percent-encoded), without the host."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    return raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


def _dump(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, default=str).encode()


Builder = Callable[[sqlite3.Connection], pages.Page]


def _html(catalog: Catalog, request: Request, build: Builder, query: str = "") -> Response:
    href = _href(request)

    def make(conn: sqlite3.Connection) -> bytes:
        links = Links()
        return render(build(conn), links, api=links.api(href), query=query).encode()

    try:
        return HTMLResponse(catalog.cached(("html", href), make))
    except pages.NotFound as e:
        return _error_page(404, str(e))
    except UsageProblem as e:  # e.g. a search term without a value
        return _error_page(400, str(e), query)


def _json(catalog: Catalog, request: Request, build: Builder) -> Response:
    try:
        body = catalog.cached(("api", _href(request)), lambda conn: _dump(build(conn).data))
    except pages.NotFound as e:
        raise HTTPException(404, str(e)) from e
    except UsageProblem as e:
        raise HTTPException(400, str(e)) from e
    return Response(body, media_type="application/json")


_ERROR_TITLES = {400: "Cannot search that", 404: "Not found", 500: "Internal error"}


def _error_page(status: int, detail: str, query: str = "") -> HTMLResponse:
    title = _ERROR_TITLES.get(status, "Error")
    page = pages.Page("error.html", title, {"detail": detail, "status": status})
    return HTMLResponse(render(page, Links(), query=query), status_code=status)


def _error(request: Request, status: int, detail: str) -> Response:
    """The error as the page kind asked for: JSON under /api, else an HTML page."""
    if request.url.path.startswith("/api/"):
        return Response(_dump({"detail": detail}), status, media_type="application/json")
    return _error_page(status, detail)


def _doc(model: type, summary: str) -> dict[str, Any]:
    """Route options documenting a JSON twin that is returned as prebuilt bytes."""
    return {
        "summary": summary,
        "response_class": Response,
        "response_model": None,
        "responses": {200: {"model": model, "description": "OK"},
                      404: {"description": "Not found"}},
    }  # fmt: skip


LIMIT = Query(pages.DEFAULT_LIMIT, ge=1, le=10_000, description="rows per section")
EVENTS = Query([], description="catalog event ids you collect (sysmon:1); repeat the parameter")
VENDORS = Query([], description="only these vendors' rules; repeat the parameter")


def settle_gc() -> None:
    """For a serving process: move everything loaded so far (app, templates,
    tables) out of the collector's reach. A page allocates thousands of rows;
    without this, full collections re-walk the whole heap and double the p95."""
    gc.collect()
    gc.freeze()


def create_app(db: Path, *, cache_bytes: int = CACHE_BYTES) -> FastAPI:
    """The site over the catalog at ``db`` (raises store.MissingCatalog when absent);
    ``cache_bytes=0`` renders every request afresh."""
    store.derive_if_writable(similar.ensure, db)  # near-duplicate tables, once per catalog
    store.derive_if_writable(reach.ensure, db)  # corpus reach of every indicator, likewise
    catalog = Catalog(db, cache_bytes)
    app = FastAPI(
        title="detcat",
        summary="Cross-vendor detection rule catalog: every HTML page has a JSON twin here.",
        docs_url=None,  # the interactive docs load scripts from a CDN; the schema is enough
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(packages=[("detcat.web", "static")]), name="static")
    _add_routes(app, catalog)

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(request, 404, str(getattr(exc, "detail", "Not Found")))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        # A bug, not something a request may cause. Starlette answers it outside
        # the middleware stack, so the security headers are added here.
        response = _error(request, 500, "internal error: the server log has the details")
        response.raw_headers.extend(_SECURITY_HEADERS)
        return response

    return app


# -- the page table: each page once, served as HTML and as its JSON twin ----------------
#
# A page's parameters are those of its ``build`` function (FastAPI reads them, with
# their defaults, as path and query parameters); ``build`` returns what renders it.


def _overview() -> Builder:
    return pages.overview


def _technique(tid: str, limit: int = LIMIT) -> Builder:
    """Exactly `detcat technique TID --json` (same function, same default limit)."""
    return lambda c: pages.technique(c, tid, limit)


def _rule(vendor: str, rule_id: str) -> Builder:
    """Exactly `detcat rule ID --vendor VENDOR --json`."""
    return lambda c: pages.rule(c, vendor, rule_id)


def _field(name: str, limit: int = LIMIT) -> Builder:
    return lambda c: pages.field_(c, name, limit)


def _event(event_id: str) -> Builder:
    return lambda c: pages.event(c, event_id)


def _indicator(op: str, value: str = "", field: str = "") -> Builder:
    """An empty ``field`` is a field-less keyword; the value matches case-insensitively."""
    return lambda c: pages.indicator(c, field, op, value)


def _search(
    q: str = "", limit: int = LIMIT, vendor: str | None = None, technique: str | None = None
) -> Builder:
    """Exactly `detcat search Q --json`: full text, and `field:value` terms; only
    ``vendor``'s rules and ``technique``'s (with its sub-techniques) when given."""
    return lambda c: pages.search(c, q, limit, vendor, technique)


def _problems() -> Builder:
    """Exactly `detcat problems --json`."""
    return pages.problems


def _clusters() -> Builder:
    """Exactly `detcat clusters --json --limit 0` (every cluster)."""
    return pages.clusters


def _coverage(
    events: list[str] = EVENTS, vendor: list[str] = VENDORS, collection: str | None = None
) -> Builder:
    """Exactly `detcat coverage --events E … [--vendor V …] [--collection C] --json`."""
    return lambda c: pages.coverage(c, events, vendor, collection)


def _layer(
    events: list[str] = EVENTS,
    vendor: list[str] = VENDORS,
    collection: str | None = None,
    score: Literal["rules", "runnable", "vendors"] | None = None,
) -> Builder:
    """Exactly `detcat layer [--events E …] [--vendor V …] [--score S]`, as a download."""
    return lambda c: pages.layer(c, events, vendor, collection, score)


@dataclass(frozen=True)
class Route:
    path: str  # the HTML page's; the JSON twin is /api + path (/api/overview for /)
    build: Callable[..., Builder]
    schema: Any  # the JSON twin's response model
    summary: str
    html: bool = True  # False: a JSON download with no page of its own
    download: str | None = None  # the JSON twin is a file download with this name

    @property
    def api_path(self) -> str:
        return "/api" + (self.path if self.path != "/" else "/overview")


PAGES = (
    Route("/", _overview, schemas.Overview, "Overview: vendors, problems, matrix"),
    Route("/techniques/{tid}", _technique, schemas.TechniqueGuide, "Technique guide"),
    Route("/rules/{vendor}/{rule_id:path}", _rule, schemas.RuleDetail, "One rule"),
    Route("/fields/{name:path}", _field, schemas.FieldPage, "One canonical field"),
    Route("/events/{event_id:path}", _event, schemas.EventPage, "One catalog event"),
    Route("/indicators", _indicator, schemas.IndicatorPage, "Rules checking one indicator"),
    Route("/search", _search, schemas.SearchResult, "Search"),
    Route("/problems", _problems, list[schemas.ProblemRow], "Problems"),
    Route("/clusters", _clusters, schemas.Clusters, "Near-duplicate clusters"),
    Route("/coverage", _coverage, schemas.Coverage, "Coverage of a set of events"),
    Route(
        "/layer", _layer, schemas.NavigatorLayer, "ATT&CK Navigator layer (4.5)",
        html=False, download="detcat-layer.json",
    ),
)  # fmt: skip


def _add_routes(app: FastAPI, catalog: Catalog) -> None:
    for route in PAGES:
        if route.html:
            app.add_api_route(
                route.path, _endpoint(route, _html_page(catalog)),
                response_class=HTMLResponse, include_in_schema=False,
            )  # fmt: skip
        app.add_api_route(
            route.api_path, _endpoint(route, _json_page(catalog, route.download)),
            description=route.build.__doc__, **_doc(route.schema, route.summary),
        )  # fmt: skip


Respond = Callable[[Request, Builder, dict[str, Any]], Response]


def _endpoint(route: Route, respond: Respond) -> Callable[..., Response]:
    """A route function with the page's parameters (plus the request) in its
    signature, which is what FastAPI reads."""

    def endpoint(request: Request, **params: Any) -> Response:
        return respond(request, route.build(**params), params)

    sig = inspect.signature(route.build, eval_str=True)
    first = inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request)
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in sig.parameters.values()]
    endpoint.__signature__ = sig.replace(parameters=[first, *params])  # type: ignore[attr-defined]
    endpoint.__name__ = f"{route.build.__name__.strip('_')}_{respond.__name__}"
    return endpoint


def _html_page(catalog: Catalog) -> Respond:
    def page(request: Request, build: Builder, params: dict[str, Any]) -> Response:
        return _html(catalog, request, build, query=params.get("q", ""))

    return page


def _json_page(catalog: Catalog, download: str | None) -> Respond:
    def api(request: Request, build: Builder, params: dict[str, Any]) -> Response:
        response = _json(catalog, request, build)
        if download:
            response.headers["content-disposition"] = f'attachment; filename="{download}"'
        return response

    return api
