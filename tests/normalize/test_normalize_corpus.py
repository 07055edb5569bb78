"""Normalization measured on the real corpora (skipped when they are absent).

Every number here is computed from the corpora: the share of predicates with a
canonical field per vendor, which table entries the corpora use, which catalog
events rules name, and the cross-vendor AnyDesk indicator of T1219.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_equivalence import IDEAS, INDEX

from detcat.model import Predicate, Rule, StageRole, predicates
from detcat.normalize import event_catalog, indicator_key, is_mapped, normalize_rule
from detcat.normalize.fields import ANY, Entry, explain, windows_table
from detcat.normalize.scopes import stage_scopes
from detcat.normalize.tables import EVENT_SOURCES, FIELDS, load
from detcat.normalize.values import lookup_name
from detcat.parse import parse_rules
from detcat.sources import chronicle, registry

VENDORS = registry.names()  # every installed vendor, detcat's own four included
MIN_MAPPED = 0.95


@dataclass
class Corpus:
    rules: dict[str, list[Rule]] = field(default_factory=dict)
    entries: dict[str, set[Entry]] = field(default_factory=lambda: defaultdict(set))


def _record_lookups(corpus: Corpus, rule: Rule) -> None:
    """The table entry each predicate's raw name is looked up by, with the stage's
    events as normalization reads them (call after ``normalize_rule``)."""
    events = tuple(e for s in rule.stages for e in s.events)
    for stage in rule.stages:
        scopes = stage_scopes(rule, stage)
        derived = stage.params.get("derived") or {}
        for p in predicates(stage.expr):
            raw, _ = lookup_name(p, derived)
            hit = explain(rule.vendor, scopes, raw, events)
            if hit is not None:
                corpus.entries[rule.vendor].add(hit)


@pytest.fixture(scope="module")
def corpus(corpora: Path) -> Corpus:
    out = Corpus()
    for vendor in VENDORS:
        source = registry.get(vendor)
        rules = [r for r in source.read(corpora / vendor) if isinstance(r, Rule)]
        for rule in rules:
            normalize_rule(rule)
            _record_lookups(out, rule)
        out.rules[vendor] = rules
    return out


def written(rule: Rule) -> list[Predicate]:
    """Predicates on event fields as the rule wrote them: not implied ones, and not
    post-aggregation filters (``count > 5`` compares a computed value that no
    schema names; ``detcat stats`` counts those separately)."""
    return [
        p
        for s in rule.stages
        if s.role is StageRole.EVENTS
        for p in predicates(s.expr)
        if p.kind != "implied"
    ]


@pytest.mark.parametrize("vendor", VENDORS)
def test_predicates_have_canonical_fields(corpus: Corpus, vendor: str) -> None:
    preds = [p for r in corpus.rules[vendor] for p in written(r)]
    unmapped = Counter(p.field for p in preds if not is_mapped(p.field))
    share = 1 - sum(unmapped.values()) / len(preds)
    print(f"\n{vendor}: {len(preds)} predicates, {share:.2%} canonical; top unmapped:")
    print(json.dumps(unmapped.most_common(10)))
    assert share >= MIN_MAPPED


def test_every_field_entry_is_used_by_the_corpus(corpus: Corpus, corpora: Path) -> None:
    """Used by an active rule, or by a deprecated one (``build --include-deprecated``):
    UDM ``network.direction`` is only in deprecated SecOps rules today."""
    deprecated = Corpus()
    for rule in chronicle.read(corpora / "chronicle", include_deprecated=True):
        if isinstance(rule, Rule):
            normalize_rule(rule)
            _record_lookups(deprecated, rule)
    unused = []
    for vendor in VENDORS:
        used = {(e.section, e.key) for e in corpus.entries[vendor] | deprecated.entries[vendor]}
        section = load(FIELDS).get(vendor, {})
        for scope, entries in section.items():
            if scope in ("fallback", "platforms", "by_value"):
                continue
            for key in entries:
                if (scope, key) not in used:
                    unused.append((vendor, scope, key))
        unused += [(vendor, "fallback", s) for s in section.get("fallback", {})
                   if ("fallback", s) not in used]  # fmt: skip
    assert unused == []


def test_vendor_specific_fields_are_written_and_unmapped(corpus: Corpus) -> None:
    """Each [vendor_specific.*] name (or ``prefix.*``) is one the vendor's rules write
    without a canonical name (a later mapping must remove it from the list; a name
    may be mapped in other log sources: Sigma ``LogonId`` of Windows rules)."""
    listed = load(FIELDS)["vendor_specific"]
    assert set(listed) <= set(VENDORS)
    for vendor, names in listed.items():
        unmapped = {p.field_raw for r in corpus.rules[vendor] for s in r.stages
                    for p in predicates(s.expr) if not is_mapped(p.field)}  # fmt: skip
        assert all(reason for reason in names.values()), vendor
        for name in names:
            covers = [f for f in unmapped if f == name or (
                name.endswith(".*") and f and f.startswith(name[:-1]))]  # fmt: skip
            assert covers, (vendor, name)


def test_every_windows_entry_is_used_by_the_corpus(corpus: Corpus) -> None:
    """Each [windows.*] name decides some rule's field in its event (or in any
    event), and each Splunk add-on alias is written by some rule; the corpus
    does not write Security 4688's names nor the classic add-on format, so the
    equivalence table's spellings count as uses too (they are the issue's)."""
    table_uses = Corpus()
    for idea in IDEAS:
        for language, text in idea.spellings:
            lang, _, index = language.partition("@")
            for rule in parse_rules(lang, text, normalize=False):
                rule.context["index"] = INDEX.get(language, [])
                normalize_rule(rule)
                _record_lookups(table_uses, rule)
                table_uses.rules.setdefault(rule.vendor, []).append(rule)
    found = [corpus, table_uses]
    used = {(e.section, e.key) for c in found for es in c.entries.values() for e in es}
    table = windows_table()
    unused = [(f"windows:{ANY}", n) for n in table.default if (f"windows:{ANY}", n) not in used]
    unused += [
        (f"windows:{event}", n)
        for event, names in table.by_event.items()
        for n in names
        if (f"windows:{event}", n) not in used
    ]
    names = {p.field_raw for c in found for rs in c.rules.values() for r in rs for p in written(r)}
    unused += [("windows:aliases", a) for a in table.aliases if a not in names]
    assert unused == []


def attack_event_codes(corpora: Path) -> list[tuple[str, str]]:
    """(provider key, code) of ATT&CK analytics' ``WinEventLog:<channel>`` references."""
    bundle = json.loads((corpora / "attack" / "enterprise-attack.json").read_text())
    channels = load(EVENT_SOURCES)["attack"]
    out = []
    for obj in bundle["objects"]:
        for ref in obj.get("x_mitre_log_source_references", []):
            provider = channels.get(ref.get("name", ""))
            codes = re.fullmatch(r"EventCode=([\d, ]+)", ref.get("channel") or "")
            if provider and codes:
                out += [(provider, c.strip()) for c in codes.group(1).split(",")]
    return out


