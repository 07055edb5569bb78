"""splunk/security_content source: macro expansion, lookup resolution, detection
metadata and bad input, specified as tables; then the real corpus end to end."""

from __future__ import annotations

import csv
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from detcat.model import And, Expr, Not, Op, Opaque, Or, Predicate, Problem, QueryError, Rule, Stage
from detcat.model import opaques as opaque_nodes
from detcat.sources import splunk
from detcat.sources.splunk import Macros
from detcat.sources.splunk_lookups import LookupTables


def eq(field: str, value: Any, *, cs: bool = False) -> Predicate:
    return Predicate(field, Op.EQ, value, "=", case_sensitive=cs)


def macros(*defs: dict[str, Any]) -> Macros:
    m = Macros()
    for d in defs:
        m.add(d)
    return m


# -- macro expansion: the rules, on a small macro set -------------------------------

TOY = macros(
    {"name": "sysmon", "definition": "sourcetype=sysmon OR source=Sysmon"},
    {"name": "ctime", "arguments": ["field"], "definition": "convert ctime($field$)"},
    {"name": "pair", "arguments": ["x", "y"], "definition": "$x$=$y$"},
    {"name": "pair(3)", "definition": "$arg1$ $arg2$ $arg3$"},  # macros.conf stanza spelling
    {"name": "outer", "definition": "`sysmon` EventCode=1"},
    {"name": "cyc_a", "definition": "a=1 `cyc_b`"},
    {"name": "cyc_b", "definition": "b=1 `cyc_a`"},
    {"name": "defined_filter", "definition": "search NOT user=svc"},
)


@pytest.mark.parametrize(
    ("search", "expanded", "used", "opaque"),
    [
        ("`sysmon` EventCode=1", "sourcetype=sysmon OR source=Sysmon EventCode=1", ["sysmon"], []),
        ("x | `ctime(firstTime)`", "x | convert ctime(firstTime)", ["ctime"], []),
        ('`pair(a, "b,c")`', 'a="b,c"', ["pair"], []),
        ("`pair(1,2,3)`", "1 2 3", ["pair"], []),
        (
            "`outer` | y",
            "sourcetype=sysmon OR source=Sysmon EventCode=1 | y",
            ["outer", "sysmon"],
            [],
        ),
        # every detection's own *_filter hook is intentionally undefined: empty
        ("x | `my_rule_filter`", "x", [], []),
        ("x | `my_rule_filter` | y", "x | y", [], []),
        ("x | `defined_filter`", "x | search NOT user=svc", ["defined_filter"], []),
        # CIM utility macros have no filtering meaning
        ("x | `drop_dm_object_name(Processes)` | y", "x | y", ["drop_dm_object_name"], []),
        (
            'x | `drop_dm_object_name("Web")` ```c``` | y',
            "x ```c``` | y",
            ["drop_dm_object_name"],
            [],
        ),
        # anything else undefined is unknown logic
        ("x | `get_asset(src)`", "x", ["get_asset"], ["unresolved macro: get_asset undefined"]),
        (
            "`sysmon(1)` x=1",
            " x=1",
            ["sysmon"],
            ["unresolved macro: sysmon undefined"],
        ),  # arity counts
        (
            'a=1 NOT (`cim_corp("q")`) b=2',
            "a=1 b=2",
            ["cim_corp"],
            ["unresolved macro: cim_corp undefined"],
        ),
        ("a=1 (`cim_corp`) b=2", "a=1 b=2", ["cim_corp"], ["unresolved macro: cim_corp undefined"]),
        (
            "eval x=f(`cim_corp`)",
            "eval x=f()",
            ["cim_corp"],
            ["unresolved macro: cim_corp undefined"],
        ),
        # a lone backtick in a string is literal; a whole call in a string expands
        ('eval n=split(p,"`") | `r_filter`', 'eval n=split(p,"`")', [], []),
        (
            'map search="search `sysmon` a=1"',
            'map search="search sourcetype=sysmon OR source=Sysmon a=1"',
            ["sysmon"],
            [],
        ),
        # comments are the parser's business; escaped quotes do not open strings
        ("a ```see `sysmon` ``` | b", "a ```see `sysmon` ``` | b", [], []),
        ('f=*\\"p\\":true* | `r_filter`', 'f=*\\"p\\":true*', [], []),
    ],
)
def test_macro_expansion(search: str, expanded: str, used: list[str], opaque: list[str]) -> None:
    exp = TOY.expand(search)
    assert (" ".join(exp.text.split()), exp.macros, [o.why() for o in exp.opaques]) == (
        " ".join(expanded.split()),
        used,
        opaque,
    )
    assert exp.problems == []


