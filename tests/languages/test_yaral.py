"""YARA-L 2.0 -> detcat model, as tables: one rule fragment, one canonical reading.

Predicates are written ``P(field, op, value, syntax, case_sensitive)``. Event
fragments are read inside ``rule t { events: … condition: $e }``; the field is the
UDM path without the event variable.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from detcat.languages.yaral import YaraLRule, parse_rules
from detcat.model import And, Expr, Not, Op, Opaque, Or, Predicate, QueryError, Stage

EQ, CONTAINS, STARTS, ENDS = Op.EQ, Op.CONTAINS, Op.STARTS_WITH, Op.ENDS_WITH
REGEX, CIDR, LIST, REF = Op.REGEX_MATCH, Op.CIDR, Op.IN_LIST, Op.FIELD_REF
EXISTS, NULL = Op.EXISTS, Op.IS_NULL


def P(field: str, op: Op, value: object, syntax: str, cs: bool, kind: str = "") -> Predicate:  # noqa: N802
    return Predicate(field, op, value, syntax, cs, kind=kind)  # type: ignore[arg-type]


def rule(
    events: str, condition: str = "$e", *, extra: str = "", lenient: bool = False
) -> YaraLRule:
    text = f"rule t {{\n  events:\n    {events}\n{extra}  condition:\n    {condition}\n}}\n"
    (parsed,) = parse_rules(text, lenient=lenient)
    return parsed


def stage(events: str, name: str = "$e", **kw: Any) -> Stage:
    return next(s for s in rule(events, **kw).stages if s.name == name)


def expr(events: str, **kw: Any) -> Expr | None:
    return stage(events, **kw).expr


HOST = "principal.hostname"


def host(value: object, syntax: str = "=", cs: bool = True, op: Op = EQ) -> Predicate:
    return P(HOST, op, value, syntax, cs)


# -- comparisons ------------------------------------------------------------------

COMPARISONS = [
    ('$e.principal.hostname = "web01"', host("web01")),
    ('$e.principal.hostname = "Web01" nocase', host("Web01", cs=False)),
    ('$e.principal.hostname = "Web01" NOCASE', host("Web01", cs=False)),
    ('$e.principal.hostname != "web01"', Not(host("web01", "!="))),
    ('$e.principal.hostname != "web01" nocase', Not(host("web01", "!=", False))),
    # `=` is exact in YARA-L: "*" is not a wildcard
    ('$e.principal.hostname = "web*"', host("web*")),
    ("$e.target.port = 3389", P("target.port", EQ, 3389, "=", True)),
    ("$e.target.port = -1", P("target.port", EQ, -1, "=", True)),
    ("$e.target.ratio = 0.5", P("target.ratio", EQ, 0.5, "=", True)),
    (
        "$e.target.resource.attribute.public = true",
        P("target.resource.attribute.public", EQ, True, "=", True),
    ),
    ("$e.target.port < 1024", P("target.port", Op.LT, 1024, "<", True)),
    ("$e.target.port <= 1024", P("target.port", Op.LTE, 1024, "<=", True)),
    ("$e.target.port > 1024", P("target.port", Op.GT, 1024, ">", True)),
    ("$e.target.port >= 1024", P("target.port", Op.GTE, 1024, ">=", True)),
    # a constant on the left is turned around
    ("1024 < $e.target.port", P("target.port", Op.GT, 1024, ">", True)),
    ('"web01" = $e.principal.hostname', host("web01")),
    # the empty string is UDM's "not set"
    ('$e.principal.hostname = ""', host(None, '= ""', op=NULL)),
    ('$e.principal.hostname != ""', host(None, '!= ""', op=EXISTS)),
    ('not $e.principal.hostname = ""', Not(host(None, '= ""', op=NULL))),
    # string escapes: only \\ \" \n \t \r; backquoted strings are raw
    (
        '$e.target.file.full_path = "C:\\\\Windows\\\\"',
        P("target.file.full_path", EQ, "C:\\Windows\\", "=", True),
    ),
    ('$e.principal.hostname = "say \\"hi\\""', host('say "hi"')),
    (
        "$e.target.file.full_path = `C:\\Windows`",
        P("target.file.full_path", EQ, "C:\\Windows", "=", True),
    ),
    # map access and repeated-field indexes stay in the path as written
    (
        '$e.additional.fields["Logon Type"] = "3"',
        P('additional.fields["Logon Type"]', EQ, "3", "=", True),
    ),
    (
        '$e.security_result[0].severity = "LOW"',
        P("security_result[0].severity", EQ, "LOW", "=", True),
    ),
    # any / all over repeated fields
    ('any $e.principal.ip = "10.1.1.1"', P("principal.ip", EQ, "10.1.1.1", "any =", True)),
    ('all $e.principal.ip != "10.1.1.1"', Not(P("principal.ip", EQ, "10.1.1.1", "all !=", True))),
    ('ANY $e.principal.ip = "10.1.1.1" nocase', P("principal.ip", EQ, "10.1.1.1", "any =", False)),
]


@pytest.mark.parametrize(("events", "expected"), COMPARISONS)
def test_comparisons(events: str, expected: Expr) -> None:
    assert expr(events) == expected


# -- regular expressions and string functions ---------------------------------------

CL = "target.process.command_line"

FUNCTIONS = [
    ("$e.target.process.command_line = /-enc\\s/", P(CL, REGEX, "-enc\\s", "= /re/", True)),
    ("$e.target.process.command_line = /-ENC/ nocase", P(CL, REGEX, "-ENC", "= /re/", False)),
    ("$e.target.process.command_line != /a\\/b/", Not(P(CL, REGEX, "a\\/b", "!= /re/", True))),
    (
        "re.regex($e.target.process.command_line, `\\.exe$`)",
        P(CL, REGEX, "\\.exe$", "re.regex()", True),
    ),
    (
        're.regex($e.target.process.command_line, "\\\\.exe$")',
        P(CL, REGEX, "\\.exe$", "re.regex()", True),
    ),
    (
        "re.regex($e.target.process.command_line, `x`) nocase",
        P(CL, REGEX, "x", "re.regex()", False),
    ),
    ("re.regex($e.target.process.command_line, /x/)", P(CL, REGEX, "x", "re.regex()", True)),
    (
        "not re.regex($e.target.process.command_line, `x`)",
        Not(P(CL, REGEX, "x", "re.regex()", True)),
    ),
    (
        "any re.regex($e.target.process.command_line, `x`)",
        P(CL, REGEX, "x", "any re.regex()", True),
    ),
    (
        're.regex(strings.to_lower($e.target.process.command_line), "x")',
        P(CL, REGEX, "x", "re.regex()", False),
    ),
    (
        'strings.contains($e.target.process.command_line, "-Enc")',
        P(CL, CONTAINS, "-Enc", "strings.contains()", True),
    ),
    (
        'strings.contains(strings.to_lower($e.target.process.command_line), "-enc")',
        P(CL, CONTAINS, "-enc", "strings.contains()", False),
    ),
    (
        'strings.contains(strings.to_upper($e.target.process.command_line), "-ENC")',
        P(CL, CONTAINS, "-ENC", "strings.contains()", False),
    ),
    (
        'strings.starts_with($e.target.process.command_line, "cmd")',
        P(CL, STARTS, "cmd", "strings.starts_with()", True),
    ),
    (
        'strings.ends_with($e.target.process.command_line, ".ps1")',
        P(CL, ENDS, ".ps1", "strings.ends_with()", True),
    ),
    (
        'strings.to_lower($e.target.process.command_line) = "whoami"',
        P(CL, EQ, "whoami", "strings.to_lower() =", False),
    ),
    (
        'strings.to_upper($e.target.process.command_line) != "X"',
        Not(P(CL, EQ, "X", "strings.to_upper() !=", False)),
    ),
    (
        'net.ip_in_range_cidr($e.principal.ip, "10.0.0.0/8")',
        P("principal.ip", CIDR, "10.0.0.0/8", "net.ip_in_range_cidr()", False),
    ),
    (
        'NOT net.ip_in_range_cidr ($e.principal.ip, "10.0.0.0/8")',
        Not(P("principal.ip", CIDR, "10.0.0.0/8", "net.ip_in_range_cidr()", False)),
    ),
    # reference lists and data tables: the value is the list name
    ("$e.principal.ip in %bad_ips", P("principal.ip", LIST, "bad_ips", "in", True)),
    ("$e.principal.hostname IN regex %hosts nocase", host("hosts", "in regex", False, LIST)),
    ("$e.principal.ip in cidr %ranges", P("principal.ip", LIST, "ranges", "in cidr", False)),
    ("not $e.principal.ip in %allow", Not(P("principal.ip", LIST, "allow", "in", True))),
    ("$e.principal.ip in %table.column", P("principal.ip", LIST, "table.column", "in", True)),
    # a transform of one field compared with a literal is a derived predicate
    (
        're.replace($e.target.user.userid, `@.*$`, "") in %admins',
        P('re.replace(target.user.userid, "@.*$", "")', LIST, "admins", "in", True, "derived"),
    ),
    (
        're.capture($e.target.url, "id=(\\\\d+)") = "7"',
        P('re.capture(target.url, "id=(\\\\d+)")', EQ, "7", "=", True, "derived"),
    ),
]


@pytest.mark.parametrize(("events", "expected"), FUNCTIONS)
def test_functions(events: str, expected: Expr) -> None:
    assert expr(events) == expected


# -- what stays opaque, and why ----------------------------------------------------

OPAQUE = [
    (
        'strings.concat($e.a.b, $e.a.c) = "xy"',
        "computed value: strings.concat()",
    ),
    (
        'strings.coalesce($e.a.b, $e.a.c) = "xy"',
        "computed value: strings.coalesce()",
    ),
    ("2592000 > timestamp.current_seconds() - $e.a.b", "computed value: arithmetic"),
    ("$e.a.b - $e.a.c > 5", "computed value: arithmetic"),
    ('hash.fingerprint($e.a.b, "x")', "function: hash.fingerprint()"),
    ('$e.a.b = "1"\n    re.regex($e.a.c, $rx)', "computed value: re.regex() pattern"),
    ('$e.a.b = "1"\n    $unbound = "x"', "no event field: placeholder"),
    ('($e.a.b = $x or $e.a.c = "1")', "cross-event: variable comparison in a condition"),
    ("$e.a.b < /re/", "unsupported syntax: regex value with operator <"),
    ("$e.a.b", "not a condition: value"),
]


@pytest.mark.parametrize(("events", "reason"), OPAQUE)
def test_opaque_reasons(events: str, reason: str) -> None:
    opaque = [lf for lf in _flatten(expr(events)) if isinstance(lf, Opaque)]
    assert [o.why() for o in opaque] == [reason]
    assert opaque[0].text in events  # the rule's own text, for the coverage report


def _flatten(e: Expr | None) -> list[Expr]:
    match e:
        case And(children) | Or(children):
            return [x for c in children for x in _flatten(c)]
        case Not(child):
            return _flatten(child)
    return [] if e is None else [e]


# -- precedence, lines, comments -----------------------------------------------------


def A(v: str) -> Predicate:  # noqa: N802
    return P("a.b", EQ, v, "=", True)


PRECEDENCE = [
    ('$e.a.b = "1" or $e.a.b = "2" and $e.a.b = "3"', Or((A("1"), And((A("2"), A("3")))))),
    ('($e.a.b = "1" or $e.a.b = "2") and $e.a.b = "3"', And((Or((A("1"), A("2"))), A("3")))),
    ('not $e.a.b = "1" and $e.a.b = "2"', And((Not(A("1")), A("2")))),
    ('not ($e.a.b = "1" or $e.a.b = "2")', Not(Or((A("1"), A("2"))))),
    ('$e.a.b = "1" OR $e.a.b = "2" AND NOT $e.a.b = "3"', Or((A("1"), And((A("2"), Not(A("3"))))))),
    # each line is ANDed with the next; an operator carries a line over
    ('$e.a.b = "1" or $e.a.b = "2"\n    $e.a.b = "3"', And((Or((A("1"), A("2"))), A("3")))),
    ('$e.a.b = "1"\n    or $e.a.b = "2"', Or((A("1"), A("2")))),
    ('$e.a.b = "1" or\n    $e.a.b = "2"', Or((A("1"), A("2")))),
    ('$e.a.b = "1" and $e.a.b = "2" and $e.a.b = "3"', And((A("1"), A("2"), A("3")))),
    # comments
    ('$e.a.b = "1" // one\n    /* two\n  lines */ $e.a.b = "2"', And((A("1"), A("2")))),
    ('$e.a.b = "1" or\n    // $e.a.b = "x"\n    $e.a.b = "2"', Or((A("1"), A("2")))),
    ('$e.a.b = "a//b"', A("a//b")),
]


@pytest.mark.parametrize(("events", "expected"), PRECEDENCE)
def test_precedence(events: str, expected: Expr) -> None:
    assert expr(events) == expected


def test_long_chains_are_flat() -> None:
    """Generated rules chain thousands of values (the SecOps backend's hash lists):
    one flat Or, no recursion per term."""
    values = [str(i) for i in range(2000)]
    assert expr(" or ".join(f'$e.a.b = "{v}"' for v in values)) == Or(tuple(map(A, values)))
    pairs = " and ".join(f'($e.a.b = "{v}" or $e.a.b = "x")' for v in values)
    assert expr(pairs) == And(tuple(Or((A(v), A("x"))) for v in values))


# -- event variables, placeholders and joins ---------------------------------------------

USER = "principal.user.userid"


def test_each_event_variable_is_a_stage() -> None:
    r = rule(
        '$a.metadata.event_type = "USER_LOGIN"\n    $b.metadata.event_type = "PROCESS_LAUNCH"',
        "$a and $b",
    )
    assert [(s.name, s.expr) for s in r.stages] == [
        ("$a", P("metadata.event_type", EQ, "USER_LOGIN", "=", True)),
        ("$b", P("metadata.event_type", EQ, "PROCESS_LAUNCH", "=", True)),
    ]


JOINS = [
    # placeholder assignment, either way round: a join key, not a predicate
    (
        "$e.principal.user.userid = $user",
        "$e",
        [USER],
        [{"field": USER, "op": "=", "with": "$user"}],
    ),
    (
        "$user = $e.principal.user.userid",
        "$e",
        [USER],
        [{"field": USER, "op": "=", "with": "$user"}],
    ),
    # in a parenthesised conjunction too (lines and `and` mean the same)
    (
        '($f.a.b = "2" and $e.principal.user.userid = $user)',
        "$e",
        [USER],
        [{"field": USER, "op": "=", "with": "$user"}],
    ),
    # between event variables: recorded on both sides
    (
        "$e.principal.ip = $f.target.ip",
        "$e",
        ["principal.ip"],
        [{"field": "principal.ip", "op": "=", "with": "$f.target.ip"}],
    ),
    (
        "$e.principal.ip = $f.target.ip",
        "$f",
        ["target.ip"],
        [{"field": "target.ip", "op": "=", "with": "$e.principal.ip"}],
    ),
    # ordering between events is a join constraint, not a key
    (
        "$e.metadata.event_timestamp.seconds < $f.metadata.event_timestamp.seconds",
        "$f",
        [],
        [
            {
                "field": "metadata.event_timestamp.seconds",
                "op": ">",
                "with": "$e.metadata.event_timestamp.seconds",
            }
        ],
    ),
    # a computed placeholder keeps its computation as the key
    (
        '$id = re.capture($e.target.url, "id=(.*)")',
        "$e",
        ['re.capture(target.url, "id=(.*)")'],
        [{"field": 're.capture(target.url, "id=(.*)")', "op": "=", "with": "$id"}],
    ),
]


@pytest.mark.parametrize(("events", "name", "keys", "joins"), JOINS)
def test_joins(events: str, name: str, keys: list[str], joins: list[dict[str, str]]) -> None:
    s = stage(f'$e.a.b = "1"\n    $f.a.b = "2"\n    {events}', name, condition="$e and $f")
    assert s.join_keys == keys
    assert s.params.get("joins", []) == joins
    assert s.expr == A("1" if name == "$e" else "2")  # joins never become predicates


PLACEHOLDERS = [
    # a predicate on a placeholder is a predicate on the field it stands for
    (
        "$e.target.process.file.full_path = $path\n    $path in %lolbins",
        P("target.process.file.full_path", LIST, "lolbins", "in", True),
    ),
    (
        'strings.to_lower($e.principal.user.userid) = $u\n    $u = "admin"',
        P(USER, EQ, "admin", "strings.to_lower() =", False),
    ),
    (
        '$e.metadata.event_timestamp.seconds = $ts\n    01 = timestamp.get_day_of_week($ts, "UTC")',
        P(
            'timestamp.get_day_of_week(metadata.event_timestamp.seconds, "UTC")',
            EQ,
            1,
            "=",
            True,
            "derived",
        ),
    ),
    # two fields of one event: a field reference
    ("$e.src.hostname = $e.target.hostname", P("src.hostname", REF, "target.hostname", "=", True)),
    (
        "$e.src.hostname != $e.target.hostname",
        Not(P("src.hostname", REF, "target.hostname", "!=", True)),
    ),
    (
        "$e.a.created < $e.metadata.event_timestamp.seconds",
        P("a.created", REF, "metadata.event_timestamp.seconds", "<", True),
    ),
]


@pytest.mark.parametrize(("events", "expected"), PLACEHOLDERS)
def test_placeholders(events: str, expected: Expr) -> None:
    assert expr(events) == expected


def test_expression_over_several_event_variables_is_opaque() -> None:
    r = rule('$e.a.b = "1" or $f.a.b = "2"', "$e and $f")
    assert r.stages[0].expr == Opaque(
        '$e.a.b = "1" or $f.a.b = "2"', "cross-event", "expression spans several event variables"
    )


# -- match, outcome, condition, options, meta ---------------------------------------------

MATCHES = [
    ("$user over 1h", {"keys": ["$user"], "window": "1h", "window_seconds": 3600}),
    ("$user, $host over 5m", {"keys": ["$user", "$host"], "window": "5m", "window_seconds": 300}),
    ("$u over 2d", {"keys": ["$u"], "window": "2d", "window_seconds": 172800}),
    (
        "$u over 10m after $e",
        {"keys": ["$u"], "window": "10m", "window_seconds": 600, "side": "after", "anchor": "$e"},
    ),
]


@pytest.mark.parametrize(("match", "expected"), MATCHES)
def test_match(match: str, expected: dict[str, Any]) -> None:
    r = rule("$e.principal.user.userid = $u", extra=f"  match:\n    {match}\n")
    assert r.match == expected
    assert r.stages[0].params["match"] == expected  # on the first stage too


CONDITIONS = [
    ("$e", {"event": "$e"}, {}, False),
    ("#e > 5", {"count": "#e", "op": ">", "value": 5}, {"min_count": 6}, False),
    ("#e >= 5", {"count": "#e", "op": ">=", "value": 5}, {"min_count": 5}, False),
    ("$f and !$e", {"and": [{"event": "$f"}, {"absent": "$e"}]}, {}, True),
    (
        "$e and $risk > 50",
        {"and": [{"event": "$e"}, {"var": "$risk", "op": ">", "value": 50}]},
        {},
        False,
    ),
    ("$e or $f", {"or": [{"event": "$e"}, {"event": "$f"}]}, {}, False),
    (
        "($e and #f > 2)",
        {"and": [{"event": "$e"}, {"count": "#f", "op": ">", "value": 2}]},
        {},
        False,
    ),
]


@pytest.mark.parametrize(("condition", "tree", "params", "negated"), CONDITIONS)
def test_condition(condition: str, tree: Any, params: dict[str, int], negated: bool) -> None:
    r = rule('$e.a.b = "1"\n    $f.a.b = "2"', condition)
    assert r.condition == {"text": condition, "expr": tree}
    e = r.stages[0]
    assert {k: e.params[k] for k in ("min_count",) if k in e.params} == params
    assert e.negated is negated


OUTCOMES = [
    ('$risk = max(35 + if($e.a.b = "x", 30))', 'max(35 + if($e.a.b = "x", 30))'),
    ("$ips = array_distinct($e.principal.ip)", "array_distinct($e.principal.ip)"),
    ("$pct = (($new - $old) / $old) * 100", "(($new - $old) / $old) * 100"),
    (
        "$hit = if($e.a.b = /re/ nocase and not $e.a.c in %l, 1, 0)",
        "if($e.a.b = /re/ nocase and not $e.a.c in %l, 1, 0)",
    ),
    ('$tactic = "Execution"', '"Execution"'),
]


@pytest.mark.parametrize(("outcome", "expected"), OUTCOMES)
def test_outcome_is_recorded_not_parsed_into_predicates(outcome: str, expected: str) -> None:
    r = rule('$e.a.b = "1"', extra=f"  outcome:\n    {outcome}\n")
    name = outcome.split(" =", 1)[0]
    assert r.outcome["assignments"] == {name: expected}
    assert r.stages[0].expr == A("1")


META = """rule meta_demo {
  meta:
    author = "Google Cloud Security"  // trailing comment
    reference = "https://a"
    reference = "https://b"
    version = 2
    ratio = 0.5
    enabled = true
    note = `raw \\n`
  events:
    $e.a.b = "1"
  condition:
    $e
  options:
    allow_zero_values = true
    window = 5m
}"""


def test_meta_and_options() -> None:
    (r,) = parse_rules(META)
    assert r.meta == {
        "author": "Google Cloud Security",
        "reference": "https://a",
        "version": 2,
        "ratio": 0.5,
        "enabled": True,
        "note": "raw \\n",
    }
    assert [v for k, v in r.meta_items if k == "reference"] == ["https://a", "https://b"]
    assert r.options == {"allow_zero_values": True, "window": "5m"}


def test_a_file_holds_several_rules_with_their_own_text_and_line() -> None:
    one = 'rule one {\n events:\n  $e.a.b = "1"\n condition:\n  $e\n}'
    two = 'rule two {\n events:\n  $x.a.b = "2"\n condition:\n  $x\n}'
    rules = parse_rules(f"/* header */\n{one}\n\n{two}\n")
    assert [(r.name, r.text, r.line) for r in rules] == [("one", one, 2), ("two", two, 9)]
    assert [s.name for r in rules for s in r.stages] == ["$e", "$x"]


# -- errors ------------------------------------------------------------------------

HEADER = "// Copyright\n/* license\n text */\n"
ERRORS = [
    ('rule t {\n events:\n  $e.a.b = "1"\n}', 4, 1, "unexpected '}'"),
    ('rule t {\n events:\n  $e.a.b = "1\n condition:\n  $e\n}', 3, 12, "unterminated string"),
    ("rule t {\n events:\n  $e.a.b =\n condition:\n  $e\n}", 4, 2, "unexpected 'condition:'"),
    ('rule t {\n events:\n  $e.a.b = "1" @\n condition:\n  $e\n}', 3, 16, "unexpected '@'"),
    ('rule t {\n events:\n  $e.a.b = "1"\n condition:\n  $e\n', 6, 1, "end of file"),
    ('rule t.x {\n events:\n  $e.a.b = "1"\n condition:\n  $e\n}', 1, 7, "unexpected '.x {'"),
]


@pytest.mark.parametrize(("text", "line", "column", "message"), ERRORS)
def test_syntax_errors_have_file_positions(
    text: str, line: int, column: int | None, message: str
) -> None:
    with pytest.raises(QueryError) as info:
        parse_rules(HEADER + text)
    assert (info.value.line, info.value.column) == (line + 3, column)
    assert message in info.value.message


# -- lenient mode: the flaws of generated YARA-L (pySigma's SecOps backend) --------------


def src(
    events: str = '$e.a.b = "1"', meta: str = "", name: str = "t", cond: str = "condition"
) -> str:
    meta = f" meta:\n  {meta}\n" if meta else ""
    return f"rule {name} {{\n{meta} events:\n  {events}\n {cond}:\n  $e\n}}"


LENIENT = [
    # rule names with punctuation
    (src(name="a.b/c_(x)"), "name", "a.b/c_(x)"),
    # meta strings with unescaped quotes, spanning lines
    (src(meta='description = "the "x" tool"\n  author = "me"'), "description", 'the "x" tool'),
    (src(meta='description = "line one\nline two\n"'), "description", "line one\nline two\n"),
    # `conditions:` for `condition:`
    (src(cond="conditions"), "expr", A("1")),
    # regexes with an unescaped "/", and empty ones
    (src("$e.a.b = /cmd /c/ nocase"), "expr", P("a.b", REGEX, "cmd /c", "= /re/", False)),
    (src("$e.a.b != // nocase"), "expr", Not(P("a.b", REGEX, "", "!= /re/", False))),
    # values without any delimiter are kept, opaque
    (
        src("$e.a.b = C:\\\\x\\\\*.bat nocase"),
        "expr",
        Opaque("$e.a.b = C:\\\\x\\\\*.bat nocase", "unsupported syntax", "undelimited value"),
    ),
]


@pytest.mark.parametrize(("text", "what", "expected"), LENIENT)
def test_lenient_mode_reads_generator_flaws_that_strict_mode_rejects(
    text: str, what: str, expected: Any
) -> None:
    with pytest.raises(QueryError):
        parse_rules(text)
    (r,) = parse_rules(text, lenient=True)
    got = {"name": r.name, "expr": r.stages[0].expr}.get(what, r.meta.get(what))
    assert got == expected


def test_import_builds_nothing() -> None:
    """The grammar is loaded on first use, not when detcat is imported."""
    code = "import detcat.languages.yaral as y; print(y._parser.cache_info().currsize)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
