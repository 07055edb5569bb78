"""Vendor field names -> canonical (ECS) names, driven by ``data/fields.toml``.

A lookup takes the vendor, the *scopes* that apply to the stage (most specific
first, e.g. ``("category:process_creation", "product:windows", "any")``) and the
raw name. Results are memoized: a corpus has a few thousand distinct
(vendor, scopes, raw) triples but hundreds of thousands of predicates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

from detcat.normalize.tables import FIELDS, load
from detcat.sources import registry

ANY = registry.ANY  # the scope every stage has
KEYWORD_FIELD = "message"  # field-less keywords / search terms search the whole event
_NON_TABLE_SECTIONS = frozenset({"fallback", "platforms", "regex"})


@dataclass(frozen=True, slots=True)
class Entry:
    """The table entry that decided a lookup: its section and key, and the result."""

    section: str  # a scope, "regex" or "fallback"
    key: str  # the raw name, prefix ("x.*"), regex or fallback scope as the table spells it
    canonical: str


@dataclass
class VendorTable:
    """One vendor's compiled mapping: exact, case-folded and prefix entries per scope."""

    exact: dict[str, dict[str, str]] = field(default_factory=dict)
    folded: dict[str, dict[str, str]] = field(default_factory=dict)  # folded -> table key
    prefixes: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    patterns: list[tuple[re.Pattern[str], str]] = field(default_factory=list)
    fallback: dict[str, str] = field(default_factory=dict)

    def lookup(self, scopes: tuple[str, ...], raw: str) -> Entry | None:
        """Exact names first (most specific scope first), then case-insensitive names,
        prefixes, regexes and last the scope's fallback prefix."""
        for scope in scopes:
            hit = self.exact.get(scope, {}).get(raw)
            if hit is not None:
                return Entry(scope, raw, hit)
        folded = raw.casefold()
        for scope in scopes:
            key = self.folded.get(scope, {}).get(folded)
            if key is not None:
                return Entry(scope, key, self.exact[scope][key])
        return self._by_pattern(scopes, raw)

    def _by_pattern(self, scopes: tuple[str, ...], raw: str) -> Entry | None:
        for scope in scopes:
            for raw_prefix, canon_prefix in self.prefixes.get(scope, ()):
                if raw.startswith(raw_prefix):
                    rest = raw[len(raw_prefix) :]
                    return Entry(scope, raw_prefix + "*", canon_prefix + rest)
        for rx, template in self.patterns:
            m = rx.match(raw)
            if m:
                return Entry("regex", rx.pattern, template.replace("{1}", m.group(1)))
        for scope in scopes:
            prefix = self.fallback.get(scope)
            if prefix is not None:
                return Entry("fallback", scope, prefix + raw)
        return None


def compile_vendor(section: dict[str, dict[str, str]]) -> VendorTable:
    table = VendorTable(
        fallback=dict(section.get("fallback", {})),
        patterns=[(re.compile(rx), t) for rx, t in section.get("regex", {}).items()],
    )
    for scope, entries in section.items():
        if scope in _NON_TABLE_SECTIONS:
            continue
        for raw, canon in entries.items():
            if raw.endswith(".*"):
                table.prefixes.setdefault(scope, []).append((raw[:-1], canon[:-1]))
            else:
                table.exact.setdefault(scope, {})[raw] = canon
                table.folded.setdefault(scope, {}).setdefault(raw.casefold(), raw)
    return table


@cache
def vendor_table(vendor: str) -> VendorTable:
    found = registry.find(vendor)
    return compile_vendor(dict(found.field_table()) if found else {})


@cache
def fieldsets() -> frozenset[str]:
    return frozenset(load(FIELDS)["fieldsets"])


@cache
def documented() -> frozenset[str]:
    return frozenset(load(FIELDS)["canonical"])


def in_fieldset(name: str) -> bool:
    """A name whose namespace is an ECS / Elastic integration field set."""
    return name.split(".", 1)[0] in fieldsets()


def is_mapped(name: str | None) -> bool:
    """Canonical, as opposed to a namespaced ``vendor:raw`` name."""
    return bool(name) and ":" not in name  # type: ignore[operator]


def namespaced(vendor: str, raw: str) -> str:
    return f"{vendor}:{raw}"


@cache
def canonical_field(vendor: str, scopes: tuple[str, ...], raw: str | None) -> str:
    """The canonical name of ``raw`` as ``vendor`` writes it in a stage with ``scopes``."""
    if raw is None or raw == "":
        return KEYWORD_FIELD
    found = registry.find(vendor)
    name = found.strip_subfield(raw) if found else raw
    hit = vendor_table(vendor).lookup(scopes, name)
    if hit is not None:
        return hit.canonical
    if found and found.writes_ecs and in_fieldset(name):
        return name  # a vendor that writes ECS: canonical as written
    return namespaced(vendor, raw)


def explain(vendor: str, scopes: tuple[str, ...], raw: str | None) -> Entry | None:
    """The table entry that maps ``raw`` (None when no entry does)."""
    if not raw:
        return None
    found = registry.find(vendor)
    name = found.strip_subfield(raw) if found else raw
    return vendor_table(vendor).lookup(scopes, name)


def cache_clear() -> None:
    """Forget compiled tables (tests that swap table files)."""
    for fn in (vendor_table, fieldsets, documented, canonical_field):
        fn.cache_clear()


registry.on_change(cache_clear)  # a vendor registered or removed: its table changes
