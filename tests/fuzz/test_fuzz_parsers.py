"""Property-based fuzzing of every query parser (a modest budget here; the long
run is ``bench/fuzz_parsers.py``): any input either parses into stages that
can be serialized and pickled, or raises the parser's own error."""

from __future__ import annotations

import pytest
from fuzz_inputs import VOCABULARY, check, query, sigma_rule
from hypothesis import HealthCheck, given, settings

LANGUAGES = sorted(VOCABULARY)


@pytest.mark.parametrize("language", LANGUAGES)
def test_parser_never_crashes(language: str) -> None:
    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
    )
    @given(query(language))
    def run(text: str) -> None:
        check(language, text)

    run()


# Inputs the long run found crashing, kept as regression cases (language, text).
FOUND: list[tuple[str, str]] = [
    ("spl", "NOT " * 75 + "\n" + "NOT " * 300),  # RecursionError in the search builder
    ("eql", "process where not (cidrMatch(\n))"),  # ValueError: a test function without arguments
    ("eql", "process where startsWith()"),
    # RecursionError in pyparsing / the condition walk, ~300 levels deep
    ("sigma", sigma_rule("(" * 400 + "sel1" + ")" * 400)),
    ("sigma", sigma_rule("not " * 400 + "sel1")),
]


@pytest.mark.parametrize(("language", "text"), FOUND)
def test_found_crashes_stay_fixed(language: str, text: str) -> None:
    check(language, text)


def test_every_language_has_a_vocabulary() -> None:
    from detcat.parse import languages

    assert sorted(languages()) == LANGUAGES
