"""The data files under ``detcat/data``, each parsed once, on first use.

Below every layer that reads tables (``sources/`` for the vendor facts it owns,
``normalize/`` for the mapping tables, ``match/`` for event kinds).
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Any

FIELDS = "fields.toml"
EVENTS = "events.toml"
EVENT_SOURCES = "event_sources.toml"
EVENT_KINDS = "event_kinds.toml"
FIELD_TYPES = "field_types.toml"
SPL = "spl.toml"
PROCESS_IDENTITY = "process_identity.toml"


@cache
def load(name: str) -> dict[str, Any]:
    """A table file as a dict (tomllib rejects duplicate keys, so loading checks them)."""
    text = resources.files("detcat").joinpath("data", name).read_text(encoding="utf-8")
    return tomllib.loads(text)
