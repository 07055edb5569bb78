"""elastic/detection-rules (TOML) -> Rule.

Each ``.toml`` under ``rules/`` (``_deprecated/`` only on request) and
``rules_building_block/`` is one rule. The query goes through the parser of
its language (KQL, EQL, ES|QL); the rule type adds what the query does not
say:

- ``threshold``: a second, ``aggregate`` stage whose predicates are
  ``_count >= N`` and each ``cardinality(field) >= M`` (``params``: group-by
  fields, threshold, cardinality).
- ``new_terms``: a second ``aggregate`` stage with no predicate recording the
  new-terms fields and history window.
- ``threat_match``: the indicator mapping ANDed to the query, one ``in_list``
  predicate per mapped field (``kind="lookup:threat_match"``).
- ``machine_learning``: no query and no stages (language ``none``).

Kibana filters (``[[rule.filters]]``) are part of the logic: ANDed with the
query, ``negate = true`` ones under a ``Not`` (so they count as exclusions),
disabled ones ignored.
"""

from __future__ import annotations

import importlib
import json
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import rtoml

from detcat.languages import esql, kql
from detcat.model import (
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
)
from detcat.sources import files
from detcat.sources.files import SourceFileError
from detcat.sources.registry import ANY, Hints, Vendor, query_rule, tagged
from detcat.tables import EVENT_SOURCES, load

VENDOR = "elastic"
UPSTREAM = "https://github.com/elastic/detection-rules/blob/main/"
RULE_DIRS = ("rules", "rules_building_block")
DEPRECATED_DIR = "_deprecated"
LANGUAGES = {"kuery": "kql", "eql": "eql", "esql": "esql", "lucene": "lucene"}
ATTACK = "MITRE ATT&CK"
_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")
_QUERY_KEY = re.compile(r"^query\s*=\s*(?:'''|\"\"\"|'|\")\n?", re.MULTILINE)
_EXTRA_KEYS = (
    "risk_score",
    "exceptions_list",
    "machine_learning_job_id",
    "anomaly_threshold",
    "threat_index",
    "threat_query",
    "threat_language",
    "threat_indicator_path",
    "threat_mapping",
    "threat_filters",
    "new_terms",
    "threshold",
    "building_block_type",
    "filters",
)


def rule_files(root: Path, include_deprecated: bool = False) -> list[Path]:
    """Every rule file, sorted; ``rules/_deprecated/`` only on request."""
    files: list[Path] = []
    for d in RULE_DIRS:
        for f in sorted((root / d).rglob("*.toml")):
            rel = f.relative_to(root / d).parts
            if include_deprecated or rel[0] != DEPRECATED_DIR:
                files.append(f)
    return files


def read_file(path: Path, root: Path) -> Rule | Problem:
    rel = path.relative_to(root).as_posix()
    try:
        raw = files.read_text(path, root)
        doc = load_toml(raw)
        files.check_shape(doc)
    except tomllib.TOMLDecodeError as e:
        return _toml_problem(rel, raw, e)
    except RecursionError:
        return Problem(rel, f"TOML nests deeper than {files.MAX_NESTING} levels", vendor=VENDOR)
    except SourceFileError as e:
        return Problem(rel, e.message, e.line, vendor=VENDOR)
    rule = doc.get("rule")
    if not isinstance(rule, dict) or not rule.get("rule_id"):
        return Problem(rel, "no [rule] table with a rule_id", vendor=VENDOR)
    return build_rule(rule, doc.get("metadata") or {}, rel, raw)


def load_toml(raw: str) -> dict[str, Any]:
    """A TOML document: rtoml (Rust) reads the rule files six times faster than
    tomllib, into the same values (tests/sources/test_elastic_toml.py); any text it
    refuses (it also stops at 80 levels of nesting) tomllib reads again, so that a
    bad file gets tomllib's message and position. So does a text that may hold a
    date-time: rtoml gives those another ``tzinfo`` class (rule files write dates
    as strings)."""
    if not _TOML_DATETIME.search(raw):
        try:
            return dict(rtoml.loads(raw))
        except Exception:
            pass
    return tomllib.loads(raw)


