"""What a vendor is (``Vendor``) and which vendors exist (the registry).

A vendor is one rule repository format ("dialect"): how its files become ``Rule``
objects, which query languages it writes, and the facts the layers above need to
read its rules in canonical terms — which field-table scopes apply to a stage,
which catalog events its log-source facts imply, whether its regexes match whole
values, how its multi-field suffixes are spelled, and how it names the fields of
a raw event for ``detcat match``.

Vendors come from the Python entry-point group ``detcat.vendors`` (the four
built-in ones register there in detcat's own ``pyproject.toml``, exactly as a
third-party package would) and from ``register()`` for programs and tests.
Everything that needs the list of vendors or of languages asks this module:
the catalog build, normalization, ``detcat parse``, ``detcat match``, the CLI's
choices and the web's labels. Loading is lazy: ``names()`` does not import any
vendor module; ``get()`` imports only the one asked for.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

from detcat.errors import DetcatError
from detcat.model import Problem, Rule, Stage
from detcat.tables import FIELDS, load

ENTRY_POINT_GROUP = "detcat.vendors"
ANY = "any"  # the scope every stage has: table entries that hold everywhere


@dataclass(frozen=True)
class Hints:
    """What a stage's log-source facts say about its events."""

    implied: tuple[str, ...] = ()  # catalog event ids the log source implies
    providers: tuple[str, ...] = ()  # provider keys whose event ids the stage may name


NO_HINTS = Hints()


