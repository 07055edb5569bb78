"""``detcat diff``: two builds of real Sigma rules where one rule was removed,
one rule's detection changed, one was retitled and one retagged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from corpus_subset import sigma_subset

from detcat import catalog, store
from detcat.cli import main
from detcat.diff import diff

NEEDLE = {"field": "process.command_line", "op": "contains", "value": "detcat-diff-test"}


def edit(path: Path, change: Any) -> dict[str, Any]:
    """Apply ``change`` to the rule's YAML document; returns the document before."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    before = json.loads(json.dumps(doc, default=str))
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return before


def add_selection(doc: dict[str, Any]) -> None:
    det = doc["detection"]
    det["detcatdiff"] = {"CommandLine|contains": NEEDLE["value"]}
    det["condition"] = f"({det['condition']}) and detcatdiff"


@pytest.fixture(scope="module")
def builds(corpora: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("diff")
    old_src = sigma_subset(corpora, root / "old")
    new_src = sigma_subset(corpora, root / "new")
    files = sorted((new_src / "sigma" / "rules").glob("*.yml"))
    removed = yaml.safe_load(files[0].read_text(encoding="utf-8"))
    files[0].unlink()
    changed = edit(files[1], add_selection)
    retitled = edit(files[2], lambda d: d.update(title=d["title"] + " (renamed)"))
    retagged = edit(files[3], lambda d: d.setdefault("tags", []).append("attack.t1001"))
    assert "attack.t1001" not in retagged.get("tags", [])
    out = {"removed": removed, "changed": changed, "retitled": retitled, "retagged": retagged}
    for name, src in (("old", old_src), ("new", new_src)):
        out[name] = root / f"{name}.sqlite"
        catalog.build(src, out[name], vendors=("sigma",), workers=1)
    return out


def test_removed_changed_retitled_retagged(builds: dict[str, Any]) -> None:
    d = diff(store.connect(builds["old"]), store.connect(builds["new"]))
    removed = builds["removed"]
    assert d["added"] == []
    assert d["removed"] == [{"vendor": "sigma", "id": removed["id"], "title": removed["title"]}]
    by_id = {c["id"]: c for c in d["changed"]}
    assert set(by_id) == {builds[k]["id"] for k in ("changed", "retitled", "retagged")}
    c = by_id[builds["changed"]["id"]]
    assert (c["kind"], c["predicates_removed"]) == ("detection", [])
    assert c["predicates_added"] == [f'events: {NEEDLE["field"]} contains "{NEEDLE["value"]}"']
    assert "techniques_added" not in c and "exclusions_added" not in c
    r = by_id[builds["retitled"]["id"]]
    assert (r["kind"], r["title"]) == ("metadata only", builds["retitled"]["title"] + " (renamed)")
    assert "title" in r["metadata"]  # and "query": a Sigma rule's query is its YAML
    assert not {"predicates_added", "exclusions_added", "techniques_added"} & r.keys()
    t = by_id[builds["retagged"]["id"]]
    assert (t["kind"], t["techniques_added"], t["techniques_removed"]) == (
        "techniques", ["T1001"], [])  # fmt: skip
    assert d["summary"]["changed"] == {"detection": 1, "metadata only": 1, "techniques": 1}


def test_per_technique_changes(builds: dict[str, Any]) -> None:
    d = diff(store.connect(builds["old"]), store.connect(builds["new"]))
    techniques = {t["id"]: t for t in d["techniques"]}
    retagged = builds["retagged"]["id"]
    assert [r["id"] for r in techniques["T1001"]["rules_gained"]] == [retagged]
    conn = store.connect(builds["old"])
    sql = "SELECT technique_id FROM rule_techniques JOIN rules ON pk = rule_pk WHERE id = ?"
    lost = {tid for (tid,) in conn.execute(sql, (builds["removed"]["id"],))}
    assert lost, "the removed rule is tagged"
    for tid in lost:
        assert builds["removed"]["id"] in [r["id"] for r in techniques[tid]["rules_lost"]]
    for (tid,) in conn.execute(sql, (builds["changed"]["id"],)):
        assert NEEDLE in techniques[tid]["indicators_added"], tid


def test_cli_changelog_and_json(builds: dict[str, Any]) -> None:
    args = ["diff", str(builds["old"]), str(builds["new"])]
    text = CliRunner().invoke(main, args)
    assert text.exit_code == 0, text.output
    assert "## Removed" in text.output and builds["removed"]["id"] in text.output
    assert f"{builds['changed']['id']} ({builds['changed']['title']}): detection" in text.output
    as_json = CliRunner().invoke(main, [*args, "--json"])
    expected = diff(store.connect(builds["old"]), store.connect(builds["new"]))
    assert json.loads(as_json.output) == expected
    same = CliRunner().invoke(main, ["diff", str(builds["old"]), str(builds["old"]), "--json"])
    doc = json.loads(same.output)
    assert (doc["added"], doc["removed"], doc["changed"], doc["techniques"]) == ([], [], [], [])
    missing = CliRunner().invoke(main, ["diff", str(builds["old"]), "/nonexistent.sqlite"])
    assert missing.exit_code == 3
