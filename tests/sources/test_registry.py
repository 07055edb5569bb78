"""The vendor registry: built-ins come from the entry-point group, programs may
register more, and a mistake in a plugin is a clear error, not a silent gap."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from detcat.model import Rule, Stage
from detcat.sources import registry
from detcat.sources.registry import ANY, Hints, RegistryError, UnknownVendor, Vendor


class Minimal(Vendor):
    name = "minimal"
    display_name = "Minimal"
    languages = ("minimalql",)

    def parse_text(self, language: str, text: str) -> list[Rule]:
        return [registry.query_rule(self.name, language, [Stage()])]

    def scopes(self, rule: Rule, stage: Stage) -> tuple[str, ...]:
        return (ANY,)

    def hints(self, rule: Rule, stage: Stage, classes: Sequence[str]) -> Hints:
        return Hints()


class Clash(Minimal):
    name = "clash"
    languages = ("kql",)  # Elastic's


@pytest.fixture
def cleanup() -> Iterator[None]:
    yield
    for name in ("minimal", "clash"):
        registry.unregister(name)


BUILT_IN = [
    ("sigma", "Sigma", ("sigma",), frozenset()),
    ("elastic", "Elastic", ("kql", "eql", "esql"), frozenset({"kql", "eql", "esql"})),
    ("splunk", "Splunk", ("spl",), frozenset()),
    ("chronicle", "Google SecOps", ("yaral",), frozenset()),
]


@pytest.mark.parametrize(("name", "display", "languages", "full_match"), BUILT_IN)
def test_built_in_vendors_come_from_the_entry_points(
    name: str, display: str, languages: tuple[str, ...], full_match: frozenset[str]
) -> None:
    vendor = registry.get(name)
    assert (vendor.name, vendor.display_name, vendor.languages) == (name, display, languages)
    assert {lang for lang in languages if registry.full_match(lang)} == full_match
    assert all(registry.languages()[lang] is vendor for lang in languages)


def test_register_and_unregister(cleanup: None) -> None:
    registry.register(Minimal())
    assert "minimal" in registry.names() and registry.display_name("minimal") == "Minimal"
    assert registry.languages()["minimalql"].name == "minimal"
    registry.unregister("minimal")
    assert registry.find("minimal") is None and "minimalql" not in registry.languages()


def test_reading_a_folder_needs_read_or_rule_files(tmp_path: Path) -> None:
    with pytest.raises(NotImplementedError, match="rule_files"):
        list(Minimal().read(tmp_path))


@pytest.mark.parametrize(
    ("action", "error", "message"),
    [
        (lambda: registry.get("nope"), UnknownVendor, "unknown vendor 'nope'"),
        (lambda: registry.register(object()), RegistryError, "is not a"),
        (lambda: (registry.register(Clash()), registry.languages()), RegistryError, "'kql'"),
    ],
)
def test_mistakes_are_clear_errors(cleanup: None, action, error, message) -> None:  # noqa: ANN001
    with pytest.raises(error, match=message):
        action()
    assert registry.display_name("nope") == "nope"  # an uninstalled vendor keeps its name
