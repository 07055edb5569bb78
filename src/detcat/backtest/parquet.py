"""``detcat events normalize``: event files as Parquet rows for SQL backtests.

Events are read as ``detcat match`` reads them (``match.reading``), made canonical
(``match.events``), and written as the rows ``sqlgen.rows`` defines: one column
per canonical field variant the catalog's compiled rules test, plus the raw JSON.
The output folder is partitioned by event kind (``_kind=sysmon_1/…``), the unit
a backtest routes rules by.

Streaming with flat memory: rows go to one JSON-lines spool file per kind, and a
spool of ``batch_rows`` rows becomes one Parquet file (written by DuckDB, which
reads the spool with the column types given). Each Parquet file has the columns
its rows have; readers take the union by name, a column absent from a whole
route being a field none of its events has. ``MANIFEST`` records the columns
considered, so a backtest knows a column that was never written from a field
no event has.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from detcat.errors import DetcatError
from detcat.match.events import TooDeep, canonical_event
from detcat.match.reading import BadEvent, read_documents
from detcat.sqlgen.rows import KIND, RowMaker, column_types, kind_of

MANIFEST = "detcat-events.json"
FORMAT = 1  # the manifest's version: rows written by another layout are refused
BATCH_ROWS = 100_000
# Rows per Parquet row group. A reader holds a whole row group's column chunks,
# decompressed, per thread (DuckDB: ~400 MB at its default of 122,880 rows of
# these wide text columns), and row groups are the unit threads share out:
# smaller ones keep a backtest's memory low and its threads evenly busy.
ROW_GROUP_ROWS = 16_384


class NormalizeError(DetcatError):
    """An output folder that holds other rows, or Parquet that cannot be written."""


@dataclass
class Manifest:
    columns: list[str]  # field columns considered (written where an event has them)
    nonnull: list[str]  # fields whose non-null presence is listed in _nonnull
    kinds: dict[str, int] = field(default_factory=dict)  # rows per partition
    format: int = FORMAT

    @classmethod
    def read(cls, folder: Path) -> Manifest | None:
        path = folder / MANIFEST
        if not path.exists():
            return None
        return cls.parse(path.read_text(encoding="utf-8"), str(path))

    @classmethod
    def parse(cls, text: str, path: str) -> Manifest:
        """The manifest in ``text``, read from ``path`` (local or object storage)."""
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise NormalizeError(f"{path}: written by another detcat (format {data.get('format')})")
        return cls(data["columns"], data["nonnull"], data.get("kinds", {}))

    def write(self, folder: Path) -> None:
        data = {"format": self.format, "columns": self.columns, "nonnull": self.nonnull}
        data["kinds"] = dict(sorted(self.kinds.items()))
        (folder / MANIFEST).write_text(json.dumps(data, indent=1), encoding="utf-8")


def missing_manifest(path: str, error: Exception) -> NormalizeError:
    """What an engine says when ``path`` holds no manifest it can read."""
    return NormalizeError(
        f"{path}: not found: give a folder written by `detcat events normalize` ({error})"
    )


@dataclass
class _Spool:
    path: Path
    stream: IO[str]
    rows: int = 0
    columns: set[str] = field(default_factory=set)


class ParquetWriter:
    """Rows of canonical events into ``folder``, one spool per kind (see above)."""

    def __init__(
        self,
        folder: Path,
        columns: Iterable[str],
        nonnull: Iterable[str],
        batch_rows: int = BATCH_ROWS,
    ):
        self.folder = folder
        self.manifest = Manifest(sorted(columns), sorted(nonnull))
        old = Manifest.read(folder)
        if old is not None and (old.columns, old.nonnull) != (
            self.manifest.columns,
            self.manifest.nonnull,
        ):
            raise NormalizeError(
                f"{folder} holds events normalized for another catalog: use a new folder"
            )
        if old is not None:
            self.manifest.kinds = old.kinds
        self.types = column_types(self.manifest.columns)
        self.maker = RowMaker(self.manifest.columns, self.manifest.nonnull)
        self.batch_rows = batch_rows
        self.spools: dict[str, _Spool] = {}
        self.run = uuid.uuid4().hex[:8]
        self.parts = 0
        self._tmp = tempfile.TemporaryDirectory(prefix="detcat-spool-")
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, ev: Any, doc: dict[str, Any]) -> None:
        row = self.maker.row(ev, doc)
        kind = kind_of(ev.catalog_id)
        spool = self.spools.get(kind)
        if spool is None:
            path = Path(self._tmp.name) / f"{kind}.jsonl"
            spool = self.spools[kind] = _Spool(path, open(path, "w", encoding="utf-8"))  # noqa: SIM115
        spool.columns.update(row)
        spool.stream.write(json.dumps(row, ensure_ascii=True) + "\n")
        spool.rows += 1
        if spool.rows >= self.batch_rows:
            self._flush(kind)

    def _flush(self, kind: str) -> None:
        spool = self.spools.pop(kind)
        spool.stream.close()
        if spool.rows:
            target = self.folder / f"{KIND}={kind}" / f"part-{self.run}-{self.parts:05d}.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            write_parquet(spool.path, target, {c: self.types[c] for c in sorted(spool.columns)})
            self.parts += 1
            self.manifest.kinds[kind] = self.manifest.kinds.get(kind, 0) + spool.rows
        spool.path.unlink()

    def close(self) -> Manifest:
        for kind in list(self.spools):
            self._flush(kind)
        self.manifest.write(self.folder)
        self._tmp.cleanup()
        return self.manifest


def write_parquet(spool: Path, target: Path, types: dict[str, str]) -> None:
    import duckdb

    cols = "{" + ", ".join(f"'{_q(c)}': '{t}'" for c, t in types.items()) + "}"
    con = duckdb.connect()
    try:
        con.execute("SET threads TO 1; SET preserve_insertion_order = true")
        con.execute(
            f"COPY (SELECT * FROM read_json('{_q(str(spool))}', format = 'newline_delimited',"
            f" columns = {cols}, maximum_object_size = 67108864))"
            f" TO '{_q(str(target))}' (FORMAT parquet, COMPRESSION zstd,"
            f" ROW_GROUP_SIZE {ROW_GROUP_ROWS})"
        )
    except duckdb.Error as e:
        raise NormalizeError(f"{target}: cannot write Parquet: {e}") from None
    finally:
        con.close()


def _q(text: str) -> str:
    return text.replace("'", "''")


@dataclass
class Summary:
    events: int = 0
    bad: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


def normalize_files(
    paths: Iterable[str | Path],
    folder: Path,
    columns: Iterable[str],
    nonnull: Iterable[str],
    on_bad: Callable[[BadEvent], None],
    batch_rows: int = BATCH_ROWS,
) -> Summary:
    """Every event of ``paths`` into ``folder`` (see the module docstring)."""
    writer = ParquetWriter(folder, columns, nonnull, batch_rows)
    summary = Summary()

    def bad(b: BadEvent) -> None:
        summary.bad += 1
        on_bad(b)

    try:
        for path in paths:
            for label, doc in read_documents(path, bad):
                try:
                    ev = canonical_event(label, doc)
                except TooDeep as e:
                    bad(BadEvent(label, str(e)))
                    continue
                writer.add(ev, doc)
                summary.events += 1
    finally:
        manifest = writer.close()
    summary.kinds = manifest.kinds
    return summary