class Vendor(ABC):
    """One rule repository format. Subclass it, set the class attributes and
    implement the abstract methods; the other methods have defaults that say what
    a vendor without that feature means."""

    name: ClassVar[str]  # the folder under the sources directory, and Rule.vendor
    display_name: ClassVar[str]  # shown on the web ("Google SecOps")
    languages: ClassVar[tuple[str, ...]]  # query languages it writes (detcat parse)
    # Languages whose regex operator must match the whole value (Lucene regexp,
    # ES|QL RLIKE); the others search (PCRE, RE2).
    full_match_languages: ClassVar[frozenset[str]] = frozenset()
    # Field names inside an ECS field set are canonical as written (Elastic writes ECS).
    writes_ecs: ClassVar[bool] = False
    # ``read_draft`` reads a draft rule file in a format named after the vendor.
    reads_rule_file_drafts: ClassVar[bool] = False
    # Names the vendor reads in a raw event are dotted paths (ECS, UDM): a flat
    # Windows name ("Image") means nothing to it.
    dotted_event_names: ClassVar[bool] = False
    # The engine ``detcat.match`` evaluates a language's rules with, beyond one event's
    # predicates: "sequences" (EQL's computed conditions and sequence/sample/join),
    # "windows" (YARA-L's match … over and outcome condition). Unlisted: predicates.
    language_engines: ClassVar[dict[str, str]] = {}
    # Rule types counted over the stream of events -> their engine ("threshold").
    rule_type_engines: ClassVar[dict[str, str]] = {}
    # How ``detcat.match`` reads the text a language keeps of the fields its queries
    # compute (``params["derived"]``): "esql_eval" (ES|QL expressions). Unlisted: it
    # does not (a program the parser recorded, ``params["computed"]``, needs none).
    computed_readers: ClassVar[dict[str, str]] = {}

    # -- reading rules ------------------------------------------------------------

    def read(self, root: Path, *, include_deprecated: bool = False) -> Iterator[Rule | Problem]:
        """Every rule under ``root`` (the vendor's folder); unreadable files are
        ``Problem`` items, rules whose query fails carry it in ``rule.problems``.
        By default ``read_file`` of each of ``rule_files``: a vendor implements
        either this or those two."""
        files = self.rule_files(root, include_deprecated)
        if files is None:
            raise NotImplementedError(f"{self.name}: implement read, or rule_files + read_file")
        for path in files:
            yield self.read_file(path, root)

    def rule_files(self, root: Path, include_deprecated: bool = False) -> list[Path] | None:
        """The files ``read_file`` reads one by one (so a build can split them
        across workers); None when the folder must be read whole (shared macros).
        Chosen by their paths, never their contents: an incremental build takes
        the list as it was while no folder under ``root`` changed."""
        return None

    def read_file(self, path: Path, root: Path) -> Rule | Problem | Iterable[Rule | Problem]:
        """One file's rule (or problem); a format holding several rules per file
        (or none, when a file is skipped) returns them all. The build isolates each
        call: whatever it raises costs this file only."""
        raise NotImplementedError(f"{self.name} reads its folder whole")

    def prepare(self, root: Path, *, include_deprecated: bool = False) -> list[Problem]:
        """Read what every rule of ``root`` shares (Splunk's macros and lookups)
        before ``read_file`` is called, and return its problems. Called once per
        build and worker process; the default: nothing shared."""
        return []

    def shared_names(self) -> tuple[str, ...]:
        """The shared definitions (Splunk: ``macro:NAME``, ``lookup:NAME``) the last
        ``read_file`` of this process looked up, defined or not: the build reads
        the file again when one of them changes. Default: nothing shared."""
        return ()

    def shared_digest(self, root: Path, name: str) -> str:
        """A digest of one shared definition of ``root`` as ``prepare`` read it
        (the same text for an undefined name while it stays undefined)."""
        return ""

    def shared_files(self, root: Path) -> list[Path] | None:
        """Every file ``prepare`` may read: while none changed (nor their list), an
        incremental build takes every shared definition as it was and does not
        prepare again. Default None: not known, so every build prepares."""
        return None

    def draft_format(self, path: Path, text: str) -> str | None:
        """The format of a user's draft file if this vendor writes it: one of its
        ``languages`` (a whole rule ``parse_text`` reads) or its own name (a rule
        file ``read_draft`` reads); None when the file is not this vendor's."""
        return None

    def read_draft(self, path: Path, text: str) -> list[Rule | Problem]:
        """A draft in this vendor's rule-file format, read as the build reads one
        of its files but with no shared definitions (macros, lookups) at hand."""
        raise NotImplementedError(f"{self.name} reads drafts through parse_text")

    @abstractmethod
    def parse_text(self, language: str, text: str) -> list[Rule]:
        """Throw-away rules for one query or rule text in ``language`` (one of
        ``languages``), not normalized; raises ``QueryError`` for unreadable text."""

    # -- facts for normalize/ and match/ -------------------------------------------

    @abstractmethod
    def scopes(self, rule: Rule, stage: Stage) -> tuple[str, ...]:
        """Field-table scopes of a stage, most specific first, ending in ``any``."""

    @abstractmethod
    def hints(self, rule: Rule, stage: Stage, classes: Sequence[str]) -> Hints:
        """Catalog events and providers the stage's log source implies (``classes``:
        the event.category / event.type values the stage tests)."""

    def strip_subfield(self, raw: str) -> str:
        """The field a multi-field name is a sub-field of (same meaning)."""
        return raw

    def field_table(self) -> Mapping[str, Any]:
        """This vendor's field mapping (the shape of a vendor section of
        ``data/fields.toml``; a third-party vendor may return its own)."""
        return load(FIELDS).get(self.name, {})

    def event_scopes(
        self, raw: Mapping[str, Sequence[Any]], log_scopes: tuple[str, ...]
    ) -> tuple[str, ...] | None:
        """The scopes under which this vendor's table names the fields of a raw event
        (``log_scopes``: what is known of the event's log source); None when its
        rules never name raw event fields."""
        return None

    def catalog_event_scopes(self, event_id: str) -> tuple[str, ...]:
        """Log-source scopes this vendor's tables tie to a catalog event id."""
        return ()

    def catalog_event_gates(self, event_id: str) -> tuple[str, ...]:
        """Log-source scopes a catalog event has for routing alone (field names do
        not depend on them): ``match`` gives the event no stage that states a scope
        of the same kind, none of them. Only scopes whose every holder the vendor
        lists: an event left out would lose rules written for it."""
        return ()


# -- the registry -------------------------------------------------------------------


