"""Events for ``detcat match``: flattening, canonical field names.

Files are read by ``match.reading``. A document is a Windows event
in the evtx-to-JSON shape (``{"Event": {"System": …, "EventData": …}}``) or a
flat / nested JSON object (Sigma-style names, ECS, UDM).

Each event's fields are renamed to canonical names with the *same* tables that
normalize rule predicates (``normalize.fields.canonical_field``), for every vendor
that could have written the name, so a Sysmon event can be tested by Sigma,
Elastic, Splunk and YARA-L rules alike. The log source scopes of an evtx event
come from its (provider, event id) through the event dictionary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from detcat.errors import DetcatError
from detcat.model import value_text
from detcat.normalize import get_event
from detcat.normalize.fields import ANY, canonical_field, in_fieldset, namespaced
from detcat.normalize.values import hash_fields, implied_fields
from detcat.sources import registry
from detcat.sources.registry import Vendor
from detcat.tables import EVENT_KINDS, EVENT_SOURCES, load

Scalar = str | int | float | bool | None

# Fields that say which event a document is, in the spellings vendors use.
_PROVIDER_FIELDS = (
    "Provider_Name",
    "Channel",
    "event.provider",
    "winlog.provider_name",
    "winlog.channel",
    "SourceName",
)
_CODE_FIELDS = ("EventID", "event.code", "winlog.event_id", "EventCode")
_PATH_SPLIT = re.compile(r"[\\/]")
_ALL = "\x00all"  # Event's cache key of all_text (no field is named NUL)


@dataclass(slots=True)
class Event:
    label: str  # "<file>" or "<file>:<line>"
    raw: dict[str, list[Scalar]]  # flattened names as the document spells them
    fields: dict[str, list[Scalar]] = field(default_factory=dict)  # canonical names
    catalog_id: str | None = None  # "sysmon:1" when the dictionary knows the event
    # Log-source scopes the event is known to belong to ("product:windows",
    # "service:sysmon"); empty when nothing says (a bare JSON object).
    scopes: frozenset[str] = frozenset()
    text: list[str] = field(default_factory=list)  # every string value, for keywords
    # The document as read: legacy EQL's arraySearch binds whole array items, which
    # the flattened names no longer group.
    doc: dict[str, Any] = field(default_factory=dict)
    # field -> its values as text, as written / case-folded (see ``texts``)
    _plain: dict[str, list[str]] = field(default_factory=dict)
    _folded: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str | None) -> list[Scalar] | None:
        return self.fields.get(name) if name else None

    def texts(self, name: str | None, fold: bool) -> list[str]:
        """The field's values as text (case-folded when ``fold``), computed once:
        thousands of predicates read the same few fields."""
        cache = self._folded if fold else self._plain
        got = cache.get(name)  # type: ignore[arg-type]
        if got is None:
            if fold:
                got = [t.casefold() for t in self.texts(name, False)]
            else:
                values = self.fields.get(name or "", ())
                got = [v if v.__class__ is str else value_text(v) for v in values]  # type: ignore[misc]
            cache[name] = got  # type: ignore[index]
        return got

    def all_text(self, fold: bool) -> list[str]:
        """Every string value of the event (field-less keyword search)."""
        if not fold:
            return self.text
        got = self._folded.get(_ALL)
        if got is None:
            got = self._folded[_ALL] = [t.casefold() for t in self.text]
        return got


# -- flattening -----------------------------------------------------------------------

# Real events nest a handful of levels; the walks below are recursive, so a hostile
# document is refused at a depth far below Python's recursion limit.
MAX_DEPTH = 100


class TooDeep(DetcatError, ValueError):
    """A document nested deeper than ``MAX_DEPTH``."""


def flatten(doc: dict[str, Any]) -> dict[str, list[Scalar]]:
    """Field name -> values. An evtx-shaped event gives Sigma's names (EventData
    names, ``EventID``, ``Provider_Name``, ``Channel`` …); any other object gives
    dotted paths (``process.parent.executable``)."""
    event = doc.get("Event")
    if isinstance(event, dict) and ("System" in event or "EventData" in event):
        return _evtx(event)
    out: dict[str, list[Scalar]] = {}
    _walk(doc, "", out)
    return out


def _evtx(event: dict[str, Any]) -> dict[str, list[Scalar]]:
    out: dict[str, list[Scalar]] = {}
    system = event.get("System") or {}
    for key, value in system.items():
        if isinstance(value, dict):
            # Attributes keep their element's name (Provider_Name, Execution_ProcessID):
            # the logging service's process id is not the event's ProcessId.
            if value.get("#text") is not None:
                _add(out, key, value["#text"])
            for k, v in _attributes(value).items():
                _add(out, f"{key}_{k}", v)
        else:
            _add(out, key, value)
    _event_data(event.get("EventData"), out)
    user_data = event.get("UserData")
    if isinstance(user_data, dict):
        _leaves(user_data, out)
    return out


def _attributes(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        attrs = value.get("#attributes")
        return attrs if isinstance(attrs, dict) else {}
    return {}


def _event_data(data: Any, out: dict[str, list[Scalar]]) -> None:
    """EventData as name -> value, or as ``Data`` items with a ``Name`` attribute
    (some converters), or unnamed ``Data`` strings (classic event logs)."""
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        if key == "#attributes":
            continue
        if key == "Data" and isinstance(value, list | dict):
            for item in value if isinstance(value, list) else [value]:
                name = _attributes(item).get("Name")
                text = item.get("#text") if isinstance(item, dict) else item
                _add(out, str(name) if name else "Data", text)
        else:
            _add(out, key, value)
            if " " in key:  # Defender's "Threat Name" is Sigma's ThreatName
                _add(out, key.replace(" ", ""), value)


def _leaves(node: Any, out: dict[str, list[Scalar]], depth: int = 0) -> None:
    """UserData: every leaf under its own (last) name, as Sigma rules name them."""
    _check_depth(depth)
    for key, value in node.items():
        if key == "#attributes":
            continue
        if isinstance(value, dict):
            _leaves(value, out, depth + 1)
        else:
            _add(out, key, value)


def _walk(node: Any, prefix: str, out: dict[str, list[Scalar]], depth: int = 0) -> None:
    _check_depth(depth)
    if isinstance(node, dict):
        for key, value in node.items():
            _walk(value, f"{prefix}.{key}" if prefix else str(key), out, depth + 1)
    elif isinstance(node, list):
        for item in node:
            _walk(item, prefix, out, depth + 1)
    elif prefix:
        _add(out, prefix, node)


def _check_depth(depth: int) -> None:
    if depth > MAX_DEPTH:
        raise TooDeep(f"event nested deeper than {MAX_DEPTH} levels")


def _add(out: dict[str, list[Scalar]], name: str, value: Any) -> None:
    if isinstance(value, dict):
        value = value.get("#text")
    if isinstance(value, list):
        values = [v for v in value if not isinstance(v, dict | list)]
    else:
        values = [] if isinstance(value, dict) else [value]
    got = out.get(name)
    if got is None:
        out[name] = values
    else:
        got.extend(values)


# -- canonical names -------------------------------------------------------------------


def canonical_event(label: str, doc: dict[str, Any]) -> Event:
    """The event with canonical field names (see the module docstring)."""
    raw = flatten(doc)
    ev = Event(label, raw, doc=doc)
    ev.catalog_id = catalog_id(raw)
    scopes = event_scopes(ev.catalog_id)
    os_type = next((str(v).lower() for v in raw.get("host.os.type", ()) if v), None)
    ev.scopes = known_scopes(ev.catalog_id, _is_evtx(doc), os_type)
    # An ECS document states its own categories (what EQL's "process where" tests),
    # which also say which Sigma log-source categories it can be.
    for v in raw.get("event.category", ()):
        if isinstance(v, str):
            ev.scopes |= {f"category:{v}", *log_categories_of(v)}
    naming = vendor_scopes(raw, scopes)
    events = (ev.catalog_id,) if ev.catalog_id else ()
    names = _names_table(naming, events)
    fields = ev.fields
    for name, values in raw.items():
        canon = names.get(name)
        if canon is None:
            canon = names[name] = tuple(event_field_names(name, naming, events))
        for c in canon:
            got = fields.get(c)
            if got is None:
                fields[c] = list(values)
            else:
                got.extend(values)
    _derive(ev)
    ev.text = [str(v) for values in raw.values() for v in values if isinstance(v, str)]
    return ev


# Canonical names of raw names, per naming context (vendors' scopes, catalog event):
# the same few hundred names recur in every event of a stream. Bounded: a stream of
# ever-new names empties a table rather than growing it.
_NAMES: dict[tuple[Any, ...], dict[str, tuple[str, ...]]] = {}
MAX_NAMES = 50_000


def _names_table(
    naming: list[tuple[Vendor, tuple[str, ...]]], events: tuple[str, ...]
) -> dict[str, tuple[str, ...]]:
    key = (tuple((v.name, scopes) for v, scopes in naming), events)
    table = _NAMES.get(key)
    if table is None or len(table) > MAX_NAMES:
        if len(_NAMES) > 1000:
            _NAMES.clear()
        table = _NAMES[key] = {}
    return table


def vendor_scopes(
    raw: dict[str, list[Scalar]], scopes: tuple[str, ...]
) -> list[tuple[Vendor, tuple[str, ...]]]:
    """Each vendor that names raw event fields, with the field-table scopes it
    names this event's fields under (``scopes``: the event's log-source scopes)."""
    out = []
    for vendor in registry.vendors():
        got = vendor.event_scopes(raw, scopes)
        if got is not None:
            out.append((vendor, got))
    return out


def event_field_names(
    name: str, naming: list[tuple[Vendor, tuple[str, ...]]], events: tuple[str, ...] = ()
) -> set[str]:
    """Every canonical name a vendor could mean by ``name`` (see ``vendor_scopes``)
    in an event that is the catalog event ``events`` names (Windows event data
    reads by event, as in rules: Sysmon 7 ``Hashes`` are the DLL's).
    The vendor's raw name is one of them: a rule it wrote for another log source
    keeps the raw name (``sigma:Image`` of a Linux rule)."""
    names: set[str] = set()
    for vendor, scopes in naming:
        if vendor.dotted_event_names and "." not in name:
            continue  # ECS and UDM names are dotted; a Windows name means nothing there
        names.add(canonical_field(vendor.name, scopes, name, events))
        # also the name without event context: what a raw name in a rule's params
        # (a correlation's group-by, a join key) reads as
        names.add(canonical_field(vendor.name, scopes, name))
        names.add(namespaced(vendor.name, name))
        if vendor.writes_ecs:
            bare = vendor.strip_subfield(name)
            if in_fieldset(bare):
                names.add(bare)
    return names


@cache
def _provider_keys() -> dict[str, str]:
    """Provider / channel spellings (case-folded) -> the event dictionary's key."""
    return {k.casefold(): v for k, v in load(EVENT_SOURCES)["provider_names"].items()}


def catalog_id(raw: dict[str, list[Scalar]]) -> str | None:
    """The dictionary id of the event (``sysmon:1``) from its provider and code."""
    codes = [str(v) for n in _CODE_FIELDS for v in raw.get(n, ()) if v not in (None, "")]
    if not codes:
        return None
    for name in _PROVIDER_FIELDS:
        for v in raw.get(name, ()):
            key = _provider_keys().get(str(v).casefold())
            if key and get_event(f"{key}:{codes[0]}"):
                return f"{key}:{codes[0]}"
    return None


@cache
def event_scopes(event_id: str | None) -> tuple[str, ...]:
    """Field-table scopes for a catalog event: the log-source scopes every vendor's
    tables tie to it (Sigma: the categories that imply it, the service of its
    provider), then ``product:windows`` and ``any``. Unknown events get the generic
    Windows scopes (unmapped names become ``winlog.event_data.<Name>`` as in
    Windows Sigma rules)."""
    if event_id is None:
        return ("product:windows", ANY)
    tied = (s for v in registry.vendors() for s in v.catalog_event_scopes(event_id))
    return (*dict.fromkeys(tied), "product:windows", ANY)


@cache
def _kinds() -> dict[str, Any]:
    return load(EVENT_KINDS)


def categorization(event_id: str | None) -> dict[str, list[str]]:
    """Canonical fields and values a raw catalog event implies (``event.category``)."""
    return _kinds()["categorization"].get(event_id or "", {})


@cache
def categorized_fields() -> frozenset[str]:
    """Fields whose values a catalog event implies (``_derive``): few values, found
    in every event of a kind, they tell events apart poorly."""
    table = _kinds()["categorization"]
    return frozenset({"host.os.type", *(f for fields in table.values() for f in fields)})


def known_scopes(event_id: str | None, evtx: bool, os_type: str | None = None) -> frozenset[str]:
    """What is known of the event's log source (used to skip rules written for other
    log sources): its product (from the dictionary, the evtx shape, or an ECS
    ``host.os.type``); when the dictionary knows the event, its service and its
    categories, as Sigma log sources and as ECS / EQL event categories."""
    if event_id is None:
        product = "windows" if evtx else os_type
        return frozenset({f"product:{product}"}) if product else frozenset()
    provider = event_id.split(":", 1)[0]
    out = {f"product:{_kinds()['products'].get(provider, 'windows')}"}
    out.update(s for s in event_scopes(event_id) if s.startswith(("service:", "category:")))
    ecs = categorization(event_id).get("event.category", ())
    out.update(f"category:{c}" for c in ecs if c.islower())  # the ECS spelling
    return frozenset(out)


@cache
def log_categories_of(ecs_category: str) -> frozenset[str]:
    """Category scopes of the catalog events an ECS category covers
    ("process" -> process_creation, process_access, …)."""
    table = _kinds()["categorization"]
    ids = [i for i, c in table.items() if ecs_category in c.get("event.category", ())]
    return frozenset(s for i in ids for s in event_scopes(i) if s.startswith("category:"))


def _is_evtx(doc: dict[str, Any]) -> bool:
    event = doc.get("Event")
    return isinstance(event, dict) and ("System" in event or "EventData" in event)


# -- derived values ----------------------------------------------------------------------


def _derive(ev: Event) -> None:
    """Values other vendors' rules test that a raw event only implies: file names of
    paths, per-algorithm hashes, ECS categorization, ``process.args``."""
    for path_field, name_field in implied_fields().items():
        for v in ev.fields.get(path_field, ()):
            if isinstance(v, str) and v:
                ev.fields.setdefault(name_field, []).append(_PATH_SPLIT.split(v)[-1])
    for canon in [f for f in ev.fields if f.endswith(".hash")]:
        _split_hashes(ev, canon)
    for canon, values in categorization(ev.catalog_id).items():
        ev.fields.setdefault(canon, []).extend(values)
    if ev.catalog_id and "process.args" not in ev.fields:
        for cmd in ev.fields.get("process.command_line", ()):
            if isinstance(cmd, str):
                ev.fields.setdefault("process.args", []).extend(windows_argv(cmd))
    for path in ev.fields.get("file.path", ()):
        if isinstance(path, str) and "." in _PATH_SPLIT.split(path)[-1]:
            ev.fields.setdefault("file.extension", []).append(path.rsplit(".", 1)[-1])
    if ev.catalog_id:
        ev.fields.setdefault("host.os.type", []).append("windows")


def _split_hashes(ev: Event, canon: str) -> None:
    """Sysmon ``Hashes`` ("SHA1=…,MD5=…,IMPHASH=…") -> one field per algorithm, named
    as normalize names the split predicates (``process.hash.sha1``)."""
    base = canon[: -len(".hash")]
    for v in ev.fields[canon]:
        if not isinstance(v, str):
            continue
        for part in v.split(","):
            algo, sep, digest = part.partition("=")
            target = hash_fields().get(algo.strip().upper())
            if sep and target and digest.strip():
                ev.fields.setdefault(f"{base}.{target}", []).append(digest.strip())


# An argument without backslashes before quotes: runs of unquoted non-blanks and
# quoted text (to the closing quote or the end).
_ARG = re.compile(r'(?:[^ \t"]+|"[^"]*"?)+')


def windows_argv(cmd: str) -> list[str]:
    """A command line split as ``CommandLineToArgvW`` does: whitespace separates,
    double quotes group, ``2n`` backslashes before a quote are ``n`` backslashes."""
    if '\\"' not in cmd:  # the usual case, at regex speed: quotes only group
        return [a.replace('"', "") for a in _ARG.findall(cmd)]
    args: list[str] = []
    buf: list[str] = []
    quoted = started = False
    i, n = 0, len(cmd)
    while i < n:
        c = cmd[i]
        if c == "\\":
            j = i
            while j < n and cmd[j] == "\\":
                j += 1
            count = j - i
            if j < n and cmd[j] == '"':
                buf.append("\\" * (count // 2))
                if count % 2:
                    buf.append('"')
                    j += 1
                i, started = j, True
                continue
            buf.append("\\" * count)
            i, started = j, True
            continue
        if c == '"':
            quoted, started = not quoted, True
        elif c in " \t" and not quoted:
            if started:
                args.append("".join(buf))
                buf, started = [], False
        else:
            buf.append(c)
            started = True
        i += 1
    if started:
        args.append("".join(buf))
    return args