def test_macro_cycle_is_a_problem_and_opaque() -> None:
    exp = TOY.expand("`cyc_a` | stats count")
    assert exp.problems == ["macro cycle: cyc_a -> cyc_b -> cyc_a"]
    assert exp.opaques == [Opaque("`cyc_a`", "unresolved macro", "cycle")]
    assert exp.text.split() == ["a=1", "b=1", "|", "stats", "count"]


# -- macro expansion on the real macros/ folder --------------------------------------


@pytest.fixture(scope="module")
def splunk_root(corpora: Path) -> Path:
    return corpora / "splunk"


@pytest.fixture(scope="module")
def real_macros(splunk_root: Path) -> Macros:
    m, problems = Macros.load(splunk_root / "macros")
    assert problems == []
    return m


def definition(root: Path, name: str) -> str:
    return str(yaml.safe_load((root / "macros" / f"{name}.yml").read_text())["definition"])


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("`sysmon` EventCode=1", lambda d: d("sysmon") + " EventCode=1"),
        (
            "`wineventlog_security` EventCode=4688",
            lambda d: d("wineventlog_security") + " EventCode=4688",
        ),
        ("`powershell` EventCode=4104", lambda d: d("powershell") + " EventCode=4104"),
        (
            "| tstats count where `process_cmd`",
            lambda d: "| tstats count where " + d("process_cmd"),
        ),
        (
            "| tstats `security_content_summariesonly` count",
            lambda d: (
                "| tstats "
                + d("security_content_summariesonly")
                .replace("`summariesonly_config`", d("summariesonly_config"))
                .replace("`oldsummaries_config`", d("oldsummaries_config"))
                .replace("`fillnull_config`", d("fillnull_config"))
                + " count"
            ),
        ),
        (
            "x | `security_content_ctime(firstTime)`",
            lambda d: "x | " + d("security_content_ctime").replace("$field$", "firstTime"),
        ),
    ],
)
def test_real_macros_expand_to_their_definitions(
    splunk_root: Path, real_macros: Macros, search: str, expected: Any
) -> None:
    exp = real_macros.expand(search)
    assert exp.text == expected(lambda name: definition(splunk_root, name))
    assert "`" not in exp.text and not exp.opaques


def test_real_detection_expansion_keeps_lookups_and_records_macros(
    splunk_root: Path, real_macros: Macros
) -> None:
    doc = yaml.safe_load(
        (
            splunk_root / "detections/endpoint/detect_remote_access_software_usage_process.yml"
        ).read_text()
    )
    exp = real_macros.expand(doc["search"])
    assert "lookup remote_access_software remote_utility AS process_name" in exp.text
    # the exceptions macro is itself a pipeline with a second lookup
    assert "lookup remote_access_software_exceptions" in exp.text
    assert {"security_content_summariesonly", "summariesonly_config", "drop_dm_object_name",
            "remote_access_software_usage_exceptions"} <= set(exp.macros)  # fmt: skip
    assert "detect_remote_access_software_usage_process_filter" not in exp.macros
    assert not exp.text.rstrip().endswith("|") and not exp.opaques


def test_every_active_detection_expands_without_leftover_macros(
    splunk_root: Path, real_macros: Macros
) -> None:
    searches = [d["search"] for _, d in active_detections(splunk_root)]
    leftovers, undefined = [], Counter()
    for search in searches:
        exp = real_macros.expand(search)
        assert exp.problems == []
        undefined.update(o.reason for o in exp.opaques)
        # no `name` call may survive outside strings and comments
        if any(c.isidentifier() for c in _macro_like_calls(exp.text)):
            leftovers.append(search)
    assert len(searches) == 1613 and leftovers == []
    # undefined macros other than filter hooks and CIM utilities are rare upstream
    assert sum(undefined.values()) <= len(searches) * 0.01, undefined


def _macro_like_calls(text: str) -> list[str]:
    import re

    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return [m.split("(")[0] for m in re.findall(r"`([^`\s]+)`", text)]


