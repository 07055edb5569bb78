"""Operators and values: each vendor spelling of a string test -> one canonical
(op, value, case) form; implied predicates; indicator identity."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from normalize_helpers import make_rule, normalized, pred, sigma

from detcat.model import And, Op, Or, Predicate, Rule, leaves, predicates
from detcat.normalize import indicator_key, normalize_rule
from detcat.normalize.fields import canonical_field, documented, in_fieldset
from detcat.normalize.regex import regex_literal
from detcat.normalize.scopes import stage_scopes
from detcat.normalize.tables import load
from detcat.normalize.values import VALUES, vocabularies, vocabulary_key
from detcat.sources import registry


def stage_expr(rule_or_vendor: Any, p: Predicate | None = None, **kw: Any) -> Any:
    rule = make_rule(rule_or_vendor, p, **kw) if isinstance(rule_or_vendor, str) else rule_or_vendor
    return normalized(rule).stages[0].expr


def written(expr: Any) -> list[tuple[str | None, str, Any, bool]]:
    """(field, op, value, case_sensitive) of the predicates the query wrote."""
    return [
        (p.field, str(p.op), p.value, p.case_sensitive)
        for p in predicates(expr)
        if p.kind != "implied"
    ]


# -- regexes that are literals ---------------------------------------------------

# (pattern, full_match) -> (op, values, case-insensitive flag) or None (stays a regex)
REGEX_CASES = [
    (r"anydesk", False, (Op.CONTAINS, ("anydesk",), False)),
    (r"\\anydesk\.exe$", False, (Op.ENDS_WITH, ("\\anydesk.exe",), False)),
    (r"^C:\\Windows\\", False, (Op.STARTS_WITH, ("C:\\Windows\\",), False)),
    (r"^cmd\.exe$", False, (Op.EQ, ("cmd.exe",), False)),
    (r"(?i)\\anydesk\.exe$", False, (Op.ENDS_WITH, ("\\anydesk.exe",), True)),
    (r".*anydesk.*", True, (Op.CONTAINS, ("anydesk",), False)),  # ES|QL RLIKE, EQL regex
    (r".*\\anydesk\.exe", True, (Op.ENDS_WITH, ("\\anydesk.exe",), False)),
    (r"cmd\.exe", True, (Op.EQ, ("cmd.exe",), False)),
    (
        r"\\(anydesk|teamviewer)\.exe$",
        False,
        (Op.ENDS_WITH, ("\\anydesk.exe", "\\teamviewer.exe"), False),
    ),
    (r"(?:psexec|paexec)", False, (Op.CONTAINS, ("psexec", "paexec"), False)),
    (r"^(cmd|powershell)\.exe$", False, (Op.EQ, ("cmd.exe", "powershell.exe"), False)),
    (r"foo|bar", False, (Op.CONTAINS, ("foo", "bar"), False)),
    # a value list however long (the SecOps backend's 789 driver hashes in one regex)
    (
        "|".join(f"v{i}" for i in range(500)),
        False,
        (Op.CONTAINS, tuple(f"v{i}" for i in range(500)), False),
    ),
    (r"\.ps1\.*$", False, None),  # a literal dot repeated: a real regex
    (r"\d+\.exe", False, None),
    (r"[a-z]{8}\.exe", False, None),
    (r"^a|b$", False, None),  # starts_with and ends_with mixed: no single operator
    (r"(a|b)(c|d)", False, None),
    (r"", False, None),
]


@pytest.mark.parametrize("pattern, full_match, expected", REGEX_CASES)
def test_regex_literal(pattern: str, full_match: bool, expected: Any) -> None:
    lit = regex_literal(pattern, full_match)
    got = None if lit is None else (lit.op, lit.values, lit.case_insensitive)
    assert got == expected


@pytest.mark.parametrize(
    "vendor, language, p, expected",
    [
        # YARA-L: RE2 search; nocase is the parser's case_sensitive=False
        ("chronicle", "yaral",
         pred("target.process.file.full_path", r"\\anydesk\.exe$", Op.REGEX_MATCH,
              case_sensitive=False),
         [("process.executable", "ends_with", "\\anydesk.exe", False)]),
        ("chronicle", "yaral",
         pred("target.process.command_line", r"(?i)-enc", Op.REGEX_MATCH, case_sensitive=True),
         [("process.command_line", "contains", "-enc", False)]),
        # ES|QL RLIKE matches the whole value
        ("elastic", "esql",
         pred("process.name", r"(anydesk|rustdesk)\.exe", Op.REGEX_MATCH, case_sensitive=True),
         [("process.name", "eq", "anydesk.exe", True),
          ("process.name", "eq", "rustdesk.exe", True)]),
        # a real regex stays one
        ("sigma", "sigma", pred("CommandLine", r"\s-e\s", Op.REGEX_MATCH),
         [("process.command_line", "regex_match", r"\s-e\s", False)]),
    ],
)  # fmt: skip
def test_regex_predicates_become_string_tests(
    vendor: str, language: str, p: Predicate, expected: list[Any]
) -> None:
    ctx = sigma("process_creation") if vendor == "sigma" else None
    expr = stage_expr(make_rule(vendor, p, context=ctx, language=language))
    assert written(expr) == expected
    if len(expected) > 1:
        assert isinstance(expr, Or)


# -- wildcards, case folding, hashes ----------------------------------------------------


@pytest.mark.parametrize(
    "value, op, expected_op, expected_value",
    [
        ("*anydesk*", Op.WILDCARD, "contains", "anydesk"),
        ("*\\anydesk.exe", Op.WILDCARD, "ends_with", "\\anydesk.exe"),  # no escapes in wildcards
        ("*.exe", Op.WILDCARD, "ends_with", ".exe"),
        ("C:*", Op.WILDCARD, "starts_with", "C:"),
        ("C:*\\x?.exe", Op.WILDCARD, "wildcard", "C:*\\x?.exe"),
        ("a*b", Op.WILDCARD, "wildcard", "a*b"),
    ],
)
def test_unclassified_wildcards(value: str, op: Op, expected_op: str, expected_value: str) -> None:
    expr = stage_expr("elastic", pred("process.command_line", value, op))
    assert written(expr) == [("process.command_line", expected_op, expected_value, False)]


@pytest.mark.parametrize(
    "vendor, raw, field",
    [("splunk", "lower(process_name)", "process.name"),
     ("elastic", "TO_LOWER(process.name)", "process.name"),
     ("splunk", "upper( process_name )", "process.name"),
     ("chronicle", "strings.to_lower(principal.hostname)", "host.name")],
)  # fmt: skip
def test_case_functions_read_their_field_case_insensitively(
    vendor: str, raw: str, field: str
) -> None:
    expr = stage_expr(vendor, pred(raw, "cmd.exe", case_sensitive=True))
    assert written(expr) == [(field, "eq", "cmd.exe", False)]


def test_esql_derived_case_fold_reads_its_source_field() -> None:
    derived = {"Esql.name_lower": "TO_LOWER(process.name)", "Esql.n": "COUNT(*)"}
    expr = stage_expr(
        "elastic",
        And((pred("Esql.name_lower", "x.exe", kind="derived", case_sensitive=True),
             pred("Esql.n", 5, Op.GT, kind="derived"))),
        params={"derived": derived},
        language="esql",
    )  # fmt: skip
    assert written(expr) == [
        ("process.name", "eq", "x.exe", False),
        ("elastic:Esql.n", "gt", 5, False),
    ]


@pytest.mark.parametrize(
    "category, value, expected",
    [
        ("process_creation", "IMPHASH=AB12", ("process.pe.imphash", "eq", "AB12")),
        ("process_creation", "SHA256=ff00", ("process.hash.sha256", "eq", "ff00")),
        ("image_load", "MD5=0a0b", ("dll.hash.md5", "eq", "0a0b")),
        ("driver_load", "SHA1=99", ("file.hash.sha1", "eq", "99")),
        ("process_creation", "ff00", ("process.hash", "contains", "ff00")),
    ],
)
def test_sysmon_hashes_split_by_algorithm(category: str, value: str, expected: Any) -> None:
    expr = stage_expr("sigma", pred("Hashes", value, Op.CONTAINS), context=sigma(category))
    assert written(expr) == [(*expected, False)]


@pytest.mark.parametrize(
    "pattern, expected",
    [
        # a regex that is a literal is split like the string it stands for
        ("IMPHASH=AB12", [("process.pe.imphash", "eq", "AB12")]),
        ("MD5=0a0b|SHA256=ff00",
         [("process.hash.md5", "eq", "0a0b"), ("process.hash.sha256", "eq", "ff00")]),
        ("^IMPHASH=AB12$", [("process.pe.imphash", "eq", "AB12")]),
        # a real regex is no ALGO=digest pair
        ("IMPHASH=[0-9A-F]{32}", [("process.hash", "regex_match", "IMPHASH=[0-9A-F]{32}")]),
    ],
)  # fmt: skip
def test_hash_regexes_split_by_algorithm(pattern: str, expected: list[Any]) -> None:
    p = pred("Hashes", pattern, Op.REGEX_MATCH)
    expr = stage_expr("sigma", p, context=sigma("process_creation"))
    assert written(expr) == [(*e, False) for e in expected]


# -- value vocabularies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "vendor, raw, value, ctx, expected",
    [
        # Sysmon NetworkConnect Initiated: the host opened the connection
        ("sigma", "Initiated", "true", sigma("network_connection"), "egress"),
        ("sigma", "Initiated", "True", sigma("network_connection"), "egress"),
        ("sigma", "Initiated", True, sigma("network_connection"), "egress"),
        ("sigma", "Initiated", "false", sigma("network_connection"), "ingress"),
        ("elastic", "network.direction", "outgoing", None, "egress"),
        ("elastic", "network.direction", "egress", None, "egress"),
        ("elastic", "network.direction", "incoming", None, "ingress"),
        ("elastic", "network.direction", "inbound", None, "ingress"),
        ("splunk", "All_Traffic.direction", "outbound", None, "egress"),
        ("elastic", "network.direction", "internal", None, "internal"),  # no synonym: kept
    ],
)  # fmt: skip
def test_direction_values_have_one_spelling(
    vendor: str, raw: str, value: Any, ctx: Any, expected: str
) -> None:
    expr = stage_expr(vendor, pred(raw, value), context=ctx)
    assert [(p.field, p.op, p.value) for p in predicates(expr)] == [
        ("network.direction", Op.EQ, expected)
    ]


def test_vocabularies_are_well_formed() -> None:
    """Each table is a canonical field's; each canonical value is one of its own
    spellings, written as the canonical value (so normalizing twice changes
    nothing); spellings are unique when case-folded."""
    raw = load(VALUES)
    assert raw
    for name, table in raw.items():
        assert name in documented() or in_fieldset(name), name
        folded = {k.casefold() for k in table}
        assert len(folded) == len(table), name
        assert all(v.casefold() in folded and table[v] == v for v in table.values()), name
        assert vocabularies()[name] == {k.casefold(): v for k, v in table.items()}


def test_every_vocabulary_spelling_is_used_by_the_corpus(corpora: Path) -> None:
    """Every spelling is one some vendor's rules write: the vendors' own rules are
    the judge of the vocabulary."""
    fields = set(vocabularies())
    seen: set[tuple[str, str]] = set()
    for source in registry.vendors():
        for rule in source.read(corpora / source.name):
            if isinstance(rule, Rule):
                seen |= _vocabulary_values(rule, fields)
    table = {(f, k) for f, t in vocabularies().items() for k in t}
    assert table - seen == set()


def _vocabulary_values(rule: Rule, fields: set[str]) -> set[tuple[str, str]]:
    """(canonical field, spelling) of the equality tests the rule writes; fields are
    read with the stage's events, as normalization reads them."""
    out = set()
    done = copy.deepcopy(rule)
    normalize_rule(done)
    for stage, after in zip(rule.stages, done.stages, strict=True):
        scopes = stage_scopes(rule, stage)
        events = tuple(after.events)
        for p in predicates(stage.expr):
            field = canonical_field(rule.vendor, scopes, p.field_raw, events)
            usable = p.value is not None and not isinstance(p.value, float)
            if field in fields and p.op is Op.EQ and usable:
                out.add((field, vocabulary_key(p.value)))  # type: ignore[arg-type]
    return out


