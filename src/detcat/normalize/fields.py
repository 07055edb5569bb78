"""Vendor field names -> canonical (ECS) names, driven by ``data/fields.toml``.

A lookup takes the vendor, the *scopes* that apply to the stage (most specific
first, e.g. ``("category:process_creation", "product:windows", "any")``), the
catalog events of the stage and the raw name. This module is the one place that
decides a canonical field; every language's predicates and ``detcat match``'s
raw events go through ``canonical_field``.

1. The vendor's table (``[<vendor>.<scope>]``) under the vendor's own case rule:
   field names are case-sensitive in SPL, ECS and UDM (Splunk ``eventtype`` is
   not Okta's ``eventType``); Sigma names also match case-insensitively
   (``[field_name_case]``).
2. Windows event data: a name that reads ``winlog.event_data.<Name>`` (winlogbeat,
   a vendor's Windows fallback) or a bare EventData / Splunk Windows add-on name
   no vendor entry maps is looked up in ``[windows.*]`` by the stage's events
   (``security:4688`` ``NewProcessName`` is ``process.executable``; ``sysmon:7``
   ``Hashes`` are the DLL's), then in ``[windows.any]``.

Results are memoized: a corpus has a few thousand distinct lookups but hundreds
of thousands of predicates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

from detcat.normalize.tables import FIELDS, load
from detcat.sources import registry

KEYWORD_FIELD = "message"  # field-less keywords / search terms search the whole event
ANY = registry.ANY  # the scope every stage has
_NON_TABLE_SECTIONS = frozenset({"fallback", "platforms", "regex", "by_value"})
EVENT_DATA = "winlog.event_data."
WINDOWS = "windows"  # the fields.toml section of Windows event data names
DATAMODEL = "datamodel:"  # the scopes of a search over a data model (Splunk CIM)


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
    folded: dict[str, dict[str, str]] | None = None  # folded -> table key, if names fold
    prefixes: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    patterns: list[tuple[re.Pattern[str], str]] = field(default_factory=list)
    fallback: dict[str, str] = field(default_factory=dict)
    by_value: dict[str, dict[str, str]] = field(default_factory=dict)

    def lookup(self, scopes: tuple[str, ...], raw: str) -> Entry | None:
        """Exact names first (most specific scope first), then case-insensitive names
        where the vendor's names fold, prefixes, regexes and last the scope's
        fallback prefix."""
        for scope in scopes:
            hit = self.exact.get(scope, {}).get(raw)
            if hit is not None:
                return Entry(scope, raw, hit)
        if self.folded is not None:
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


def compile_vendor(section: dict[str, dict[str, str]], fold: bool = False) -> VendorTable:
    table = VendorTable(
        folded={} if fold else None,
        fallback=dict(section.get("fallback", {})),
        by_value=dict(section.get("by_value", {})),
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
                if table.folded is not None:
                    table.folded.setdefault(scope, {}).setdefault(raw.casefold(), raw)
    return table


@cache
def vendor_table(vendor: str) -> VendorTable:
    found = registry.find(vendor)
    fold = vendor in load(FIELDS)["field_name_case"]["insensitive"]
    return compile_vendor(dict(found.field_table()) if found else {}, fold)


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


@dataclass(frozen=True, slots=True)
class WindowsTable:
    """``[windows.*]``: EventData name -> canonical field, per catalog event and for
    any event; Splunk Windows add-on spellings -> EventData names."""

    by_event: dict[str, dict[str, str]]
    default: dict[str, str]
    aliases: dict[str, str]
    folded: dict[str, str] = field(default_factory=dict)  # case-folded -> table name

    def __post_init__(self) -> None:
        names = [*self.default, *self.aliases, *(n for t in self.by_event.values() for n in t)]
        for name in names:
            self.folded.setdefault(name.casefold(), name)

    def lookup(self, name: str, events: tuple[str, ...], fold: bool = False) -> Entry | None:
        """The meaning of ``name`` in the stage's events: the events that define it
        must agree (TargetUserName is the account logging on in 4624, the account
        created in 4720); else the meaning it has in any event, if one."""
        if fold:
            name = self.folded.get(name.casefold(), name)
        name = self.aliases.get(name, name)
        found = {(e, self.by_event[e][name]) for e in events if name in self.by_event.get(e, {})}
        meanings = {canon for _, canon in found}
        if len(meanings) == 1:
            event, canon = min(found)
            return Entry(f"{WINDOWS}:{event}", name, canon)
        if name in self.default and not meanings:
            return Entry(f"{WINDOWS}:{ANY}", name, self.default[name])
        return None

    def knows(self, name: str, fold: bool = False) -> bool:
        if fold:
            name = self.folded.get(name.casefold(), name)
        name = self.aliases.get(name, name)
        return name in self.default or any(name in t for t in self.by_event.values())


@cache
def windows_table() -> WindowsTable:
    section = dict(load(FIELDS)[WINDOWS])
    aliases = section.pop("aliases")
    default = section.pop(ANY)
    return WindowsTable(section, default, aliases)


def is_windows_event(event_id: str) -> bool:
    """A catalog event of a Windows event log (its data fields are EventData names)."""
    return event_id.split(":", 1)[0] in _windows_providers()


@cache
def _windows_providers() -> frozenset[str]:
    return frozenset(load(FIELDS)["windows_platform"]["providers"])


@cache
def canonical_field(
    vendor: str, scopes: tuple[str, ...], raw: str | None, events: tuple[str, ...] = ()
) -> str:
    """The canonical name of ``raw`` as ``vendor`` writes it in a stage with ``scopes``
    whose catalog events are ``events``."""
    if raw is None or raw == "":
        return KEYWORD_FIELD
    hit = explain(vendor, scopes, raw, events)
    return hit.canonical if hit is not None else namespaced(vendor, raw)


def explain(
    vendor: str, scopes: tuple[str, ...], raw: str | None, events: tuple[str, ...] = ()
) -> Entry | None:
    """The table entry that maps ``raw`` (None when no entry does)."""
    if not raw:
        return None
    found = registry.find(vendor)
    name = found.strip_subfield(raw) if found else raw
    table = vendor_table(vendor)
    hit = table.lookup(scopes, name)
    if hit is None and found and found.writes_ecs and in_fieldset(name):
        hit = Entry(ANY, name, name)  # a vendor that writes ECS: canonical as written
    fold = table.folded is not None
    data_name = _event_data_name(hit, name, scopes, events, fold)
    if data_name is not None:
        by_event = windows_table().lookup(data_name, events, fold)
        return by_event or hit or _windows_fallback(data_name)
    return hit


def _event_data_name(
    hit: Entry | None, name: str, scopes: tuple[str, ...], events: tuple[str, ...], fold: bool
) -> str | None:
    """The Windows EventData name ``name`` stands for, if it names event data:
    ``winlog.event_data.X`` from any table or as written, or a bare name no vendor
    entry maps that the Windows table knows or that a raw Windows event carries (a
    data-model search, scope ``datamodel:…``, reads model fields, not raw events)."""
    if hit is not None:
        canon = hit.canonical
        return canon[len(EVENT_DATA) :] if canon.startswith(EVENT_DATA) else None
    if "." in name or "(" in name:
        return None  # dotted names are data-model / ECS / UDM paths, not EventData
    if windows_table().knows(name, fold):
        return name
    raw_events = not any(s.startswith(DATAMODEL) for s in scopes)
    return name if raw_events and any(map(is_windows_event, events)) else None


def _windows_fallback(name: str) -> Entry:
    return Entry("fallback", WINDOWS, EVENT_DATA + name)


@cache
def _selectors(vendor: str) -> frozenset[str]:
    return frozenset(load(FIELDS)["selectors"].get(vendor, ()))


def selector_kind(vendor: str, field: str) -> bool:
    """Whether ``field`` selects which events a ``vendor`` search reads (Splunk
    ``index``, ``sourcetype``, ``source``, ``eventtype``) rather than testing their
    content: such predicates still name events, but they are no indicators."""
    return field in _selectors(vendor)


def by_value(vendor: str, raw: str | None, value: object) -> str | None:
    """The canonical field of a name whose meaning depends on its value (UDM
    ``metadata.product_event_type`` is an event code when numeric, the product's
    action name otherwise: Okta ``user.session.start``, CloudTrail ``ConsoleLogin``)."""
    if raw is None:
        return None
    entry = vendor_table(vendor).by_value.get(raw)
    if entry is None or value is None or isinstance(value, bool):
        return None
    numeric = isinstance(value, int | float) or _NUMBERS.fullmatch(str(value).strip())
    return entry["numeric" if numeric else "other"]


# a number, or a regex that is only numbers: "4688", "^4688$", "865|866|(?:867)"
_NUMBERS = re.compile(r"\^?\(?(?:\?:)?\d+(?:\|\d+)*\)?\$?")


COMPUTED = "computed in the query (EVAL, STATS, eval, a function): no event field holds it"


def vendor_specific_reason(vendor: str, raw: str | None, kind: str = "") -> str | None:
    """Why a name that keeps its ``<vendor>:<raw>`` form has no canonical meaning
    (``[vendor_specific.<vendor>]``, or computed inside the query); None if unknown."""
    if kind == "derived":
        return COMPUTED
    listed = load(FIELDS)["vendor_specific"].get(vendor, {})
    raw = raw or ""
    if raw in listed:
        return listed[raw]
    prefixes = (k for k in listed if k.endswith(".*") and raw.startswith(k[:-1]))
    return next((listed[k] for k in prefixes), None)


def cache_clear() -> None:
    """Forget compiled tables (tests that swap table files)."""
    for fn in (vendor_table, fieldsets, documented, canonical_field, windows_table, _selectors):
        fn.cache_clear()


registry.on_change(cache_clear)  # a vendor registered or removed: its table changes
