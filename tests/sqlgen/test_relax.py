"""A regex RE2 refuses, relaxed (``sqlgen.relax``): the lookarounds cut out, and
only where both engines read the rest alike; wherever Python's ``re`` finds the
original, RE2 finds the relaxed one or the value is not plain text; and a rule
with such a regex gives the matcher's hits on DuckDB (its prefilter narrowed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import re2

from detcat.backtest import backtest
from detcat.match import RulePlan
from detcat.parse import parse_rules
from detcat.sqlgen import Status, compile_rules
from detcat.sqlgen.ir import Regex, walk
from detcat.sqlgen.relax import NOT_PLAIN, relax
from tests.sqlgen.cases import sigma, sysmon

ADS = r"(\b)\w+(\.\w+)?:\w+(\.\w{2,4})(?!\.)(\b|\s|&)"  # Splunk's alternate data stream


@pytest.mark.parametrize(
    ("pattern", "want"),
    [
        (ADS, r"(\b)\w+(\.\w+)?:\w+(\.\w{2,4})(\b|\s|&)"),
        (r"(?<!\/)\b\w+:\w+$", r"\b\w+:\w+$"),
        (r"a(?=b(?!c))d", "ad"),  # nested: cut out whole
        (r"[(?=]x(?=y)", "[(?=]x"),  # in a class (?= is no group
        (r"\(?=a", None),  # an escaped parenthesis: no lookaround, nothing to relax
        (r"[]()]+(?!z)", "[]()]+"),  # a leading ] is a class member
        (r"(a)(?=b)(c)", "(a)(c)"),
        (r"(a)(?=(b))\1", None),  # a backreference: RE2 refuses the rest too
        (r"x{,3}(?=a)", None),  # {,n}: a repeat to Python, text to RE2
        (r"[[:alpha:]](?=a)", None),  # a POSIX class to RE2 only
        (r"é(?=a)", None),  # text outside ASCII: case folding may differ
        (r"abc", None),  # no lookaround
    ],
)
def test_relax(pattern: str, want: str | None) -> None:
    assert relax(pattern) == want


SUBJECTS = [
    "cmd.exe /c type file.txt:stream.exe & x",
    "file.txt:stream.exe",
    "http://host.com:8080/a.txt",
    "c:\\x.y:z.txt.",
    "plain text without a colon",
    "fïle.txt:strëam.exe",  # Unicode word characters: \w differs, NOT_PLAIN holds
    "a.b:c.de\x0b",  # \v: Python's \s, not RE2's
    "a.b:c.de\n",  # $ before a final newline, to Python
    "ab:cd",
]
PATTERNS = [ADS, r"(?<!\/)\b\w+(\.\w+)?:\w+(\.\w+)?$", r"(?<=\s)\w+:\w+(?=\.)"]


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("flags", [0, re.IGNORECASE, re.DOTALL])
@pytest.mark.parametrize("subject", SUBJECTS)
def test_relaxed_holds_where_the_original_does(pattern: str, flags: int, subject: str) -> None:
    relaxed = relax(pattern)
    assert relaxed is not None
    found = re.search(pattern, subject, flags) is not None
    prefix = ("(?i)" if flags & re.IGNORECASE else "") + ("(?s)" if flags & re.DOTALL else "")
    near = re2.search(prefix + relaxed, subject) is not None or re.search(NOT_PLAIN, subject)
    assert near or not found


EVENTS = {
    "ads": "cmd.exe /c type c:\\temp\\file.txt:evil.exe & x",
    "dots": "type file.txt:evil.exe.bak",  # only the relaxed regex holds: Python decides
    "unicode": "type fïle.txt:évil.exe x",
    "none": "cmd.exe /c dir",
}


def test_a_rule_with_a_lookaround_backtests_alike(tmp_path: Path) -> None:
    detection = f"    sel:\n        CommandLine|re: '{ADS}'\n    condition: sel"
    (rule,) = parse_rules("sigma", sigma("ads", detection))
    plans = [RulePlan.from_rule(rule)]
    (compiled,) = compile_rules(plans)
    assert compiled.status is Status.FALLBACK
    assert any(isinstance(n, Regex) and n.pattern == NOT_PLAIN for n in walk(compiled.node))
    path = tmp_path / "events.jsonl"
    docs = [sysmon(1, "2024-05-01T10:00:00Z", CommandLine=c) for c in EVENTS.values()]
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    got = {
        engine: backtest([str(path)], plans, {}, engine).rules[compiled.key]
        for engine in ("python", "duckdb")
    }
    assert got["python"].hits >= 2  # the comparison is not empty
    py, sql = got["python"], got["duckdb"]
    assert (sql.hits, sql.unknown, sorted(sql.samples)) == (py.hits, py.unknown, sorted(py.samples))
