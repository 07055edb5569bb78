"""The small data tables outside the field mappings are well-formed and used:
``data/event_kinds.toml`` (what ``detcat match`` adds to a raw catalog event) and
``data/spl.toml`` (SPL commands passed over, Splunk macros that never filter)."""

from __future__ import annotations

import re

import pytest

from detcat.languages import spl
from detcat.languages.spl.commands import SplPipeline
from detcat.match.events import canonical_event, categorization, known_scopes
from detcat.model import opaques
from detcat.normalize import event_catalog, get_event
from detcat.normalize.fields import documented
from detcat.sources.splunk import Macros
from detcat.tables import EVENT_KINDS, SPL, load

KINDS = load(EVENT_KINDS)
PROVIDERS = {e.id.split(":", 1)[0] for e in event_catalog()}


@pytest.mark.parametrize("event_id", sorted(KINDS["categorization"]))
def test_categorized_events_exist_and_reach_the_event(event_id: str) -> None:
    assert get_event(event_id) is not None
    fields = KINDS["categorization"][event_id]
    assert set(fields) <= documented(), set(fields) - documented()
    assert all(v and isinstance(v, str) for values in fields.values() for v in values)
    # used: a raw event of that kind carries the values
    provider = get_event(event_id).provider
    code = event_id.split(":", 1)[1]
    doc = {"Event": {"System": {"Provider_Name": provider, "EventID": code}}}
    ev = canonical_event("<test>", doc)
    assert ev.catalog_id == event_id and categorization(event_id) == fields
    assert all(set(values) <= set(ev.fields[f]) for f, values in fields.items())


@pytest.mark.parametrize(("provider", "product"), sorted(KINDS["products"].items()))
def test_products_name_providers_of_the_dictionary(provider: str, product: str) -> None:
    assert provider in PROVIDERS
    some = next(e.id for e in event_catalog() if e.id.startswith(f"{provider}:"))
    assert f"product:{product}" in known_scopes(some, evtx=False)


IGNORED = [(group, c) for group, cmds in load(SPL)["ignored_commands"].items() for c in cmds]


def test_ignored_commands_are_unique_words_without_a_handler() -> None:
    names = [c for _, c in IGNORED]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z]+", c) for c in names)
    assert not [c for c in names if hasattr(SplPipeline, f"cmd_{c}")]


@pytest.mark.parametrize(("group", "command"), IGNORED)
def test_an_ignored_command_is_passed_over(group: str, command: str) -> None:
    stages = spl.parse(f"index=x user=a | {command} b")
    assert [o for s in stages for o in opaques(s.expr)] == []


@pytest.mark.parametrize("macro", load(SPL)["macros"]["no_filter"])
def test_a_no_filter_macro_vanishes(macro: str) -> None:
    expansion = Macros().expand(f"index=x | `{macro}(a)` | stats count")
    assert expansion.opaques == [] and macro not in expansion.text
    other = Macros().expand("index=x | `some_other_macro(a)` | stats count")
    assert other.opaques  # the contrast: an unknown macro is Opaque
