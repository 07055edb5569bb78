"""Events as SQL rows: the columns ``sqlgen.ir`` tests, computed from canonical
events (``match.events.Event``) exactly as ``match.evaluate`` reads them.

A row has, for each canonical field the catalog tests, the columns of the
variants its rules need (``ir.Variant``), and these others:

- ``_label`` (``file:line``), ``_time`` (ISO text, when the event states one),
  ``_seconds`` (the time stateful rules count with: ``match.stateful.event_time``),
  ``_raw`` (the document as JSON: the Python matcher's input for fallback rules);
- ``_catalog_id`` (``sysmon:1``, the event kind rules are routed by) and ``_scopes``;
- ``_text`` / ``_text#cf``: every string value of the document (keyword search);
- ``_nonnull``: the fields tested by ``exists`` that have a non-null value;
- ``_python``: a value SQL cannot test exactly (``_unsafe``): the Python matcher's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from detcat.match.evaluate import number
from detcat.match.events import Event
from detcat.match.stateful import event_time as stream_time
from detcat.model import value_text
from detcat.sqlgen.ir import NONNULL, SCOPES, SEP, Col, Variant
from detcat.sqlgen.lower import ip_key

LABEL, TIME, SECONDS, RAW, KIND, CATALOG_ID, PYTHON = (
    "_label",
    "_time",
    "_seconds",
    "_raw",
    "detcat_kind",  # the partition key: Spark skips folders whose names start with _
    "_catalog_id",
    "_python",
)
UNKNOWN_KIND = "unknown"  # the route of events the event dictionary does not know

# Where events state their time, in the spellings of the formats ``match`` reads.
_TIME_FIELDS = (
    "@timestamp",
    "TimeCreated_SystemTime",
    "UtcTime",
    "timestamp",
    "event.created",
    "metadata.event_timestamp",
    "_time",
)


def joined(texts: Iterable[str]) -> str:
    """Values between separators: ``\\x1fa\\x1fb\\x1f``; no value: ``""``."""
    items = list(texts)
    return SEP + SEP.join(items) + SEP if items else ""


def kind_of(catalog_id: str | None) -> str:
    """The partition name of an event kind (``sysmon_1``): safe as a folder name."""
    return catalog_id.replace(":", "_") if catalog_id else UNKNOWN_KIND


def column_types(wanted: Iterable[str]) -> dict[str, str]:
    """Every column of a row (with the ``wanted`` field columns) and its SQL type."""
    out = {
        LABEL: "VARCHAR",
        TIME: "VARCHAR",
        SECONDS: "DOUBLE",
        RAW: "VARCHAR",
        CATALOG_ID: "VARCHAR",
        SCOPES: "VARCHAR",
        PYTHON: "BOOLEAN",
        NONNULL: "VARCHAR[]",
        "_text": "VARCHAR",
        "_text#cf": "VARCHAR",
    }
    for name in sorted(wanted):
        variant = _variant(name)
        out[name] = {
            Variant.LIST: "VARCHAR[]",
            Variant.NUM: "DOUBLE[]",
            Variant.IP: "VARCHAR[]",
            Variant.KEY: "VARCHAR[]",
        }.get(variant, "VARCHAR")
    return out


def _variant(name: str) -> Variant:
    for v in (Variant.FOLD, Variant.LIST, Variant.NUM, Variant.IP, Variant.KEY):
        if name.endswith(v):
            return v
    return Variant.TEXT


def split_name(name: str) -> Col:
    variant = _variant(name)
    return Col(name[: len(name) - len(variant)] if variant else name, variant)


class RowMaker:
    """Rows with the columns ``wanted`` (field columns by ``Col.name``) and
    ``exists`` tests of the ``nonnull`` fields."""

    def __init__(self, wanted: Iterable[str], nonnull: Iterable[str]):
        self.by_field: dict[str, list[Variant]] = {}
        for name in wanted:
            col = split_name(name)
            self.by_field.setdefault(col.field, []).append(col.variant)
        self.nonnull = frozenset(nonnull)

    def row(self, ev: Event, doc: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            LABEL: ev.label,
            TIME: event_time(ev),
            SECONDS: stream_time(ev),
            RAW: json.dumps(doc, ensure_ascii=False, separators=(",", ":")),
            CATALOG_ID: ev.catalog_id,
            SCOPES: SEP.join(sorted(ev.scopes)),
            NONNULL: [],
        }
        unsafe = any(_unsafe(t) for t in ev.text)
        out["_text"], out["_text#cf"] = joined(ev.text), joined(t.casefold() for t in ev.text)
        for field, values in ev.fields.items():
            # before the columns: an `exists` may be the only test of a field
            if field in self.nonnull and any(v is not None for v in values):
                out[NONNULL].append(field)
            variants = self.by_field.get(field)
            if variants is None:
                continue
            texts = [value_text(v) for v in values]
            unsafe = unsafe or any(_unsafe(t) for t in texts)
            if Variant.KEY in variants:  # NaN equals no other NaN: no SQL key is
                unsafe = unsafe or any(isinstance(v, float) and math.isnan(v) for v in values)
            for variant in variants:
                out[field + variant] = _column(variant, values, texts)
        out[PYTHON] = unsafe
        return out


def _unsafe(text: str) -> bool:
    """A value SQL cannot test as the matcher does: it holds the separator, or a
    character whose case fold is several (``ß`` -> ``ss``: RE2's case-insensitive
    wildcards and ``str.casefold`` disagree there, see ``lower._simple_wildcard``)."""
    return SEP in text or (not text.isascii() and len(text.casefold()) != len(text))


def _column(variant: Variant, values: list[Any], texts: list[str]) -> Any:
    if variant is Variant.TEXT:
        return joined(texts)
    if variant is Variant.FOLD:
        return joined(t.casefold() for t in texts)
    if variant is Variant.LIST:
        return texts
    if variant is Variant.NUM:  # NaN compares with nothing: left out
        return [n for v in values if (n := _number(v)) is not None and not math.isnan(n)]
    if variant is Variant.KEY:
        return [key_text(v) for v in values if v is not None]
    return [k for t in texts if (k := ip_key(t)) is not None]


def key_text(value: Any) -> str:
    """A value as a stateful rule's group key: two texts are equal exactly when
    Python finds the values equal (``1 == 1.0 == True``, ``"1" != 1``), as the
    matcher's keys are tuples of values. An empty string is ``s``."""
    if isinstance(value, str):
        return "s" + value
    if isinstance(value, bool | int) or (isinstance(value, float) and value.is_integer()):
        return f"n{int(value)}"
    return f"n{value!r}" if isinstance(value, float) else "j" + json.dumps(value, sort_keys=True)


def _number(v: Any) -> float | None:
    try:
        return number(v)
    except OverflowError:  # an integer beyond a float: no number the matcher can compare
        return None


def event_time(ev: Event) -> str | None:
    """The event's time as ISO text in UTC (``2024-05-01T10:00:00``), if it says."""
    for name in _TIME_FIELDS:
        for v in ev.raw.get(name, ()):
            got = _iso(v)
            if got:
                return got
    return None


def _iso(v: Any) -> str | None:
    if isinstance(v, int | float) and not isinstance(v, bool):
        seconds = v / 1000 if v > 1e11 else v  # epoch milliseconds or seconds
        try:
            return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(v, str) or len(v) < 10:
        return None
    text = v.strip().replace(" ", "T", 1)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text[:19] if text[:4].isdigit() and text[4:5] == "-" else None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S")
