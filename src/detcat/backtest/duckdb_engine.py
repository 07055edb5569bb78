"""Normalized events read by embedded DuckDB: a local folder or object storage
(``s3://…``, ``gs://…``, ``https://…``). Object storage is read by DuckDB's httpfs
extension (configured by a DuckDB secret or the usual ``AWS_*`` variables) where
it loads; DuckDB downloads it on first use, so where that cannot happen (no
network to extensions.duckdb.org) an installed fsspec filesystem for the scheme
(``pip install s3fs`` for ``s3://``, configured by ``AWS_*`` variables, including
``AWS_ENDPOINT_URL`` for S3-compatible stores) is given to DuckDB instead."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from detcat.backtest.parquet import MANIFEST, Manifest, missing_manifest
from detcat.errors import DetcatError
from detcat.sqlgen.duckdb import DuckDB
from detcat.sqlgen.rows import KIND
from detcat.sqlgen.rules import nonnull_key

FETCH_ROWS = 10_000
# A route query is one projection of a scan, megabytes of SQL: these optimizer
# passes each walk its expressions (seconds of planning) and change nothing in it.
PLAIN_QUERY = (
    "common_subexpressions",
    "expression_rewriter",
    "statistics_propagation",
    "filter_pushdown",
    "join_order",
    "build_side_probe_side",
    "compressed_materialization",
    "duplicate_groups",
    "reorder_filter",
)


class StorageMissing(DetcatError):
    """Neither DuckDB's httpfs nor an fsspec filesystem reads the URL's scheme."""


class DuckDBSource:
    dialect = DuckDB()

    def __init__(self, root: str, threads: int | None = None, memory_limit: str | None = None):
        import duckdb

        self.root = root.rstrip("/")
        self.con = duckdb.connect()
        if threads:
            self.con.execute(f"SET threads TO {int(threads)}")
        if memory_limit:
            self.con.execute(f"SET memory_limit = {self.dialect.literal(memory_limit)}")
        self.con.execute("SET preserve_insertion_order = false")
        if "://" in self.root:
            self._object_storage(self.root.split("://", 1)[0])
        manifest = self._manifest()
        self.considered = set(manifest.columns) | {nonnull_key(f) for f in manifest.nonnull}
        self._files: dict[str, list[str]] = {}
        for (path,) in self.con.execute(
            f"SELECT file FROM glob({self.dialect.literal(self.root + '/*/*.parquet')})"
        ).fetchall():
            folder = str(path).replace("\\", "/").rsplit("/", 2)[-2]
            if folder.startswith(KIND + "="):
                self._files.setdefault(folder.split("=", 1)[1], []).append(str(path))

    def _object_storage(self, scheme: str) -> None:
        """httpfs if it loads, else the scheme's fsspec filesystem (see above)."""
        if httpfs(self.con):
            return
        try:
            import fsspec

            fs = fsspec.filesystem(scheme)
        except (ImportError, ValueError) as e:
            raise StorageMissing(
                f"{self.root}: DuckDB's httpfs extension does not load here and no fsspec "
                f"filesystem reads {scheme}:// ({e}); e.g. pip install s3fs"
            ) from None
        self.con.register_filesystem(fs)

    def _manifest(self) -> Manifest:
        path = f"{self.root}/{MANIFEST}"
        try:
            (text,) = self.con.execute(
                f"SELECT content FROM read_text({self.dialect.literal(path)})"
            ).fetchone()  # type: ignore[misc]
        except Exception as e:  # duckdb.IOException and kin: no manifest there
            raise missing_manifest(path, e) from None
        return Manifest.parse(text, path)

    def routes(self) -> list[str]:
        return sorted(self._files)

    def table(self, *routes: str) -> str:
        """The rows of these routes (one, in the SQL driver)."""
        files = ", ".join(self.dialect.literal(f) for r in routes for f in self._files[r])
        return f"read_parquet([{files}], union_by_name = true)"

    def columns(self, route: str) -> set[str]:
        return {
            r[0] for r in self.con.execute(f"DESCRIBE SELECT * FROM {self.table(route)}").fetchall()
        }

    def rows(self, sql: str, plain: bool = False) -> Iterator[tuple[Any, ...]]:
        """The rows of ``sql``; ``plain``: planned without the ``PLAIN_QUERY`` passes."""
        cursor = self.con.cursor()
        if plain:
            known = {
                r[0] for r in cursor.execute("SELECT name FROM duckdb_optimizers()").fetchall()
            }
            off = ",".join(n for n in PLAIN_QUERY if n in known)
            # a cursor is a connection of its own: the setting ends with it
            cursor.execute(f"SET disabled_optimizers = {self.dialect.literal(off)}")
        cursor.execute(sql)
        while batch := cursor.fetchmany(FETCH_ROWS):
            yield from batch
        cursor.close()


def httpfs(con: Any) -> bool:
    """Whether DuckDB's httpfs extension is loaded (installing it may download)."""
    import duckdb

    for sql in ("LOAD httpfs", "INSTALL httpfs"):
        try:
            con.execute(sql)
            if sql.startswith("INSTALL"):
                con.execute("LOAD httpfs")
            return True
        except duckdb.Error:
            continue
    return False
