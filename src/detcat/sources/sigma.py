"""SigmaHQ rules (YAML) -> Rule, through pySigma.

pySigma reads each rule and applies its value modifiers; this module walks the
condition's parse tree and turns each detection into our Expr. YAML is read
with libyaml's C loader when present (pySigma's own loader is pure Python),
then handed to ``SigmaRule.from_dict``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from sigma.conditions import (
    ConditionAND,
    ConditionIdentifier,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionSelector,
    SigmaCondition,
)
from sigma.exceptions import SigmaError
from sigma.modifiers import modifier_mapping
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import (
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
)

from detcat.languages import wildcards
from detcat.languages.wildcards import Wild
from detcat.model import (
    MAX_DEPTH,
    Expr,
    Not,
    Op,
    Opaque,
    Predicate,
    Problem,
    QueryError,
    Reason,
    Rule,
    Stage,
    StageRole,
    and_,
    or_,
    value_text,
)
from detcat.sources import files
from detcat.sources.files import SourceFileError
from detcat.sources.registry import ANY, Hints, Vendor
from detcat.tables import EVENT_SOURCES, load

VENDOR = "sigma"
UPSTREAM = "https://github.com/SigmaHQ/sigma/blob/master/"
INACTIVE_DIRS = ("deprecated", "unsupported")

_MODIFIER_NAMES = {cls: name for name, cls in reversed(list(modifier_mapping.items()))}
_TECHNIQUE_TAG = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$", re.IGNORECASE)
_COMPARE_OPS = {
    SigmaCompareExpression.CompareOperators.GT: Op.GT,
    SigmaCompareExpression.CompareOperators.GTE: Op.GTE,
    SigmaCompareExpression.CompareOperators.LT: Op.LT,
    SigmaCompareExpression.CompareOperators.LTE: Op.LTE,
}
# Modifiers whose value pySigma re-encodes; we keep the decoded text instead.
_ENCODINGS = {"base64", "base64offset", "wide", "utf16", "utf16le", "utf16be"}


def rule_files(root: Path, include_deprecated: bool = False) -> list[Path]:
    """Every rule file: ``rules*/``, plus deprecated/unsupported on request."""
    dirs = sorted(p for p in root.glob("rules*") if p.is_dir())
    if include_deprecated:
        dirs += [root / d for d in INACTIVE_DIRS if (root / d).is_dir()]
    return [f for d in dirs for f in sorted(d.rglob("*.yml"))]


def read_file(path: Path, root: Path) -> Rule | Problem:
    rel = path.relative_to(root).as_posix()
    try:
        text = files.read_text(path, root)
    except SourceFileError as e:
        return Problem(rel, e.message, e.line, vendor=VENDOR)
    return parse_rule_text(text, rel)


def parse_rule_text(text: str, rel: str = "<text>") -> Rule | Problem:
    """One Sigma rule document -> Rule, or a Problem saying why not."""
    try:
        doc = files.load_yaml(text)
    except SourceFileError as e:
        return Problem(rel, e.message, vendor=VENDOR)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        return Problem(
            rel,
            f"invalid YAML: {getattr(e, 'problem', None) or e}",
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
            vendor=VENDOR,
        )
    if not isinstance(doc, dict):
        return Problem(rel, "not a Sigma rule: the document is not a mapping", vendor=VENDOR)
    if "correlation" in doc:
        return _correlation_rule(doc, text, rel)
    try:
        sr = SigmaRule.from_dict(doc)
        rule = _metadata(sr, doc, text, rel)
        rule.stages = [Stage(name="main", expr=_condition_expr(sr, rule))]
    except SigmaError as e:
        return Problem(rel, f"not a valid Sigma rule: {e}", vendor=VENDOR, rule_id=_id(doc))
    except RecursionError:
        return Problem(rel, "detection nested too deeply", vendor=VENDOR, rule_id=_id(doc))
    except Exception as e:  # pySigma raises plain errors on some malformed shapes
        return Problem(rel, f"not a valid Sigma rule: {type(e).__name__}: {e}", vendor=VENDOR)
    return rule


def _id(doc: dict[str, Any]) -> str:
    return str(doc.get("id") or "")


def _metadata(sr: SigmaRule, doc: dict[str, Any], text: str, rel: str) -> Rule:
    tags = [str(t) for t in sr.tags]
    logsource = {
        k: v for k in ("category", "product", "service") if (v := getattr(sr.logsource, k, None))
    }
    return Rule(
        vendor=VENDOR,
        id=str(sr.id) if sr.id else rel,
        title=sr.title or "",
        source_path=rel,
        language="sigma",
        query=_detection_text(text),
        description=sr.description or "",
        author=sr.author or "",
        status=str(sr.status) if sr.status else "",
        severity=str(sr.level) if sr.level else "",
        type="correlation" if "correlation" in doc else "detection",
        references=[str(r) for r in sr.references or []],
        techniques=techniques_from_tags(tags),
        tags=tags,
        context={"logsource": logsource},
        extra={
            k: doc[k]
            for k in ("falsepositives", "date", "modified", "fields", "related")
            if k in doc
        },
        upstream_url=UPSTREAM + rel,
    )


def techniques_from_tags(tags: list[str]) -> list[str]:
    found = [m.group(1).upper() for t in tags if (m := _TECHNIQUE_TAG.match(t))]
    return list(dict.fromkeys(found))


_TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*)\s*:")
_QUERY_KEYS = {"logsource", "detection", "correlation"}


def top_level_keys(text: str) -> set[str]:
    """The top-level keys of a YAML document, read line by line (no parse)."""
    return {m.group(1) for m in re.finditer(_TOP_KEY.pattern, text, re.MULTILINE)}


def _detection_text(text: str) -> str:
    """The rule's query as its author wrote it (comments included): the
    top-level ``logsource``, ``detection`` and ``correlation`` blocks."""
    keep, out = False, []
    for line in text.splitlines():
        if m := _TOP_KEY.match(line):
            keep = m.group(1) in _QUERY_KEYS
        if keep:
            out.append(line)
    return "\n".join(out).strip() + "\n"


# -- condition ------------------------------------------------------------------


def _condition_expr(sr: SigmaRule, rule: Rule) -> Expr | None:
    detections = sr.detection.detections
    exprs: list[Expr] = []
    for cond in sr.detection.parsed_condition:
        try:
            tree = _parse_tree(cond)
            exprs.append(_condition_node(tree, detections, rule))
        except SigmaError as e:
            detail = _condition_error(e)
            message = f"broken condition {cond.condition!r}: {detail}"
            rule.problems.append(Problem(rule.source_path, message, vendor=VENDOR))
            exprs.append(Opaque(cond.condition, Reason.SYNTAX_ERROR, f"condition: {detail}"))
        except RecursionError:
            # pyparsing and the tree walk recurse once per level: a condition
            # hundreds of parentheses deep is a problem of the rule, not a crash.
            detail = f"condition nested too deeply: detcat reads at most {MAX_DEPTH} levels"
            rule.problems.append(Problem(rule.source_path, detail, vendor=VENDOR))
            exprs.append(Opaque(cond.condition[:300], Reason.SYNTAX_ERROR, detail))
    # Several conditions in one rule (a list) are alternatives.
    return or_(*exprs) if exprs else None


# Condition text -> pySigma's parse tree. pySigma parses each text once but hands
# every rule a deep copy (its postprocessing mutates the tree), which costs more
# than the parse; detcat only reads the tree, so rules share one per text.
_TREES: dict[str, ConditionItem] = {}
_MAX_TREES = 10_000  # a corpus has a few thousand distinct conditions


def _parse_tree(cond: SigmaCondition) -> ConditionItem:
    tree = _TREES.get(cond.condition)
    if tree is None:
        tree = cond.parse(postprocess=False)
        if len(_TREES) >= _MAX_TREES:
            _TREES.clear()
        _TREES[cond.condition] = tree
    return tree


# pyparsing's expectations, in the words of the Sigma specification.
_CONDITION_EXPECTED = (
    ("'of'", "a detection name, '1 of …', 'all of …' or 'not'"),
    ("Unbalanced parentheses", "a closing ')' or a detection name after the operator"),
    ("end of text", "'and', 'or' or the end of the condition"),
)


def _condition_error(e: SigmaError) -> str:
    """A condition syntax error without grammar token names, with its column."""
    cause = e.__context__
    loc, text, msg = (getattr(cause, k, None) for k in ("loc", "pstr", "msg"))
    if not isinstance(loc, int) or not isinstance(text, str):
        return str(e)
    want = next((words for key, words in _CONDITION_EXPECTED if key in str(msg)), None)
    rest = text[loc:].split()
    where = f"found {rest[0]!r}" if rest else "found the end of the condition"
    return f"expected {want or msg}, {where} (column {loc + 1})"


def _condition_node(node: Any, detections: dict[str, SigmaDetection], rule: Rule) -> Expr:
    match node:
        case ConditionAND():
            return and_(*(_condition_node(a, detections, rule) for a in node.args))
        case ConditionOR():
            return or_(*(_condition_node(a, detections, rule) for a in node.args))
        case ConditionNOT():
            return Not(_condition_node(node.args[0], detections, rule))
        case ConditionIdentifier():
            name = node.args[0]
            if name not in detections:
                return _broken(rule, f"condition names an undefined detection {name!r}")
            return _detection(detections[name])
        case ConditionSelector():
            names = [c.args[0] for c in node.resolve_referenced_detections(_Dets(detections))]
            if not names:
                return _broken(rule, f"'{node.args[0]} of {node.pattern}' matches no detection")
            parts = [_detection(detections[n]) for n in names]
            return and_(*parts) if node.cond_class is ConditionAND else or_(*parts)
    if isinstance(node, ConditionItem):
        return Opaque(
            str(node), Reason.UNSUPPORTED_SYNTAX, f"condition element {type(node).__name__}"
        )
    return Opaque(str(node), Reason.UNSUPPORTED_SYNTAX, "unknown condition element")


class _Dets:
    """The shape ``ConditionSelector.resolve_referenced_detections`` expects."""

    def __init__(self, detections: dict[str, SigmaDetection]):
        self.detections = detections


def _broken(rule: Rule, message: str) -> Opaque:
    rule.problems.append(Problem(rule.source_path, message, vendor=VENDOR, rule_id=rule.id))
    return Opaque("", Reason.SYNTAX_ERROR, message)


# -- detections -------------------------------------------------------------------


def _detection(det: SigmaDetection) -> Expr:
    parts = [
        _detection(item) if isinstance(item, SigmaDetection) else _item(item)
        for item in det.detection_items
    ]
    return and_(*parts) if det.item_linking is ConditionAND else or_(*parts)


def _item(item: SigmaDetectionItem) -> Expr:
    mods = [_MODIFIER_NAMES.get(m, m.__name__) for m in item.modifiers]
    syntax = "|" + "|".join(mods) if mods else "="
    if _ENCODINGS.intersection(mods):
        values: list[Any] = list(item.original_value)
        op = _op_for_modifiers(mods)
        preds = [_encoded(item.field, op, v, syntax) for v in values]
    else:
        preds = [_value(item.field, v, syntax) for v in item.value]
    combine = and_ if item.value_linking is ConditionAND else or_
    if not preds:
        return Opaque(str(item.field), Reason.EMPTY, "detection item without values")
    # |neq negates the whole item (pySigma: NOT of the values' Or/And)
    return Not(combine(*preds)) if item.negated else combine(*preds)


def _op_for_modifiers(mods: list[str]) -> Op:
    for name, op in (("contains", Op.CONTAINS), ("startswith", Op.STARTS_WITH)):
        if name in mods:
            return op
    return Op.ENDS_WITH if "endswith" in mods else Op.EQ


def _encoded(field: str | None, op: Op, value: Any, syntax: str) -> Expr:
    """base64/utf16 families: the decoded text is the indicator; syntax says how."""
    text = value.to_plain() if isinstance(value, SigmaString) else str(value)
    return Predicate(field, op, text, syntax)


def _value(field: str | None, v: Any, syntax: str) -> Expr:
    match v:
        case SigmaExpansion():
            return or_(*(_value(field, x, syntax) for x in v.values))
        case SigmaString():
            return _string(field, v, syntax)
        case SigmaRegularExpression():
            return _regex(field, v, syntax)
        case SigmaCIDRExpression():
            return Predicate(field, Op.CIDR, v.cidr, syntax)
        case SigmaCompareExpression() if v.op in _COMPARE_OPS:
            return Predicate(field, _COMPARE_OPS[v.op], v.number.number, syntax)
        case SigmaCompareExpression():  # NEQ
            return Not(Predicate(field, Op.EQ, v.number.number, syntax))
        case SigmaTimestampPart():  # before SigmaNumber, its base class
            text = f"{field}{syntax}: {v.number}"
            return Opaque(text, Reason.UNSUPPORTED_MODIFIER, f"timestamp {v.timestamp_part.name}")
        case SigmaNumber() | SigmaBool() if field is None:  # a keyword: its text is searched
            plain = v.number if isinstance(v, SigmaNumber) else v.boolean
            return Predicate(None, Op.KEYWORD, value_text(plain), syntax)
        case SigmaBool():
            return Predicate(field, Op.EQ, v.boolean, syntax)
        case SigmaNumber():
            return Predicate(field, Op.EQ, v.number, syntax)
        case SigmaNull():
            return Predicate(field, Op.IS_NULL, None, syntax)
        case SigmaExists():
            p = Predicate(field, Op.EXISTS, True, syntax)
            return p if v.exists else Not(p)
        case SigmaFieldReference():
            return Predicate(field, Op.FIELD_REF, v.field, syntax)
    return Opaque(
        f"{field}{syntax}: {v}", Reason.UNSUPPORTED_SYNTAX, f"value type {type(v).__name__}"
    )


# |re|m and |re|s change what the pattern means: kept as inline flags (RE2 and PCRE
# read both); |re|i is the predicate's case-insensitivity.
_REGEX_FLAGS = {"MULTILINE": "m", "DOTALL": "s"}


def _regex(field: str | None, v: SigmaRegularExpression, syntax: str) -> Predicate:
    flags = {f.name for f in v.flags}
    inline = "".join(c for name, c in _REGEX_FLAGS.items() if name in flags)
    pattern = f"(?{inline}){v.regexp}" if inline else str(v.regexp)
    return Predicate(field, Op.REGEX_MATCH, pattern, syntax, "IGNORECASE" not in flags)


def _string(field: str | None, s: SigmaString, syntax: str) -> Expr:
    if s.contains_placeholder():
        return _placeholder(field, s, syntax)
    cased = isinstance(s, SigmaCasedString)
    pattern = tuple(_WILD.get(p, p) for p in s.s)  # type: ignore[call-overload]
    if field is None:
        return Predicate(None, Op.KEYWORD, wildcards.keyword(pattern), syntax, cased)
    op, value = wildcards.classify(pattern)
    if op is Op.EXISTS:
        return Predicate(field, op, True, syntax)
    return Predicate(field, op, value, syntax, cased)


def _placeholder(field: str | None, s: SigmaString, syntax: str) -> Expr:
    """``%name%`` (the expand modifier) names a list the deployer fills in, the
    way a YARA-L ``%reference_list`` does: an ``in_list`` predicate naming it.
    A placeholder embedded in other text has no such reading: Opaque."""
    core = [p for p in s.s if p is not SpecialChars.WILDCARD_MULTI]
    if len(core) == 1 and isinstance(core[0], Placeholder):
        return Predicate(field, Op.IN_LIST, core[0].name, syntax)
    names = ", ".join(p.name for p in s.s if isinstance(p, Placeholder))
    return Opaque(f"{field}{syntax}: {s}", Reason.PLACEHOLDER, f"%{names}% inside a value")


_WILD = {SpecialChars.WILDCARD_MULTI: Wild.ANY, SpecialChars.WILDCARD_SINGLE: Wild.ONE}


# -- correlations -----------------------------------------------------------------


def _correlation_rule(doc: dict[str, Any], text: str, rel: str) -> Rule | Problem:
    """Correlation rules reference other rules; each reference is a stage."""
    corr = doc.get("correlation")
    if not isinstance(corr, dict):
        return Problem(rel, "correlation is not a mapping", vendor=VENDOR, rule_id=_id(doc))
    refs = corr.get("rules") or []
    refs = [refs] if isinstance(refs, str) else list(refs)
    tags = [str(t) for t in doc.get("tags") or []]
    params = {k: corr[k] for k in ("type", "group-by", "timespan", "condition") if k in corr}
    return Rule(
        vendor=VENDOR,
        id=_id(doc) or rel,
        title=str(doc.get("title") or ""),
        source_path=rel,
        language="sigma",
        query=_detection_text(text),
        description=str(doc.get("description") or ""),
        author=str(doc.get("author") or ""),
        status=str(doc.get("status") or ""),
        severity=str(doc.get("level") or ""),
        type="correlation",
        references=[str(r) for r in doc.get("references") or []],
        techniques=techniques_from_tags(tags),
        tags=tags,
        stages=[
            Stage(name=f"rule:{r}", role=StageRole.CORRELATION, params={"rule": str(r), **params})
            for r in refs
        ],
        upstream_url=UPSTREAM + rel,
    )


# -- the vendor ---------------------------------------------------------------------


class Sigma(Vendor):
    """SigmaHQ rules: one language (the rule itself), scopes from ``logsource``."""

    name = VENDOR
    display_name = "Sigma"
    languages = ("sigma",)

    rule_files = staticmethod(rule_files)
    read_file = staticmethod(read_file)

    def parse_text(self, language: str, text: str) -> list[Rule]:
        got = parse_rule_text(text)
        if isinstance(got, Problem):
            raise QueryError(got.message, got.line, got.column)
        if got.problems and not got.has_query:
            first = got.problems[0]
            raise QueryError(first.message, first.line, first.column)
        return [got]

    def draft_format(self, path: Path, text: str) -> str | None:
        yaml_file = path.suffix.lower() in (".yml", ".yaml")
        rule_keys = {"detection", "correlation"}  # a Splunk detection has "search"
        return VENDOR if yaml_file and rule_keys & top_level_keys(text) else None

    def scopes(self, rule: Rule, stage: Stage) -> tuple[str, ...]:
        return logsource_scopes(rule.context.get("logsource") or {})

    def hints(self, rule: Rule, stage: Stage, classes: Sequence[str]) -> Hints:
        return logsource_hints(rule.context.get("logsource") or {})

    def event_scopes(
        self, raw: Mapping[str, Sequence[Any]], log_scopes: tuple[str, ...]
    ) -> tuple[str, ...]:
        return log_scopes  # Sigma names raw Windows fields as the event spells them

    def catalog_event_scopes(self, event_id: str) -> tuple[str, ...]:
        return _catalog_event_scopes(event_id)


def logsource_scopes(logsource: dict[str, Any]) -> tuple[str, ...]:
    keys = ("category", "service", "product")
    return tuple(f"{k}:{logsource[k]}" for k in keys if logsource.get(k)) + (ANY,)


def _event_sources() -> dict[str, Any]:
    return load(EVENT_SOURCES)[VENDOR]


def logsource_hints(logsource: dict[str, Any]) -> Hints:
    table = _event_sources()
    by_product = table["category"].get(logsource.get("category") or "", {})
    implied = by_product.get(logsource.get("product") or "*", by_product.get("*", []))
    service, product = logsource.get("service"), logsource.get("product")
    provider = table["service"].get(f"{product}/{service}") or table["service"].get(service or "")
    return Hints(tuple(implied), (provider,) if provider else ())


@cache
def _catalog_event_scopes(event_id: str) -> tuple[str, ...]:
    """The log-source categories that imply the event, then the services of its
    provider (the inverse of ``logsource_hints``)."""
    table = _event_sources()
    categories = [
        f"category:{cat}"
        for cat, by_product in table["category"].items()
        if any(event_id in ids for ids in by_product.values())
    ]
    provider = event_id.split(":", 1)[0]
    services = [
        f"service:{s.rsplit('/', 1)[-1]}" for s, p in table["service"].items() if p == provider
    ]
    return (*categories, *services)
