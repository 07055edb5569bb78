"""pySigma's Splunk backend as an oracle for the SPL parser.

Every active Sigma rule is converted with two pipelines — ``splunk_windows``
(default format) and ``splunk_cim_data_model`` (``data_model`` format) — and the
SPL it produces must parse with no error and no Opaque. Beyond parsing, each
query must *mean* what the Sigma rule means: the rule's condition tree (after
the pipeline's field mapping) and our stage expression are evaluated under the
same random truth assignments of their leaves, a leaf being (field, operator,
value) — so precedence, negation, wildcards and escapes are all checked.

Where they differ, the SPL itself says something else than the rule, for one of
three known backend reasons (each asserted to be the only ones):

* ``literal-star``: a literal ``*`` is written ``\\*``, which SPL reads as a
  backslash and a wildcard (SigmaHQ/sigma#3617; the Splunk Search Manual:
  "the backslash can't be used to escape the asterisk");
* ``leading-or``: regex conditions moved into ``| rex … | eval`` leave
  ``| search OR …`` behind, the OR's first operand gone to the base search;
* ``condition-in-tstats``: in the data_model format the full condition is also
  put into ``tstats … where``, where the eval-defined ``…Condition`` field does
  not exist yet.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sigma.backends.splunk", reason="pysigma-backend-splunk is a test dependency")

from sigma.backends.splunk import SplunkBackend  # noqa: E402
from sigma.collection import SigmaCollection  # noqa: E402
from sigma.conditions import (  # noqa: E402
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.exceptions import SigmaError  # noqa: E402
from sigma.pipelines.splunk import splunk_cim_data_model, splunk_windows_pipeline  # noqa: E402
from sigma.types import (  # noqa: E402
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SpecialChars,
)

from detcat.languages import spl  # noqa: E402
from detcat.languages.spl.expr import classify, plain  # noqa: E402
from detcat.model import And, Expr, Not, Or, Predicate, QueryError, opaques  # noqa: E402

BACKENDS: dict[str, tuple[Callable[[], Any], str]] = {
    "splunk_windows": (splunk_windows_pipeline, "default"),
    "splunk_cim_data_model": (splunk_cim_data_model, "data_model"),
}
# The data_model format ends with CIM utility macros that security_content's own
# macro files do not define; these are their standard definitions.
UTILITY_MACROS = {
    r"`drop_dm_object_name\((\w+)\)`": r"rename \1.* AS *",
    r"`security_content_ctime\((\w+)\)`": r'convert timeformat="%Y-%m-%dT%H:%M:%S" ctime(\1)',
    r"`security_content_summariesonly`": "summariesonly=false",
}
Key = tuple[Any, ...]


class NotComparable(Exception):
    """A Sigma leaf the comparison does not model (placeholders, booleans)."""


# -- the Sigma side -------------------------------------------------------------------


def sigma_key(field_name: str | None, value: Any) -> Key:
    """(field, op, value) of a Sigma leaf, spelled as our parser spells it."""
    if isinstance(value, SigmaString):
        chars = []
        for part in value.s:
            if isinstance(part, str):
                chars.extend((c, False) for c in part)
            elif part in (SpecialChars.WILDCARD_MULTI, SpecialChars.WILDCARD_SINGLE):
                chars.append(("*", True))  # SPL has no one-character wildcard
            else:
                raise NotComparable(str(part))
        if field_name is None:
            return (None, "keyword", plain(chars).casefold())
        op, text = classify(chars)
        return (field_name, op.value, _number_text(text))
    if isinstance(value, SigmaNumber):
        return (field_name, "keyword" if field_name is None else "eq", str(value.number))
    if isinstance(value, SigmaRegularExpression):
        flags = "".join(sorted(f.name[0].lower() for f in value.flags))
        return (field_name, "regex_match", (f"(?{flags})" if flags else "") + str(value.regexp))
    if isinstance(value, SigmaCIDRExpression):
        return (field_name, "cidr", str(value.network))
    if isinstance(value, SigmaFieldReference):
        return (field_name, "field_ref", value.field)
    if isinstance(value, SigmaCompareExpression):
        return (field_name, value.op.name.lower(), str(value.number.number))
    raise NotComparable(type(value).__name__)


def _number_text(text: str | None) -> str | None:
    if text is None:
        return None
    return str(int(text)) if text.isdigit() and str(int(text)) == text else text.casefold()


def sigma_eval(node: Any, truth: Callable[[Key], bool]) -> bool:
    if isinstance(node, ConditionAND):
        return all([sigma_eval(a, truth) for a in node.args])
    if isinstance(node, ConditionOR):
        return any([sigma_eval(a, truth) for a in node.args])
    if isinstance(node, ConditionNOT):
        return not sigma_eval(node.args[0], truth)
    if isinstance(node, ConditionFieldEqualsValueExpression | ConditionValueExpression):
        name, value = getattr(node, "field", None), node.value
        if isinstance(value, SigmaNull):
            return not truth((name, "exists", None))
        if isinstance(value, SigmaExists):
            return truth((name, "exists", None)) == value.exists
        return truth(sigma_key(name, value))
    raise NotComparable(type(node).__name__)


def literal_star(node: Any) -> bool:
    """Whether a Sigma leaf holds a literal ``*`` (which SPL cannot express)."""
    if hasattr(node, "args") and not hasattr(node, "value"):
        return any(literal_star(a) for a in node.args)
    value = getattr(node, "value", None)
    return isinstance(value, SigmaString) and any(isinstance(p, str) and "*" in p for p in value.s)


# -- our side -------------------------------------------------------------------------


def our_key(p: Predicate) -> Key:
    if p.value is None:
        return (p.field_raw, p.op.value, None)
    exact = p.op.value in ("regex_match", "cidr", "field_ref")
    return (p.field_raw, p.op.value, str(p.value) if exact else str(p.value).casefold())


def our_eval(expr: Expr | None, truth: Callable[[Key], bool]) -> bool:
    match expr:
        case None:
            return True
        case And(children):
            return all([our_eval(c, truth) for c in children])
        case Or(children):
            return any([our_eval(c, truth) for c in children])
        case Not(child):
            return not our_eval(child, truth)
        case Predicate():
            return truth(our_key(expr))
    raise AssertionError(f"opaque in an oracle query: {expr!r}")


def same_meaning(condition: Any, expr: Expr | None, trials: int = 48) -> bool:
    rng = random.Random(4)
    for _ in range(trials):
        values: dict[Key, bool] = {}

        def truth(key: Key, values: dict[Key, bool] = values) -> bool:
            return values.setdefault(key, rng.random() < 0.5)

        if sigma_eval(condition, truth) != our_eval(expr, truth):
            return False
    return True


# -- running a backend over the corpus -------------------------------------------------


@dataclass
class Outcome:
    converted: int = 0
    not_converted: int = 0
    queries: int = 0
    errors: list[str] = field(default_factory=list)
    opaque: Counter[str] = field(default_factory=Counter)
    agree: int = 0
    not_comparable: Counter[str] = field(default_factory=Counter)
    defects: Counter[str] = field(default_factory=Counter)
    unexplained: list[str] = field(default_factory=list)


def defect(query: str, condition: Any) -> str | None:
    if literal_star(condition):
        return "literal-star"
    if re.search(r"\|\s*search\s+(OR|AND)\s", query):
        return "leading-or"
    where = re.match(r"\|\s*tstats\b.*?\bwhere\b(.*?)\bby\b", query, re.S)
    if where and re.search(r"\w+Condition\d*=", where.group(1)):
        return "condition-in-tstats"
    return None


def check(outcome: Outcome, rel: str, query: str, condition: Any) -> None:
    for pattern, definition in UTILITY_MACROS.items():
        query = re.sub(pattern, definition, query)
    try:
        stages = spl.parse(query)
    except QueryError as e:
        outcome.errors.append(f"{rel}: {e.line}:{e.column} {e.message}")
        return
    found = [o.reason for s in stages for o in opaques(s.expr)]
    outcome.opaque.update(found)
    if found:
        return
    try:
        agrees = same_meaning(condition, stages[0].expr)
    except NotComparable as e:
        outcome.not_comparable[str(e)] += 1
        return
    if agrees:
        outcome.agree += 1
    elif kind := defect(query, condition):
        outcome.defects[kind] += 1
    else:
        outcome.unexplained.append(f"{rel}: {query[:300]}")


def run(backend_name: str, rules: list[tuple[str, SigmaCollection]]) -> Outcome:
    make_pipeline, fmt = BACKENDS[backend_name]
    backend = SplunkBackend(processing_pipeline=make_pipeline())
    outcome = Outcome()
    for rel, collection in rules:
        try:
            queries = backend.convert(collection, fmt)
        except (SigmaError, NotImplementedError, ValueError, KeyError, TypeError):
            outcome.not_converted += 1  # the backend's own verdict: not expressible
            continue
        outcome.converted += 1
        conditions = collection.rules[0].detection.parsed_condition
        for query, condition in zip(queries, conditions, strict=True):
            outcome.queries += 1
            check(outcome, rel, str(query), condition.parsed)
    return outcome


@pytest.fixture(scope="module")
def sigma_rules(corpora: Path) -> list[tuple[str, str]]:
    root = corpora / "sigma"
    paths = sorted(p for d in root.glob("rules*") for p in d.rglob("*.yml"))
    return [(p.relative_to(root).as_posix(), p.read_text(encoding="utf-8")) for p in paths]


@pytest.fixture(scope="module", params=list(BACKENDS))
def outcome(request: pytest.FixtureRequest, sigma_rules: list[tuple[str, str]]) -> Outcome:
    rules = []
    for rel, text in sigma_rules:
        try:  # a fresh collection per backend: conversion rewrites the rule in place
            rules.append((rel, SigmaCollection.from_yaml(text)))
        except SigmaError:
            continue  # pySigma rejects the file: nothing to convert
    result = run(request.param, rules)
    print(f"\n{request.param}: {result}")
    return result


def test_every_converted_query_parses_without_opaque(outcome: Outcome) -> None:
    assert outcome.converted >= 1900
    assert outcome.queries >= outcome.converted
    assert outcome.errors == []
    assert outcome.opaque == Counter()


def test_converted_queries_mean_what_the_sigma_rules_mean(outcome: Outcome) -> None:
    assert outcome.unexplained == []
    compared = outcome.agree + outcome.defects.total()
    # placeholders (%name%) expand only with a pipeline that defines them
    assert set(outcome.not_comparable) <= {"SigmaExpansion", "SigmaBool"}
    assert outcome.agree >= 0.98 * compared
    assert set(outcome.defects) <= {"literal-star", "leading-or", "condition-in-tstats"}
