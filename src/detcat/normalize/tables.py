"""The data files under ``detcat/data`` (the loader lives in ``detcat.tables``, below
``sources/``, which reads the tables its vendors own)."""

from detcat.tables import EVENT_SOURCES, EVENTS, FIELD_TYPES, FIELDS, load

__all__ = ["EVENTS", "EVENT_SOURCES", "FIELD_TYPES", "FIELDS", "load"]
