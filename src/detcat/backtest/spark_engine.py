"""Normalized events read by Spark SQL (``pip install 'detcat[spark]'``, Java from
the system): a local folder, HDFS or object storage (``s3a://bucket/prefix``, with
the cluster's Hadoop configuration). ``master``: a Spark master URL
(``spark://host:7077``, ``yarn``, ``local[4]``); by default a local session on
two cores. Each route (event kind) is one temporary view and one query."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from detcat.backtest.parquet import MANIFEST, Manifest, missing_manifest
from detcat.errors import DetcatError
from detcat.sqlgen.rows import KIND
from detcat.sqlgen.rules import nonnull_key
from detcat.sqlgen.spark import Spark

DEFAULT_MASTER = "local[2]"
LOCAL_DRIVER_MEMORY = "6g"


class SparkMissing(DetcatError):
    pass


class SparkSource:
    dialect = Spark()

    def __init__(self, root: str, master: str | None = None):
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise SparkMissing(
                "the spark engine needs pyspark: pip install 'detcat[spark]' (and Java)"
            ) from None
        self.root = root.rstrip("/")
        self.spark = (
            SparkSession.builder.master(master or DEFAULT_MASTER)
            .appName("detcat backtest")
            .config("spark.sql.parquet.mergeSchema", "true")
            .config("spark.sql.caseSensitive", "true")  # field columns differ by case
            # Spark substitutes ${var} in SQL text, literals included: a rule's
            # "${jndi:" or "${env:x:-j}" must reach the data as written.
            .config("spark.sql.variable.substitute", "false")
            .config("spark.ui.enabled", "false")
            # The driver plans the whole catalog's query of a route (megabytes of
            # SQL): Spark's default 1 GB heap ran out on 134 events. A maximum, not
            # a reservation; it applies when this process starts the driver's JVM.
            .config("spark.driver.memory", LOCAL_DRIVER_MEMORY)
            .getOrCreate()
        )
        manifest = self._manifest()
        self.considered = set(manifest.columns) | {nonnull_key(f) for f in manifest.nonnull}
        self._routes = sorted(manifest.kinds)
        self._views: dict[str, tuple[str, set[str]]] = {}

    def _manifest(self) -> Manifest:
        path = f"{self.root}/{MANIFEST}"
        try:
            text = "\n".join(r.value for r in self.spark.read.text(path).collect())
        except Exception as e:  # AnalysisException: no such path
            raise missing_manifest(path, e) from None
        return Manifest.parse(text, path)

    def routes(self) -> list[str]:
        return self._routes

    def _view(self, route: str) -> tuple[str, set[str]]:
        if route not in self._views:
            df = self.spark.read.parquet(f"{self.root}/{KIND}={route}")
            name = f"detcat_route_{len(self._views)}"
            df.createOrReplaceTempView(name)
            self._views[route] = (name, set(df.columns))
        return self._views[route]

    def table(self, route: str) -> str:
        return self._view(route)[0]

    def columns(self, route: str) -> set[str]:
        return self._view(route)[1]

    def rows(self, sql: str, plain: bool = False) -> Iterator[tuple[Any, ...]]:
        """The rows of ``sql`` (``plain`` is DuckDB's: Spark plans it as it is)."""
        for row in self.spark.sql(sql).toLocalIterator():
            yield tuple(row)
