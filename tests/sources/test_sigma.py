"""Sigma, read through pySigma: each modifier and condition form as a table of
(detection YAML, condition) -> the canonical predicate tree."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from sigma.modifiers import modifier_mapping

from detcat.model import And, Not, Op, Opaque, Or, Pred, Problem, Rule, StageRole, exclusions
from detcat.sources import sigma


def sigma_rule(detection: str, condition: str = "selection", extra: str = "") -> str:
    body = textwrap.indent(textwrap.dedent(detection).strip(), "    ")
    return (
        "title: Test rule\nid: 0e8b6e5c-0000-4000-8000-000000000001\nstatus: test\n"
        "logsource:\n    category: process_creation\n    product: windows\n"
        f"detection:\n{body}\n    condition: {condition}\nlevel: high\n{extra}"
    )


def parse(detection: str, condition: str = "selection") -> object:
    rule = sigma.parse_rule_text(sigma_rule(detection, condition))
    assert isinstance(rule, Rule), rule
    assert not rule.problems, rule.problems
    return rule.stages[0].expr


def P(field: str | None, op: Op, value: object, syntax: str, cased: bool = False) -> Pred:
    return Pred(field, op, value, syntax, cased)


MODIFIERS = [
    ("plain", "selection:\n  Image: C:\\x.exe", P("Image", Op.EQ, "C:\\x.exe", "=")),
    (
        "contains",
        "selection:\n  CommandLine|contains: ' -enc '",
        P("CommandLine", Op.CONTAINS, " -enc ", "|contains"),
    ),
    (
        "startswith",
        "selection:\n  Image|startswith: 'C:\\Temp\\'",
        P("Image", Op.STARTS_WITH, "C:\\Temp\\", "|startswith"),
    ),
    (
        "endswith",
        "selection:\n  Image|endswith: '\\anydesk.exe'",
        P("Image", Op.ENDS_WITH, "\\anydesk.exe", "|endswith"),
    ),
    (
        "value list is an Or",
        "selection:\n  Image|endswith:\n    - '\\a.exe'\n    - '\\b.exe'",
        Or(
            (
                P("Image", Op.ENDS_WITH, "\\a.exe", "|endswith"),
                P("Image", Op.ENDS_WITH, "\\b.exe", "|endswith"),
            )
        ),
    ),
    (
        "all makes the list an And",
        "selection:\n  CommandLine|contains|all:\n    - ' -a '\n    - ' -b '",
        And(
            (
                P("CommandLine", Op.CONTAINS, " -a ", "|contains|all"),
                P("CommandLine", Op.CONTAINS, " -b ", "|contains|all"),
            )
        ),
    ),
    (
        "re keeps the regex, case-sensitive",
        "selection:\n  CommandLine|re: '^a.*b$'",
        P("CommandLine", Op.REGEX_MATCH, "^a.*b$", "|re", True),
    ),
    (
        "re with the i flag is case-insensitive",
        "selection:\n  CommandLine|re|i: 'abc'",
        P("CommandLine", Op.REGEX_MATCH, "abc", "|re|i", False),
    ),
    (
        "cidr",
        "selection:\n  DestinationIp|cidr: 10.0.0.0/8",
        P("DestinationIp", Op.CIDR, "10.0.0.0/8", "|cidr"),
    ),
    (
        "windash expands to every dash variant",
        "selection:\n  CommandLine|windash|contains: ' -s '",
        Or(
            tuple(
                P("CommandLine", Op.CONTAINS, f" {d}s ", "|windash|contains")
                for d in ("-", "/", "\u2013", "\u2014", "\u2015")
            )
        ),
    ),
    (
        "base64offset keeps the decoded text",
        "selection:\n  CommandLine|base64offset|contains: 'http://'",
        P("CommandLine", Op.CONTAINS, "http://", "|base64offset|contains"),
    ),
    (
        "base64",
        "selection:\n  CommandLine|base64|contains: 'IEX'",
        P("CommandLine", Op.CONTAINS, "IEX", "|base64|contains"),
    ),
    (
        "wide base64offset",
        "selection:\n  CommandLine|wide|base64offset|contains: 'ping'",
        P("CommandLine", Op.CONTAINS, "ping", "|wide|base64offset|contains"),
    ),
    ("exists", "selection:\n  Hashes|exists: true", P("Hashes", Op.EXISTS, True, "|exists")),
    (
        "exists false is a negated exists",
        "selection:\n  Hashes|exists: false",
        Not(P("Hashes", Op.EXISTS, True, "|exists")),
    ),
    (
        "fieldref",
        "selection:\n  ParentImage|fieldref: Image",
        P("ParentImage", Op.FIELD_REF, "Image", "|fieldref"),
    ),
    ("gt", "selection:\n  Size|gt: 100", P("Size", Op.GT, 100, "|gt")),
    ("gte", "selection:\n  Size|gte: 100", P("Size", Op.GTE, 100, "|gte")),
    ("lt", "selection:\n  Size|lt: 5", P("Size", Op.LT, 5, "|lt")),
    ("lte", "selection:\n  Size|lte: 5", P("Size", Op.LTE, 5, "|lte")),
    (
        "expand placeholder is a named list",
        "selection:\n  SourceIp|expand: '%dc_ip_addresses%'",
        P("SourceIp", Op.IN_LIST, "dc_ip_addresses", "|expand"),
    ),
    (
        "placeholder inside other text is Opaque naming it",
        "selection:\n  User|expand: 'corp-%admins%-x'",
        Opaque("User|expand: corp-%admins%-x", "placeholder", "%admins% inside a value"),
    ),
    (
        "cased",
        "selection:\n  CommandLine|cased|contains: 'AbC'",
        P("CommandLine", Op.CONTAINS, "AbC", "|cased|contains", True),
    ),
    ("null", "selection:\n  OriginalFileName: null", P("OriginalFileName", Op.IS_NULL, None, "=")),
    ("number", "selection:\n  EventID: 4688", P("EventID", Op.EQ, 4688, "=")),
    (
        "inner wildcard is a wildcard",
        "selection:\n  Image: 'C:\\Users\\\\*\\x.exe'",
        P("Image", Op.WILDCARD, "C:\\Users\\*\\x.exe", "="),
    ),
    (
        "a literal star among wildcards becomes a regex",
        "selection:\n  CommandLine: 'a\\*b?c'",
        P("CommandLine", Op.REGEX_MATCH, "^a\\*b.c$", "="),
    ),
    (
        "leading wildcard is ends_with",
        "selection:\n  Image: '*\\x.exe'",
        P("Image", Op.ENDS_WITH, "\\x.exe", "="),
    ),
    (
        "escaped wildcard stays literal",
        "selection:\n  CommandLine|contains: 'a\\*b'",
        P("CommandLine", Op.CONTAINS, "a*b", "|contains"),
    ),
    (
        "bare star means the field exists",
        "selection:\n  Hashes: '*'",
        P("Hashes", Op.EXISTS, True, "="),
    ),
    (
        "neq negates the item",
        "selection:\n  User|neq: 'SYSTEM'",
        Not(P("User", Op.EQ, "SYSTEM", "|neq")),
    ),
    (
        "neq of a list is none of the values",
        "selection:\n  User|neq:\n    - 'SYSTEM'\n    - 'LOCAL SERVICE'",
        Not(Or((P("User", Op.EQ, "SYSTEM", "|neq"), P("User", Op.EQ, "LOCAL SERVICE", "|neq")))),
    ),
    (
        "re with m keeps multi-line matching as an inline flag",
        "selection:\n  CommandLine|re|m: '^a$'",
        P("CommandLine", Op.REGEX_MATCH, "(?m)^a$", "|re|m", True),
    ),
    (
        "multiline is m",
        "selection:\n  CommandLine|re|multiline: '^a$'",
        P("CommandLine", Op.REGEX_MATCH, "(?m)^a$", "|re|m", True),
    ),
    (
        "re with s lets the dot match newlines, as an inline flag",
        "selection:\n  CommandLine|re|s: 'a.b'",
        P("CommandLine", Op.REGEX_MATCH, "(?s)a.b", "|re|dotall", True),
    ),
    (
        "dotall is s",
        "selection:\n  CommandLine|re|dotall|i: 'a.b'",
        P("CommandLine", Op.REGEX_MATCH, "(?s)a.b", "|re|dotall|i", False),
    ),
    (
        "ignorecase is i",
        "selection:\n  CommandLine|re|ignorecase: 'abc'",
        P("CommandLine", Op.REGEX_MATCH, "abc", "|re|i", False),
    ),
    (
        "utf16 base64offset keeps the decoded text",
        "selection:\n  CommandLine|utf16|base64offset|contains: 'ping'",
        P("CommandLine", Op.CONTAINS, "ping", "|utf16|base64offset|contains"),
    ),
    (
        "utf16be base64offset keeps the decoded text",
        "selection:\n  CommandLine|utf16be|base64offset|contains: 'ping'",
        P("CommandLine", Op.CONTAINS, "ping", "|utf16be|base64offset|contains"),
    ),
    *(
        (
            f"{part} of a timestamp is not modelled: Opaque",
            f"selection:\n  EventTime|{part}: 5",
            Opaque(f"EventTime|{part}: 5", "unsupported modifier", f"timestamp {part.upper()}"),
        )
        for part in ("minute", "hour", "day", "week", "month", "year")
    ),
    (
        "keywords are field-less predicates",
        "keywords:\n  - 'mimikatz'\n  - '*sekurlsa*'",
        Or((P(None, Op.KEYWORD, "mimikatz", "="), P(None, Op.KEYWORD, "sekurlsa", "="))),
    ),
    (
        "a number or boolean keyword is searched as text, as any keyword",
        "keywords:\n  - 0\n  - true",
        Or((P(None, Op.KEYWORD, "0", "="), P(None, Op.KEYWORD, "true", "="))),
    ),
    (
        "a keyword regex is field-less (searched in every value)",
        "keywords:\n  '|re': 'a.c'",
        P(None, Op.REGEX_MATCH, "a.c", "|re", True),
    ),
]


@pytest.mark.parametrize(
    "detection,expected", [c[1:] for c in MODIFIERS], ids=[c[0] for c in MODIFIERS]
)
def test_modifier(detection: str, expected: object) -> None:
    condition = "keywords" if detection.startswith("keywords") else "selection"
    assert parse(detection, condition) == expected


def test_every_pysigma_modifier_has_a_row() -> None:
    """Each modifier pySigma knows is in the table above, so its reading (a predicate
    tree or an Opaque node) is specified: a new pySigma modifier fails here until
    it is handled."""
    written = {m for _, detection, _ in MODIFIERS for m in re.findall(r"\|(\w+)", detection)}
    assert set(modifier_mapping) - written == set()


A = P("Image", Op.ENDS_WITH, "\\a.exe", "|endswith")
B = P("CommandLine", Op.CONTAINS, "b", "|contains")
C = P("User", Op.EQ, "c", "=")
DETS = """
selection_a:
  Image|endswith: '\\a.exe'
