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
from itertools import islice
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
    # The names of ``fields``, shared by the events of one shape (see ``FieldNames``);
    # None when the event was not made by ``canonical_event``.
    names: FieldNames | None = None
    # field -> its values as text, as written / case-folded, computed on first use
    # (``Texts``): compiled predicates read ``ev.folded[name]``.
    plain: Texts = field(init=False)
    folded: Texts = field(init=False)

    def __post_init__(self) -> None:
        self.plain = Texts(self.fields, False)
        self.folded = Texts(self.fields, True)

    def get(self, name: str | None) -> list[Scalar] | None:
        return self.fields.get(name) if name else None

    def texts(self, name: str | None, fold: bool) -> list[str]:
        """The field's values as text (case-folded when ``fold``)."""
        return (self.folded if fold else self.plain)[name]

    def all_text(self, fold: bool) -> list[str]:
        """Every string value of the event (field-less keyword search)."""
        if not fold:
            return self.text
        got = self.folded.get(_ALL)
        if got is None:
            got = self.folded[_ALL] = [t.casefold() for t in self.text]
        return got


class Texts(dict):  # type: ignore[type-arg]
    """Field name -> its values as text (case-folded when ``folds``),
    computed on first use and kept: thousands of predicates read the same few fields.
    A plain dict lookup when known (``__missing__`` computes the rest), and cached by
    the identity of the value list too, which a raw field's aliases share. Holds the
    event's ``fields`` dict, not the event (no reference cycle)."""

    __slots__ = ("fields", "folds")

    def __init__(self, fields: dict[str, list[Scalar]], folds: bool) -> None:
        super().__init__()
        self.fields = fields
        self.folds = folds

    def __missing__(self, name: str | None) -> list[str]:
        values = self.fields.get(name or "", ())
        key = id(values)
        got = self.get(key)
        if got is None:
            if self.folds:
                got = [(v if v.__class__ is str else value_text(v)).casefold() for v in values]
            else:
                got = [v if v.__class__ is str else value_text(v) for v in values]
            self[key] = got
        self[name] = got
        return got


class FieldNames:
    """The canonical field names of events: one object for every event with the same
    raw field names and derived fields, so that what depends on names only (the
    prefilter's per-route choices) is worked out once per kind of event, keyed by
    identity."""

    __slots__ = ("names",)

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names


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
        if value.__class__ in _SCALARS and key not in out:  # most System values
            out[key] = [value]
        elif isinstance(value, dict):
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
        if value.__class__ in _SCALARS and key not in out and " " not in key:
            out[key] = [value]  # the usual item: ``_add``'s first case, inline
        elif key == "Data" and isinstance(value, list | dict):
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


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _add(out: dict[str, list[Scalar]], name: str, value: Any) -> None:
    if value.__class__ in _SCALARS and name not in out:  # the usual case, first
        out[name] = [value]
        return
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
    event_id = catalog_id(raw)
    os_type = next((str(v).lower() for v in raw.get("host.os.type", ()) if v), None)
    # An ECS document states its own categories (what EQL's "process where" tests),
    # which also say which Sigma log-source categories it can be.
    categories = tuple(v for v in raw.get("event.category", ()) if isinstance(v, str))
    scopes = _event_known_scopes(event_id, _is_evtx(doc), os_type, categories)
    naming = vendor_scopes(raw, event_scopes(event_id))
    shape = _shape(naming, (event_id,) if event_id else (), raw)
    values = map(raw.__getitem__, shape.sources)
    fields = dict(zip(shape.canonical, values, strict=True))
    for c, rs in shape.joins:
        fields[c] = [v for name in rs for v in raw[name]]
    ev = Event(label, raw, fields, event_id, scopes, doc=doc)
    count = len(fields)
    _derive(ev, shape)
    # Derived fields are new keys at the end of the dict (or new lists of old keys).
    ev.names = shape.names_with(tuple(islice(fields, count, None)) if len(fields) > count else ())
    ev.text = [v for values in raw.values() for v in values if v.__class__ is str]
    return ev


@cache
def _event_known_scopes(
    event_id: str | None, evtx: bool, os_type: str | None, categories: tuple[str, ...]
) -> frozenset[str]:
    scopes = known_scopes(event_id, evtx, os_type)
    for c in categories:
        scopes |= {f"category:{c}", *log_categories_of(c)}
    return scopes


@dataclass(frozen=True, slots=True, eq=False)
class _Shape:
    """What every event with the same raw field names (in the same naming context)
    shares: which raw fields give each canonical field, and which of the derived
    values (``_derive``) it can have. Worked out once per shape, not per event."""

    # Canonical names with one raw field each (a list shared with the raw event's)
    canonical: tuple[str, ...]
    sources: tuple[str, ...]
    joins: tuple[tuple[str, tuple[str, ...]], ...]  # canonical names of several raw fields
    implied: tuple[tuple[str, str], ...]  # (path field, file-name field) it can have
    hashes: tuple[str, ...]  # its ``*.hash`` fields
    # The field names of its events by the derived fields they have (a few at most)
    _names: dict[tuple[str, ...], FieldNames] = field(default_factory=dict)

    def names_with(self, derived: tuple[str, ...]) -> FieldNames:
        got = self._names.get(derived)
        if got is None:
            joined = (c for c, _ in self.joins)
            got = self._names[derived] = FieldNames(frozenset((*self.canonical, *joined, *derived)))
        return got


