"""Helpers shared by the ``detcat match`` tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any


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


def query_outcome(vendor: str, language: str, query: str, fields: dict[str, Any],
                  backtested: bool = False) -> str:  # fmt: skip
    """What one query's first event stage gives on one event of canonical ``fields``:
    match, none or undetermined; ``backtested``: with the rules as backtests run them."""
    from detcat.match import Matcher, RulePlan, StagePlan
    from detcat.match.events import canonical_event
    from detcat.parse import parse_query
    from detcat.sqlgen import as_backtested

    stage = next(s for s in parse_query(language, query) if s.role == "events")
    rule = RulePlan(vendor, "r", "r", language, {})
    rule.stages.append(
        StagePlan(rule, "main", stage.role, False, stage.params, stage.expr, frozenset())
    )
    plans = as_backtested([rule]) if backtested else [rule]
    r = Matcher(plans).match(canonical_event("e", fields))
    found = [k for k, got in (("match", r.matches), ("undetermined", r.undetermined)) if got]
    return found[0] if found else "none"
