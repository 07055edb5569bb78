"""``detcat mcp``: the catalog as a Model Context Protocol server for agents.

Read-only, on the official MCP Python SDK (``mcp`` 2.x, ``MCPServer``). The tool
names and arguments are a contract; each tool returns structured content checked
against a typed model (so the SDK publishes an output schema) and, as the protocol
asks, the same JSON as text. The answers themselves come from ``mcp.answers`` and
equal the CLI's ``--json`` for the same question; ``left_out`` says how many items
of each cut list were left out. A failure the caller can cause (unknown id, bad
argument, a file that is not a catalog) is a tool error with a message, never a
crash of the server.

Resources: ``detcat://technique/{id}``, ``detcat://rule/{vendor}/{id}``,
``detcat://stats``. Prompt: ``draft_rule(technique_id, language)``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from detcat import schemas
from detcat.errors import DetcatError
from detcat.mcp.answers import DEFAULT_BUDGET, Answers, dumps
from detcat.parse import languages
from detcat.sources import registry

# -- output models: the CLI's JSON shapes plus what was left out -------------------------


class _Cut(BaseModel):
    left_out: dict[str, int] = Field(
        description="items left out of each cut list (by limit, then by the size budget), "
        'by JSON path ("rules", "stages[0].expr.or"); empty when nothing was cut'
    )


class SearchAnswer(schemas.SearchResult, _Cut):
    pass


class RuleAnswer(schemas.RuleDetail, _Cut):
    query: str | None = Field(None, description="the source query; only with include_source")


class GuideAnswer(schemas.TechniqueGuide, _Cut):
    pass


class ParseAnswer(schemas.ParseResult, _Cut):
    pass


class MatchAnswer(_Cut):
    results: list[schemas.EventMatches] = Field(description="one per event, in order")


class ReachAnswer(schemas.IndicatorReach, _Cut):
    pass


class SimilarAnswer(schemas.SimilarRules, _Cut):
    pass


class LayerAnswer(schemas.NavigatorLayer, _Cut):
    pass


# -- arguments ------------------------------------------------------------------------------


def _text(description: str, most: int = 4096) -> Any:
    return Field(max_length=most, description=description)


def _limit(most: int) -> Any:
    return Field(ge=1, le=most, description=f"items per list (at most {most})")


Vendor = Annotated[str | None, _text("one vendor: " + ", ".join(registry.names()), 64)]
RuleId = Annotated[str, _text("the rule id as the catalog lists it", 512)]
TechniqueId = Annotated[str, _text("an ATT&CK id: T1219, T1059.001", 32)]
Technique = Annotated[str | None, _text("ATT&CK id; a parent includes its sub-techniques", 32)]
SearchText = Annotated[
    str, _text("words in titles and descriptions; field:value terms search predicates")
]
FieldName = Annotated[str | None, _text("canonical field (ECS) or as the vendor wrote it", 512)]
ValueText = Annotated[str | None, _text("text a predicate's value contains (any case)")]
Language = Annotated[str, _text(" | ".join(sorted(languages())), 16)]
Query = Annotated[str, Field(description="the query; for sigma and yaral a whole rule")]
Events = Annotated[
    list[Any],
    Field(description='event objects: evtx-to-JSON ({"Event": {"System", "EventData"}}), '
          "flat or ECS-nested"),
]  # fmt: skip
EventIds = Annotated[
    list[str] | None,
    Field(max_length=1000, description="catalog event ids you collect (sysmon:1, security:4688)"),
]
Value = Annotated[str, _text("the value (any case)")]
Operator = Annotated[str | None, _text("eq, contains, starts_with, ends_with, …; any if none", 32)]


# -- the server -------------------------------------------------------------------------------

_READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
_INSTRUCTIONS = """detcat: one catalog of the public detection rules (Sigma, Elastic, Splunk,
Google SecOps), parsed into canonical predicates. Start from technique_guide for an ATT&CK
technique, search_rules to find rules, get_rule for one rule, indicator_reach to see how
common a value is, parse_query to see what a query looks at, match_events to test events,
similar_rules for near-duplicates, coverage_layer for an ATT&CK Navigator layer. Lists are
cut to `limit`; `left_out` says how many items each cut list lost."""


def create_server(db: Path, budget: int = DEFAULT_BUDGET) -> MCPServer:
    answers = Answers(db, budget)
    server = MCPServer("detcat", instructions=_INSTRUCTIONS, log_level="WARNING")
    _add_tools(server, answers)
    _add_resources(server, answers)
    _add_prompt(server, answers)
    return server


def _respond(make: Callable[[], dict[str, Any]]) -> CallToolResult:
    """The answer as structured content and its JSON text; caller errors as tool errors."""
    try:
        data = make()
    except DetcatError as e:
        raise ToolError(_message(e)) from None
    except sqlite3.Error as e:
        message = f"the catalog could not be read ({e}): rebuild it with `detcat build`"
        raise ToolError(message) from None
    text = TextContent(type="text", text=dumps(data))
    return CallToolResult(content=[text], structured_content=data)


def _message(e: DetcatError) -> str:
    where = e.location()
    return f"{where}: {e.message}" if where else e.message


def _add_tools(server: MCPServer, answers: Answers) -> None:
    tool = server.tool(annotations=_READ_ONLY)

    @tool
    def search_rules(
        query: SearchText = "",
        vendor: Vendor = None,
        technique: Technique = None,
        field: FieldName = None,
        value: ValueText = None,
        limit: Annotated[int, _limit(500)] = 20,
    ) -> Annotated[CallToolResult, SearchAnswer]:
        """Find rules: full-text words and/or filters (vendor, technique, field, value).
        Same as `detcat search --json`; `total` counts all matches."""
        return _respond(lambda: answers.search_rules(query, vendor, technique, field, value, limit))

    @tool
    def get_rule(
        rule_id: RuleId, vendor: Vendor = None, include_source: bool = False
    ) -> Annotated[CallToolResult, RuleAnswer]:
        """One rule as `detcat rule --json`: metadata, techniques, events, stages with
        predicate trees, exclusions, indicators with corpus reach, Opaque parts. The source
        query only with include_source. Give the vendor when several share the id."""
        return _respond(lambda: answers.get_rule(rule_id, vendor, include_source))

    @tool
    def technique_guide(
        technique_id: TechniqueId, vendor: Vendor = None, limit: Annotated[int, _limit(200)] = 10
    ) -> Annotated[CallToolResult, GuideAnswer]:
        """The authoring guide of an ATT&CK technique, as `detcat technique --json`: rule
        counts per vendor, events covered, the fields rules filter (with operators and
        samples), top indicator values with corpus_reach (rules anywhere checking the value;
        `specific` when only this technique's rules do), exclusions, and the rules.
        Sub-techniques are included. Each section is cut to `limit` rows; totals stay."""
        return _respond(lambda: answers.technique_guide(technique_id, vendor, limit))

    @tool
    def parse_query(
        language: Language,
        query: Query,
    ) -> Annotated[CallToolResult, ParseAnswer]:
        """What a query looks at, as `detcat parse --json`: its stages, each with flat
        normalized predicates (canonical field, field as written, operator, value, negated,
        exclusion), Opaque parts detcat could not read, and the predicate tree."""
        return _respond(lambda: answers.parse_query(language, query))

    @tool
    def match_events(
        events: Events,
        vendor: Vendor = None,
    ) -> Annotated[CallToolResult, MatchAnswer]:
        """Which catalog rules fire on each event, as `detcat match --json`: full matches,
        multi-stage rules whose stages matched (partial), and rules that depend on something
        detcat cannot evaluate (undetermined). At most 1,000 events, 5 MB, per call."""
        return _respond(lambda: answers.match_events(events, vendor))

    @tool
    def indicator_reach(
        value: Value,
        field: FieldName = None,
        op: Operator = None,
        limit: Annotated[int, _limit(500)] = 20,
    ) -> Annotated[CallToolResult, ReachAnswer]:
        """How many rules anywhere check a value (not negated, in event filters): `reach`,
        per vendor, per (field, operator), and the rules. With field and op, `reach`
        equals the guide's corpus_reach for that indicator."""
        return _respond(lambda: answers.indicator_reach(value, field, op, limit))

    @tool
    def similar_rules(
        rule_id: RuleId, vendor: Vendor = None, limit: Annotated[int, _limit(200)] = 10
    ) -> Annotated[CallToolResult, SimilarAnswer]:
        """Near-duplicates of a rule across vendors, as `detcat similar --json`: weighted
        Jaccard over indicators, exclusions and events, with the features they share."""
        return _respond(lambda: answers.similar_rules(rule_id, vendor, limit))

    @tool
    def coverage_layer(
        vendor: Vendor = None, events: EventIds = None
    ) -> Annotated[CallToolResult, LayerAnswer]:
        """An ATT&CK Navigator layer (format 4.5), as `detcat layer`: one entry per
        technique id, scored by the rules tagged with it; with `events` (the catalog
        event kinds you collect), by the rules runnable on them, gaps scored 0."""
        return _respond(lambda: answers.coverage_layer(vendor, events))


# -- resources and the prompt ---------------------------------------------------------------


def _read(make: Callable[[], dict[str, Any]]) -> str:
    try:
        return dumps(make())
    except LookupError as e:  # unknown technique or rule
        raise ResourceNotFoundError(str(e)) from None
    except DetcatError as e:
        raise ResourceError(_message(e)) from None
    except sqlite3.Error as e:
        raise ResourceError(f"the catalog could not be read ({e})") from None


def _add_resources(server: MCPServer, answers: Answers) -> None:
    json_resource = {"mime_type": "application/json"}

    @server.resource("detcat://technique/{technique_id}", **json_resource)
    def technique(technique_id: str) -> str:
        """The technique_guide answer for a technique (10 rows per section)."""
        return _read(lambda: answers.technique_guide(technique_id))

    @server.resource("detcat://rule/{vendor}/{rule_id}", **json_resource)
    def rule(vendor: str, rule_id: str) -> str:
        """One rule as `detcat rule --json`, source query included."""
        return _read(lambda: answers.get_rule(rule_id, vendor, include_source=True))

    @server.resource("detcat://stats", **json_resource)
    def stats() -> str:
        """Coverage per vendor as `detcat stats --json`: rules, fully parsed, Opaque reasons."""
        return _read(answers.stats)


def _add_prompt(server: MCPServer, answers: Answers) -> None:
    @server.prompt()
    def draft_rule(technique_id: str, language: str) -> str:
        """Draft a detection rule for an ATT&CK technique in one language, from the guide."""
        if language not in languages():
            message = f"unknown language {language!r}: one of {', '.join(languages())}"
            raise MCPError(code=INVALID_PARAMS, message=message)
        try:
            guide = answers.technique_guide(technique_id, limit=5)
        except DetcatError as e:
            raise MCPError(code=INVALID_PARAMS, message=_message(e)) from None
        return draft_rule_text(guide, language)


def draft_rule_text(guide: dict[str, Any], language: str) -> str:
    """The steps of drafting a rule, with the guide's headline numbers filled in."""
    t = guide["technique"]
    vendors = ", ".join(f"{v} {n}" for v, n in guide["vendors"].items() if n) or "none"
    events = ", ".join(f"{e['id']} ({e['rules']})" for e in guide["events"]) or "none known"
    fields = ", ".join(f"{f['field']} ({f['rules']})" for f in guide["fields"]) or "none"
    specific = [i for i in guide["indicators"] if i["specific"]]
    shared = [i for i in guide["indicators"] if not i["specific"]]
    return f"""Draft a {language} detection rule for {t["id"]} {t["name"]}.

Existing rules by vendor: {vendors}. Work through the detcat guide before writing:

1. Call technique_guide("{t["id"]}") and read it: events covered (top: {events});
   the fields rules filter most (top: {fields}) with their operators and samples.
2. Indicators: values specific to this technique ({_values(specific)}) are good
   anchors; values with a high corpus_reach ({_values(shared)}) are checked by rules
   of other techniques too, so combine them with something specific. Check any new
   value with indicator_reach.
3. Exclusions: reuse the false-positive filters the community learned
   ({_values(guide["exclusions"])}), as NOT clauses of the top-level AND.
4. Read two or three of the rules with get_rule to see complete logic in context,
   especially in {language}.
5. Write the rule, then call parse_query("{language}", <your rule>): every predicate
   should have a canonical field, and no Opaque part should be left unexplained.
6. Call match_events with an event that should fire and one that should not.
7. Call similar_rules on the closest existing rule, and say how the draft differs
   from the rules it resembles.
"""


def _values(rows: list[dict[str, Any]]) -> str:
    shown = [f"{r['field']} {r['op']} {r['value']!r}" for r in rows[:3]]
    return "; ".join(shown) or "none in the guide"


def run(db: Path, *, http: bool = False, host: str = "127.0.0.1", port: int = 8000,
        budget: int = DEFAULT_BUDGET) -> None:  # fmt: skip
    """Serve over stdio, or over streamable HTTP at http://HOST:PORT/mcp."""
    server = create_server(db, budget)
    if http:
        server.run("streamable-http", host=host, port=port)
    else:
        server.run("stdio")