def test_attack_log_source_events_are_in_the_catalog(corpora: Path) -> None:
    refs = attack_event_codes(corpora)
    ids = {e.id for e in event_catalog()}
    missing = sorted({f"{p}:{c}" for p, c in refs} - ids)
    share = 1 - sum(f"{p}:{c}" in missing for p, c in refs) / len(refs)
    print(f"\nATT&CK WinEventLog references: {len(refs)}, {share:.1%} in the catalog; "
          f"missing {missing}")  # fmt: skip
    assert share >= 0.97


def test_every_catalog_event_is_named_by_a_rule_or_reference(corpus: Corpus, corpora: Path) -> None:
    named = Counter(e for rules in corpus.rules.values() for r in rules
                    for s in r.stages for e in s.events)  # fmt: skip
    referenced = {f"{p}:{c}" for p, c in attack_event_codes(corpora)}
    # Sysmon is listed whole (events 1-29): its schema is the reference, not the corpus
    unused = [
        e.id
        for e in event_catalog()
        if e.id not in named and e.id not in referenced and not e.id.startswith("sysmon:")
    ]
    print(f"\n{len(named)} of {len(event_catalog())} catalog events named by rules")
    assert unused == []


def test_rules_with_events(corpus: Corpus) -> None:
    shares = {}
    for vendor, rules in corpus.rules.items():
        with_query = [r for r in rules if r.has_query]
        tagged = [r for r in with_query if any(s.events for s in r.stages)]
        shares[vendor] = len(tagged) / len(with_query)
    print(f"\nrules with catalog events: { {v: f'{s:.1%}' for v, s in shares.items()} }")
    assert shares["sigma"] >= 0.75


def t1219(corpus: Corpus, vendor: str) -> list[Rule]:
    return [r for r in corpus.rules[vendor] if any(t.startswith("T1219") for t in r.techniques)]


def test_t1219_anydesk_is_one_indicator_across_vendors(corpus: Corpus) -> None:
    key = ("process.name", "eq", "anydesk.exe")
    reach: dict[str, int] = {}
    for vendor in ("sigma", "elastic", "splunk"):
        keys_per_rule = [{indicator_key(p) for s in r.stages for p in predicates(s.expr)}
                         for r in t1219(corpus, vendor)]  # fmt: skip
        reach[vendor] = sum(key in keys for keys in keys_per_rule)
    print(f"\nT1219 rules with {key}: {reach}")
    assert all(n > 0 for n in reach.values())


def aliases(rules: list[Rule], canonical: str) -> set[str | None]:
    return {p.field_raw for r in rules for p in written(r) if p.field == canonical}


def test_process_executable_row_collects_vendor_spellings(corpus: Corpus) -> None:
    every = {v: aliases(corpus.rules[v], "process.executable") for v in VENDORS}
    assert "Image" in every["sigma"]
    assert "process.executable" in every["elastic"]
    assert "Processes.process_path" in every["splunk"]
    assert "target.process.file.full_path" in every["chronicle"]
    technique = {v: aliases(t1219(corpus, v), "process.executable") for v in VENDORS}
    print(f"\nT1219 process.executable aliases: {technique}")
    assert {"Image", "process.executable", "target.process.file.full_path"} <= set().union(
        *technique.values()
    )


def test_t1219_events(corpus: Corpus) -> None:
    events: Counter[str] = Counter()
    for vendor in VENDORS:
        for r in t1219(corpus, vendor):
            events.update({e for s in r.stages for e in s.events})
    print(f"\nT1219 events: {events.most_common()}")
    assert {"sysmon:1", "security:4688", "sysmon:22", "sysmon:3"} <= set(events)
