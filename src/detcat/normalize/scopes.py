"""Which field-table scopes apply to a stage: the vendor says (``Vendor.scopes``).

A scope names a part of a vendor table in ``fields.toml`` (``category:image_load``,
``event:PROCESS_LAUNCH``); the same raw field can mean different things in
different log sources (Sigma ``ImageLoaded`` is a DLL in ``image_load`` and a
driver in ``driver_load``; UDM ``principal.process`` is the parent in a process
launch and the actor elsewhere).
"""

from __future__ import annotations

from detcat.model import Rule, Stage
from detcat.sources import registry
from detcat.sources.registry import ANY


def stage_scopes(rule: Rule, stage: Stage) -> tuple[str, ...]:
    """The stage's scopes, most specific first; only ``any`` for a rule of a vendor
    that is not installed (a catalog built elsewhere)."""
    vendor = registry.find(rule.vendor)
    return vendor.scopes(rule, stage) if vendor else (ANY,)
