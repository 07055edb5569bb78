"""Per-vendor log-source facts -> candidate providers and implied catalog events.

The vendor reads its own facts (Sigma logsource, Elastic index patterns and EQL
category, Splunk data_source names and data model, UDM event types) against the
tables it owns in ``data/event_sources.toml``: ``Vendor.hints``.
"""

from __future__ import annotations

from collections.abc import Iterable

from detcat.model import Rule, Stage
from detcat.sources import registry
from detcat.sources.registry import NO_HINTS, Hints

NONE = NO_HINTS


def vendor_hints(rule: Rule, stage: Stage, classes: Iterable[str]) -> Hints:
    vendor = registry.find(rule.vendor)
    return vendor.hints(rule, stage, list(classes)) if vendor else NONE


__all__ = ["Hints", "NONE", "vendor_hints"]