# -- implied predicates ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "vendor, raw, ctx, op, value, implied",
    [
        ("sigma", "Image", sigma("process_creation"), Op.ENDS_WITH, "\\AnyDesk.exe",
         ("process.name", "AnyDesk.exe")),
        ("sigma", "ParentImage", sigma("process_creation"), Op.ENDS_WITH, "\\explorer.exe",
         ("process.parent.name", "explorer.exe")),
        ("sigma", "TargetFilename", sigma("file_event"), Op.ENDS_WITH, "/crontab",
         ("file.name", "crontab")),
        ("sigma", "ImageLoaded", sigma("image_load"), Op.ENDS_WITH, "\\dbghelp.dll",
         ("dll.name", "dbghelp.dll")),
        ("elastic", "process.executable", None, Op.EQ, "C:\\Windows\\System32\\cmd.exe",
         ("process.name", "cmd.exe")),
        ("splunk", "Processes.process_path", None, Op.ENDS_WITH, "\\AnyDesk.exe",
         ("process.name", "AnyDesk.exe")),
        ("sigma", "Image", sigma("process_creation"), Op.ENDS_WITH, "AnyDesk.exe", None),
        ("sigma", "Image", sigma("process_creation"), Op.CONTAINS, "\\AnyDesk.exe", None),
        ("sigma", "Image", sigma("process_creation"), Op.ENDS_WITH, "\\", None),
        ("sigma", "CommandLine", sigma("process_creation"), Op.ENDS_WITH, "\\x.exe", None),
    ],
)  # fmt: skip
def test_paths_imply_names(
    vendor: str, raw: str, ctx: Any, op: Op, value: str, implied: tuple[str, str] | None
) -> None:
    expr = stage_expr(vendor, pred(raw, value, op), context=ctx)
    extra = [p for p in predicates(expr) if p.kind == "implied"]
    if implied is None:
        assert extra == []
        return
    assert isinstance(expr, And) and expr.children[0].kind == ""  # type: ignore[union-attr]
    assert [(p.field, p.op, p.value) for p in extra] == [(implied[0], Op.EQ, implied[1])]