def active_detections(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted((root / "detections").rglob("*.yml")):
        if "deprecated" in path.relative_to(root).parts:
            continue
        doc = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
        if doc.get("status") != "deprecated":
            out.append((path, doc))
    return out


# -- lookups: the rules, on a small lookup folder -----------------------------------


def write_lookup(folder: Path, name: str, header: str, rows: list[str], **conf: Any) -> None:
    (folder / f"{name}.csv").write_text("\n".join([header, *rows]) + "\n")
    (folder / f"{name}.yml").write_text(
        yaml.safe_dump({"name": name, "filename": f"{name}.csv", **conf})
    )


@pytest.fixture
def toy_lookups(tmp_path: Path) -> LookupTables:
    write_lookup(
        tmp_path,
        "tools",
        "tool,domain,isutility,score",
        [
            "AnyDesk.exe,*.anydesk.com,TRUE,5",
            "anydesk.exe,,FALSE,1",
            "putty.exe,,false,3",
            "ngrok.exe,*ngrok*,True,9",
            ",empty.example,TRUE,2",
        ],  # fmt: skip
        match_type="WILDCARD(domain)",
        case_sensitive_match="false",
        min_matches=1,
        max_matches=1,
        default_match="false",
    )
    write_lookup(tmp_path, "exact", "name,flag", ["Ab,yes", "ab,yes", "c,no"])
    (tmp_path / "kv.yml").write_text("name: kv\ncollection: kv\nfields_list: _key, a\n")
    return LookupTables.load(tmp_path)[0]


IS_UTILITY = eq("isutility", "True")


@pytest.mark.parametrize(
    ("name", "key", "condition", "expected"),
    [
        # booleans compare case-insensitively; max_matches=1 lets the first
        # AnyDesk.exe row (TRUE) decide for its case-insensitive duplicate
        ("tools", "tool", IS_UTILITY, (["AnyDesk.exe", "ngrok.exe"], False)),
        # wildcard columns keep their '*' for the parser to classify
        ("tools", "domain", IS_UTILITY, (["*.anydesk.com", "*ngrok*", "empty.example"], False)),
        (
            "tools",
            "tool",
            And((IS_UTILITY, Not(eq("tool", "NGROK.EXE")))),
            (["AnyDesk.exe"], False),
        ),
        ("tools", "tool", And((IS_UTILITY, Predicate("score", Op.GT, 6))), (["ngrok.exe"], False)),
        (
            "tools",
            "tool",
            Or((eq("score", 3), eq("score", "9"))),
            (["putty.exe", "ngrok.exe"], False),
        ),
        ("tools", "tool", Predicate("tool", Op.ENDS_WITH, "OK.EXE"), (["ngrok.exe"], False)),
        ("exact", "name", Predicate("flag", Op.EXISTS, None), (["Ab", "ab", "c"], True)),
        (
            "exact",
            "name",
            Not(Predicate("flag", Op.IS_NULL, None)),
            (["Ab", "ab", "c"], True),
        ),
        ("tools", "tool", None, (["AnyDesk.exe", "putty.exe", "ngrok.exe"], False)),
        # the default case_sensitive_match is true: case variants are distinct keys
        ("exact", "name", eq("flag", "yes", cs=True), (["Ab", "ab"], True)),
        # unknown: no such lookup, a KV-store collection, an unknown column,
        # a filter that cannot be evaluated, a filter that keeps unmatched events
        ("nope", "tool", IS_UTILITY, None),
        ("kv", "a", eq("a", "1"), None),
        ("tools", "no_such_column", IS_UTILITY, None),
        ("tools", "tool", And((IS_UTILITY, Opaque("f(x)", "function"))), None),
        ("tools", "tool", Predicate(None, Op.KEYWORD, "anydesk"), None),
        ("tools", "tool", eq("isutility", "false"), None),  # default_match=false for misses
        ("tools", "tool", Not(IS_UTILITY), None),  # … so misses pass a negated filter
        ("tools", "tool", Predicate("domain", Op.EXISTS, None), None),  # … and fill every output
        ("exact", "name", Predicate("flag", Op.IS_NULL, None), None),  # misses have no flag
    ],
)
def test_lookup_resolution(
    toy_lookups: LookupTables, name: str, key: str, condition: Expr | None, expected: Any
) -> None:
    assert toy_lookups.resolve(name, key, condition) == expected


# -- lookups on the real lookups/ folder ----------------------------------------------


@pytest.fixture(scope="module")
def real_lookups(splunk_root: Path) -> LookupTables:
    tables, problems = LookupTables.load(splunk_root / "lookups")
    assert problems == []
    return tables


def csv_column(root: Path, lookup: str, column: str, where: tuple[str, str]) -> set[str]:
    conf = yaml.safe_load((root / "lookups" / f"{lookup}.yml").read_text())
    with (root / "lookups" / conf["filename"]).open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    # cells are read stripped: upstream has stray spaces ("csexec.exe ") that
    # would otherwise hide the indicator
    return {
        r[column].strip().casefold()
        for r in rows
        if r[column].strip() and r[where[0]].casefold() == where[1]
    }


@pytest.mark.parametrize(
    ("key", "sample"),
    [
        ("remote_utility", "anydesk.exe"),
        ("remote_domain", "net.anydesk.com"),
        ("remote_utility_fileinfo", "anydesk*"),
        ("remote_appid", "teamviewer-base"),
    ],
)
def test_remote_access_software_resolves_tools_and_domains(
    splunk_root: Path, real_lookups: LookupTables, key: str, sample: str
) -> None:
    values, case_sensitive = real_lookups.resolve("remote_access_software", key, IS_UTILITY)
    folded = {v.casefold() for v in values}
    assert case_sensitive is False
    assert folded == csv_column(splunk_root, "remote_access_software", key, ("isutility", "true"))
    assert len(values) == len(folded)  # no case-variant duplicates
    assert sample in folded


@pytest.mark.parametrize(
    ("lookup", "key", "condition", "sample"),
    [
        ("is_windows_system_file", "filename", eq("systemFile", "true"), "svchost.exe"),
        ("is_nirsoft_software", "filename", eq("nirsoftFile", "true"), "advancedrun.exe"),
        ("lolbas_file_path", "lolbas_file_name", None, "certutil.exe"),
    ],
)
def test_real_lookups_resolve(
    real_lookups: LookupTables, lookup: str, key: str, condition: Expr | None, sample: str
) -> None:
    values, _ = real_lookups.resolve(lookup, key, condition)
    assert sample in {v.casefold() for v in values}


@pytest.mark.parametrize(
    "lookup",
    [
        "previously_seen_cloud_regions",
        "__mlspl_unusual_commandline_detection",
        "identity_lookup_expanded",
    ],
)
def test_lookups_without_a_csv_stay_unresolved(real_lookups: LookupTables, lookup: str) -> None:
    assert real_lookups.resolve(lookup, "key", None) is None


# -- read(): files -> rules, with a stand-in parser --------------------------------

DETECTION = """\
name: Toy Remote Tool
id: 11111111-2222-3333-4444-555555555555
version: 3
date: '2024-09-30'
author: A Author
status: {status}
type: TTP
description: Finds a tool.
data_source:
- Sysmon EventID 1
search: '{search}'
how_to_implement: Ingest Sysmon.
known_false_positives: Admins.
references:
- https://attack.mitre.org/techniques/T1219/
drilldown_searches:
- name: not detection logic
  search: '| from datamodel Risk.All_Risk'
tags:
  analytic_story:
  - Command And Control
  mitre_attack_id:
  - T1219
  security_domain: endpoint
  risk_score: 25
"""


def toy_repo(root: Path, files: dict[str, str]) -> Path:
    (root / "macros").mkdir(parents=True)
    (root / "macros" / "sysmon.yml").write_text("name: sysmon\ndefinition: sourcetype=sysmon\n")
    (root / "lookups").mkdir()
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def fake_parse(text: str, *, lookup: Any = None) -> list[Stage]:
    if "BROKEN" in text:
        raise QueryError("unexpected token 'BROKEN'", 1, text.index("BROKEN") + 1)
    assert callable(lookup)
    return [Stage(expr=Predicate("search", Op.KEYWORD, text))]


def read_toy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], **kw: Any
) -> list[Any]:
    monkeypatch.setattr(splunk, "_parser", lambda: fake_parse)
    return list(splunk.read(toy_repo(tmp_path / "splunk", files), **kw))


