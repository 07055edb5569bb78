"""A vendor is a plugin: a toy vendor, defined only here, installed through the
``detcat.vendors`` entry-point group exactly as a third-party package would be,
is built into the catalog, listed by ``stats``, shown on the web, read by
``detcat parse`` and matched by ``detcat match`` — with no change to detcat.

The toy format: one ``*.toy`` file per rule, ``key: value`` lines (``id``,
``title``, ``technique``, ``query``); the toy query language ``toyql`` is
``field=value`` and ``field!=value`` joined by ``and``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from detcat import catalog
from detcat.cli import main
from detcat.model import Not, Op, Predicate, Problem, QueryError, Rule, Stage, and_
from detcat.sources import registry
from detcat.sources.registry import ANY, Hints, Vendor, query_rule
from detcat.web.app import create_app

# -- the toy vendor (what a plugin package would ship) ---------------------------------


def toyql(text: str) -> list[Stage]:
    terms = []
    for i, term in enumerate(text.split(" and ")):
        field, sep, value = term.strip().partition("!=" if "!=" in term else "=")
        if not sep or not field or not value:
            raise QueryError(f"term {i + 1} is not field=value: {term!r}", 1, 1)
        pred = Predicate(field, Op.EQ, value, sep)
        terms.append(Not(pred) if sep == "!=" else pred)
    return [Stage(expr=and_(*terms))]


class Toy(Vendor):
    name = "toy"
    display_name = "Toy Rules"
    languages = ("toyql",)

    def rule_files(self, root: Path, include_deprecated: bool = False) -> list[Path]:
        return sorted((root / "rules").glob("*.toy"))

    def read_file(self, path: Path, root: Path) -> Rule | Problem:
        rel = path.relative_to(root).as_posix()
        doc = dict(line.split(": ", 1) for line in path.read_text().splitlines() if ": " in line)
        rule = Rule(self.name, doc["id"], doc["title"], rel, "toyql", query=doc["query"])
        rule.techniques = [doc["technique"]]
        rule.stages = toyql(rule.query)
        return rule

    def parse_text(self, language: str, text: str) -> list[Rule]:
        return [query_rule(self.name, language, toyql(text))]

    def scopes(self, rule: Rule, stage: Stage) -> tuple[str, ...]:
        return (ANY,)

    def hints(self, rule: Rule, stage: Stage, classes: Sequence[str]) -> Hints:
        return Hints(implied=("sysmon:1",))  # toy rules look at process creations

    def field_table(self) -> Mapping[str, Any]:
        return {ANY: {"proc": "process.name", "who": "user.name"}}

    def event_scopes(
        self, raw: Mapping[str, Sequence[Any]], log_scopes: tuple[str, ...]
    ) -> tuple[str, ...]:
        return (ANY,)  # toy events use toy field names


RULES = {
    "anydesk.toy": "id: toy-1\ntitle: Toy AnyDesk\ntechnique: T1219\n"
    "query: proc=anydesk.exe and who!=SYSTEM\n",
    "other.toy": "id: toy-2\ntitle: Toy other\ntechnique: T1059\nquery: proc=other.exe\n",
}


@pytest.fixture
def toy_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The toy vendor as an installed distribution: a dist-info with an entry point
    in the ``detcat.vendors`` group, on ``sys.path``."""
    site = tmp_path / "site"
    info = site / "detcat_toy_vendor-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: detcat-toy-vendor\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[detcat.vendors]\ntoy = {__name__}:Toy\n")
    monkeypatch.syspath_prepend(str(site))
    registry.reload()
    yield
    monkeypatch.undo()
    registry.reload()


@pytest.fixture
def toy_db(toy_installed: None, tmp_path: Path) -> Path:
    sources = tmp_path / "sources"
    (sources / "toy" / "rules").mkdir(parents=True)
    for name, text in RULES.items():
        (sources / "toy" / "rules" / name).write_text(text)
    (sources / "attack").mkdir()
    (sources / "attack" / "enterprise-attack.json").write_text('{"type":"bundle","objects":[]}')
    db = tmp_path / "detcat.sqlite"
    report = catalog.build(sources, db, workers=1)
    assert report.vendors["toy"]["rules"] == 2 and report.problems == []
    return db


def cli(*args: str, input: str | None = None) -> Any:
    res = CliRunner().invoke(main, list(args), input=input)
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_the_registry_lists_the_plugin_next_to_the_built_in_vendors(toy_installed: None) -> None:
    assert {"sigma", "elastic", "splunk", "chronicle", "toy"} <= set(registry.names())
    assert registry.languages()["toyql"].display_name == "Toy Rules"


def test_built_and_listed_by_stats(toy_db: Path) -> None:
    stats = cli("stats", "--json", "--db", str(toy_db))
    assert stats["vendors"]["toy"]["rules"] == 2
    assert stats["vendors"]["toy"]["fully_parsed"] == 2
    assert stats["vendors"]["toy"]["mapped_predicates"] == 3  # the toy field table


def test_rule_and_technique_guide(toy_db: Path) -> None:
    rule = cli("rule", "toy-1", "--vendor", "toy", "--json", "--db", str(toy_db))
    assert [e["id"] for e in rule["events"]] == ["sysmon:1"]  # the toy vendor's hints
    guide = cli("technique", "T1219", "--json", "--db", str(toy_db))
    assert guide["vendors"]["toy"] == 1
    excluded = {(x["field"], x["value"]) for x in guide["exclusions"]}
    assert ("user.name", "SYSTEM") in excluded


def test_shown_on_the_web(toy_db: Path) -> None:
    with TestClient(create_app(toy_db)) as client:
        overview = client.get("/")
        assert overview.status_code == 200 and "Toy Rules" in overview.text
        page = client.get("/rules/toy/toy-1")
        assert page.status_code == 200 and "Toy AnyDesk" in page.text and "Toy Rules" in page.text
        assert client.get("/api/rules/toy/toy-1").json()["vendor"] == "toy"


def test_parsed_by_detcat_parse(toy_installed: None) -> None:
    out = cli("parse", "toyql", "proc=anydesk.exe and who!=SYSTEM", "--json")
    preds = [(p["field"], p["value"], p["negated"]) for p in out["stages"][0]["predicates"]]
    assert preds == [("process.name", "anydesk.exe", False), ("user.name", "SYSTEM", True)]


@pytest.mark.parametrize(
    ("event", "fired"),
    [
        ({"proc": "anydesk.exe", "who": "bob"}, ["toy-1"]),
        ({"proc": "anydesk.exe", "who": "SYSTEM"}, []),  # the exclusion holds
        ({"proc": "other.exe"}, ["toy-2"]),
    ],
)
def test_matched_by_detcat_match(
    toy_db: Path, tmp_path: Path, event: dict[str, str], fired: list[str]
) -> None:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    out = cli("match", str(path), "--vendor", "toy", "--json", "--db", str(toy_db))
    (result,) = out
    assert sorted(r["id"] for r in result["matches"]) == fired
