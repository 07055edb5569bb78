"""Derived tables on a catalog that may not be writable (``store.derive_if_writable``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from detcat import store


def _read_only(db: Path) -> None:
    raise store.CatalogReadOnly(f"cannot add derived tables to {db}: readonly database")


def _writes(db: Path) -> None:
    db.write_text("derived")


def test_a_read_only_catalog_gives_the_reason_instead_of_failing(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    assert store.derive_if_writable(_read_only, db) == (
        f"cannot add derived tables to {db}: readonly database"
    )


def test_a_writable_catalog_gets_its_tables_and_no_reason(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    assert store.derive_if_writable(_writes, db) is None
    assert db.read_text() == "derived"


def test_other_failures_are_not_taken_for_read_only(tmp_path: Path) -> None:
    def missing(db: Path) -> None:
        raise store.MissingCatalog(f"no catalog at {db}")

    with pytest.raises(store.MissingCatalog):
        store.derive_if_writable(missing, tmp_path / "none.sqlite")