def test_detection_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    search = "`sysmon` EventCode=1 process_name=anydesk.exe | `toy_remote_tool_filter`"
    rel = "detections/endpoint/toy.yml"
    [rule] = read_toy(
        tmp_path, monkeypatch, {rel: DETECTION.format(status="production", search=search)}
    )
    assert isinstance(rule, Rule) and rule.problems == []
    facts = (rule.vendor, rule.id, rule.title, rule.language, rule.type, rule.status, rule.author)
    assert facts == (
        "splunk", "11111111-2222-3333-4444-555555555555", "Toy Remote Tool", "spl", "TTP",
        "production", "A Author",
    )  # fmt: skip
    assert (rule.source_path, rule.upstream_url) == (
        rel,
        "https://github.com/splunk/security_content/blob/develop/" + rel,
    )
    assert rule.techniques == ["T1219"] and rule.references[0].endswith("/T1219/")
    assert rule.context == {"data_source": ["Sysmon EventID 1"], "macros": ["sysmon"]}
    assert rule.query == search
    assert rule.extra["expanded_search"] == "sourcetype=sysmon EventCode=1 process_name=anydesk.exe"
    assert {k: rule.extra[k] for k in ("version", "date", "analytic_story", "risk_score")} == {
        "version": 3,
        "date": "2024-09-30",
        "analytic_story": ["Command And Control"],
        "risk_score": 25,
    }
    # the parser saw the expanded search only, never the drilldown searches
    assert [s.expr for s in rule.stages] == [
        Predicate("search", Op.KEYWORD, rule.extra["expanded_search"])
    ]


