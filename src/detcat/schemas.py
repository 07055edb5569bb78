"""The shapes of detcat's JSON answers: the web API's OpenAPI schema and the MCP
server's tool output schemas.

The CLI, the web API and the MCP server return the dicts of ``guide``,
``search.py`` and ``web/queries.py`` as they are (the same bytes the CLI prints);
these models only document them. Every model forbids unknown keys, and the tests
validate real responses against them, so the documentation cannot drift from the
data.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from detcat.guide.text import schema as guide_text

Scalar = str | int | float | bool | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# -- predicate trees (model.expr_to_json) -------------------------------------


class PredicateNode(_Strict):
    field: str | None = Field(description="canonical field (ECS name or vendor:raw)")
    field_raw: str | None = Field(description="the field as the vendor wrote it")
    op: str
    value: Scalar
    syntax: str = Field(description="the source's own operator spelling")
    case_sensitive: bool
    kind: str | None = Field(None, description="derived, implied or lookup:<name>")


class OpaqueNode(_Strict):
    opaque: str = Field(description="source text the parser did not turn into predicates")
    reason: str = Field(description="why, one of a fixed vocabulary (detcat.model.Reason)")
    detail: str = Field("", description="the particulars: which command, function, error")


class AndNode(_Strict):
    and_: list[ExprNode] = Field(alias="and")


class OrNode(_Strict):
    or_: list[ExprNode] = Field(alias="or")


class NotNode(_Strict):
    not_: ExprNode = Field(alias="not")


ExprNode = AndNode | OrNode | NotNode | OpaqueNode | PredicateNode
for _m in (AndNode, OrNode, NotNode):
    _m.model_rebuild()


# -- shared rows ----------------------------------------------------------------


class RuleRef(_Strict):
    vendor: str
    id: str


class RuleRow(_Strict):
    vendor: str
    id: str
    title: str
    techniques: list[str]


class Event(_Strict):
    id: str
    provider: str | None
    event_id: str | None
    title: str | None


# -- /api/techniques/{id}: guide.technique_guide --------------------------------


class TechniqueRef(_Strict):
    id: str
    name: str | None


class TechniqueHeader(_Strict):
    id: str
    name: str | None
    description: str | None
    tactics: list[str]
    subtechniques: list[TechniqueRef]
    parent: str | None
    url: str
    revoked: bool
    deprecated: bool
    known: bool


class GuideRule(RuleRow):
    language: str | None
    severity: str | None
    fully_parsed: bool


class EventCount(Event):
    rules: int
    vendors: list[str] = Field(description="vendors whose rules read the event, in page order")


class FieldRow(_Strict):
    field: str
    aliases: dict[str, list[str | None]] = Field(description="vendor -> fields as written")
    rules: int
    operators: dict[str, int] = Field(description="operator -> rules using it on the field")
    samples: list[str | None] = Field(
        description="values most rules check: a starting point, not an exhaustive list"
    )


class Exclusion(_Strict):
    field: str | None
    op: str
    value: str | None = Field(description="as most rules write it (case variants are one value)")
    rules: int = Field(description="rules under the technique")
    rule_ids: list[str]
    rule_refs: list[RuleRef]
    implied: bool = Field(description="only normalization's implied predicates check it")
    selector: bool = Field(
        description="the field chooses the kind of event or platform: a scope, not an indicator"
    )


class Indicator(Exclusion):
    corpus_reach: int = Field(
        description="rules anywhere in the catalog (any technique) checking the same field, "
        "operator and value; high reach: noisy on its own, combine it with another condition"
    )
    specific: bool = Field(description="no rule outside the technique checks it")


class AnalyticSource(_Strict):
    name: str = Field(description="ATT&CK's log source name (WinEventLog:Sysmon)")
    channel: str
    events: list[str] = Field(description="catalog events it maps to (empty: unmapped)")
    covered: bool = Field(description="a rule of the technique reads one of those events")
    vendors: list[str]


class Analytic(_Strict):
    id: str
    strategy_id: str
    strategy: str
    platforms: list[str]
    description: str
    log_sources: list[AnalyticSource]


class SourceRef(_Strict):
    name: str
    channel: str
    events: list[str]
    analytics: list[str]


class DetectionSummary(_Strict):
    analytics: int
    log_sources: int
    mapped: int
    covered: int


class AttackDetection(_Strict):
    summary: DetectionSummary
    gap: list[SourceRef] = Field(description="mapped log sources no rule of the technique reads")
    unmapped: list[SourceRef]
    analytics: list[Analytic]


class TechniqueGuide(_Strict):
    __doc__ = guide_text("guide")
    technique: TechniqueHeader
    vendors: dict[str, int] = Field(description="vendor -> rules, in page order (Sigma first)")
    rules: list[GuideRule] = Field(description=guide_text("rules"))
    events: list[EventCount] = Field(description=guide_text("events"))
    fields: list[FieldRow] = Field(description=guide_text("fields"))
    field_count: int = Field(description="distinct fields the rules filter on")
    indicators: list[Indicator] = Field(description=guide_text("indicators"))
    indicator_count: int = Field(description="distinct (field, operator, value) combinations")
    exclusions: list[Exclusion] = Field(description=guide_text("exclusions"))
    exclusion_count: int = Field(description="distinct excluded combinations")
    attack_detection: AttackDetection


# -- /api/rules/{vendor}/{id}: guide.rule_detail --------------------------------


class StageJSON(_Strict):
    name: str | None
    role: str | None
    negated: bool
    join_keys: list[str]
    params: dict[str, Any]
    expr: ExprNode | None


class RuleExclusion(_Strict):
    field: str | None
    op: str
    value: str | None


class RuleIndicator(RuleExclusion):
    kind: str
    corpus_reach: int


class OpaqueRow(_Strict):
    stage_idx: int
    text: str | None
    reason: str | None
    detail: str | None


class RuleProblem(_Strict):
    path: str | None
    line: int | None
    col: int | None
    message: str | None


class RuleDetail(_Strict):
    vendor: str
    id: str
    title: str
    description: str | None
    author: str | None
    status: str | None
    severity: str | None
    type: str | None
    language: str | None
    source_path: str | None
    upstream_url: str | None
    query: str | None
    collection: str = Field(description="the sources folder it came from: public or a private name")
    references: list[str]
    tags: list[str]
    context: dict[str, Any]
    extra: dict[str, Any]
    fully_parsed: bool
    techniques: list[str]
    events: list[Event]
    stages: list[StageJSON]
    exclusions: list[RuleExclusion]
    indicators: list[RuleIndicator]
    similar: list[Neighbour] = Field(description="stored near pairs, best first")
    cluster: int | None = Field(description="its near-duplicate cluster, if any")
    opaque: list[OpaqueRow]
    problems: list[RuleProblem]


# -- /api/overview ----------------------------------------------------------------


class VendorStats(_Strict):
    rules: int
    with_query: int = 0
    fully_parsed: int = 0
    with_opaque: int = 0
    problems: int = 0
    predicates: int = 0
    mapped_predicates: int = 0
    aggregate_predicates: int = Field(0, description="filters on computed values (count > 5)")
    opaque: dict[str, int] = Field(default_factory=dict, description="Opaque reason -> rules")


class ClusterSummary(_Strict):
    clusters: int
    cross_vendor: int
    biggest: int


class LogSourceShare(_Strict):
    references: int = Field(description="log-source references of ATT&CK analytics")
    mapped: int = Field(description="of those, mapped to catalog events")


class Stats(_Strict):
    vendors: dict[str, VendorStats]
    techniques: int
    attack_log_sources: LogSourceShare
    near_duplicates: ClusterSummary | None = None


class ClusterRule(_Strict):
    vendor: str
    id: str
    title: str


class Cluster(_Strict):
    cluster: int
    size: int
    vendors: list[str]
    rules: list[ClusterRule]


class Clusters(_Strict):
    summary: ClusterSummary
    clusters: list[Cluster]


class MatrixCell(_Strict):
    id: str
    name: str | None
    rules: dict[str, int] = Field(description='"all" and vendor -> rules (sub-techniques included)')


class UnlistedCell(_Strict):
    id: str
    rules: dict[str, int]


class Tactic(_Strict):
    id: str | None
    shortname: str
    name: str | None
    techniques: list[MatrixCell]


class Overview(_Strict):
    rules: int
    problems: int
    stats: Stats
    tactics: list[Tactic]
    unlisted_techniques: list[UnlistedCell]


# -- fields, events, indicators, search, problems -----------------------------------


class Alias(_Strict):
    field_raw: str
    rules: int


class ValueRow(_Strict):
    op: str
    value: str | None
    rules: int


class FieldPage(_Strict):
    field: str
    rules: int
    aliases: dict[str, list[Alias]]
    implied_rules: int
    operators: dict[str, int]
    values: list[ValueRow]
    rule_list: list[RuleRow]


class TechniqueCount(_Strict):
    id: str
    name: str | None
    rules: int


class FieldCount(_Strict):
    field: str
    rules: int


class EventPage(Event):
    rules: list[RuleRow]
    techniques: list[TechniqueCount]
    fields: list[FieldCount]


class IndicatorPage(_Strict):
    field: str | None
    op: str
    value: str | None
    corpus_reach: int
    rules: list[RuleRow]
    excluded_by: list[RuleRow]
    techniques: dict[str, int]


class SearchRow(RuleRow):
    language: str | None
    url: str | None = Field(description="the rule in its upstream repository")


class SearchResult(_Strict):
    query: str
    total: int = Field(description="rules matching, of which the first `limit` are listed")
    rules: list[SearchRow]


class ProblemRow(_Strict):
    vendor: str | None
    path: str | None
    line: int | None
    col: int | None
    message: str | None
    rule_id: str | None


# -- detcat parse --json: parse.parse_json ----------------------------------------------


class FlatPredicate(_Strict):
    field: str | None
    field_raw: str | None
    op: str
    value: Scalar
    negated: bool = Field(description="under an odd number of NOTs")
    exclusion: bool = Field(description="inside a NOT directly under the stage's top-level AND")
    case_sensitive: bool = False
    kind: str | None = None


class OpaquePart(_Strict):
    text: str
    reason: str


class ParsedStage(_Strict):
    name: str | None
    role: str
    negated: bool = Field(False, description="the stage must NOT occur (present only when true)")
    events: list[str]
    predicates: list[FlatPredicate]
    opaque: list[OpaquePart]
    tree: ExprNode | None


class ParseResult(_Strict):
    language: str
    stages: list[ParsedStage]
    error: str | None


# -- detcat match --json: match.EventResult.to_json -------------------------------------


class MatchRef(_Strict):
    vendor: str
    id: str
    title: str
    events: list[str] | None = Field(
        None, description="a multi-event rule this event completes: its events, in order"
    )


class PartialMatch(MatchRef):
    stages: list[str | None] = Field(description="the stages that matched")
    of: list[str | None] = Field(description="all stages of the rule")
    reason: str | None = Field(None, description="why the rule is not evaluated over events")


class Undetermined(MatchRef):
    unknown: list[str] = Field(
        description="why: the parts detcat cannot evaluate on this event (Opaque reasons, "
        "deployer's lists, regexes out of time, unknown steps of a sequence)"
    )


class EventMatches(_Strict):
    event: str
    matches: list[MatchRef]
    partial: list[PartialMatch] = Field(default_factory=list)
    undetermined: list[Undetermined] = Field(default_factory=list)


# -- guide.indicator_reach, similar.similar_rules ----------------------------------------


class FieldOpCount(_Strict):
    field: str | None
    op: str
    rules: int


class IndicatorReach(_Strict):
    value: str
    field: str | None
    op: str | None
    reach: int = Field(description="rules in the whole catalog checking the value")
    by_vendor: dict[str, int]
    by_field: list[FieldOpCount]
    by_field_count: int
    rules: list[RuleRow]


class SharedFeature(_Strict):
    kind: str = Field(description="indicator, exclusion or event")
    field: str | None = None
    op: str | None = None
    value: str | None = None
    event: str | None = None


class Neighbour(MatchRef):
    score: float = Field(ge=0, le=1, description="weighted Jaccard of the two feature sets")
    shared: list[SharedFeature]


class SimilarRules(_Strict):
    rule: RuleRef
    similar: list[Neighbour] = Field(description="as `detcat similar --json`, best first")


# -- coverage (detcat coverage --json) and Navigator layers (detcat layer) -------


class VendorCoverage(_Strict):
    rules: int
    runnable: int


class TechniqueCoverage(_Strict):
    id: str
    name: str
    rules: int = Field(description="rules tagged with exactly this technique id")
    runnable: int = Field(description="of those, rules every events stage of which reads "
                          "one of the chosen events")  # fmt: skip
    vendors: dict[str, VendorCoverage]


class Unlock(_Strict):
    event: str
    title: str
    techniques_gained: int = Field(description="techniques that would get a first runnable rule")
    rules_gained: int
    techniques: list[str]


class CoverageSummary(_Strict):
    rules: int
    runnable_rules: int
    rules_without_events: int
    techniques: int
    runnable_techniques: int


class Adopt(_Strict):
    id: str
    name: str
    rules: int
    collections: dict[str, int]
    vendors: dict[str, int]


class Coverage(_Strict):
    events: list[str]
    summary: CoverageSummary
    techniques: list[TechniqueCoverage]
    unlock: list[Unlock] = Field(description="events that would add the most runnable "
                                 "techniques, best first")  # fmt: skip
    adopt: list[Adopt] | None = Field(None, description="with a collection: techniques only "
                                      "the other collections cover")  # fmt: skip


class LayerTechnique(_Strict):
    techniqueID: str  # noqa: N815 (the Navigator's spelling)
    score: int
    comment: str
    enabled: bool


class NavigatorLayer(BaseModel):
    """ATT&CK Navigator layer format 4.5 (the properties detcat writes)."""

    model_config = ConfigDict(extra="allow")
    name: str
    versions: dict[str, str]
    domain: str
    description: str
    techniques: list[LayerTechnique]
    gradient: dict[str, Any]


# RuleDetail names Neighbour, defined further down with the MCP answers.
RuleDetail.model_rebuild()
