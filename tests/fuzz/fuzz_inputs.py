"""Inputs for fuzzing the query parsers, and the property they must keep.

Each language has a vocabulary of its own tokens (keywords, operators, quotes,
escapes, brackets, comments); an input is a random sequence of those tokens,
short random text and separators, sometimes nested far deeper than any real
rule. The property (``check``): parsing either succeeds, with stages that can
be serialized and sent between processes, or raises the parser's own error
(``QueryError``; for Sigma, pySigma's ``SigmaError``). Anything else is a crash.

Used by ``tests/fuzz/test_fuzz_parsers.py`` (a modest budget) and by
``bench/fuzz_parsers.py`` (the long run).
"""

from __future__ import annotations

import pickle
import random
from typing import Any

import yaml
from hypothesis import strategies as st

from detcat.model import QueryError, Rule, Stage, check_depth, expr_to_json
from detcat.parse import parse_rules

COMMON = ["(", ")", ",", '"', "'", "\\", "*", "?", "\n", "-1", "0", "1.5e3", "x" * 300, "é", "\x00"]

VOCABULARY: dict[str, list[str]] = {
    "kql": [
        "process.name",
        "host.os.type",
        "a",
        ":",
        "<",
        "<=",
        ">",
        ">=",
        "and",
        "or",
        "not",
        "{",
        "}",
        '"x y"',
        '"\\"',
        "\\\\",
        "*.exe",
        "\\*",
        "\\u0041",
        "\\or",
        "\\(",
        "true",
        "@timestamp",
        "a.b.c:*",
    ],
    "eql": [
        "process where",
        "any where",
        "sequence by host.id",
        "sequence with maxspan=5m",
        "[",
        "]",
        "until",
        "==",
        "!=",
        ":",
        "like~",
        "like",
        "regex",
        "regex~",
        "in",
        "in~",
        '"a"',
        '"""raw"""',
        '?"x\\"',
        "'x'",
        "and",
        "or",
        "not",
        "true",
        "null",
        "~",
        "startsWith(",
        "length(",
        "cidrMatch(",
        "wildcard(",
        "|",
        "head 1",
        "tail 2",
        "filter",
        "`a b`",
        "/* c */",
        "// c\n",
        "process.name",
        "*",
        "+",
        ">=",
        "descendant of",
        "!",
        "runs=3",
        "sample by a",
    ],
    "esql": [
        "from logs-*",
        "|",
        "where",
        "eval",
        "stats",
        "by",
        "keep",
        "rename",
        "as",
        "dissect",
        "grok",
        '"%{a} %{b}"',
        "==",
        "!=",
        "like",
        "rlike",
        "in",
        "not",
        "is null",
        "is not null",
        "and",
        "or",
        '"s"',
        '"""t"""',
        "`a b`",
        "to_lower(",
        "coalesce(",
        "case(",
        "::",
        "metadata _id",
        "limit 10",
        "sort",
        "mv_expand",
        "enrich",
        "lookup join",
        "completion",
        "// c\n",
        "/* c */",
        "process.name",
        "=",
        "count(*)",
        "[",
        "]",
        "{",
        "}",
    ],
    "spl": [
        "index=main",
        "sourcetype=x",
        "|",
        "search",
        "where",
        "eval",
        "stats count by",
        "tstats",
        "from datamodel=Endpoint.Processes",
        "NOT",
        "AND",
        "OR",
        "[",
        "]",
        '"x"',
        "'f'",
        "=",
        "!=",
        "<",
        "IN",
        "like(",
        "match(",
        "lookup tools name",
        "rex field=_raw",
        '"(?<a>x)"',
        "`sysmon`",
        "`m(a,b)`",
        "```c```",
        "TERM(",
        "CASE(",
        "rename a as b",
        "table",
        "fields",
        "dedup",
        "if(",
        "case(",
        "coalesce(",
        'map search="x"',
        "$x$",
        "process_name",
        "Processes.process_name",
        "`",
        "inputlookup x",
        "join",
        "append",
    ],
    "yaral": [
        "$e.metadata.event_type",
        "$e2.principal.ip",
        "=",
        "!=",
        '"PROCESS_LAUNCH"',
        "/re/",
        "nocase",
        "and",
        "or",
        "not",
        "re.regex(",
        "strings.to_lower(",
        "in",
        "%list",
        "$x",
        "#e > 1",
        "match:",
        "over 5m",
        "outcome:",
        "$risk = max(",
        "if(",
        "cidr",
        "any",
        "all",
        "!$e",
        "net.ip_in_range_cidr(",
        "// c\n",
        "/* c */",
        "condition:",
        "events:",
        "meta:",
        "options:",
        "$e",
        "{",
        "}",
        "[",
        "]",
        "`x`",
    ],
    "sigma": [
        "sel1",
        "sel2",
        "filter_a",
        "filter_b",
        "1 of sel*",
        "all of them",
        "1 of filter_*",
        "and",
        "or",
        "not",
        "|",
        "count() > 5",
        "keywords",
        "them",
        "of",
        "sel*",
        "nope",
        "near",
        "all of sel*",
        "|count(x) by y > 1",
    ],
}