class UnknownVendor(DetcatError, KeyError):
    """A vendor name no installed vendor has."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return self.message


class RegistryError(DetcatError):
    """The installed vendor plugins are inconsistent (a missing or clashing name)."""


_registered: dict[str, Vendor] = {}


@cache
def _entry_points() -> dict[str, Any]:
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if not found:
        raise RegistryError(
            f"no vendor registered in the entry-point group {ENTRY_POINT_GROUP!r}: "
            "detcat is not installed (pip install -e .), or its metadata is stale"
        )
    return found


def names() -> tuple[str, ...]:
    """Every vendor name in name order, without importing a vendor module."""
    return tuple(sorted({*_entry_points(), *_registered}))


def find(name: str) -> Vendor | None:
    """The vendor called ``name``, or None (a catalog may name an uninstalled one)."""
    if name in _registered:
        return _registered[name]
    return _load(name) if name in _entry_points() else None


def get(name: str) -> Vendor:
    found = find(name)
    if found is None:
        raise UnknownVendor(f"unknown vendor {name!r} (one of {', '.join(names())})")
    return found


@cache
def vendors() -> tuple[Vendor, ...]:
    """Every vendor (imports every vendor module)."""
    return tuple(get(n) for n in names())


@cache
def languages() -> dict[str, Vendor]:
    """Query language -> the vendor that writes it (one vendor per language)."""
    out: dict[str, Vendor] = {}
    for vendor in vendors():
        for lang in vendor.languages:
            if lang in out:
                raise RegistryError(f"{vendor.name} and {out[lang].name} both write {lang!r}")
            out[lang] = vendor
    return out


def language_engine(language: str) -> str | None:
    """The match engine of ``language``'s rules (``Vendor.language_engines``)."""
    vendor = languages().get(language)
    return vendor.language_engines.get(language) if vendor else None


def computed_reader(language: str) -> str | None:
    """How ``detcat.match`` reads ``language``'s computed fields (``Vendor.computed_readers``)."""
    vendor = languages().get(language)
    return vendor.computed_readers.get(language) if vendor else None


def rule_type_engine(vendor: str, rule_type: str) -> str | None:
    """The match engine of the vendor's rules of ``rule_type`` (``Vendor.rule_type_engines``)."""
    found = find(vendor)
    return found.rule_type_engines.get(rule_type) if found else None


def full_match(language: str) -> bool:
    """Whether ``language``'s regex operator must match the whole value."""
    return language in _full_match_languages()


@cache
def _full_match_languages() -> frozenset[str]:
    return frozenset(lang for v in vendors() for lang in v.full_match_languages)


def display_name(name: str) -> str:
    found = find(name)
    return found.display_name if found else name


def display_order(vendor_names: Iterable[str]) -> list[str]:
    """``vendor_names`` in the order pages show vendors: the order the pinned
    snapshots list them (Sigma first), then any other vendor by name."""
    return sorted(vendor_names, key=display_key)


def display_key(name: str) -> tuple[int, str]:
    """A vendor's sort key in ``display_order`` (pages sort thousands of rows by it)."""
    seed = _seed_ranks()
    return seed.get(name, len(seed)), name


@cache
def _seed_ranks() -> dict[str, int]:
    ranks: dict[str, int] = {}
    for i, repo in enumerate(load("sources.toml")["repo"]):
        ranks.setdefault(repo["folder"], i)
    return ranks


def register(vendor: Vendor) -> None:
    """Add a vendor at run time (programs embedding detcat, tests). In a parallel
    build the worker processes must see it too: register it at import time of a
    module they import, or use the entry-point group."""
    if not isinstance(vendor, Vendor):
        raise RegistryError(f"{vendor!r} is not a detcat.sources.registry.Vendor")
    _registered[vendor.name] = vendor
    _clear()


def unregister(name: str) -> None:
    _registered.pop(name, None)
    _clear()


def reload() -> None:
    """Forget what was found in the entry-point group (after installing a plugin)."""
    _entry_points.cache_clear()
    _clear()


def _clear() -> None:
    for cached in (_load, vendors, languages, _full_match_languages):
        cached.cache_clear()
    for hook in _on_change:
        hook()


_on_change: list[Callable[[], None]] = []


def on_change(hook: Callable[[], None]) -> None:
    """Call ``hook()`` whenever the set of vendors changes (caches keyed by vendor)."""
    _on_change.append(hook)


@cache
def _load(name: str) -> Vendor:
    obj = _entry_points()[name].load()
    vendor = obj() if isinstance(obj, type) else obj
    if not isinstance(vendor, Vendor) or vendor.name != name:
        raise RegistryError(
            f"entry point {name!r} of {ENTRY_POINT_GROUP!r} does not give a Vendor named {name!r}"
        )
    return vendor


# -- helpers for vendor modules -------------------------------------------------------


def query_rule(vendor: str, language: str, stages: list[Stage], **context: Any) -> Rule:
    """A throw-away rule holding one parsed query (``detcat parse``)."""
    return Rule(
        vendor=vendor,
        id="<query>",
        title="",
        source_path="<query>",
        language=language,
        stages=stages,
        context=context,
    )


def tagged(kind: str, values: Iterable[Any]) -> tuple[str, ...]:
    """``kind:value`` scopes for the non-empty values, then ``any``."""
    return tuple(f"{kind}:{v}" for v in values if v) + (ANY,)
