"""Every function and operator of every language: evaluated (with tests) or unknown.

The walk takes each language's grammar (the terminals of its lark parser, every
one classified below, so a new operator fails this test until it is placed) and
its functions (the names its parser and the evaluator know, plus the language
reference's usual ones), writes a one-condition query using each, and runs it on
one event through ``detcat parse``'s path (parser, normalization) and the
matcher. The answer must be unknown (``None``), unless the construct is in
``EVALUATED`` — and what is evaluated has semantics tests:

- an SPL ``where`` condition on a computed value, by its program, whose every
  function has a row in ``tests/test_match_spl.py::VALUES`` (checked there);

- a plain predicate's operator (the model's ``Op``) in
  ``tests/test_parse_match.py::SEMANTICS`` (checked here: every ``Op`` is there);
- an EQL function in ``tests/test_match_eql.py::FUNCTIONS`` (checked here).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from detcat.languages import eql_functions as eql_parser_functions
from detcat.match import RulePlan
from detcat.match import eql as eql_match
from detcat.match import eql_functions as eql_evaluated
from detcat.match.events import canonical_event
from detcat.model import Op, QueryError
from detcat.parse import parse_rules

# One event with the same facts under ECS, Splunk CIM and UDM names.
EVENT = canonical_event("e", {
    "event": {"category": "process"},
    "process": {"name": "cmd.exe", "pid": 42, "command_line": "cmd.exe /c whoami",
                "args": ["cmd.exe", "/c", "whoami"]},
    "source": {"ip": "10.1.2.3"}, "user": {"name": "Bob"},
    "process_name": "cmd.exe", "process_id": 42, "src_ip": "10.1.2.3", "user_name": "Bob",
    "metadata": {"event_type": "PROCESS_LAUNCH"},
    "target": {"process": {"file": {"full_path": "C:\\Windows\\cmd.exe"}, "pid": "42"}},
    "principal": {"ip": "10.1.2.3", "user": {"userid": "Bob"}},
})  # fmt: skip


def outcome(language: str, text: str) -> bool | None:
    """The first event stage of the query on EVENT; None when unknown, also when the
    query cannot be read (its rule is then Opaque: unknown everywhere)."""
    try:
        rules = parse_rules(language, text)
    except QueryError:
        return None
    plan = RulePlan.from_rule(rules[0])
    stages = [s for s in plan.stages if s.filters_events]
    return stages[0].test()(EVENT) if stages else None  # type: ignore[no-any-return]


# -- templates: a condition in each language's query shape -------------------------------

QUERY = {
    "eql": "any where {}",
    "kql": "{}",
    "esql": "FROM logs-* | WHERE {}",
    "spl": "* | where {}",
    "yaral": "rule r {{ events: {} condition: $e }}",
}

# -- operators: every terminal of each grammar, a construct or structure -------------------
# terminal -> conditions using it (none: structure, literals, names, punctuation)

EQL_TERMINALS: dict[str, list[str]] = {
    "EQUALS": ['process.name == "cmd.exe"', 'process.name = "cmd.exe"'],
    "COMP_OP": [
        'process.name != "x"',
        "process.pid <= 42",
        "process.pid >= 42",
        "process.pid < 43",
        "process.pid > 41",
    ],
    "COLON": ['process.name : "CMD.exe"'],
    "LIKE": ['process.name like "cmd*"'],
    "LIKE_I": ['process.name like~ "CMD*"'],
    "REGEX": ['process.name regex "cmd.*"'],
    "REGEX_I": ['process.name regex~ "CMD.*"'],
    "IN": ['process.name in ("cmd.exe", "x")'],
    "IN_I": ['process.name in~ ("CMD.exe", "x")'],
    "NOT": ['not process.name == "x"', 'process.name not in ("x")'],
    "AND": ['process.pid == 42 and process.name == "cmd.exe"'],
    "OR": ['process.pid == 1 or process.name == "cmd.exe"'],
    "SIGN": ["process.pid + 1 == 43", "process.pid - 1 == 41"],
    "MUL_OP": ["process.pid * 2 == 84", "process.pid / 2 == 21", "process.pid % 5 == 2"],
    "DESCENDANT": ['descendant of [process where process.name == "x"]'],
    "CHILD": ['child of [process where process.name == "x"]'],
    "EVENT": ['event of [process where process.name == "x"]'],
    "INSENSITIVE_NAME": ['startsWith~(process.name, "CMD")'],
    "NULL": ["process.name != null"],
    "TRUE": ["true"],
    "FALSE": ["not false"],
    "LITERALS": ['process.name in ("cmd.exe", "x")'],
}
EQL_STRUCTURE = {"BY", "COMMA", "FIELD", "FORK", "GAP", "JOIN", "LPAR", "LSQB", "MAXSPAN",
                 "MISSING", "NAME", "NUMBER", "OF", "PIPE", "RPAR", "RSQB", "RUNS", "SAMPLE",
                 "SEQUENCE", "STRING", "UNTIL", "WHERE", "WITH"}  # fmt: skip

KQL_TERMINALS: dict[str, list[str]] = {
    "FIELD": [
        "process.name:cmd.exe",
        "process.name:cmd*",  # a keyword field: KQL compares its case (Kibana)
        'process.name:"cmd.exe"',
        "process.name:*",
    ],
    "RANGE_OP": ["process.pid <= 42", "process.pid >= 42", "process.pid < 43", "process.pid > 41"],
    "VALUE_LIST": ["process.name:(cmd.exe or x)"],
    "_NOT": ["not process.name:x"],
    "_AND": ["process.pid:42 and process.name:cmd.exe"],
    "_OR": ["process.pid:1 or process.name:cmd.exe"],
    "UNQUOTED": ["whoami"],  # free text: a keyword
    "QUOTED": ['"cmd.exe /c"'],
    "LBRACE": ["process { name:cmd.exe and pid:42 }"],
}
KQL_STRUCTURE = {"LPAR", "RPAR", "RBRACE", "__IGNORE_0"}

ESQL_TERMINALS: dict[str, list[str]] = {
    "COMP_OP": [
        'process.name == "cmd.exe"',
        'process.name != "x"',
        "process.pid <= 42",
        "process.pid >= 42",
        "process.pid < 43",
        "process.pid > 41",
        'process.name =~ "CMD.exe"',
    ],
    "_LIKE": ['process.name LIKE "cmd*"'],
    "_RLIKE": ['process.name RLIKE "cmd.*"'],
    "_IN": ['process.name IN ("cmd.exe", "x")'],
    "_IS": ["process.name IS NOT NULL"],
    "NOT": ['NOT process.name == "x"'],
    "_AND": ['process.pid == 42 AND process.name == "cmd.exe"'],
    "_OR": ['process.pid == 1 OR process.name == "cmd.exe"'],
    "ADD_OP": ["process.pid + 1 == 43"],
    "MUL_OP": ["process.pid * 2 == 84"],
    "CONST_LIST": ['process.name IN ("cmd.exe", "x")'],
    "TRUE": ["true"],
    "NULL": ["process.name IS NOT NULL"],
    "COLON": ['process.name : "cmd.exe"'],
}
ESQL_STRUCTURE = {"COMMA", "EQUAL", "FALSE", "IDENT", "LBRACE", "LPAR", "LSQB", "NAME_PATTERN",
                  "NUMBER", "PARAM", "QNAME", "RBRACE", "RPAR", "RSQB", "SOURCE", "STAR",
                  "STRING", "TIME_UNIT", "_AS", "_METADATA", "__ANON_0", "__IGNORE_0",
                  "__IGNORE_1", "__IGNORE_2"}  # fmt: skip

SPL_TERMINALS: dict[str, list[str]] = {
    "ECMP": [
        'process_name=="cmd.exe"',
        'process_name!="x"',
        "process_id<=42",
        "process_id>=42",
        "process_id<43",
        "process_id>41",
    ],
    "E_LIKE": ['process_name LIKE "cmd%"'],
    "E_IN": ['process_name IN ("cmd.exe", "x")'],
    "_E_NOT": ['NOT process_name=="x"'],
    "_E_AND": ['process_id==42 AND process_name=="cmd.exe"'],
    "_E_OR": ['process_id==1 OR process_name=="cmd.exe"'],
    "_E_XOR": ['process_id==1 XOR process_name=="cmd.exe"'],
    "E_ADD": ["process_id+1==43", "process_id-1==41", 'process_name."x"=="cmd.exex"'],
    "E_MUL": ["process_id*2==84", "process_id/2==21", "process_id%5==2"],
    "MINUS": ["-process_id==-42"],
}
# The search command's own terminals are walked through `search` (SPL_SEARCH).
SPL_STRUCTURE = {"AND", "CMP", "COMMA", "EFIELD", "EQ", "IN", "LPAR", "LVALUE", "NOT",
                 "NUMBER", "OR", "QFIELD", "RPAR", "STRING", "SUBSEARCH", "TARGET", "TERMFN",
                 "VALUE", "WORD", "WS"}  # fmt: skip
SPL_SEARCH = ['process_name="cmd.exe"', 'process_name!="x"', "process_id<=42",
              'process_name IN ("cmd.exe", "x")', 'NOT process_name="x"',
              'process_name="cmd*"', 'TERM(whoami)', 'CASE(cmd.exe)', "whoami"]  # fmt: skip

YARAL_TERMINALS: dict[str, list[str]] = {
    "EQUAL": ['$e.target.process.file.full_path = "C:\\\\Windows\\\\cmd.exe"'],
    "CMP": ['$e.target.process.file.full_path != "x"', '$e.target.process.pid <= "42"'],
    "NOCASE": ['$e.target.process.file.full_path = "c:\\\\windows\\\\CMD.exe" nocase'],
    "REGEX": ["$e.target.process.file.full_path = /cmd\\.exe$/"],
    "_NOT": ['not $e.target.process.file.full_path = "x"'],
    "_AND": ['($e.principal.ip = "10.1.2.3" and $e.principal.user.userid = "Bob")'],
    "_OR": ['($e.principal.ip = "x" or $e.principal.user.userid = "Bob")'],
    "_IN": ["$e.principal.user.userid in %admins", "$e.principal.ip in cidr %nets"],
    "LIST": ["$e.principal.user.userid in %admins"],
    "LIST_MODE": ["$e.principal.ip in cidr %nets"],
    "QUANT": ['any $e.principal.ip = "10.1.2.3"'],
    "PLUS": ["$e.target.process.pid + 1 > 2"],
    "MINUS": ["$e.target.process.pid - 1 > 2"],
    "MUL_OP": ["$e.target.process.pid * 2 > 2"],
    "FUNC": ["re.regex($e.target.process.file.full_path, `cmd`)"],
}
YARAL_STRUCTURE = {"BANG", "BARE_VALUE", "BLOCK_COMMENT", "BSTRING", "COLON", "COMMA", "COMMENT",
                   "COUNT", "DURATION", "EVERY", "FALSE", "LBRACE", "LPAR", "META_KEY",
                   "META_STRING", "NUMBER", "OPTION_KEY", "RBRACE", "REF", "RPAR", "RULE_KW",
                   "RULE_NAME", "SIGNED_NUMBER", "STRING", "TRUE", "WINDOW_SIDE", "_CONDITION",
                   "_EVENTS", "_MATCH", "_META", "_OPTIONS", "_OUTCOME", "_OVER",
                   "__IGNORE_2"}  # fmt: skip


def _terminals(language: str) -> set[str]:
    if language == "eql":
        from detcat.languages import eql

        return {t.name for t in eql._parser().terminals}
    if language == "esql":
        from detcat.languages import esql_syntax

        return {t.name for t in esql_syntax._parser().terminals}
    if language == "spl":
        from detcat.languages.spl import expr

        return {t.name for t in expr._parser().terminals}
    if language == "yaral":
        from detcat.languages import yaral

        return {t.name for t in yaral._parser(False).terminals}
    from detcat.languages import kql

    return {t.name for t in kql._parser().terminals}


GRAMMARS = {
    "eql": (EQL_TERMINALS, EQL_STRUCTURE),
    "kql": (KQL_TERMINALS, KQL_STRUCTURE),
    "esql": (ESQL_TERMINALS, ESQL_STRUCTURE),
    "spl": (SPL_TERMINALS, SPL_STRUCTURE),
    "yaral": (YARAL_TERMINALS, YARAL_STRUCTURE),
}


@pytest.mark.parametrize("language", GRAMMARS)
def test_every_terminal_is_walked(language: str) -> None:
    walked, structure = GRAMMARS[language]
    assert set(walked) | structure == _terminals(language)


# -- functions ---------------------------------------------------------------------------

ESQL_FUNCTIONS = """
abs acos asin atan ceil cos exp floor log log10 pow round signum sin sqrt tan bit_length
byte_length concat ends_with from_base64 left length locate ltrim md5 repeat replace
reverse right rtrim sha1 sha256 hash space split starts_with substring to_base64
to_lower to_upper trim mv_append mv_avg mv_concat mv_count mv_dedupe mv_first mv_last
mv_max mv_median mv_min mv_slice mv_sort mv_sum mv_zip case coalesce greatest least
cidr_match ip_prefix date_diff date_extract date_format date_parse date_trunc now
to_boolean to_datetime to_double to_integer to_ip to_long to_string to_version match
match_phrase qstr kql""".split()  # noqa: SIM905

SPL_FUNCTIONS = """
len lower upper substr replace match like cidrmatch isnull isnotnull coalesce if case
tonumber tostring mvcount mvindex mvfind mvjoin split urldecode trim ltrim rtrim round
abs md5 sha1 sha256 strftime strptime now searchmatch in printf""".split()  # noqa: SIM905

YARAL_FUNCTIONS = """
re.regex re.capture re.replace strings.to_lower strings.to_upper strings.concat
strings.contains strings.starts_with strings.ends_with strings.base64_decode
strings.coalesce strings.length strings.trim strings.ltrim strings.rtrim strings.reverse
strings.url_decode strings.extract_domain strings.extract_hostname net.ip_in_range_cidr
math.abs cast.as_int cast.as_float cast.as_string timestamp.get_hour
timestamp.get_minute timestamp.get_day_of_week timestamp.get_date timestamp.get_week
timestamp.get_timestamp timestamp.current_seconds arrays.length arrays.contains""".split()  # noqa: SIM905

EQL_FUNCTIONS = sorted(
    {eql_parser_functions.spelling(n) for n in eql_evaluated.FUNCTIONS}
    | set(eql_parser_functions._SPELLINGS)
    | {"safe", "notAFunction"}
)


def _function_conditions(language: str, name: str) -> list[str]:
    if language == "eql":
        return [f'{name}(process.name) == "cmd.exe"', f'{name}(process.name, "cmd")',
                f"{name}(process.pid, 2) == 44"]  # fmt: skip
    if language == "esql":
        return [f'{name}(process.name) == "cmd.exe"', f'{name}(process.name, "cmd")']
    if language == "spl":
        return [f'{name}(process_name)=="cmd.exe"', f'{name}(process_name, "cmd")']
    return [f'{name}($e.target.process.file.full_path) = "cmd.exe"',
            f'{name}($e.target.process.file.full_path, "cmd")']  # fmt: skip


FUNCTIONS = {"eql": EQL_FUNCTIONS, "esql": ESQL_FUNCTIONS, "spl": SPL_FUNCTIONS,
             "yaral": YARAL_FUNCTIONS}  # fmt: skip


def _walk() -> list[tuple[str, str, str]]:
    """(language, what is walked, query) for every operator and function. The
    operators' conditions all hold on EVENT; the functions' need not."""
    out = []
    for language, (walked, _) in GRAMMARS.items():
        for terminal, conditions in walked.items():
            out += [(language, terminal, QUERY[language].format(c)) for c in conditions]
    out += [("spl", "search", c) for c in SPL_SEARCH]
    for language, names in FUNCTIONS.items():
        for name in names:
            for c in _function_conditions(language, name):
                out.append((language, f"{name}()", QUERY[language].format(c)))
    return out


WALK = _walk()


def _evaluated(language: str, query: str) -> bool:
    """Plain predicates (any ``Op``), EQL's computed values and SPL's ``where``
    conditions on computed values (a program of functions each with a row in
    ``tests/test_match_spl.py::VALUES``): what the matcher evaluates, each with
    semantics tests (see the module docstring)."""
    from detcat.model import Opaque, leaves

    try:
        rules = parse_rules(language, query)
    except QueryError:
        return False
    for stage in rules[0].stages:
        conditions = stage.params.get("conditions") or {}
        for leaf in leaves(stage.expr):
            node = leaf.node
            if isinstance(node, Opaque) and language == "spl" and conditions.get(node.text):
                continue
            if isinstance(node, Opaque) and language != "eql":
                return False
            if not isinstance(node, Opaque) and node.kind == "derived" and language != "eql":
                return False
    return True


@pytest.mark.parametrize(("language", "construct", "query"), WALK,
                         ids=[f"{w[0]}:{w[1]}:{i}" for i, w in enumerate(WALK)])  # fmt: skip
def test_evaluated_or_unknown(language: str, construct: str, query: str) -> None:
    result = outcome(language, query)
    if not construct.endswith("()"):
        assert result is not False, f"{query!r} holds on the event: a false no"
    if result is not None:
        assert _evaluated(language, query), f"{query!r} answered {result} without evaluating"
        if language == "eql" and construct.endswith("()"):
            assert construct[:-2].lower() in _TESTED_EQL, f"{construct} has no semantics test"


def _tested_eql_functions() -> set[str]:
    from test_match_eql import FUNCTIONS, LEGACY

    cases = FUNCTIONS + LEGACY
    names = {m.group(1).lower() for c, _ in cases for m in re.finditer(r"(\w+)~?\(", c)}
    return names | {"wildcard", "match", "matchlite", "arraycontains"}  # parser predicates


_TESTED_EQL = _tested_eql_functions()


def test_every_evaluated_eql_function_has_semantics_tests() -> None:
    assert set(eql_evaluated.FUNCTIONS) | set(eql_match._LEGACY) <= _TESTED_EQL


def test_every_operator_of_the_model_has_semantics_tests() -> None:
    from test_parse_match import SEMANTICS

    def ops(e: Any) -> set[Op]:
        from detcat.model import predicates

        return {p.op for p in predicates(e)}

    tested = set().union(*(ops(e) for e, _, _ in SEMANTICS))
    assert tested == set(Op)