@pytest.mark.parametrize(
    ("rel", "status", "include_deprecated", "loaded"),
    [
        ("detections/endpoint/a.yml", "production", False, 1),
        ("detections/endpoint/a.yml", "experimental", False, 1),
        ("detections/endpoint/a.yml", "deprecated", False, 0),
        ("detections/deprecated/a.yml", "production", False, 0),
        ("detections/endpoint/a.yml", "deprecated", True, 1),
        ("detections/deprecated/a.yml", "production", True, 1),
    ],
)
def test_deprecated_detections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rel: str, status: str,
    include_deprecated: bool, loaded: int,
) -> None:  # fmt: skip
    files = {rel: DETECTION.format(status=status, search="x=1")}
    items = read_toy(tmp_path, monkeypatch, files, include_deprecated=include_deprecated)
    assert len(items) == loaded


def test_malformed_yaml_is_a_problem_and_the_build_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = textwrap.dedent("""\
        name: Broken
        search: '`sysmon` x=1
        tags: [unclosed
        """)
    files = {
        "detections/endpoint/bad.yml": bad,
        "detections/endpoint/list.yml": "- just\n- a list\n",
        "detections/endpoint/good.yml": DETECTION.format(status="production", search="x=1"),
    }
    items = read_toy(tmp_path, monkeypatch, files)
    problems = [i for i in items if isinstance(i, Problem)]
    assert [r.title for r in items if isinstance(r, Rule)] == ["Toy Remote Tool"]
    assert [(p.path, p.line is not None, p.vendor) for p in problems] == [
        ("detections/endpoint/bad.yml", True, "splunk"),
        ("detections/endpoint/list.yml", False, "splunk"),
    ]
    assert problems[0].message.startswith("malformed YAML") and problems[0].column


def test_unparsable_search_becomes_problem_and_single_opaque_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    search = "`sysmon` BROKEN ( | stats count"
    files = {"detections/endpoint/a.yml": DETECTION.format(status="production", search=search)}
    [rule] = read_toy(tmp_path, monkeypatch, files)
    [problem] = rule.problems
    # the file line of the search key; the position inside the search is in the message
    search_line = DETECTION.splitlines().index("search: '{search}'") + 1
    assert (problem.path, problem.line, problem.rule_id) == (
        "detections/endpoint/a.yml", search_line, rule.id,
    )  # fmt: skip
    column = len("sourcetype=sysmon ") + 1
    assert problem.message == (
        f"parse error at 1:{column} of the expanded search: unexpected token 'BROKEN'"
    )
    assert [s.expr for s in rule.stages] == [
        Opaque(search, "syntax error", "unexpected token 'BROKEN'")
    ]
    assert not rule.fully_parsed


def test_undefined_macro_is_anded_to_the_first_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    search = "`sysmon` x=1 | `get_asset(src)` | `a_filter`"
    files = {"detections/endpoint/a.yml": DETECTION.format(status="production", search=search)}
    [rule] = read_toy(tmp_path, monkeypatch, files)
    assert rule.stages[0].expr == And(
        (
            Predicate("search", Op.KEYWORD, "sourcetype=sysmon x=1"),
            Opaque("`get_asset(src)`", "unresolved macro", "get_asset undefined"),
        )
    )
    assert rule.problems == [] and not rule.fully_parsed


