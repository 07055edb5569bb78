"""One wildcard reading for every language (``languages/wildcards.py``): the same
pattern, spelled the way each language spells it, is one canonical predicate
(sqlglot's ``validate_all`` shape: one expectation, many readings)."""

from __future__ import annotations

import pytest

from detcat.languages.wildcards import Wild, classify, keyword
from detcat.model import Op, predicates
from detcat.parse import parse_rules

SIGMA = """title: t
id: 0e8b6e5c-0000-4000-8000-000000000001
logsource: {{category: process_creation, product: windows}}
detection:
    selection:
        x: '{}'
    condition: selection
"""

# (canonical op, value, {language: query whose only predicate tests field x})
READINGS = [
    (
        Op.CONTAINS,
        "a*b",  # an escaped star inside contains is literal text
        {
            "sigma": SIGMA.format(r"*a\*b*"),
            "kql": r"x:*a\*b*",
            "esql": r'FROM logs | WHERE x LIKE "*a\\*b*"',
            "spl": '| where like(x, "%a*b%")',
        },
    ),
    (
        Op.REGEX_MATCH,
        r"^.*a\*b.*c.*$",  # a literal star among wildcards: no escape-free wildcard says it
        {
            "sigma": SIGMA.format(r"*a\*b*c*"),
            "kql": r"x:*a\*b*c*",
            "esql": r'FROM logs | WHERE x LIKE "*a\\*b*c*"',
            "esql-kql": r'FROM logs | WHERE KQL("x:*a\\*b*c*")',
            "spl": '| where like(x, "%a*b%c%")',
        },
    ),
    (
        Op.WILDCARD,
        "a*b?c",
        {
            "sigma": SIGMA.format("a*b?c"),
            "esql": 'FROM logs | WHERE x LIKE "a*b?c"',
            "eql": 'any where x : "a*b?c"',
            "spl": '| where like(x, "a%b_c")',
        },
    ),
    (
        Op.WILDCARD,
        "a*b*c",  # ** is *
        {
            "kql": "x:a**b*c",
            "eql": 'any where x : "a**b*c"',
            "spl": "x=a**b*c",
        },
    ),
    (
        Op.ENDS_WITH,
        "\\x.exe",
        {
            "sigma": SIGMA.format("*\\x.exe"),
            "kql": r"x:*\\x.exe",
            "esql": r'FROM logs | WHERE x LIKE "*\\\\x.exe"',
            "eql": r'any where x : "*\\x.exe"',
            "spl": "x=*\\x.exe",
        },
    ),
]
CASES = [
    pytest.param(lang, query, op, value, id=f"{op}-{lang}")
    for op, value, spellings in READINGS
    for lang, query in spellings.items()
]


@pytest.mark.parametrize(("language", "query", "op", "value"), CASES)
def test_one_reading_per_pattern(language: str, query: str, op: Op, value: str) -> None:
    language = language.split("-")[0]
    (rule,) = parse_rules(language, query, normalize=False)
    (p,) = [q for s in rule.stages for q in predicates(s.expr)]
    assert (p.field_raw, p.op, p.value) == ("x", op, value)


def test_wildcard_values_carry_no_escapes() -> None:
    """model.py: a ``wildcard`` value's ``*`` and ``?`` are all wildcards."""
    for _, _, spellings in READINGS:
        for language, query in spellings.items():
            (rule,) = parse_rules(language.split("-")[0], query, normalize=False)
            found = [p for s in rule.stages for p in predicates(s.expr)]
            assert all("\\*" not in str(p.value) for p in found if p.op is Op.WILDCARD)


ANY, ONE = Wild.ANY, Wild.ONE
CLASSIFY = [
    ((), (Op.EQ, "")),
    (("a",), (Op.EQ, "a")),
    ((ANY,), (Op.EXISTS, None)),
    ((ANY, ANY), (Op.EXISTS, None)),
    ((ONE,), (Op.WILDCARD, "?")),
    ((ANY, "a"), (Op.ENDS_WITH, "a")),
    (("a", ANY), (Op.STARTS_WITH, "a")),
    ((ANY, "a?", ANY), (Op.CONTAINS, "a?")),
    (("a", ANY, "b"), (Op.WILDCARD, "a*b")),
    (("a?", ANY, "b"), (Op.REGEX_MATCH, r"^a\?.*b$")),
    (("a", ONE, "b", ANY, ANY), (Op.WILDCARD, "a?b*")),
]


@pytest.mark.parametrize(("pattern", "expected"), CLASSIFY)
def test_classify(pattern: tuple, expected: tuple) -> None:
    assert classify(pattern) == expected


def test_keyword_drops_outer_stars() -> None:
    assert keyword((ANY, "mimi", ANY, "katz", ANY, ANY)) == "mimi*katz"