# Shapes by naming context, catalog event and raw field names. Bounded: a stream of
# ever-new shapes empties the table rather than growing it.
_SHAPES: dict[tuple[Any, ...], _Shape] = {}
MAX_SHAPES = 10_000


def _shape(
    naming: list[tuple[Vendor, tuple[str, ...]]], events: tuple[str, ...], raw: dict[str, Any]
) -> _Shape:
    naming_key = tuple((v.name, scopes) for v, scopes in naming)
    key = (naming_key, events, tuple(raw))
    got = _SHAPES.get(key)
    if got is None:
        if len(_SHAPES) >= MAX_SHAPES:
            _SHAPES.clear()
        got = _SHAPES[key] = _new_shape(naming, events, raw)
    return got


def _new_shape(
    naming: list[tuple[Vendor, tuple[str, ...]]], events: tuple[str, ...], raw: dict[str, Any]
) -> _Shape:
    sources: dict[str, list[str]] = {}  # canonical name -> raw names, first seen first
    for name in raw:
        for c in _canonical_names(name, naming, events):
            sources.setdefault(c, []).append(name)
    single = [(c, rs[0]) for c, rs in sources.items() if len(rs) == 1]
    implied = implied_fields()
    # A path field may itself be derived (none is today): keep those too.
    can_have = sources.keys() | set(implied.values())
    return _Shape(
        tuple(c for c, _ in single),
        tuple(r for _, r in single),
        tuple((c, tuple(rs)) for c, rs in sources.items() if len(rs) > 1),
        tuple((p, n) for p, n in implied.items() if p in can_have),
        tuple(c for c in sources if c.endswith(".hash")),
    )


# Canonical names of raw names, per naming context (vendors' scopes, catalog event):
# the same few hundred names recur in every event of a stream. Bounded as _SHAPES.
_NAMES: dict[tuple[Any, ...], dict[str, tuple[str, ...]]] = {}
MAX_NAMES = 50_000


def _canonical_names(
    name: str, naming: list[tuple[Vendor, tuple[str, ...]]], events: tuple[str, ...]
) -> tuple[str, ...]:
    table = _names_table(naming, events)
    got = table.get(name)
    if got is None:
        got = table[name] = tuple(event_field_names(name, naming, events))
    return got


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
    categories, as Sigma log sources and as ECS / EQL event categories, and the
    scopes vendors route it by (``Vendor.catalog_event_gates``: Splunk's data
    models)."""
    if event_id is None:
        product = "windows" if evtx else os_type
        return frozenset({f"product:{product}"}) if product else frozenset()
    provider = event_id.split(":", 1)[0]
    out = {f"product:{_kinds()['products'].get(provider, 'windows')}"}
    out.update(s for s in event_scopes(event_id) if s.startswith(("service:", "category:")))
    ecs = categorization(event_id).get("event.category", ())
    out.update(f"category:{c}" for c in ecs if c.islower())  # the ECS spelling
    out.update(s for v in registry.vendors() for s in v.catalog_event_gates(event_id))
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


def _derive(ev: Event, shape: _Shape) -> None:
    """Values other vendors' rules test that a raw event only implies: file names of
    paths, per-algorithm hashes, ECS categorization, ``process.args``. New lists
    only: an event's lists are its raw fields' own (``canonical_event``)."""
    fields = ev.fields
    for path_field, name_field in shape.implied:
        names = [_PATH_SPLIT.split(v)[-1] for v in fields.get(path_field, ()) if _text(v)]
        if names:
            _extend(fields, name_field, names)
    for canon in shape.hashes:
        _split_hashes(ev, canon)
    for canon, values in categorization(ev.catalog_id).items():
        _extend(fields, canon, values)
    if ev.catalog_id and "process.args" not in fields:
        commands = [c for c in fields.get("process.command_line", ()) if _text(c, True)]
        if commands:
            fields["process.args"] = [a for cmd in commands for a in windows_argv(cmd)]
    extensions = [
        path.rsplit(".", 1)[-1]
        for path in fields.get("file.path", ())
        if _text(path, True) and "." in _PATH_SPLIT.split(path)[-1]
    ]
    if extensions:
        _extend(fields, "file.extension", extensions)
    if ev.catalog_id:
        _extend(fields, "host.os.type", ["windows"])


def _text(v: Any, empty: bool = False) -> bool:
    """A string value (non-empty unless ``empty``)."""
    return isinstance(v, str) and (empty or bool(v))


def _extend(fields: dict[str, list[Scalar]], name: str, values: list[Any]) -> None:
    """Add the values the field does not have yet: an ECS event's ``process.name``
    is also implied by its ``process.executable``, and one name is one value (a
    computed ``len(process_name)`` needs a single value)."""
    got = fields.get(name)
    if got is None:
        fields[name] = list(values)
    elif new := [v for v in values if v not in got]:
        fields[name] = [*got, *new]


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
                _extend(ev.fields, f"{base}.{target}", [digest.strip()])


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
