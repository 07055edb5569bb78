"""The SQL the emitters write: literals that read back as written, leaves that
keep the matcher's two values under NOT, and the compile report's share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from detcat.match.evaluate import Dialect
from detcat.model import Op, Predicate
from detcat.normalize.fields import KEYWORD_FIELD
from detcat.sqlgen import Status, as_backtested, compile_rules, dialect, lower, report
from detcat.sqlgen.ir import (
    FALSE,
    TEXT_ALL,
    TEXT_ALL_FOLD,
    TRUE,
    All,
    Col,
    Has,
    Neg,
    Python,
    Unknown,
    Variant,
    all_,
    any_,
    neg,
)
from detcat.sqlgen.lower import ip_key, rx_literal, wildcard_body


def one(sql: str, params: dict[str, str] | None = None) -> object:
    """The single value ``sql`` gives, on a fresh in-memory DuckDB."""
    return duckdb.connect().execute(sql, params or {}).fetchone()[0]  # type: ignore[index]


LITERALS = [
    "plain",
    "it's",
    "C:\\Windows\\",
    "\\\\server\\share",
    "100% _under_ %_\\%",
    "line\nbreak\ttab\r",
    "unit\x1fsep",
    "nul\x00inside",
    "ŞAHİN ΣΊΣΥΦΟΣ 日本語 🙂",
]


@pytest.mark.parametrize("text", LITERALS)
def test_duckdb_literal_reads_back(text: str) -> None:
    sql = dialect("duckdb").literal(text)
    assert one(f"SELECT {sql}") == text


@pytest.mark.parametrize(
    ("text", "spark"),
    [
        ("it's", "'it\\'s'"),
        ("C:\\Windows\\", "'C:\\\\Windows\\\\'"),
        ("100%_", "'100%_'"),  # no LIKE: % and _ are plain characters
        ("a\x1fb", "'a\\u001Fb'"),
    ],
)
def test_spark_literal_escapes_backslash_and_quote(text: str, spark: str) -> None:
    assert dialect("spark").literal(text) == spark


@pytest.mark.parametrize(
    ("node", "hit"),
    [
        (Has(Col("f", Variant.FOLD), "x"), False),
        (Neg(Has(Col("f", Variant.FOLD), "x")), True),  # SQL alone: NOT NULL is NULL
        (Neg(Neg(Has(Col("f", Variant.FOLD), "x"))), False),
        (All((Neg(Has(Col("f", Variant.FOLD), "x")), TRUE)), True),
    ],
)
def test_missing_field_fails_positive_tests_and_passes_negated(node, hit: bool) -> None:
    sql = dialect("duckdb").condition(node)
    got = one(f'SELECT {sql} FROM (SELECT CAST(NULL AS VARCHAR) AS "f#cf")')
    assert (got is True) is hit


@pytest.mark.parametrize(
    ("built", "folded"),
    [
        (all_([TRUE, Has(Col("a"), "x")]), Has(Col("a"), "x")),
        (all_([FALSE, Unknown("u")]), FALSE),
        (any_([TRUE, Unknown("u")]), TRUE),
        (any_([FALSE, Unknown("u")]), Unknown("u")),
        (neg(Unknown("u")), Unknown("u")),
        (neg(neg(Has(Col("a"), "x"))), Has(Col("a"), "x")),
        (
            all_([Has(Col("a"), "x"), all_([Has(Col("b"), "y"), TRUE])]),
            All((Has(Col("a"), "x"), Has(Col("b"), "y"))),
        ),
    ],
)
def test_kleene_folding(built, folded) -> None:
    assert built == folded


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("10.1.2.3", "4:0a010203"),
        (" 255.255.255.255 ", "4:ffffffff"),
        ("::1", "6:" + "0" * 31 + "1"),
        ("not-an-ip", None),
    ],
)
def test_ip_keys_order_like_integers(address: str, key: str | None) -> None:
    assert ip_key(address) == key


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("a*b", "a\nxb", True),
        ("a?b", "a%b", True),
        ("a%b", "axb", False),
        ("a_b", "axb", False),
        ("C:\\*", "C:\\x", True),
        ("*", "", True),
    ],
)
def test_wildcards_match_one_whole_value(pattern: str, value: str, matches: bool) -> None:
    rx = "\\x{1F}" + wildcard_body(pattern) + "\\x{1F}"
    got = one("SELECT regexp_matches(chr(31) || $v || chr(31), $p)", {"v": value, "p": rx})
    assert got is matches


@pytest.mark.parametrize("text", ["a.b", "(x)", "\\", "é", "[]{}^$|+?*"])
def test_regex_literal_matches_only_itself(text: str) -> None:
    got = one("SELECT regexp_full_match($v, $p)", {"v": text, "p": rx_literal(text)})
    assert got is True


def test_compile_report_share_per_vendor(corpus_db: Path) -> None:
    """At least 95% of each vendor's single-event rules compile to SQL exactly;
    every other rule says why."""
    from detcat.match import load_rules
    from detcat.store import connect

    compiled = compile_rules(as_backtested(load_rules(connect(corpus_db))))
    shares, reasons = report(compiled)
    assert {s.vendor for s in shares} == {"sigma", "elastic", "splunk", "chronicle"}
    for s in shares:
        assert s.exact_share >= 0.95, s
    compiled_exactly = (Status.EXACT, Status.STATEFUL)
    assert all(c.reasons for c in compiled if c.status not in compiled_exactly)
    assert sum(n for r, n in reasons.items() if r.startswith("multi-event rule: ")) > 0


# A field-less test (model.Predicate.whole_event) reads every string value:
# contains is a search of the joined text (exact: a term without SEP is in it just
# when a value holds it); a regex there could span two values, so it is Python's.
FIELDLESS = [
    (Op.CONTAINS, "WhoAmI", False, Has(TEXT_ALL_FOLD, "whoami")),
    (Op.CONTAINS, "WhoAmI", True, Has(TEXT_ALL, "WhoAmI")),
    (Op.REGEX_MATCH, "who.mi", False, Python),
    (Op.STARTS_WITH, "who", False, Unknown),
]


@pytest.mark.parametrize(("op", "value", "cased", "want"), FIELDLESS)
def test_fieldless_tests_read_the_whole_event(op: Op, value: str, cased: bool, want: Any) -> None:
    p = Predicate(None, op, value, case_sensitive=cased, field=KEYWORD_FIELD)
    got = lower.predicate(p, Dialect())
    assert got == want if not isinstance(want, type) else isinstance(got, want)