def test_implied_predicates_keep_negation_and_exclusions() -> None:
    from detcat.model import Not, exclusions

    p = pred("Image", "\\AnyDesk.exe", Op.ENDS_WITH)
    rule = make_rule("sigma", And((pred("CommandLine", "x", Op.CONTAINS), Not(p))),
                     context=sigma("process_creation"))  # fmt: skip
    expr = stage_expr(rule)
    assert [(q.field, q.kind) for q in exclusions(expr)] == [
        ("process.executable", ""),
        ("process.name", "implied"),
    ]
    assert all(lf.negated for lf in leaves(expr) if lf.exclusion)


def test_normalize_rule_is_idempotent() -> None:
    rule = make_rule("sigma", pred("Image", "\\AnyDesk.exe", Op.ENDS_WITH),
                     context=sigma("process_creation"))  # fmt: skip
    normalize_rule(rule)
    once = (rule.stages[0].expr, list(rule.stages[0].events))
    normalize_rule(rule)
    assert (rule.stages[0].expr, rule.stages[0].events) == once


# -- indicator identity ---------------------------------------------------------------------


def anydesk_keys(vendor: str, p: Predicate, ctx: Any = None) -> set[tuple[str, str, str]]:
    return {indicator_key(q) for q in predicates(stage_expr(vendor, p, context=ctx))}


def test_anydesk_is_one_indicator_across_vendors() -> None:
    key = ("process.name", "eq", "anydesk.exe")
    assert key in anydesk_keys(
        "sigma", pred("Image", "\\AnyDesk.exe", Op.ENDS_WITH), sigma("process_creation")
    )
    assert key in anydesk_keys("elastic", pred("process.name", "AnyDesk.exe", syntax=":"))
    assert key in anydesk_keys("splunk", pred("Processes.process_name", "AnyDesk.exe"))
    assert key in anydesk_keys(
        "chronicle",
        pred("target.process.file.full_path", r"\\anydesk\.exe$", Op.REGEX_MATCH),
    )


@pytest.mark.parametrize(
    "value, expected", [(4688, "4688"), ("4688", "4688"), (True, "true"), (3.0, "3"), (None, "")]
)
def test_indicator_values_are_folded_to_text(value: Any, expected: str) -> None:
    p = Predicate("EventID", Op.EQ, value, field="event.code")
    assert indicator_key(p) == ("event.code", "eq", expected)
