"""The table files are well-formed: unambiguous keys, every canonical name
documented, every event titled, every cross-reference resolvable."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from detcat.normalize import event_catalog
from detcat.normalize.fields import documented, in_fieldset
from detcat.normalize.tables import EVENT_SOURCES, EVENTS, FIELDS, load
from detcat.sources import registry

VENDORS = registry.names()  # every installed vendor, detcat's own four included
NON_SCOPE = {"fallback", "platforms", "regex", "by_value"}


def field_entries() -> Iterator[tuple[str, str, str, str]]:
    """(vendor, scope, raw, canonical) of every name and prefix entry."""
    for vendor in VENDORS:
        for scope, entries in load(FIELDS).get(vendor, {}).items():
            if scope not in NON_SCOPE:
                for raw, canon in entries.items():
                    yield vendor, scope, raw, canon


def canonical_targets() -> Iterator[tuple[str, str]]:
    """(where, canonical name) for every name a table can produce."""
    for vendor, scope, raw, canon in field_entries():
        yield f"{vendor}.{scope}.{raw}", canon.removesuffix(".*")
    for vendor in VENDORS:
        section = load(FIELDS).get(vendor, {})
        for scope, prefix in section.get("fallback", {}).items():
            yield f"{vendor}.fallback.{scope}", prefix.rstrip(".")
        for rx, template in section.get("regex", {}).items():
            yield f"{vendor}.regex.{rx}", template.split("{", 1)[0].rstrip(".")
    for path, name in load(FIELDS)["implied"].items():
        yield f"implied.{path}", path
        yield f"implied.{path}", name
    for algo, suffix in load(FIELDS)["hashes"].items():
        for base in ("process", "dll", "file"):
            yield f"hashes.{algo}", f"{base}.{suffix}"


def test_every_canonical_name_is_documented() -> None:
    undocumented = [
        (where, name)
        for where, name in canonical_targets()
        if name not in documented() and not in_fieldset(name)
    ]
    assert undocumented == []


def test_documented_names_are_canonical_spellings() -> None:
    bad = [n for n in documented() if ":" in n or not re.fullmatch(r"[@\w.]+", n)]
    assert bad == []
    assert all(load(FIELDS)["canonical"].values()), "every canonical name has a description"


def test_no_raw_name_is_ambiguous_in_a_scope() -> None:
    """Sigma names also match case-insensitively: two keys of one scope that differ
    only in case must agree (other vendors' names are case-sensitive)."""
    seen: dict[tuple[str, str, str], str] = {}
    clashes = []
    folding = load(FIELDS)["field_name_case"]["insensitive"]
    for vendor, scope, raw, canon in field_entries():
        if vendor not in folding:
            continue
        key = (vendor, scope, raw.casefold())
        if seen.setdefault(key, canon) != canon:
            clashes.append((vendor, scope, raw, canon, seen[key]))
    assert clashes == []


def test_regexes_compile_with_one_group() -> None:
    for vendor in VENDORS:
        for rx in load(FIELDS).get(vendor, {}).get("regex", {}):
            assert re.compile(rx).groups == 1, rx
    for entry in load(EVENT_SOURCES)["splunk"]["data_source"]:
        assert re.compile(entry["pattern"]).groups <= 1, entry


def test_every_event_is_titled() -> None:
    providers = load(EVENTS)["providers"]
    assert all(p["name"].strip() for p in providers.values())
    untitled = [e.id for e in event_catalog() if not e.title.strip()]
    assert untitled == []
    assert len({e.id for e in event_catalog()}) == len(event_catalog())


def event_references() -> Iterator[tuple[str, str]]:
    """(where, catalog event id) for every event an inference table names."""
    src = load(EVENT_SOURCES)
    for cat, by_product in src["sigma"]["category"].items():
        for product, events in by_product.items():
            yield from ((f"sigma.category.{cat}.{product}", e) for e in events)
    for cat, by_provider in src["elastic"]["category"].items():
        for provider, events in by_provider.items():
            yield from ((f"elastic.category.{cat}.{provider}", e) for e in events)
    for dm, events in src["splunk"]["datamodel"].items():
        yield from ((f"splunk.datamodel.{dm}", e) for e in events)


def provider_references() -> Iterator[tuple[str, str]]:
    src = load(EVENT_SOURCES)
    yield from ((f"sigma.service.{k}", v) for k, v in src["sigma"]["service"].items())
    yield from ((f"provider_names.{k}", v) for k, v in src["provider_names"].items())
    for prefix, providers in src["elastic"]["index"].items():
        yield from ((f"elastic.index.{prefix}", p) for p in providers)
    for entry in src["splunk"]["data_source"]:
        yield from ((entry["pattern"], p) for p in entry.get("providers", []))
        yield from ((entry["pattern"], e.split(":", 1)[0]) for e in entry.get("events", []))
    yield "chronicle.event_type_provider", src["chronicle"]["event_type_provider"]
    yield from ((f"attack.{k}", v) for k, v in src["attack"].items())


def test_inference_tables_name_catalog_events() -> None:
    ids = {e.id for e in event_catalog()}
    assert [(w, e) for w, e in event_references() if e not in ids] == []


def test_inference_tables_name_catalog_providers() -> None:
    providers = set(load(EVENTS)["providers"])
    assert [(w, p) for w, p in provider_references() if p not in providers] == []


@pytest.mark.parametrize("name", [FIELDS, EVENTS, EVENT_SOURCES])
def test_table_files_load(name: str) -> None:
    table: Any = load(name)  # tomllib rejects duplicate keys
    assert table
