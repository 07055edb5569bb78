"""``detcat layer``: ATT&CK Navigator layers checked against the layer format 4.5
specification (mitre-attack/attack-navigator, layers/spec/v4.5/layerformat.md),
written down here as data, and scores checked against the store."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from detcat.cli import main

# The spec's property tables: name -> (type, required). Anything else is not a
# layer property.
LAYER = {
    "versions": (dict, False), "name": (str, True), "description": (str, False),
    "domain": (str, True), "customDataURL": (str, False), "filters": (dict, False),
    "sorting": (int, False), "layout": (dict, False), "hideDisabled": (bool, False),
    "techniques": (list, False), "gradient": (dict, False), "legendItems": (list, False),
    "showTacticRowBackground": (bool, False), "tacticRowBackground": (str, False),
    "selectTechniquesAcrossTactics": (bool, False),
    "selectSubtechniquesWithParent": (bool, False), "selectVisibleTechniques": (bool, False),
    "metadata": (list, False), "links": (list, False),
}  # fmt: skip
VERSIONS = {"attack": (str, False), "navigator": (str, True), "layer": (str, True)}
TECHNIQUE = {
    "techniqueID": (str, True), "tactic": (str, False), "comment": (str, False),
    "enabled": (bool, False), "score": ((int, float), False), "color": (str, False),
    "metadata": (list, False), "links": (list, False), "showSubtechniques": (bool, False),
}  # fmt: skip
GRADIENT = {"colors": (list, True), "minValue": ((int, float), True),
            "maxValue": ((int, float), True)}  # fmt: skip
LAYOUT = {
    "layout": (str, False), "showID": (bool, False), "showName": (bool, False),
    "showAggregateScores": (bool, False), "countUnscored": (bool, False),
    "aggregateFunction": (str, False), "expandedSubtechniques": (str, False),
}  # fmt: skip
ENUMS = {
    ("domain",): {"enterprise-attack", "mobile-attack", "ics-attack"},
    ("layout", "layout"): {"side", "flat", "mini"},
    ("layout", "aggregateFunction"): {"average", "min", "max", "sum"},
    ("layout", "expandedSubtechniques"): {"none", "all", "annotated"},
    ("sorting",): {0, 1, 2, 3},
}
METADATA = {"name": (str, True), "value": (str, True)}
TECHNIQUE_ID = re.compile(r"^T\d{4}(\.\d{3})?$")
HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


def conforms(obj: dict[str, Any], table: dict[str, tuple[Any, bool]], where: str) -> list[str]:
    errors = [f"{where}: unknown property {k}" for k in obj if k not in table]
    for key, (kind, required) in table.items():
        if key not in obj:
            errors += [f"{where}: missing {key}"] if required else []
        elif not isinstance(obj[key], kind) or (kind is int and isinstance(obj[key], bool)):
            errors.append(f"{where}: {key} is {type(obj[key]).__name__}")
    return errors


def layer_errors(layer: dict[str, Any]) -> list[str]:
    """Everything in ``layer`` the 4.5 spec does not allow."""
    errors = conforms(layer, LAYER, "layer")
    errors += conforms(layer.get("versions", {}), VERSIONS, "versions")
    errors += conforms(layer.get("layout", {}), LAYOUT, "layout")
    v = layer.get("versions", {})
    if v.get("layer") != "4.5":
        errors.append("versions.layer must be 4.5")
    if tuple(map(int, v.get("navigator", "0").split("."))) < (4, 9, 0):
        errors.append("versions.navigator must be at least 4.9.0")
    for path, allowed in ENUMS.items():
        node: Any = layer
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None and node not in allowed:
            errors.append(f"{'.'.join(path)}: {node!r} not allowed")
    g = layer.get("gradient", {})
    errors += conforms(g, GRADIENT, "gradient")
    if len(g.get("colors", [])) < 2 or not all(HEX.match(c) for c in g.get("colors", [])):
        errors.append("gradient.colors: at least two hexadecimal RGB colors")
    if not g.get("maxValue", 0) > g.get("minValue", 0):
        errors.append("gradient: maxValue must be > minValue")
    for t in layer.get("techniques", []):
        errors += conforms(t, TECHNIQUE, f"technique {t.get('techniqueID')}")
        if not TECHNIQUE_ID.match(str(t.get("techniqueID"))):
            errors.append(f"bad techniqueID {t.get('techniqueID')}")
    for m in layer.get("metadata", []):
        if m != {"divider": True}:
            errors += conforms(m, METADATA, "metadata")
    return errors


def test_the_spec_check_catches_violations() -> None:
    bad = {"name": 1, "domain": "mitre-enterprise", "versions": {"layer": "4.4"}, "x": 1,
           "gradient": {"colors": ["red"], "minValue": 5, "maxValue": 5},
           "techniques": [{"techniqueID": "1059", "score": "3"}]}  # fmt: skip
    errors = layer_errors(bad)
    for needle in ("layer: name is int", "unknown property x", "domain", "versions: missing "
                   "navigator", "versions.layer", "gradient.colors", "maxValue", "bad techniqueID",
                   "score is str"):  # fmt: skip
        assert any(needle in e for e in errors), needle


def run_layer(db: Path, *args: str) -> dict[str, Any]:
    out = CliRunner().invoke(main, ["layer", *args, "--db", str(db)])
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


def exact_counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(db)
    return dict(conn.execute(
        """SELECT rt.technique_id, COUNT(*) FROM rule_techniques rt
        JOIN techniques t ON t.id = rt.technique_id
        WHERE t.known = 1 AND t.revoked = 0 AND t.deprecated = 0 GROUP BY 1"""
    ).fetchall())  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [(), ("--vendor", "sigma", "--vendor", "elastic"), ("--events", "sysmon:1"),
     ("--score", "vendors")],
)  # fmt: skip
def test_layer_follows_the_spec(corpus_db: Path, args: tuple[str, ...]) -> None:
    layer = run_layer(corpus_db, *args)
    assert layer_errors(layer) == []
    ids = [t["techniqueID"] for t in layer["techniques"]]
    assert len(ids) == len(set(ids)), "one entry per technique id"
    assert layer["gradient"]["maxValue"] == max(t["score"] for t in layer["techniques"])


def test_scores_are_rules_tagged_with_the_exact_id(corpus_db: Path) -> None:
    layer = run_layer(corpus_db)
    assert {t["techniqueID"]: t["score"] for t in layer["techniques"]} == exact_counts(corpus_db)
    scores = {t["techniqueID"]: t for t in layer["techniques"]}
    assert "T1059" in scores and "T1059.001" in scores  # sub-techniques are their own entries
    assert scores["T1059.001"]["comment"].startswith("rules: ")


def test_events_score_runnable_rules_as_coverage_counts(corpus_db: Path) -> None:
    layer = run_layer(corpus_db, "--events", "sysmon:1", "--events", "sysmon:13")
    out = CliRunner().invoke(main, ["coverage", "--events", "sysmon:1", "--events", "sysmon:13",
                                    "--json", "--db", str(corpus_db)])  # fmt: skip
    runnable = {t["id"]: t["runnable"] for t in json.loads(out.output)["techniques"]}
    for t in layer["techniques"]:
        assert t["score"] == runnable[t["techniqueID"]]
    assert any(t["score"] == 0 for t in layer["techniques"]), "gaps stay in the layer"


def test_layer_out_file(corpus_db: Path, tmp_path: Path) -> None:
    path = tmp_path / "layer.json"
    out = CliRunner().invoke(main, ["layer", "--out", str(path), "--db", str(corpus_db)])
    assert out.exit_code == 0 and layer_errors(json.loads(path.read_text())) == []
