"""Several sources folders: each rule keeps its collection; an id clash between
collections is a recorded problem; coverage, layers and CSV filter by collection,
and ``coverage --collection`` lists techniques only the others cover."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from corpus_subset import sigma_subset

from detcat import catalog, schemas, store
from detcat.catalog import BuildError, Collection
from detcat.cli import main

MINE = {
    "title": "My company's rule",
    "id": "6d1a6b5e-0000-4000-8000-00000000c0de",
    "status": "test",
    "tags": ["attack.t1001"],
    "logsource": {"category": "process_creation", "product": "windows"},
    "detection": {"sel": {"Image|endswith": "\\in-house-tool.exe"}, "condition": "sel"},
}


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        (["a"], [("public", "a")]),
        (["a", "x/b"], [("public", "a"), ("b", "x/b")]),
        (["mine=a", "b"], [("mine", "a"), ("public", "b")]),
        (["C:/rules"], [("public", "C:/rules")]),  # not a NAME=DIR form
    ],
)
def test_sources_specs(specs: list[str], expected: list[tuple[str, str]]) -> None:
    assert catalog.collections(specs) == [Collection(n, Path(p)) for n, p in expected]


def test_two_folders_of_one_name_is_an_error() -> None:
    with pytest.raises(BuildError, match="two sources folders named 'p'"):
        catalog.collections(["p=a", "p=b"])


@pytest.fixture(scope="module")
def two(corpora: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("collections")
    public = sigma_subset(corpora, root / "public", n=40)
    clash_file = sorted((public / "sigma" / "rules").glob("*.yml"))[0]
    clash = yaml.safe_load(clash_file.read_text(encoding="utf-8"))
    mine = root / "mine" / "sigma" / "rules"
    mine.mkdir(parents=True)
    (mine / "mine.yml").write_text(yaml.safe_dump(MINE), encoding="utf-8")
    (mine / "copy.yml").write_text(clash_file.read_text(encoding="utf-8"), encoding="utf-8")
    db = root / "two.sqlite"
    args = ["build", "--sources", str(public), "--sources", f"mycompany={root / 'mine'}"]
    out = CliRunner().invoke(main, [*args, "--db", str(db), "--json"])
    assert out.exit_code == 0, out.output
    return {"db": db, "clash": clash, "root": root}


def run(db: Path, *args: str) -> Any:
    out = CliRunner().invoke(main, [*args, "--db", str(db)])
    assert out.exit_code == 0, out.output
    return out.output


def test_rules_keep_their_collection_and_a_clash_is_a_problem(two: dict[str, Any]) -> None:
    conn = store.connect(two["db"])
    counts = dict(conn.execute("SELECT collection, COUNT(*) FROM rules GROUP BY 1").fetchall())
    assert counts == {"public": 40, "mycompany": 1}
    problems = [p["message"] for p in conn.execute("SELECT message FROM problems")]
    assert problems == [
        f"duplicate rule id {two['clash']['id']} (collection mycompany clashes with "
        "collection public)"
    ]


def test_coverage_of_a_collection_lists_techniques_to_adopt(two: dict[str, Any]) -> None:
    doc = json.loads(run(two["db"], "coverage", "--events", "sysmon:1", "--collection",
                         "mycompany", "--json"))  # fmt: skip
    assert [(t["id"], t["rules"], t["runnable"]) for t in doc["techniques"]] == [("T1001", 1, 1)]
    conn = store.connect(two["db"])
    public = {t for (t,) in conn.execute(
        "SELECT DISTINCT technique_id FROM rule_techniques JOIN rules ON pk = rule_pk"
        " WHERE collection = 'public'")}  # fmt: skip
    assert {t["id"] for t in doc["adopt"]} == public - {"T1001"}
    assert all(set(t["collections"]) == {"public"} for t in doc["adopt"])


def test_layer_and_csv_filter_by_collection(two: dict[str, Any]) -> None:
    layer = json.loads(run(two["db"], "layer", "--collection", "mycompany"))
    assert [(t["techniqueID"], t["score"]) for t in layer["techniques"]] == [("T1001", 1)]
    out = two["root"] / "csv"
    run(two["db"], "export-csv", str(out), "--collection", "mycompany")
    with (out / "rules.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["id"], r["collection"], r["techniques"]) for r in rows] == [
        (MINE["id"], "mycompany", "T1001")
    ]


def test_web_pages_filter_and_show_the_collection(two: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    from detcat.web.app import create_app

    client = TestClient(create_app(two["db"]))
    page = client.get("/coverage?events=sysmon:1&collection=mycompany").text
    assert 'id="collection-filter"' in page and '<option value="mycompany" selected>' in page
    twin = client.get("/api/coverage?events=sysmon:1&collection=mycompany").json()
    cli = run(two["db"], "coverage", "--events", "sysmon:1", "--collection", "mycompany", "--json")
    assert twin == json.loads(cli) and twin["adopt"]
    schemas.Coverage.model_validate(twin)
    rule = client.get(f"/api/rules/sigma/{MINE['id']}").json()
    assert rule["collection"] == "mycompany"
    assert "<dt>collection</dt><dd>mycompany</dd>" in client.get(f"/rules/sigma/{MINE['id']}").text