SEPARATORS = [" ", " ", " ", "", "\n", "\t"]


OPENERS = ["", "", "", "(", "not ", "NOT ", "not (", "!("]
DEPTHS = [0, 0, 0, 1, 5, 50, 99, 150, 1000, 5000]


@st.composite
def query(draw: Any, language: str) -> str:
    """A query-like text of ``language``: its tokens, bits of text, deep nests."""
    piece = st.one_of(
        st.sampled_from(VOCABULARY[language] + COMMON),
        st.text(max_size=6),
    )
    parts = draw(st.lists(st.tuples(piece, st.sampled_from(SEPARATORS)), max_size=30))
    body = "".join(p + s for p, s in parts)
    opener = draw(st.sampled_from(OPENERS))
    depth = draw(st.sampled_from(DEPTHS))
    closer = ")" if "(" in opener and draw(st.booleans()) else ""
    body = opener * depth + body + closer * depth
    return wrap(language, body, draw)


def random_query(language: str, rng: random.Random) -> str:
    """The same distribution as ``query`` without Hypothesis (whose generation
    costs more than the parse): the long run's cheap engine."""
    tokens = VOCABULARY[language] + COMMON

    def piece() -> str:
        if rng.random() < 0.7:
            return rng.choice(tokens)
        return "".join(chr(rng.choice((rng.randrange(32, 127), rng.randrange(0, 0x3000))))
                       for _ in range(rng.randrange(7)))  # fmt: skip

    body = "".join(piece() + rng.choice(SEPARATORS) for _ in range(rng.randrange(31)))
    opener, depth = rng.choice(OPENERS), rng.choice(DEPTHS)
    closer = ")" if "(" in opener and rng.random() < 0.5 else ""
    body = opener * depth + body + closer * depth

    def draw(strategy: Any) -> Any:  # wrap()'s two draws, answered by rng
        return rng.random() < 0.5 if strategy is _BOOL else rng.choice(_CONDITIONS + [body])

    return wrap(language, body, draw)


_BOOL = st.booleans()
_CONDITIONS = ["$e", "$e and #e > 1", "!$e2 and $e"]


def wrap(language: str, body: str, draw: Any) -> str:
    """Put ``body`` where the language expects it (whole-rule languages)."""
    if language == "yaral" and draw(_BOOL):
        condition = draw(st.sampled_from([*_CONDITIONS, body]))
        return f'rule r {{\n meta:\n  a = "b"\n events:\n  {body}\n condition:\n  {condition}\n}}\n'
    if language == "sigma":
        return sigma_rule(body)
    if language in HEADS and draw(_BOOL):  # past the first token more often
        return HEADS[language] + body
    return body


# A valid start: without one, most inputs end at their first token.
HEADS = {"eql": "process where ", "esql": "from logs-* | where ", "spl": "index=main "}


def sigma_rule(condition: str) -> str:
    doc = {
        "title": "fuzz",
        "id": "00000000-0000-4000-8000-000000000000",
        "logsource": {"product": "windows", "category": "process_creation"},
        "detection": {
            "sel1": {"Image|endswith": "\\a.exe"},
            "sel2": {"CommandLine|contains|all": ["x", "y"]},
            "filter_a": {"User": "SYSTEM"},
            "filter_b": {"ParentImage|re": "^a.*"},
            "keywords": ["evil", "bad*"],
            "condition": condition,
        },
    }
    return yaml.safe_dump(doc, allow_unicode=True)


def check(language: str, text: str) -> None:
    """Parse ``text``; raise whatever is neither a result nor the parser's own error."""
    if language == "sigma":
        return _check_sigma(text)
    try:
        rules = parse_rules(language, text)
    except QueryError:
        return
    _usable(rules)


def _check_sigma(text: str) -> None:
    """pySigma reads the rule and the condition (its own errors: ``SigmaError``);
    detcat's reader turns the tree into stages and normalizes them. The reader's
    catch-alls are bypassed: they would hide the crash being looked for."""
    from sigma.exceptions import SigmaError
    from sigma.rule import SigmaRule

    from detcat.normalize import normalize_rule
    from detcat.sources import sigma

    doc = yaml.safe_load(text)
    try:
        sr = SigmaRule.from_dict(doc)
    except SigmaError:
        return
    rule = Rule("sigma", "fuzz", "fuzz", "fuzz.yml", "sigma")
    try:
        expr = sigma._condition_expr(sr, rule)
    except SigmaError:
        return
    rule.stages = [Stage(expr=expr)]
    try:
        check_depth(expr)
    except QueryError:
        return
    normalize_rule(rule)
    _usable([rule])


def _usable(rules: list[Rule]) -> None:
    """What a build does next with a parsed rule: serialize it, pickle it."""
    for rule in rules:
        for stage in rule.stages:
            expr_to_json(stage.expr)
        pickle.dumps(rule)
