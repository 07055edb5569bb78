"""``detcat mcp``: every tool, resource and the prompt through the SDK's in-memory
client; answers equal the CLI's ``--json`` on the real corpora; bad input is a tool
error and the server keeps answering; stdio and HTTP subprocesses."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError
from test_catalog import BUNDLE, rule_yaml

from detcat import catalog
from detcat.cli import main
from detcat.mcp.answers import DEFAULT_BUDGET, MAX_EVENTS, dumps, fit_budget
from detcat.mcp.server import create_server

TOOLS = {
    "search_rules", "get_rule", "technique_guide", "parse_query", "match_events",
    "indicator_reach", "similar_rules", "coverage_layer",
}  # fmt: skip

# -- a small catalog: five Sigma rules (test_catalog's, and two more) -----------------------

FILTER = "    filter:\n        ParentImage|endswith: '\\explorer.exe'\n"
INSTALL = "        CommandLine|contains: '--install'\n"
RULES = {  # n: (tag, Image|endswith, more of the selection and the filter)
    1: ("attack.t1219.002", "\\AnyDesk.exe", FILTER),
    2: ("attack.t1219", "\\AnyDesk.exe", FILTER),
    3: ("attack.t1105", "\\AnyDesk.exe", INSTALL + FILTER),
    4: ("attack.t1219", "\\tv.exe", ""),
    5: ("attack.t1219", "\\tv.exe", ""),
}


def rule_id(n: int) -> str:
    return f"00000000-0000-4000-8000-00000000000{n}"


@pytest.fixture(scope="module")
def small_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("sources")
    (src / "attack").mkdir()
    (src / "attack" / "enterprise-attack.json").write_text(json.dumps(BUNDLE))
    rules = src / "sigma" / "rules"
    rules.mkdir(parents=True)
    for n, (tag, image, extra) in RULES.items():
        (rules / f"r{n}.yml").write_text(rule_yaml(n, tag, image, extra=extra))
    db = src / "catalog.sqlite"
    catalog.build(src, db, vendors=("sigma",), workers=1)
    return db


# -- talking to the server --------------------------------------------------------------------


def calls(
    db: Path, *requests: tuple[str, dict[str, Any]], budget: int = DEFAULT_BUDGET
) -> list[Any]:
    """Each (tool, arguments) through one in-memory client session."""

    async def run() -> list[Any]:
        async with Client(create_server(db, budget)) as client:
            return [await client.call_tool(name, args) for name, args in requests]

    return anyio.run(run)


def answer(db: Path, name: str, args: dict[str, Any], budget: int = DEFAULT_BUDGET) -> Any:
    """The structured answer of one successful call (its text content is the same JSON)."""
    (result,) = calls(db, (name, args), budget=budget)
    assert not result.is_error, result.content[0].text
    assert json.loads(result.content[0].text) == result.structured_content
    return result.structured_content


def read(db: Path, uri: str) -> Any:
    """The resource's contents, or the protocol error reading it."""

    async def run() -> Any:
        async with Client(create_server(db)) as client:
            try:
                return (await client.read_resource(uri)).contents[0]
            except MCPError as e:
                return e

    return anyio.run(run)


