"""EQL -> detcat model, as tables: one query, one canonical reading.

Predicates are written ``P(field, op, value, syntax, case_sensitive)``; ``EQ`` and
friends are the ``Op`` members. A condition is read inside ``process where …``.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from detcat.languages import eql
from detcat.model import And, Expr, Not, Op, Opaque, Or, Predicate, QueryError, opaques, replace

EQ, CONTAINS, STARTS, ENDS = Op.EQ, Op.CONTAINS, Op.STARTS_WITH, Op.ENDS_WITH
WILD, REGEX, CIDR, REF = Op.WILDCARD, Op.REGEX_MATCH, Op.CIDR, Op.FIELD_REF
EXISTS, NULL = Op.EXISTS, Op.IS_NULL


def P(field: str, op: Op, value: object, syntax: str, cs: bool) -> Predicate:
    return Predicate(field, op, value, syntax, cs)  # type: ignore[arg-type]


def condition(text: str) -> Expr | None:
    (stage,) = eql.parse(f"process where {text}")
    return stage.expr


def name_eq(value: str, syntax: str = ":", cs: bool = False) -> Predicate:
    return P("process.name", EQ, value, syntax, cs)


# -- comparison operators --------------------------------------------------------

OPERATORS = [
    ('process.name : "cmd.exe"', name_eq("cmd.exe")),
    ('process.name == "cmd.exe"', name_eq("cmd.exe", "==", True)),
    ('process.name = "cmd.exe"', name_eq("cmd.exe", "==", True)),
    ('process.name != "cmd.exe"', Not(name_eq("cmd.exe", "!=", True))),
    ('process.name like "cmd.exe"', name_eq("cmd.exe", "like", True)),
    ('process.name like~ "cmd.exe"', name_eq("cmd.exe", "like~", False)),
    ('process.name regex "c.d\\\\.exe"', P("process.name", REGEX, "c.d\\.exe", "regex", True)),
    ('process.name regex~ "c.d"', P("process.name", REGEX, "c.d", "regex~", False)),
    # `==` and `in` do not expand wildcards
    ('process.name == "cmd*"', name_eq("cmd*", "==", True)),
    ('process.name in ("a*")', name_eq("a*", "in", True)),
    # numbers, booleans, ordering (a constant on the left is turned around)
    ("process.pid == 4", P("process.pid", EQ, 4, "==", True)),
    ("process.pid == -4", P("process.pid", EQ, -4, "==", True)),
    ("process.ratio == 0.5", P("process.ratio", EQ, 0.5, "==", True)),
    ("process.interactive == true", P("process.interactive", EQ, True, "==", True)),
    ("process.interactive != false", Not(P("process.interactive", EQ, False, "!=", True))),
    ("event.code : 4624", P("event.code", EQ, 4624, ":", False)),
    ("process.pid < 4", P("process.pid", Op.LT, 4, "<", True)),
    ("process.pid <= 4", P("process.pid", Op.LTE, 4, "<=", True)),
    ("process.pid > 4", P("process.pid", Op.GT, 4, ">", True)),
    ("process.pid >= 4", P("process.pid", Op.GTE, 4, ">=", True)),
    ("4 < process.pid", P("process.pid", Op.GT, 4, ">", True)),
    ('"cmd.exe" == process.name', name_eq("cmd.exe", "==", True)),
    # null: == is is_null, != is exists (a presence test, not an exclusion)
    ("?user.id == null", P("user.id", NULL, None, "==", True)),
    ("?user.id != null", P("user.id", EXISTS, None, "!=", True)),
    ("not user.id == null", Not(P("user.id", NULL, None, "==", True))),
]

WILDCARDS = [
    ('process.name : "cmd*"', P("process.name", STARTS, "cmd", ":", False)),
    ('process.name : "*.exe"', P("process.name", ENDS, ".exe", ":", False)),
    ('process.name : "*cmd*"', P("process.name", CONTAINS, "cmd", ":", False)),
    ('process.name : "c*d.exe"', P("process.name", WILD, "c*d.exe", ":", False)),
    ('process.name : "cm?.exe"', P("process.name", WILD, "cm?.exe", ":", False)),
    ('process.name : "*c?d*"', P("process.name", WILD, "*c?d*", ":", False)),
    ('process.name : "*"', P("process.name", EXISTS, None, ":", False)),
    ('process.name like "Cmd*"', P("process.name", STARTS, "Cmd", "like", True)),
    ('process.name like~ "*cmd"', P("process.name", ENDS, "cmd", "like~", False)),
    # the backslash is the string's escape: the "*" after it is a wildcard
    ('file.path : "C:\\\\Users\\\\*"', P("file.path", STARTS, "C:\\Users\\", ":", False)),
    ('file.path : """C:\\Users\\*"""', P("file.path", STARTS, "C:\\Users\\", ":", False)),
    ('file.path : "?:\\\\Users\\\\*"', P("file.path", WILD, "?:\\Users\\*", ":", False)),
]

LISTS = [
    (
        'process.name : ("a.exe", "*b*")',
        Or((name_eq("a.exe"), P("process.name", CONTAINS, "b", ":", False))),
    ),
    (
        'process.name like ("a", "b*")',
        Or((name_eq("a", "like", True), P("process.name", STARTS, "b", "like", True))),
    ),
    (
        'process.name regex~ ("a.", "b+")',
        Or(
            (
                P("process.name", REGEX, "a.", "regex~", False),
                P("process.name", REGEX, "b+", "regex~", False),
            )
        ),
    ),
    ('process.name in ("a", "b")', Or((name_eq("a", "in", True), name_eq("b", "in", True)))),
    ('process.name in~ ("a", "b",)', Or((name_eq("a", "in~"), name_eq("b", "in~")))),
    (
        "event.code in (4624, 4625)",
        Or((P("event.code", EQ, 4624, "in", True), P("event.code", EQ, 4625, "in", True))),
    ),
    (
        'process.name not in ("a", "b")',
        Not(Or((name_eq("a", "not in", True), name_eq("b", "not in", True)))),
    ),
    ('process.name not in~ ("a")', Not(name_eq("a", "not in~"))),
    (
        'not process.name in ("a", "b")',
        Not(Or((name_eq("a", "in", True), name_eq("b", "in", True)))),
    ),
    (
        'process.name != ("a", "b")',
        Not(Or((name_eq("a", "!=", True), name_eq("b", "!=", True)))),
    ),
    # a list that is not all constants goes through the general grammar
    (
        'process.name in ("a", process.title)',
        Or((name_eq("a", "in", True), P("process.name", REF, "process.title", "in", True))),
    ),
    ('process.name : ("a")', name_eq("a")),
]

BOOLEAN = [
    (
        'a : "1" or b : "2" and c : "3"',
        Or(
            (
                P("a", EQ, "1", ":", False),
                And((P("b", EQ, "2", ":", False), P("c", EQ, "3", ":", False))),
            )
        ),
    ),
    (
        '(a : "1" or b : "2") and c : "3"',
        And(
            (
                Or((P("a", EQ, "1", ":", False), P("b", EQ, "2", ":", False))),
                P("c", EQ, "3", ":", False),
            )
        ),
    ),
    (
        'not a : "1" and b : "2"',
        And((Not(P("a", EQ, "1", ":", False)), P("b", EQ, "2", ":", False))),
    ),
    (
        'not (a : "1" or b : "2")',
        Not(Or((P("a", EQ, "1", ":", False), P("b", EQ, "2", ":", False)))),
    ),
    ('not not a : "1"', Not(Not(P("a", EQ, "1", ":", False)))),
    (
        'a : "1" and b : "2" and c : "3"',
        And(
            (P("a", EQ, "1", ":", False), P("b", EQ, "2", ":", False), P("c", EQ, "3", ":", False))
        ),
    ),
    ("true", And(())),
    ('a : "1" and true', P("a", EQ, "1", ":", False)),
    ("false", Or(())),
]

FIELDS_AND_STRINGS = [
    ('?process.name : "a"', name_eq("a")),
    ('`my field`.name : "a"', P("my field.name", EQ, "a", ":", False)),
    ('`my``field` : "a"', P("my`field", EQ, "a", ":", False)),
    # an array item (legacy EQL) is a value computed from the field: derived
    ('process.args[0] : "a"', replace(P("process.args[0]", EQ, "a", ":", False), kind="derived")),
    ('name : "a"', P("name", EQ, "a", ":", False)),
    ('event.category : "a"', P("event.category", EQ, "a", ":", False)),
    ('a : "q\\"uote\\\\back\\ttab\\u{41}"', P("a", EQ, 'q"uote\\back\ttabA', ":", False)),
    ('a : """raw \\ "quoted" """', P("a", EQ, 'raw \\ "quoted" ', ":", False)),
    ('a : """ends with a quote""""', P("a", EQ, 'ends with a quote"', ":", False)),
    ('a : ?"legacy\\raw"', P("a", EQ, "legacy\\raw", ":", False)),
    ("a : 'single'", P("a", EQ, "single", ":", False)),
    ('a : "unknown \\d escape"', P("a", EQ, "unknown \\d escape", ":", False)),
    ('a : "\\u{110000}"', P("a", EQ, "\\u{110000}", ":", False)),
]

COMMENTS = [
    ('a : "1" // trailing comment', P("a", EQ, "1", ":", False)),
    ('a : /* inline */ "1"', P("a", EQ, "1", ":", False)),
    ('a == "http://x/*y*/"', P("a", EQ, "http://x/*y*/", "==", True)),
    (
        'a : ("1", // first\n "2" /* second */)',
        Or((P("a", EQ, "1", ":", False), P("a", EQ, "2", ":", False))),
    ),
    (
        'a : "1" /* a */ and /* b */ b : "2"',
        And((P("a", EQ, "1", ":", False), P("b", EQ, "2", ":", False))),
    ),
]

FUNCTIONS = [
    ('stringContains(a, "x")', P("a", CONTAINS, "x", "stringContains()", True)),
    ('stringContains~(a, "x")', P("a", CONTAINS, "x", "stringContains~()", False)),
    ('startsWith(a, "x*")', P("a", STARTS, "x*", "startsWith()", True)),
    ('startswith~(a, "x")', P("a", STARTS, "x", "startsWith~()", False)),
    ('endsWith(a, "x")', P("a", ENDS, "x", "endsWith()", True)),
    (
        'wildcard(a, "x*", "*y")',
        Or((P("a", STARTS, "x", "wildcard()", False), P("a", ENDS, "y", "wildcard()", False))),
    ),
    (
        'cidrMatch(ip, "10.0.0.0/8", "::1")',
        Or(
            (
                P("ip", CIDR, "10.0.0.0/8", "cidrMatch()", False),
                P("ip", CIDR, "::1", "cidrMatch()", False),
            )
        ),
    ),
    ('cidrmatch(ip, "10.0.0.0/8")', P("ip", CIDR, "10.0.0.0/8", "cidrMatch()", False)),
    ('match(a, "x.*")', P("a", REGEX, "x.*", "match()", False)),
    ('matchLite(a, "x.*")', P("a", REGEX, "x.*", "matchLite()", False)),
    ('arrayContains(a, "x")', P("a", EQ, "x", "arrayContains()", False)),
    ('not startsWith(a, "x")', Not(P("a", STARTS, "x", "startsWith()", True))),
]

FIELD_COMPARISONS = [
    ("a == b", P("a", REF, "b", "==", True)),
    ("a != b", Not(P("a", REF, "b", "!=", True))),
    ("a < b", P("a", REF, "b", "<", True)),
    ("b.c == length(a)", Opaque("b.c == length(a)", "computed value", "length()")),
    ("a : b", P("a", REF, "b", ":", False)),
    (
        "startsWith(dll.name, process.name)",
        P("dll.name", REF, "process.name", "startsWith()", True),
    ),
]

# A function of one field compared with a constant is a predicate on that
# expression, marked derived: visible and countable, not Opaque.
DERIVED = [
    ("length(a) > 3", replace(P("length(a)", Op.GT, 3, ">", True), kind="derived")),
    ("3 < length(a)", replace(P("length(a)", Op.GT, 3, ">", True), kind="derived")),
    (
        'substring(a, 0, 2) != "x"',
        Not(replace(P("substring(a, 0, 2)", EQ, "x", "!=", True), kind="derived")),
    ),
]

OPAQUE = [
    ("a + 1 == 2", Opaque("a + 1 == 2", "computed value", "arithmetic expression")),
    ("-a < 2", Opaque("-a < 2", "computed value", "arithmetic expression")),
    (
        'startsWith(substring(a, 0, 2), "x")',
        Opaque('startsWith(substring(a, 0, 2), "x")', "computed value", "startsWith()"),
    ),
    (
        "endswith(a, string(b))",
        Opaque("endswith(a, string(b))", "computed value", "endsWith()"),
    ),
    (
        'between(a, "x", "y")',
        Opaque('between(a, "x", "y")', "function", "between()"),
    ),
    (
        "descendant of [process where true]",
        Opaque("descendant of [process where true]", "cross-event", "descendant of subquery"),
    ),
    (
        "child of [file where true]",
        Opaque("child of [file where true]", "cross-event", "child of subquery"),
    ),
    ("a", Opaque("a", "not a condition", "bare field")),
    ('"x" == "y"', Opaque('"x" == "y"', "constant comparison")),
    ("a > null", Opaque("a > null", "ordering with null")),
    ("null <= a", Opaque("null <= a", "ordering with null")),
    (
        'a == "1" and length(b) == 0',
        And(
            (
                P("a", EQ, "1", "==", True),
                replace(P("length(b)", EQ, 0, "==", True), kind="derived"),
            )
        ),
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    OPERATORS
    + WILDCARDS
    + LISTS
    + BOOLEAN
    + FIELDS_AND_STRINGS
    + COMMENTS
    + FUNCTIONS
    + FIELD_COMPARISONS
    + DERIVED
    + OPAQUE,
)
def test_condition(text: str, expected: Expr) -> None:
    assert condition(text) == expected


# -- query structure ------------------------------------------------------------


def shape(text: str) -> list[tuple[str, bool, list[str], dict[str, object]]]:
    return [(s.name, s.negated, s.join_keys, s.params) for s in eql.parse(text)]


STRUCTURE = [
    ('file where a : "1"', [("main", False, [], {"category": "file"})]),
    ("any where true", [("main", False, [], {"category": "any"})]),
    ('"my-category" where true', [("main", False, [], {"category": "my-category"})]),
    (
        "sequence by host.id with maxspan=5m [process where true] by process.pid "
        "[network where true] by process.pid",
        [
            (
                "sequence[1]",
                False,
                ["host.id", "process.pid"],
                {"category": "process", "maxspan": "5m"},
            ),
            (
                "sequence[2]",
                False,
                ["host.id", "process.pid"],
                {"category": "network", "maxspan": "5m"},
            ),
        ],
    ),
    (
        "sequence with maxspan=30s by host.id, user.name [process where true] [file where true]",
        [
            (
                "sequence[1]",
                False,
                ["host.id", "user.name"],
                {"category": "process", "maxspan": "30s"},
            ),
            (
                "sequence[2]",
                False,
                ["host.id", "user.name"],
                {"category": "file", "maxspan": "30s"},
            ),
        ],
    ),
    (
        "sequence [process where true] [library where true] with runs=3",
        [
            ("sequence[1]", False, [], {"category": "process"}),
            ("sequence[2]", False, [], {"category": "library", "runs": 3}),
        ],
    ),
    (
        "sequence by host.id with maxspan=1h [authentication where true] "
        "![authentication where true]",
        [
            ("sequence[1]", False, ["host.id"], {"category": "authentication", "maxspan": "1h"}),
            ("sequence[2]", True, ["host.id"], {"category": "authentication", "maxspan": "1h"}),
        ],
    ),
    (
        "sequence by process.pid [process where true] [file where true] "
        "until [process where true] by process.parent.pid",
        [
            ("sequence[1]", False, ["process.pid"], {"category": "process"}),
            ("sequence[2]", False, ["process.pid"], {"category": "file"}),
            ("until", True, ["process.pid", "process.parent.pid"], {"category": "process"}),
        ],
    ),
    (
        "sample by host.id [process where true] by process.pid [network where true]",
        [
            ("sample[1]", False, ["host.id", "process.pid"], {"category": "process"}),
            ("sample[2]", False, ["host.id"], {"category": "network"}),
        ],
    ),
    (  # legacy: the subqueries' events in any order
        "join by user.name [process where true] [file where true] until [file where true]",
        [
            ("join[1]", False, ["user.name"], {"category": "process"}),
            ("join[2]", False, ["user.name"], {"category": "file"}),
            ("until", True, ["user.name"], {"category": "file"}),
        ],
    ),
    (
        "sequence by ?process.entity_id, `odd-key` [process where true] [file where true]",
        [
            ("sequence[1]", False, ["process.entity_id", "odd-key"], {"category": "process"}),
            ("sequence[2]", False, ["process.entity_id", "odd-key"], {"category": "file"}),
        ],
    ),
    (
        "process where true | head 5 | tail 2",
        [("main", False, [], {"category": "process", "pipes": ["head 5", "tail 2"]})],
    ),
]


@pytest.mark.parametrize(("text", "expected"), STRUCTURE)
def test_structure(
    text: str, expected: list[tuple[str, bool, list[str], dict[str, object]]]
) -> None:
    assert shape(text) == expected


def test_subquery_conditions_are_their_own() -> None:
    first, second = eql.parse('sequence [process where a : "1"] [file where not b : "2"]')
    assert first.expr == P("a", EQ, "1", ":", False)
    assert second.expr == Not(P("b", EQ, "2", ":", False))


# -- errors ------------------------------------------------------------------------

ERRORS = [
    ("process where", 1, 14, "unexpected end of query"),
    ('process where a == "1" and', 1, 27, "unexpected end of query"),
    ("process where (a == 1", 1, 22, "unexpected end of query"),
    ("process where\n  a ==\n  and b", 3, 3, "unexpected 'and'"),
    ('process where a : "open', 1, 19, "unexpected character '\"'"),
    ("process where a == 1 == 2", 1, 22, "unexpected '=='"),
    ("sequence [process where true", 1, 29, "unexpected end of query"),
    ("where a == 1", 1, 1, "unexpected 'where'"),
    # an unclosed comment is a division followed by a stray "*"
    ('process where a : "1" /* open comment', 1, 24, "unexpected '*'"),
]


@pytest.mark.parametrize(("text", "line", "column", "message"), ERRORS)
def test_syntax_error(text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(QueryError) as info:
        eql.parse(text)
    assert (info.value.line, info.value.column) == (line, column)
    assert info.value.message.startswith(message)


def test_import_does_no_work() -> None:
    code = "import detcat.languages.eql as e; print(e._parser.cache_info().currsize)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


# -- the real corpus ------------------------------------------------------------


def elastic_eql_queries(corpora: Path) -> list[tuple[str, str]]:
    root = corpora / "elastic"
    found = []
    for folder in ("rules", "rules_building_block"):
        for path in sorted((root / folder).rglob("*.toml")):
            if "_deprecated" in path.relative_to(root).parts:
                continue
            rule = tomllib.loads(path.read_text(encoding="utf-8")).get("rule", {})
            if rule.get("language") == "eql":
                found.append((str(path.relative_to(root)), rule["query"]))
    return found


def test_corpus_coverage(corpora: Path) -> None:
    queries = elastic_eql_queries(corpora)
    failures, reasons, opaque_rules, predicates = [], Counter[str](), 0, 0
    for path, query in queries:
        try:
            stages = eql.parse(query)
        except QueryError as exc:
            failures.append(f"{path}:{exc.line}:{exc.column}: {exc.message}")
            continue
        found = [o for s in stages for o in opaques(s.expr)]
        opaque_rules += bool(found)
        reasons.update(o.reason for o in found)
        predicates += sum(1 for s in stages for _ in _predicates(s.expr))
    fully = len(queries) - len(failures) - opaque_rules
    print(
        f"\nEQL: {len(queries)} rules, {len(failures)} syntax errors, {fully} fully parsed "
        f"({fully / len(queries):.1%}), {predicates} predicates"
    )
    for reason, count in reasons.most_common():
        print(f"  {count:4} {reason}")
    assert len(queries) == 1024
    assert not failures, "\n".join(failures)
    assert fully / len(queries) >= 0.98
    # every opaque reason is categorical: a short family, never the query text itself
    assert all(len(r) < 60 for r in reasons)


def _predicates(expr: Expr | None) -> list[Predicate]:
    from detcat.model import predicates

    return predicates(expr)


def test_damaged_queries_raise_query_errors_only(corpora: Path) -> None:
    """Real queries cut short or with a character dropped: each one either still
    parses or raises a QueryError with a position, never anything else."""
    rejected = 0
    for _, query in elastic_eql_queries(corpora)[:60]:
        for cut in range(1, len(query), max(1, len(query) // 12)):
            for damaged in (query[:cut], query[:cut] + query[cut + 1 :]):
                try:
                    eql.parse(damaged)
                except QueryError as exc:
                    rejected += 1
                    assert exc.line is not None and exc.line >= 1
                    assert exc.column is not None and exc.column >= 1
    print(f"\n{rejected} damaged queries rejected with a position")
    assert rejected > 0


def test_corpus_reads_the_same_on_both_lark_engines(
    corpora: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parser runs on lark-cython when installed: lark's own engine must give
    exactly the same stages for every corpus query."""
    pytest.importorskip("lark_cython", reason="lark-cython not installed: one engine only")
    queries = [q for _, q in elastic_eql_queries(corpora)]
    fast = [eql.parse(q) for q in queries]
    from detcat.languages import lalr

    monkeypatch.setattr(lalr, "_PLUGINS", {})
    eql._parser.cache_clear()
    try:
        slow = [eql.parse(q) for q in queries]
    finally:
        eql._parser.cache_clear()
    assert slow == fast