selection_b:
  CommandLine|contains: b
filter:
  User: c
"""

CONDITIONS = [
    ("selection_a and selection_b", And((A, B))),
    ("selection_a or selection_b", Or((A, B))),
    ("selection_a and not filter", And((A, Not(C)))),
    ("(selection_a or selection_b) and not filter", And((Or((A, B)), Not(C)))),
    ("not (selection_a and filter)", Not(And((A, C)))),
    ("1 of selection_*", Or((A, B))),
    ("all of selection_*", And((A, B))),
    ("1 of selection_* and not 1 of filter*", And((Or((A, B)), Not(C)))),
    ("1 of them", Or((A, B, C))),
    ("all of them", And((A, B, C))),
]


@pytest.mark.parametrize("condition,expected", CONDITIONS, ids=[c[0] for c in CONDITIONS])
def test_condition(condition: str, expected: object) -> None:
    assert parse(DETS, condition) == expected


def test_map_is_and_list_of_maps_is_or() -> None:
    det = """
    selection:
      - Image|endswith: '\\a.exe'
        CommandLine|contains: b
      - User: c
    """
    assert parse(det) == Or((And((A, B)), C))


def test_exclusions_are_top_level_nots() -> None:
    expr = parse(DETS, "selection_a and not filter and not (selection_b and filter)")
    assert exclusions(expr) == [C, B, C]


def test_metadata_and_techniques() -> None:
    text = sigma_rule(
        "selection:\n  Image: x",
        extra="tags:\n    - attack.command-and-control\n"
        "    - attack.t1219.002\n    - attack.T1105\nreferences:\n    - https://example.org\n",
    )
    rule = sigma.parse_rule_text(text, "rules/windows/x.yml")
    assert isinstance(rule, Rule)
    assert (rule.vendor, rule.id, rule.title, rule.severity, rule.status) == (
        "sigma",
        "0e8b6e5c-0000-4000-8000-000000000001",
        "Test rule",
        "high",
        "test",
    )
    assert rule.techniques == ["T1219.002", "T1105"]
    assert rule.references == ["https://example.org"]
    assert rule.context["logsource"] == {"category": "process_creation", "product": "windows"}
    assert rule.upstream_url.endswith("/rules/windows/x.yml")
    assert rule.query.startswith("logsource:") and "condition: selection" in rule.query
    assert "title:" not in rule.query and "tags:" not in rule.query
    assert rule.fully_parsed


def test_correlation_rule_stages_reference_rules() -> None:
    text = textwrap.dedent("""
        title: Many failed logons
        id: 0e8b6e5c-0000-4000-8000-000000000002
        correlation:
            type: event_count
            rules:
                - failed_logon
                - 5638f7c0-ac70-491d-8465-2a65075e0d86
            group-by:
                - TargetUserName
            timespan: 5m
            condition:
                gte: 10
        tags:
            - attack.t1110
    """)
    rule = sigma.parse_rule_text(text)
    assert isinstance(rule, Rule)
    assert [s.params["rule"] for s in rule.stages] == [
        "failed_logon",
        "5638f7c0-ac70-491d-8465-2a65075e0d86",
    ]
    assert {s.role for s in rule.stages} == {StageRole.CORRELATION}
    assert rule.stages[0].params["condition"] == {"gte": 10}
    assert rule.techniques == ["T1110"]


BAD = [
    ("invalid YAML", "title: x\ndetection: [unclosed\n", "invalid YAML", 3),
    ("not a mapping", "- just\n- a list\n", "not a mapping", None),
    ("unknown modifier", sigma_rule("selection:\n  Image|endswithh: x"), "not a valid Sigma", None),
    (
        "broken condition",
        sigma_rule("selection:\n  Image: x", "selection and ("),
        "condition",
        None,
    ),
    ("undefined detection", sigma_rule("selection:\n  Image: x", "selektion"), "undefined", None),
    (
        "YAML nested beyond reason",
        "title: x\ndetection:\n  sel: " + "[" * 50_000 + "]" * 50_000 + "\n",
        "nesting depth",
        3,
    ),
    (
        "condition nested beyond reason",
        sigma_rule("selection:\n  Image: x", "not " * 3000 + "selection"),
        "nested too deeply",
        None,
    ),
]


@pytest.mark.parametrize("text,message,line", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_a_recorded_problem(text: str, message: str, line: int | None) -> None:
    out = sigma.parse_rule_text(text, "rules/bad.yml")
    problems = [out] if isinstance(out, Problem) else out.problems
    assert problems, f"no problem recorded for {out!r}"
    assert message in problems[0].message
    assert problems[0].path == "rules/bad.yml"
    if line is not None:
        assert problems[0].line == line
    if isinstance(out, Rule):  # the rule stays, with its failure visible as Opaque
        assert not out.fully_parsed


def test_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    root = tmp_path / "sigma"
    (root / "rules").mkdir(parents=True)
    (root / "rules" / "bin.yml").write_bytes(b"\xff\xfe\x00garbage")
    (out,) = list(sigma.Sigma().read(root))
    assert isinstance(out, Problem) and "cannot read" in out.message


def test_corpus_loads_and_parses(corpora: Path) -> None:
    root = corpora / "sigma"
    out = list(sigma.Sigma().read(root))
    rules = [r for r in out if isinstance(r, Rule)]
    problems = [p for p in out if isinstance(p, Problem)]
    assert len(rules) + len(problems) == len(sigma.rule_files(root))
    assert not problems, "\n".join(map(str, problems))
    fully = sum(r.fully_parsed for r in rules)
    assert fully / len(rules) >= 0.995, f"{fully}/{len(rules)} fully parsed"
    assert all(r.techniques == sigma.techniques_from_tags(r.tags) for r in rules)


def test_deprecated_only_on_request(corpora: Path) -> None:
    root = corpora / "sigma"
    active = sigma.rule_files(root)
    everything = sigma.rule_files(root, include_deprecated=True)
    assert not any("/deprecated/" in p.as_posix() for p in active)
    assert any("/deprecated/" in p.as_posix() for p in everything)
    assert len(everything) > len(active)