def cli_json(*args: str) -> Any:
    res = CliRunner().invoke(main, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def without(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in keys}


# -- the contract ---------------------------------------------------------------------------


def test_tools_are_read_only_and_publish_output_schemas(small_db: Path) -> None:
    async def run() -> Any:
        async with Client(create_server(small_db)) as client:
            return (await client.list_tools()).tools

    tools = anyio.run(run)
    assert {t.name for t in tools} == TOOLS
    for t in tools:
        assert t.output_schema and "left_out" in t.output_schema["properties"], t.name
        assert t.annotations and t.annotations.read_only_hint, t.name
        assert t.description, t.name


# -- equal to the CLI's JSON on the real corpora ---------------------------------------------

SIGMA_ANYDESK = "b52e84a3-029e-4529-b09b-71d19dd27e94"  # Remote Access Tool - AnyDesk Execution
SPLUNK_RMS = "e5b7b5a9-e471-4be8-8c5d-4083983ba329"  # Windows Remote Access Software RMS Registry
# Detect Remote Access Software Usage Process: a lookup of 700 tools, 250 KB as JSON.
SPLUNK_BIG = "ffd5e001-2e34-48f4-97a2-26dc4bb08178"
KQL = 'process.name : "AnyDesk.exe" and not process.parent.name : ("explorer.exe" or "svchost.exe")'
ANYDESK_EVENT = {
    "Event": {
        "System": {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
                   "EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational"},
        "EventData": {"Image": "C:\\Users\\bob\\Downloads\\AnyDesk.exe",
                      "CommandLine": "AnyDesk.exe --install C:\\ProgramData\\AnyDesk --silent",
                      "ParentImage": "C:\\Windows\\System32\\cmd.exe",
                      "OriginalFileName": "AnyDesk.exe"},
    }
}  # fmt: skip


def test_technique_guide_equals_cli(corpus_db: Path) -> None:
    got = answer(corpus_db, "technique_guide", {"technique_id": "T1219", "limit": 10})
    cli = cli_json("technique", "T1219", "--limit", "10", "--db", str(corpus_db))
    assert len(cli["rules"]) > 10 and len(cli["events"]) > 10  # the cut is exercised
    assert got["left_out"] == {
        "rules": len(cli["rules"]) - 10,
        "events": len(cli["events"]) - 10,
        "fields": cli["field_count"] - 10,
        "indicators": cli["indicator_count"] - 10,
        "exclusions": cli["exclusion_count"] - 10,
    }
    assert without(got, "left_out") == {**cli, "rules": cli["rules"][:10],
                                        "events": cli["events"][:10]}  # fmt: skip
    assert len(dumps(got)) <= DEFAULT_BUDGET


@pytest.mark.parametrize(("vendor", "rid"), [("sigma", SIGMA_ANYDESK), ("splunk", SPLUNK_RMS)])
def test_get_rule_equals_cli(corpus_db: Path, vendor: str, rid: str) -> None:
    cli = cli_json("rule", rid, "--vendor", vendor, "--db", str(corpus_db))
    full = answer(corpus_db, "get_rule", {"rule_id": rid, "include_source": True})
    assert full == {**cli, "left_out": {}}
    short = answer(corpus_db, "get_rule", {"rule_id": rid, "vendor": vendor})
    assert short == {**without(cli, "query"), "left_out": {}}


def at(data: Any, path: str) -> Any:
    """The value at a ``left_out`` path such as ``stages[0].expr.or``."""
    for part in path.replace("[", ".[").split("."):
        data = data[int(part[1:-1])] if part.startswith("[") else data[part]
    return data


def test_a_rule_over_budget_keeps_the_head_of_each_cut_list(corpus_db: Path) -> None:
    cli = cli_json("rule", SPLUNK_BIG, "--db", str(corpus_db))
    got = answer(corpus_db, "get_rule", {"rule_id": SPLUNK_BIG, "include_source": True})
    assert len(dumps(cli)) > DEFAULT_BUDGET >= len(dumps(got))
    assert got["left_out"] and len(got["stages"]) == len(cli["stages"])  # the shape is kept
    for path, n in got["left_out"].items():
        kept, full = at(got, path), at(cli, path)
        assert kept == full[: len(kept)] and len(kept) + n == len(full), path
    rest = {k: v for k, v in got.items() if k != "left_out" and k not in got["left_out"]}
    assert all(cli[k] == v for k, v in rest.items() if "." not in k and not isinstance(v, list))


def test_parse_query_equals_cli(corpus_db: Path) -> None:
    got = answer(corpus_db, "parse_query", {"language": "kql", "query": KQL})
    assert got == {**cli_json("parse", "kql", KQL), "left_out": {}}
    fields = {(p["field"], p["exclusion"]) for p in got["stages"][0]["predicates"]}
    assert ("process.name", False) in fields and ("process.parent.name", True) in fields


def test_match_events_equals_cli(corpus_db: Path, tmp_path: Path) -> None:
    path = tmp_path / "anydesk.json"
    path.write_text(json.dumps(ANYDESK_EVENT))
    (cli,) = cli_json("match", str(path), "--db", str(corpus_db))
    got = answer(corpus_db, "match_events", {"events": [ANYDESK_EVENT]})
    assert got == {"results": [{**cli, "event": "events[0]"}], "left_out": {}}
    assert {"vendor": "sigma", "id": SIGMA_ANYDESK,
            "title": "Remote Access Tool - AnyDesk Execution"} in cli["matches"]  # fmt: skip


def test_search_rules_equals_cli(corpus_db: Path) -> None:
    got = answer(corpus_db, "search_rules", {"query": "anydesk", "limit": 5})
    cli = cli_json("search", "anydesk", "--limit", "5", "--db", str(corpus_db))
    assert got == {**cli, "left_out": {"rules": cli["total"] - 5}}


def test_the_whole_layer_keeps_the_best_covered_techniques(corpus_db: Path) -> None:
    got = answer(corpus_db, "coverage_layer", {})
    res = CliRunner().invoke(main, ["layer", "--db", str(corpus_db)])
    ranked = sorted(json.loads(res.output)["techniques"],
                    key=lambda t: (-t["score"], t["techniqueID"]))  # fmt: skip
    assert len(dumps(got)) <= DEFAULT_BUDGET
    assert got["techniques"] == ranked[: len(got["techniques"])]
    assert len(got["techniques"]) + got["left_out"].get("techniques", 0) == len(ranked)


def test_indicator_reach_is_the_guides_corpus_reach(corpus_db: Path) -> None:
    guide = cli_json("technique", "T1219", "--limit", "10", "--db", str(corpus_db))
    for ind in guide["indicators"]:
        args = {"value": ind["value"], "field": ind["field"], "op": ind["op"]}
        assert answer(corpus_db, "indicator_reach", args)["reach"] == ind["corpus_reach"], ind


# -- each tool's arithmetic on the small catalog ---------------------------------------------

SEARCHES = [  # arguments, the rules found (by number)
    ({"query": "remote"}, [1, 2, 3, 4, 5]),
    ({"technique": "T1219"}, [1, 2, 4, 5]),  # the sub-technique's rule included
    ({"technique": "t1219.002"}, [1]),
    ({"field": "process.executable", "value": "tv.exe"}, [4, 5]),
    ({"field": "CommandLine"}, [3]),  # as the vendor wrote it
    ({"value": "--INSTALL"}, [3]),  # any field, any case
    ({"query": "remote", "technique": "T1105", "vendor": "sigma"}, [3]),
    ({"query": "nothing-like-this"}, []),
]


@pytest.mark.parametrize(("args", "found"), SEARCHES)
def test_search_rules_filters(small_db: Path, args: dict[str, Any], found: list[int]) -> None:
    got = answer(small_db, "search_rules", args)
    assert sorted(r["id"] for r in got["rules"]) == [rule_id(n) for n in found]
    assert got["total"] == len(found)
    assert all(r["language"] == "sigma" for r in got["rules"])


def test_search_rules_limit_says_what_was_left_out(small_db: Path) -> None:
    got = answer(small_db, "search_rules", {"query": "remote", "limit": 2})
    assert (len(got["rules"]), got["total"], got["left_out"]) == (2, 5, {"rules": 3})


def test_indicator_reach_counts(small_db: Path) -> None:
    got = answer(small_db, "indicator_reach", {"value": "\\ANYDESK.EXE"})
    assert got["reach"] == 3 and got["by_vendor"] == {"sigma": 3}
    assert {"field": "process.executable", "op": "ends_with", "rules": 3} in got["by_field"]
    assert sorted(r["id"] for r in got["rules"]) == [rule_id(n) for n in (1, 2, 3)]
    narrow = answer(small_db, "indicator_reach", {"value": "\\anydesk.exe", "op": "eq"})
    assert narrow["reach"] == 0 and narrow["rules"] == []
    cut = answer(small_db, "indicator_reach", {"value": "\\anydesk.exe", "limit": 1})
    assert cut["left_out"]["rules"] == 2


def test_similar_rules_equals_cli(small_db: Path) -> None:
    got = answer(small_db, "similar_rules", {"rule_id": rule_id(1)})
    cli = cli_json("similar", rule_id(1), "--db", str(small_db))
    assert got == {"rule": {"vendor": "sigma", "id": rule_id(1)}, "similar": cli, "left_out": {}}
    scores = {r["id"]: r["score"] for r in cli}
    assert scores[rule_id(2)] == 1.0 and rule_id(4) not in scores  # same features; none shared
    cut = answer(small_db, "similar_rules", {"rule_id": rule_id(1), "limit": 1})
    assert cut["similar"] == cli[:1] and cut["left_out"] == {"similar": len(cli) - 1}


LAYERS = [  # arguments, the same as `detcat layer` options
    ({}, []),
    ({"vendor": "sigma", "events": ["sysmon:1"]}, ["--vendor", "sigma", "--events", "sysmon:1"]),
    ({"events": ["sysmon:3"]}, ["--events", "sysmon:3"]),  # no rule reads it: scores 0
]


@pytest.mark.parametrize(("args", "options"), LAYERS)
def test_coverage_layer_equals_cli(
    small_db: Path, args: dict[str, Any], options: list[str]
) -> None:
    got = answer(small_db, "coverage_layer", args)
    res = CliRunner().invoke(main, ["layer", *options, "--db", str(small_db)])
    cli = json.loads(res.output)
    assert without(got, "techniques") == {**without(cli, "techniques"), "left_out": {}}
    ranked = sorted(cli["techniques"], key=lambda t: (-t["score"], t["techniqueID"]))
    assert got["techniques"] == ranked  # the same entries, best covered first
    scores = {t["techniqueID"]: t["score"] for t in got["techniques"]}
    if args.get("events") == ["sysmon:3"]:
        assert set(scores.values()) == {0}
    else:
        assert scores == {"T1219": 3, "T1219.002": 1}  # exact tags; T1105 is not in the bundle


def test_technique_guide_of_one_vendor(corpus_db: Path) -> None:
    args = {"technique_id": "T1219", "vendor": "elastic", "limit": 200}
    got = answer(corpus_db, "technique_guide", args)
    cli = cli_json("technique", "T1219", "--limit", "200", "--db", str(corpus_db))
    assert got["rules"] == [r for r in cli["rules"] if r["vendor"] == "elastic"]
    assert got["vendors"] == {v: n if v == "elastic" else 0 for v, n in cli["vendors"].items()}
    assert all(set(f["aliases"]) == {"elastic"} for f in got["fields"])


# -- resources and the prompt ----------------------------------------------------------------


def test_resources_equal_the_tools_and_cli(small_db: Path) -> None:
    tech = read(small_db, "detcat://technique/T1219")
    assert tech.mime_type == "application/json"
    assert json.loads(tech.text) == answer(small_db, "technique_guide", {"technique_id": "T1219"})
    rule = json.loads(read(small_db, f"detcat://rule/sigma/{rule_id(3)}").text)
    assert rule == {**cli_json("rule", rule_id(3), "--db", str(small_db)), "left_out": {}}
    stats = json.loads(read(small_db, "detcat://stats").text)
    assert stats == {**cli_json("stats", "--db", str(small_db)), "left_out": {}}


@pytest.mark.parametrize("uri", ["detcat://technique/T9999", "detcat://rule/sigma/nope"])
def test_unknown_resource_is_an_error(small_db: Path, uri: str) -> None:
    error = read(small_db, uri)
    assert isinstance(error, MCPError)
    assert "unknown technique T9999" in str(error) or "no rule with id 'nope'" in str(error)


def test_draft_rule_prompt_walks_through_the_guide(small_db: Path) -> None:
    async def run(args: dict[str, str]) -> Any:
        async with Client(create_server(small_db)) as client:
            try:
                return await client.get_prompt("draft_rule", args)
            except MCPError as e:
                return e

    text = anyio.run(run, {"technique_id": "T1219", "language": "kql"}).messages[0].content.text
    assert "T1219 Remote Access Tools" in text and "sigma 4" in text
    for tool in ("technique_guide", "indicator_reach", "parse_query", "match_events",
                 "similar_rules", "get_rule"):  # fmt: skip
        assert tool in text
    assert "'\\\\tv.exe'" in text  # a specific indicator of the guide, quoted
    for args, message in [
        ({"technique_id": "T1219", "language": "cobol"}, "unknown language 'cobol'"),
        ({"technique_id": "T9999", "language": "kql"}, "unknown technique T9999"),
    ]:
        error = anyio.run(run, args)
        assert isinstance(error, MCPError) and message in str(error), error


# -- the budget -------------------------------------------------------------------------------

BUDGETS = [  # data, budget, the lists cut
    ({"a": list(range(1000))}, 500, {"a"}),
    ({"a": ["x" * 100] * 10, "b": [1, 2]}, 600, {"a"}),
    ({"s": [{"or": ["v" * 50] * 40}]}, 1000, {"s[0].or"}),  # inside the only stage
    ({"a": ["x" * 100] * 30, "b": ["y" * 100] * 20}, 1000, {"a", "b"}),  # several lists
    ({"a": [1, 2, 3]}, 1000, set()),
    ({"text": "x" * 2000, "a": [1]}, 1000, {"a"}),  # text is never cut
]


@pytest.mark.parametrize(("data", "budget", "cut"), BUDGETS)
def test_fit_budget(data: dict[str, Any], budget: int, cut: set[str]) -> None:
    before = json.loads(json.dumps(data))
    left_out: dict[str, int] = {}
    fit_budget(data, budget, left_out)
    assert set(left_out) == cut
    if "text" not in data:
        assert len(dumps(data)) <= budget
    for path, n in left_out.items():  # what is kept is the head of what was there
        kept, was = at(data, path), at(before, path)
        assert kept == was[: len(kept)] and len(kept) + n == len(was)
    if len(cut) == 1 and "text" not in data:  # no more was cut than needed
        (path,) = cut
        at(data, path).append(at(before, path)[len(at(data, path))])
        assert len(dumps(data)) > budget


def test_small_budget_cuts_a_rule_and_says_where(small_db: Path) -> None:
    got = answer(small_db, "get_rule", {"rule_id": rule_id(1)}, budget=1_500)
    assert got["left_out"] and len(dumps(got)) <= 1_500
    full = answer(small_db, "get_rule", {"rule_id": rule_id(1)})
    for path, n in got["left_out"].items():
        assert n > 0 and path.split("[")[0].split(".")[0] in full


# -- bad input: tool errors, and the server goes on -------------------------------------------

BAD_CALLS = [  # tool, arguments, part of the error message
    ("technique_guide", {"technique_id": "T9999"}, "unknown technique T9999"),
    ("get_rule", {"rule_id": "nope"}, "no rule with id 'nope'"),
    ("similar_rules", {"rule_id": "x" * 500}, "no rule with id 'xxxxx"),
    ("search_rules", {"query": "remote", "vendor": "acme"}, "unknown vendor 'acme'"),
    ("search_rules", {}, "nothing to search"),
    ("parse_query", {"language": "kql", "query": "x" * 10_000_000}, "10,000,000 characters"),
    ("parse_query", {"language": "kql", "query": "process.name:("}, "line 1, column 15"),
    ("parse_query", {"language": "cobol", "query": "x"}, "unknown language 'cobol'"),
    ("match_events", {"events": [{"a": 1}] * 10_000}, f"at most {MAX_EVENTS:,} per call"),
    ("match_events", {"events": [{"a": "x" * 6_000_000}]}, "bytes of JSON"),
    ("match_events", {"events": [{"a": 1}, 7]}, "events[1] is not a JSON object"),
    ("coverage_layer", {"events": ["sysmon:999"]}, "sysmon:999"),
    ("technique_guide", {"technique_id": "T1219", "limit": 0}, "greater than or equal to 1"),
]


@pytest.mark.parametrize(("tool", "args", "message"), BAD_CALLS, ids=[c[2] for c in BAD_CALLS])
def test_bad_input_is_a_tool_error(
    small_db: Path, tool: str, args: dict[str, Any], message: str
) -> None:
    bad, after = calls(small_db, (tool, args), ("search_rules", {"query": "remote"}))
    assert bad.is_error and message in bad.content[0].text, bad.content[0].text
    assert len(bad.content[0].text) < 1_000  # the argument is not echoed back whole
    assert not after.is_error and after.structured_content["total"] == 5


def _not_sqlite(path: Path) -> None:
    path.write_bytes(b"this is not a database" * 100)


def _empty_sqlite(path: Path) -> None:
    sqlite3.connect(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE unrelated (x)")


def _old_schema(path: Path, small_db: Path) -> None:
    path.write_bytes(small_db.read_bytes())
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")


NOT_A_CATALOG = (
    "is not a detcat catalog (or was built by an incompatible version): run `detcat build`"
)
INVALID = [
    ("missing", lambda p, db: None, "no catalog at"),
    ("not sqlite", lambda p, db: _not_sqlite(p), NOT_A_CATALOG),
    ("other sqlite", lambda p, db: _empty_sqlite(p), NOT_A_CATALOG),
    ("old schema", _old_schema, NOT_A_CATALOG),
]


@pytest.mark.parametrize(("why", "make", "message"), INVALID, ids=[i[0] for i in INVALID])
def test_invalid_catalog_is_a_tool_error(
    small_db: Path, tmp_path: Path, why: str, make: Any, message: str
) -> None:
    db = tmp_path / "catalog.sqlite"
    make(db, small_db)
    results = calls(db, ("technique_guide", {"technique_id": "T1219"}),
                    ("match_events", {"events": [ANYDESK_EVENT]}))  # fmt: skip
    for r in results:
        assert r.is_error and message in r.content[0].text, r.content[0].text


# -- the command: stdio and HTTP subprocesses -------------------------------------------------


@pytest.mark.parametrize("make", [_not_sqlite, _empty_sqlite], ids=["not sqlite", "other sqlite"])
def test_the_command_refuses_a_file_that_is_not_a_catalog(tmp_path: Path, make: Any) -> None:
    from click.testing import CliRunner

    from detcat.cli import main

    db = tmp_path / "catalog.sqlite"
    make(db)
    res = CliRunner().invoke(main, ["mcp", "--db", str(db)])
    assert res.exit_code == 3
    assert NOT_A_CATALOG in res.output and "Traceback" not in res.output


DETCAT = Path(sysconfig.get_path("scripts")) / "detcat"


def test_stdio_subprocess_answers_two_tools(small_db: Path) -> None:
    params = StdioServerParameters(command=str(DETCAT), args=["mcp", "--db", str(small_db)])

    async def run() -> list[Any]:
        async with Client(params) as client:
            return [
                await client.call_tool("technique_guide", {"technique_id": "T1219"}),
                await client.call_tool("search_rules", {"field": "CommandLine"}),
            ]

    guide, found = anyio.run(run)
    assert guide.structured_content == answer(
        small_db, "technique_guide", {"technique_id": "T1219"}
    )
    assert [r["id"] for r in found.structured_content["rules"]] == [rule_id(3)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_server(small_db: Path) -> Iterator[str]:
    port = _free_port()
    args = [str(DETCAT), "mcp", "--db", str(small_db), "--http", "--port", str(port)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(200):  # up to 20 s on a busy machine
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_http_transport_answers(http_server: str, small_db: Path) -> None:
    async def run() -> Any:
        async with Client(http_server) as client:
            return await client.call_tool("get_rule", {"rule_id": rule_id(4)})

    got = anyio.run(run)
    assert got.structured_content == answer(small_db, "get_rule", {"rule_id": rule_id(4)})
