"""Language dispatch: one query (or rule) text -> its normalized stages.

``parse_query(language, text)`` answers "what does this query look at?" for
``detcat parse`` and for the fidelity tests. The text is parsed by detcat's own
parser for the language, wrapped in a throw-away ``Rule`` of the vendor that
writes that language, and normalized with ``normalize_rule``, so the result is
exactly what the catalog would hold for the same query.

For ``sigma`` the text is a whole rule (YAML document); for ``yaral`` a whole
rule (``rule name { … }``); for the others a bare query.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from detcat.errors import DetcatError
from detcat.model import (
    Opaque,
    Predicate,
    Problem,
    QueryError,
    Rule,
    Stage,
    and_,
    check_depth,
    leaves,
)

LANGUAGES = ("sigma", "kql", "eql", "esql", "spl", "yaral")

# The vendor that writes each language: it picks the field table normalize uses.
VENDOR_OF = {
    "sigma": "sigma",
    "kql": "elastic",
    "eql": "elastic",
    "esql": "elastic",
    "spl": "splunk",
    "yaral": "chronicle",
}


class UnknownLanguage(DetcatError, ValueError):
    pass


def parse_query(language: str, text: str) -> list[Stage]:
    """The normalized stages of ``text`` (for ``yaral``, of every rule in it).

    Raises ``QueryError`` for text the parser cannot read and ``UnknownLanguage``.
    """
    return [s for rule in parse_rules(language, text) for s in rule.stages]


def parse_rules(language: str, text: str, *, normalize: bool = True) -> list[Rule]:
    """Throw-away ``Rule`` objects for ``text`` (one, or one per YARA-L rule),
    normalized unless ``normalize`` is false (vendor terms only, as parsed)."""
    from detcat.normalize import normalize_rule

    reader = _READERS.get(language)
    if reader is None:
        raise UnknownLanguage(f"unknown language {language!r} (one of {', '.join(LANGUAGES)})")
    rules = reader(text)
    for stage in (s for rule in rules for s in rule.stages):
        check_depth(stage.expr)  # before anything walks the tree (see MAX_DEPTH)
    for rule in rules if normalize else ():
        normalize_rule(rule)
    return rules


def _rule(language: str, stages: list[Stage], **context: Any) -> Rule:
    return Rule(
        vendor=VENDOR_OF[language],
        id="<query>",
        title="",
        source_path="<query>",
        language=language,
        stages=stages,
        context=context,
    )


def _sigma(text: str) -> list[Rule]:
    from detcat.sources import sigma

    got = sigma.parse_rule_text(text)
    if isinstance(got, Problem):
        raise QueryError(got.message, got.line, got.column)
    if got.problems and not got.has_query:
        first = got.problems[0]
        raise QueryError(first.message, first.line, first.column)
    return [got]


def _elastic(language: str) -> Callable[[str], list[Rule]]:
    def read(text: str) -> list[Rule]:
        from detcat.sources import elastic

        return [_rule(language, elastic.parse_query(language, text))]

    return read


def _spl(text: str) -> list[Rule]:
    """Macros expand as the Splunk source expands them, with no definitions at hand:
    CIM utility and ``*_filter`` macros vanish, any other is an Opaque condition."""
    from detcat.languages import spl
    from detcat.sources.splunk import Macros

    expansion = Macros().expand(text)
    stages = spl.parse(expansion.text)
    if expansion.opaques:
        stages = stages or [Stage()]
        first = [stages[0].expr] if stages[0].expr is not None else []
        stages[0].expr = and_(*first, *expansion.opaques)
    return [_rule("spl", stages)]


def _yaral(text: str) -> list[Rule]:
    from detcat.languages import yaral
    from detcat.sources import chronicle

    try:
        parsed = yaral.parse_rules(text)
    except QueryError as strict:
        # Generated rules (pySigma's SecOps backend) carry known flaws the lenient
        # grammar accepts; hand-written text that fails both reports the strict error.
        try:
            parsed = yaral.parse_rules(text, lenient=True)
        except QueryError:
            raise strict from None
    if not parsed:
        raise QueryError("no YARA-L rule in the text", 1, 1)
    return [chronicle.build_rule(y, "<query>") for y in parsed]


_READERS: dict[str, Callable[[str], list[Rule]]] = {
    "sigma": _sigma,
    "kql": _elastic("kql"),
    "eql": _elastic("eql"),
    "esql": _elastic("esql"),
    "spl": _spl,
    "yaral": _yaral,
}


# -- the JSON shape of `detcat parse --json/--jsonl` -----------------------------------


def stages_json(stages: list[Stage]) -> list[dict[str, Any]]:
    """Per stage: its predicates (flat, with negated/exclusion) and Opaque parts."""
    return [stage_json(s) for s in stages]


def stage_json(stage: Stage) -> dict[str, Any]:
    preds: list[dict[str, Any]] = []
    opaque: list[dict[str, Any]] = []
    for lf in leaves(stage.expr):
        if isinstance(lf.node, Opaque):
            opaque.append({"text": lf.node.text, "reason": lf.node.reason})
        else:
            preds.append(predicate_json(lf.node, lf.negated, lf.exclusion))
    out: dict[str, Any] = {"name": stage.name, "role": str(stage.role)}
    if stage.negated:
        out["negated"] = True
    out.update(events=stage.events, predicates=preds, opaque=opaque)
    return out


def predicate_json(p: Predicate, negated: bool, exclusion: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "field": p.field,
        "field_raw": p.field_raw,
        "op": str(p.op),
        "value": p.value,
        "negated": negated,
        "exclusion": exclusion,
    }
    if p.case_sensitive:
        out["case_sensitive"] = True
    if p.kind:
        out["kind"] = p.kind
    return out
