"""Helpers shared by the ``detcat match`` tests."""

from __future__ import annotations

from pathlib import Path


def rule_catalog(root: Path, vendor: str, name: str, text: str) -> Path:
    """A catalog built under ``root`` from one rule of ``vendor`` (file ``name``)."""
    from detcat import catalog

    src = root / "sources"
    (src / "attack").mkdir(parents=True)
    (src / "attack" / "enterprise-attack.json").write_text('{"type": "bundle", "objects": []}')
    (src / vendor / "rules").mkdir(parents=True)
    (src / vendor / "rules" / name).write_text(text)
    db = root / "catalog.sqlite"
    catalog.build(src, db, vendors=(vendor,), workers=1)
    return db