_TOML_DATETIME = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d")


def _toml_problem(rel: str, raw: str, e: tomllib.TOMLDecodeError) -> Problem:
    """tomllib says ``(at line L, column C)`` or ``(at end of document)``."""
    text = str(e)
    m = _TOML_POSITION.search(text)
    if m:
        line, col = int(m.group(1)), int(m.group(2))
    else:
        line, col = raw.count("\n") + 1, len(raw) - raw.rfind("\n")
    message = _TOML_POSITION.sub("", text).replace("(at end of document)", "").strip()
    return Problem(rel, f"TOML: {message}", line, col, VENDOR)


def build_rule(rule: dict[str, Any], metadata: dict[str, Any], rel: str, raw: str = "") -> Rule:
    rule_type = str(rule.get("type") or "")
    language = "none" if rule_type == "machine_learning" else _language(rule)
    out = Rule(
        vendor=VENDOR,
        id=str(rule["rule_id"]),
        title=str(rule.get("name") or ""),
        source_path=rel,
        language=language,
        query=str(rule.get("query") or ""),
        description=str(rule.get("description") or ""),
        author=", ".join(_strings(rule.get("author"))),
        status=str(metadata.get("maturity") or ""),
        severity=str(rule.get("severity") or ""),
        type=rule_type,
        references=_strings(rule.get("references")),
        techniques=techniques(rule.get("threat") or []),
        tags=_strings(rule.get("tags")),
        context={
            "index": _strings(rule.get("index")),
            "building_block": "building_block_type" in rule,
            "rule_type": rule_type,
            "integration": _strings(metadata.get("integration")),
        },
        extra=_extra(rule, metadata),
        upstream_url=UPSTREAM + rel,
    )
    if out.query or language != "none":
        _add_stages(out, rule, raw)
    return out


def _language(rule: dict[str, Any]) -> str:
    lang = str(rule.get("language") or "")
    return LANGUAGES.get(lang, lang or "none")


def _strings(v: Any) -> list[str]:
    if v is None:
        return []
    return [str(x) for x in v] if isinstance(v, list) else [str(v)]


def techniques(threats: list[dict[str, Any]]) -> list[str]:
    """Technique and sub-technique ids of the ATT&CK entries, in file order."""
    ids: list[str] = []
    for threat in threats:
        if threat.get("framework") != ATTACK:
            continue
        for tech in threat.get("technique") or []:
            ids.append(str(tech.get("id")))
            ids.extend(str(sub.get("id")) for sub in tech.get("subtechnique") or [])
    return list(dict.fromkeys(i for i in ids if i and i != "None"))


