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

from typing import Any

from detcat.errors import DetcatError
from detcat.model import Opaque, Predicate, Rule, Stage, check_depth, expr_to_json, leaves
from detcat.sources import registry


class UnknownLanguage(DetcatError, ValueError):
    pass


def languages() -> tuple[str, ...]:
    """Every language ``detcat parse`` reads (those of the installed vendors)."""
    return tuple(registry.languages())


def parse_query(language: str, text: str) -> list[Stage]:
    """The normalized stages of ``text`` (for ``yaral``, of every rule in it).

    Raises ``QueryError`` for text the parser cannot read and ``UnknownLanguage``.
    """
    return [s for rule in parse_rules(language, text) for s in rule.stages]


def parse_rules(language: str, text: str, *, normalize: bool = True) -> list[Rule]:
    """Throw-away ``Rule`` objects for ``text`` (one, or one per YARA-L rule),
    normalized unless ``normalize`` is false (vendor terms only, as parsed)."""
    from detcat.normalize import normalize_rule

    vendor = registry.languages().get(language)
    if vendor is None:
        raise UnknownLanguage(f"unknown language {language!r} (one of {', '.join(languages())})")
    rules = vendor.parse_text(language, text)
    for stage in (s for rule in rules for s in rule.stages):
        check_depth(stage.expr)  # before anything walks the tree (see MAX_DEPTH)
    for rule in rules if normalize else ():
        normalize_rule(rule)
    return rules


# -- the JSON shape of `detcat parse --json/--jsonl` -----------------------------------


def parse_json(language: str, text: str) -> dict[str, Any]:
    """``detcat parse --json`` (and the MCP ``parse_query`` tool): per stage its flat
    predicates, Opaque parts and the predicate ``tree``. Raises like ``parse_query``."""
    stages = parse_query(language, text)
    out = stages_json(stages)
    for doc, stage in zip(out, stages, strict=True):
        doc["tree"] = expr_to_json(stage.expr)
    return {"language": language, "stages": out, "error": None}


def stages_json(stages: list[Stage]) -> list[dict[str, Any]]:
    """Per stage: its predicates (flat, with negated/exclusion) and Opaque parts."""
    return [stage_json(s) for s in stages]


def stage_json(stage: Stage) -> dict[str, Any]:
    preds: list[dict[str, Any]] = []
    opaque: list[dict[str, Any]] = []
    for lf in leaves(stage.expr):
        if isinstance(lf.node, Opaque):
            node = lf.node
            opaque.append({"text": node.text, "reason": str(node.reason), "detail": node.detail})
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
