"""SARIF 2.1.0 output and the lint settings table.

The schema below restates the parts of the OASIS SARIF 2.1.0 JSON schema
(sarif-schema-2.1.0.json) that `detcat lint` emits: required properties, the
level enumeration, 1-based regions, and ``additionalProperties: false`` where the
official schema has it, listing only property names the official schema defines.
GitHub code scanning additionally needs ``ruleIndex`` to point at the rule whose
``id`` is the result's ``ruleId``.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from detcat import lint
from detcat.cli.lint import sarif, text_lines
from detcat.lint import Finding, LintResult

SRC = Path(lint.__file__).parent

_MESSAGE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"text": {"type": "string"}, "markdown": {"type": "string"}},
    "required": ["text"],
}
_REGION = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "startLine": {"type": "integer", "minimum": 1},
        "startColumn": {"type": "integer", "minimum": 1},
        "endLine": {"type": "integer", "minimum": 1},
        "endColumn": {"type": "integer", "minimum": 1},
    },
}
_LOCATION = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "physicalLocation": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "artifactLocation": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"uri": {"type": "string"}, "uriBaseId": {"type": "string"}},
                },
                "region": _REGION,
            },
        }
    },
}
_LEVEL = {"enum": ["none", "note", "warning", "error"]}
_RESULT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "ruleId": {"type": "string"},
        "ruleIndex": {"type": "integer", "minimum": -1},
        "level": _LEVEL,
        "message": _MESSAGE,
        "locations": {"type": "array", "items": _LOCATION},
        "properties": {"type": "object"},
    },
    "required": ["message"],
}
_DESCRIPTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "shortDescription": _MESSAGE,
        "defaultConfiguration": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"level": _LEVEL, "enabled": {"type": "boolean"}},
        },
    },
    "required": ["id"],
}
SARIF_2_1_0 = {
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "runs"],
    "properties": {
        "$schema": {"type": "string"},
        "version": {"enum": ["2.1.0"]},
        "runs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["tool"],
                "properties": {
                    "tool": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["driver"],
                        "properties": {
                            "driver": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "version": {"type": "string"},
                                    "informationUri": {"type": "string"},
                                    "rules": {"type": "array", "items": _DESCRIPTOR},
                                },
                            }
                        },
                    },
                    "columnKind": {"enum": ["utf16CodeUnits", "unicodeCodePoints"]},
                    "results": {"type": "array", "items": _RESULT},
                },
            },
        },
    },
}


def _result(path: str, *findings: Finding) -> LintResult:
    return LintResult(path, "sigma", ["draft"], list(findings))


FINDINGS = [
    Finding("unknown-field", "error", "no rule uses 'CommandLien'", 10, 5,
            field="CommandLien", suggestion="CommandLine"),
    Finding("similar-rule", "note", "similar to x", 1, 1,
            related=[{"vendor": "sigma", "id": "x", "score": 0.9}]),
    Finding("parse-error", "error", "unexpected end of query", 16, 1),
]  # fmt: skip


@pytest.mark.parametrize("path", ["rules/draft.yml", "/abs/dir/draft rule.yml"])
def test_sarif_matches_the_2_1_0_structure(path: str) -> None:
    log = sarif([_result(path, *FINDINGS)])
    jsonschema.validate(json.loads(json.dumps(log)), SARIF_2_1_0)
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    for res, f in zip(run["results"], FINDINGS, strict=True):
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"] == f.code
        assert res["level"] == f.severity
        region = res["locations"][0]["physicalLocation"]["region"]
        assert (region["startLine"], region["startColumn"]) == (f.line, f.column)
    uri = run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == (
        "rules/draft.yml" if path.startswith("rules") else "file:///abs/dir/draft%20rule.yml"
    )


def test_sarif_rejects_what_the_spec_rejects() -> None:
    """The restated schema can fail: a level outside the enumeration, a 0 line."""
    log = sarif([_result("d.yml", Finding("opaque", "error", "m", 1, 1))])
    log["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(log, SARIF_2_1_0)
    log = sarif([_result("d.yml", Finding("opaque", "error", "m", 0, 1))])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(log, SARIF_2_1_0)


def test_text_counts_by_severity() -> None:
    lines = text_lines([_result("d.yml", *FINDINGS)])
    assert lines[0] == "d.yml:10:5: error: no rule uses 'CommandLien' [unknown-field]"
    assert lines[-1] == "2 errors, 0 warnings, 1 note"


# -- the settings table ----------------------------------------------------------------------


def _subscripts() -> set[str]:
    """Every string subscript (``cfg["noisy"]["reach"]``) in the lint modules."""
    keys: set[str] = set()
    for name in ("__init__.py", "peers.py"):
        for node in ast.walk(ast.parse((SRC / name).read_text())):
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                keys.add(str(node.slice.value))
    return keys


def test_every_setting_is_read_and_well_formed() -> None:
    cfg = lint.default_settings()
    used = _subscripts()
    table_driven = {"severity", "describe"}  # read by code name, not by literal key
    unread = [f"{s}.{k}" for s, d in cfg.items() if s not in table_driven for k in d
              if k not in used]  # fmt: skip
    assert unread == []
    assert set(cfg["severity"].values()) <= set(lint.SEVERITIES)
    assert set(cfg["describe"]) <= set(cfg["severity"])


def test_every_code_has_a_severity_and_a_description() -> None:
    """Codes the modules emit (string literals passed as codes) are all described."""
    cfg = lint.default_settings()
    emitted = {"parse-error", "opaque", "unknown-field", "noisy-indicator",
               "missing-common-exclusion", "similar-rule", "untagged-technique"}  # fmt: skip
    sources = "".join((SRC / n).read_text() for n in ("__init__.py", "peers.py"))
    assert all(f'"{c}"' in sources for c in emitted)
    assert emitted == set(cfg["describe"])
    assert all(f'"{k}"' in sources for k in cfg["severity"])


@pytest.mark.parametrize(
    ("override", "expected"),
    [("noisy.reach=30", 30), ("similar.min_score=0.7", 0.7), ("selectors.fields=a,b", ["a", "b"])],
)
def test_overrides_keep_types(override: str, expected: Any) -> None:
    key, value = override.split("=")
    section, name = key.split(".")
    assert lint.settings_with({key: value})[section][name] == expected


@pytest.mark.parametrize("override", ["noisy.nope=1", "nope.reach=1", "noisy.reach=many"])
def test_bad_overrides_are_errors(override: str) -> None:
    key, value = override.split("=")
    with pytest.raises(lint.LintSettingError):
        lint.settings_with({key: value})


def test_the_command_writes_valid_sarif_for_real_drafts(corpus_db: Path) -> None:
    from click.testing import CliRunner

    from detcat.cli import main

    drafts = Path(__file__).parent / "drafts"
    files = [str(drafts / n) for n in ("typo.yml", "exclusion.toml", "broken_condition.yml")]
    out = CliRunner().invoke(main, ["lint", "--db", str(corpus_db), "--format", "sarif", *files])
    assert out.exit_code == 1  # the typo and the broken condition are errors
    log = json.loads(out.output)
    jsonschema.validate(log, SARIF_2_1_0)
    results = log["runs"][0]["results"]
    got = {(r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])
           for r in results}  # fmt: skip
    assert {("unknown-field", files[0]), ("parse-error", files[2])} <= {
        (code, Path(uri.removeprefix("file://")).as_posix()) for code, uri in got
    }
    assert any(r["ruleId"] == "missing-common-exclusion" for r in results)