def _extra(rule: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    extra = {k: rule[k] for k in _EXTRA_KEYS if k in rule}
    extra["maturity"] = metadata.get("maturity", "")
    for k in ("creation_date", "updated_date"):
        if k in metadata:
            extra[k] = metadata[k]
    return extra


# -- stages -------------------------------------------------------------------------------


def _add_stages(out: Rule, rule: dict[str, Any], raw: str) -> None:
    try:
        stages = parse_query(out.language, out.query)
    except QueryError as e:
        _fail(out, e.message, *_file_position(raw, e))
        return
    except Exception as e:  # a parser bug must not abort a build: record it
        _fail(out, f"{out.language} parser failed: {type(e).__name__}: {e}", None, None)
        return
    filters = filters_expr(rule.get("filters") or [])
    if filters is not None:
        for stage in stages:
            if stage.role is StageRole.EVENTS:
                stage.expr = filters if stage.expr is None else and_(stage.expr, filters)
    extra = _TYPE_STAGES.get(out.type)
    out.stages = extra(stages, rule) if extra else stages


def _fail(out: Rule, message: str, line: int | None, col: int | None) -> None:
    out.problems.append(Problem(out.source_path, message, line, col, VENDOR, out.id))
    out.stages = [Stage(expr=Opaque(out.query, Reason.SYNTAX_ERROR, message))]


def parse_query(language: str, query: str) -> list[Stage]:
    """The stages of one query; ``QueryError`` when it cannot be read."""
    if language == "kql":
        return [Stage(expr=kql.parse(query))]
    if language == "esql":
        return esql.parse(query)
    if language == "eql":
        return _eql().parse(query)  # type: ignore[no-any-return]
    return [Stage(expr=Opaque(query, Reason.UNSUPPORTED_LANGUAGE, language or "unknown"))]


def _eql() -> Any:
    """The EQL parser, imported when first needed."""
    try:
        return importlib.import_module("detcat.languages.eql")
    except ImportError as e:
        raise QueryError(f"EQL parser unavailable: {e}") from None


def _file_position(raw: str, e: QueryError) -> tuple[int | None, int | None]:
    """A query error's position in the TOML file (the query starts after ``query =``)."""
    m = _QUERY_KEY.search(raw)
    if m is None or e.line is None:
        return e.line, e.column
    start_line = raw.count("\n", 0, m.end()) + 1
    start_col = m.end() - (raw.rfind("\n", 0, m.end()) + 1)
    col = (e.column or 0) + (start_col if e.line == 1 else 0)
    return start_line + e.line - 1, col or None


def _threshold(stages: list[Stage], rule: dict[str, Any]) -> list[Stage]:
    cfg = rule.get("threshold") or {}
    value = cfg.get("value")
    params = {
        "by": _strings(cfg.get("field")),
        "threshold": value,
        "cardinality": [dict(c) for c in cfg.get("cardinality") or []],
        # The look-back of each run ("now-9m"): the window the count is taken over.
        "window": str(rule.get("from") or "now-6m"),
    }
    # the condition is the count and every cardinality bound: "cardinality of
    # destination.port >= 250" is what a port-scan rule tests, not "_count >= 1"
    tests = [Predicate("_count", Op.GTE, value, "threshold")] if value is not None else []
    tests += [
        Predicate(f"cardinality({c['field']})", Op.GTE, c["value"], "cardinality", kind="derived")
        for c in params["cardinality"]
        if c.get("field") and c.get("value") is not None
    ]
    expr = and_(*tests) if tests else None
    return [*stages, Stage("threshold", expr, StageRole.AGGREGATE, params=params)]


def _new_terms(stages: list[Stage], rule: dict[str, Any]) -> list[Stage]:
    cfg = rule.get("new_terms") or {}
    params: dict[str, Any] = {cfg.get("field", "new_terms_fields"): _strings(cfg.get("value"))}
    for item in cfg.get("history_window_start") or []:
        params[item.get("field", "history_window_start")] = item.get("value")
    return [*stages, Stage("new_terms", None, StageRole.AGGREGATE, params=params)]


def _threat_match(stages: list[Stage], rule: dict[str, Any]) -> list[Stage]:
    """Each mapping is an AND of ``event field in indicator field``; any one matches."""
    mappings = []
    for mapping in rule.get("threat_mapping") or []:
        entries = [
            Predicate(
                str(e.get("field")),
                Op.IN_LIST,
                str(e.get("value")),
                "threat_mapping",
                kind="lookup:threat_match",
            )
            for e in mapping.get("entries") or []
        ]
        if entries:
            mappings.append(and_(*entries))
    if mappings and stages:
        main = stages[0]
        main.expr = or_(*mappings) if main.expr is None else and_(main.expr, or_(*mappings))
    return stages


_TYPE_STAGES: dict[str, Callable[[list[Stage], dict[str, Any]], list[Stage]]] = {
    "threshold": _threshold,
    "new_terms": _new_terms,
    "threat_match": _threat_match,
}


# -- Kibana filters -----------------------------------------------------------------------


def filters_expr(filters: list[dict[str, Any]]) -> Expr | None:
    """The AND of the enabled filters, negated ones under ``Not``."""
    parts: list[Expr] = []
    for f in filters:
        meta = f.get("meta") or {}
        if meta.get("disabled"):
            continue
        expr = es_query(_filter_query(f))
        parts.append(Not(expr) if meta.get("negate") else expr)
    return and_(*parts) if parts else None


def _filter_query(f: dict[str, Any]) -> dict[str, Any]:
    """Old filters carry the query beside ``meta`` (``{"exists": …}``), new ones
    under ``query``."""
    if isinstance(f.get("query"), dict):
        return f["query"]  # type: ignore[no-any-return]
    return {k: v for k, v in f.items() if k not in ("meta", "$state")}


def es_query(q: dict[str, Any]) -> Expr:
    """One Elasticsearch query DSL clause (as Kibana filters use it) -> Expr."""
    if len(q) != 1:
        return Opaque(
            json.dumps(q, sort_keys=True),
            Reason.UNSUPPORTED_SYNTAX,
            "Kibana filter with several clauses",
        )
    kind, body = next(iter(q.items()))
    handler = _DSL.get(kind)
    expr = handler(body) if handler and isinstance(body, dict) else None
    return (
        expr
        if expr is not None
        else Opaque(json.dumps(q), Reason.UNSUPPORTED_SYNTAX, f"Kibana filter {kind}")
    )


def _field_value(body: dict[str, Any], key: str) -> tuple[str, Any, dict[str, Any]] | None:
    """``{field: value}`` or ``{field: {key: value, …}}`` -> (field, value, options)."""
    if len(body) != 1:
        return None
    field, v = next(iter(body.items()))
    if isinstance(v, dict):
        return (str(field), v.get(key), v) if key in v else None
    return str(field), v, {}


def _exists(body: dict[str, Any]) -> Expr | None:
    return Predicate(str(body["field"]), Op.EXISTS, True, "exists") if "field" in body else None


def _phrase(syntax: str) -> Callable[[dict[str, Any]], Expr | None]:
    def build(body: dict[str, Any]) -> Expr | None:
        fv = _field_value(body, "query")
        return Predicate(fv[0], Op.EQ, fv[1], syntax) if fv else None

    return build


def _term(body: dict[str, Any]) -> Expr | None:
    fv = _field_value(body, "value")
    if fv is None:
        return None
    return Predicate(fv[0], Op.EQ, fv[1], "term", not fv[2].get("case_insensitive", False))


def _terms(body: dict[str, Any]) -> Expr | None:
    items = [(f, v) for f, v in body.items() if isinstance(v, list)]
    if len(items) != 1:
        return None
    field, values = items[0]
    return or_(*(Predicate(field, Op.EQ, v, "terms", True) for v in values)) if values else None


def _wildcard(body: dict[str, Any]) -> Expr | None:
    fv = _field_value(body, "value")
    if fv is None or not isinstance(fv[1], str):
        return None
    sensitive = not fv[2].get("case_insensitive", False)
    pred = esql.like_predicate(fv[0], fv[1], sensitive)
    return Predicate(pred.field_raw, pred.op, pred.value, "wildcard", pred.case_sensitive)


def _prefix(body: dict[str, Any]) -> Expr | None:
    fv = _field_value(body, "value")
    if fv is None:
        return None
    return Predicate(fv[0], Op.STARTS_WITH, fv[1], "prefix", not fv[2].get("case_insensitive"))


_RANGE = {"gt": Op.GT, "gte": Op.GTE, "lt": Op.LT, "lte": Op.LTE}


def _range(body: dict[str, Any]) -> Expr | None:
    if len(body) != 1:
        return None
    field, bounds = next(iter(body.items()))
    if not isinstance(bounds, dict):
        return None
    preds = [Predicate(field, _RANGE[k], v, "range") for k, v in bounds.items() if k in _RANGE]
    return and_(*preds) if preds else None


def _bool(body: dict[str, Any]) -> Expr | None:
    parts: list[Expr] = []
    for key in ("must", "filter"):
        parts.extend(es_query(c) for c in _clauses(body.get(key)))
    should = [es_query(c) for c in _clauses(body.get("should"))]
    if should:
        parts.append(or_(*should))
    must_not = [es_query(c) for c in _clauses(body.get("must_not"))]
    if must_not:
        parts.append(Not(or_(*must_not)))
    return and_(*parts) if parts else None


def _clauses(v: Any) -> list[dict[str, Any]]:
    if isinstance(v, dict):
        return [v]
    return [c for c in v or [] if isinstance(c, dict)]


_DSL: dict[str, Callable[[dict[str, Any]], Expr | None]] = {
    "exists": _exists,
    "match_phrase": _phrase("match_phrase"),
    "match": _phrase("match"),
    "term": _term,
    "terms": _terms,
    "wildcard": _wildcard,
    "prefix": _prefix,
    "range": _range,
    "bool": _bool,
}


# -- the vendor ---------------------------------------------------------------------

# Multi-field suffixes: a sub-field of the ECS field, same meaning.
_SUBFIELD = re.compile(r"\.(?:caseless|text|keyword|wildcard)$")


class Elastic(Vendor):
    """elastic/detection-rules: ECS field names; scopes and events from the EQL
    category and the index patterns."""

    name = VENDOR
    display_name = "Elastic"
    languages = ("kql", "eql", "esql")
    full_match_languages = frozenset({"kql", "eql", "esql"})  # Lucene regexp, RLIKE
    language_engines = {"eql": "sequences"}
    rule_type_engines = {"threshold": "threshold"}
    computed_readers = {"esql": "esql_eval"}
    writes_ecs = True
    dotted_event_names = True

    rule_files = staticmethod(rule_files)
    read_file = staticmethod(read_file)

    def parse_text(self, language: str, text: str) -> list[Rule]:
        return [query_rule(VENDOR, language, parse_query(language, text))]

    reads_rule_file_drafts = True

    def draft_format(self, path: Path, text: str) -> str | None:
        return VENDOR if path.suffix.lower() == ".toml" else None

    def read_draft(self, path: Path, text: str) -> list[Rule | Problem]:
        return [read_file(path.resolve(), path.resolve().parent)]

    def scopes(self, rule: Rule, stage: Stage) -> tuple[str, ...]:
        return tagged("category", [stage.params.get("category")])

    def hints(self, rule: Rule, stage: Stage, classes: Sequence[str]) -> Hints:
        category = stage.params.get("category")
        return index_hints(rule_index(rule, stage), category, list(classes))

    def strip_subfield(self, raw: str) -> str:
        return _SUBFIELD.sub("", raw)

    def event_scopes(
        self, raw: Mapping[str, Sequence[Any]], log_scopes: tuple[str, ...]
    ) -> tuple[str, ...]:
        return (ANY,)


def _event_sources() -> dict[str, Any]:
    return load(EVENT_SOURCES)[VENDOR]


@cache
def _index_prefixes() -> list[tuple[str, list[str]]]:
    items = _event_sources()["index"].items()
    return sorted(items, key=lambda kv: -len(kv[0]))  # longest prefix first


def index_providers(patterns: Iterable[str]) -> list[str]:
    out: list[str] = []
    for pattern in patterns:
        for prefix, providers in _index_prefixes():
            if pattern.startswith(prefix):
                out.extend(providers)
                break
    return list(dict.fromkeys(out))


def rule_index(rule: Rule, stage: Stage) -> list[str]:
    """Index patterns: the rule's, else those of the ES|QL ``FROM`` command."""
    found = rule.context.get("index") or stage.params.get("from")
    if not found and rule.stages:
        found = rule.stages[0].params.get("from")
    return [str(x) for x in found or []]


def _index_categories(index: Iterable[str]) -> list[str]:
    by_prefix = _event_sources().get("index_category", {})
    found = (c for pattern in index for pre, c in by_prefix.items() if pattern.startswith(pre))
    return list(dict.fromkeys(found))


def index_hints(index: list[str], category: str | None, classes: list[str]) -> Hints:
    providers = index_providers(index)
    table = _event_sources()["category"]
    cats = [category] if category and category != "any" else [c for c in classes if c in table]
    cats = cats or _index_categories(index)
    implied: list[str] = []
    for cat in cats:
        keyed = [f"{cat}/{t}" for t in classes if f"{cat}/{t}" in table] or [cat]
        for key in keyed:
            for provider in providers:
                implied.extend(table.get(key, {}).get(provider, []))
    return Hints(tuple(dict.fromkeys(implied)), tuple(providers))