# -- the real corpus, end to end through the SPL parser -----------------------------


@pytest.fixture(scope="module")
def splunk_items(splunk_root: Path) -> list[Rule | Problem]:
    pytest.importorskip("detcat.languages.spl", reason="the SPL parser is not there yet")
    return list(splunk.read(splunk_root))


@pytest.fixture(scope="module")
def splunk_rules(splunk_items: list[Rule | Problem]) -> list[Rule]:
    return [r for r in splunk_items if isinstance(r, Rule)]


def test_corpus_all_active_detections_load(splunk_items: list[Rule | Problem]) -> None:
    problems = [str(p) for p in splunk_items if isinstance(p, Problem)]
    rules = [r for r in splunk_items if isinstance(r, Rule)]
    assert problems == []
    assert len(rules) == 1613 and len({r.id for r in rules}) == 1613
    assert all(r.stages and "expanded_search" in r.extra for r in rules)


def test_corpus_every_search_parses_without_an_exception(splunk_rules: list[Rule]) -> None:
    failed = [f"{r.source_path}: {p.message}" for r in splunk_rules for p in r.problems]
    assert failed == []


def test_corpus_at_least_97_percent_fully_parsed(splunk_rules: list[Rule]) -> None:
    reasons = Counter(
        o.reason
        for r in splunk_rules
        if not r.fully_parsed
        for s in r.stages
        for o in opaque_nodes(s.expr)
    )
    fully = sum(r.fully_parsed for r in splunk_rules) / len(splunk_rules)
    assert fully >= 0.97, f"{fully:.2%} fully parsed; opaque reasons: {reasons.most_common()}"


def test_corpus_t1219_detections_carry_remote_access_indicators(splunk_rules: list[Rule]) -> None:
    t1219 = [r for r in splunk_rules if any(t.split(".")[0] == "T1219" for t in r.techniques)]
    assert len(t1219) == 9
    lookup_based = [r for r in t1219 if "lookup remote_access_software " in r.query]
    assert lookup_based
    for rule in lookup_based:
        values = {
            str(p.value).casefold()
            for s in rule.stages
            for p in _all_predicates(s.expr)
            if p.kind == "lookup:remote_access_software"
        }
        assert len(values) >= 50, rule.source_path  # the CSV's column, not a sample
        assert any("anydesk" in v for v in values), rule.source_path


@pytest.mark.parametrize(
    ("detection", "lookup", "field", "sample"),
    [
        ("endpoint/windows_nirsoft_utilities", "is_nirsoft_software", "Processes.process_name",
         "AdvancedRun.exe"),
        # the lookup and its filter come from is_windows_system_file_macro
        ("endpoint/system_processes_run_from_unexpected_locations", "is_windows_system_file",
         "Processes.process_name", "svchost.exe"),
        ("endpoint/attacker_tools_on_endpoint", "attacker_tools", "Processes.process_name",
         "pwdump.exe"),
        # desc!="false" where misses get default_match "false": only listed files pass
        ("endpoint/windows_lolbas_executed_as_renamed_file", "lolbas_file_path",
         "Processes.original_file_name", "certutil.exe"),
        ("endpoint/3cx_supply_chain_attack_network_indicators", "3cx_ioc_domains", "DNS.query",
         "akamaicontainer.com"),
        ("network/detect_remote_access_software_usage_dns", "remote_access_software", "DNS.query",
         "net.anydesk.com"),
        ("network/detect_remote_access_software_usage_traffic", "remote_access_software",
         "All_Traffic.app", "teamviewer-base"),
    ],
)  # fmt: skip
def test_corpus_lookup_values_reach_the_rule(
    splunk_rules: list[Rule], detection: str, lookup: str, field: str, sample: str
) -> None:
    [rule] = [r for r in splunk_rules if r.source_path == f"detections/{detection}.yml"]
    resolved = {
        str(p.value).casefold()
        for s in rule.stages
        for p in _all_predicates(s.expr)
        if p.kind == f"lookup:{lookup}" and p.field_raw == field and p.op is not Op.IN_LIST
    }
    assert sample.casefold() in resolved


def _all_predicates(expr: Expr | None) -> list[Predicate]:
    match expr:
        case Predicate():
            return [expr]
        case And(children) | Or(children):
            return [p for c in children for p in _all_predicates(c)]
        case Not(child):
            return _all_predicates(child)
    return []
