"""`detcat lint` on real drafts, against the catalog built from the real corpora:
each draft under drafts/ carries one known flaw, and lint must report it with the
right code, severity and position."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from detcat import lint, similar
from detcat.cli import main
from detcat.drafts import DraftError, read_draft
from detcat.store import connect

DRAFTS = Path(__file__).parent / "drafts"


@pytest.fixture(scope="module")
def lint_db(corpus_db: Path) -> Path:
    similar.ensure(corpus_db)
    return corpus_db


@pytest.fixture(scope="module")
def conn(lint_db: Path) -> Any:
    return connect(lint_db)


def _lint(conn: Any, name: str, language: str | None = None) -> lint.LintResult:
    return lint.lint_file(conn, DRAFTS / name, language)


# (draft, --language, code, severity, line, column, expected attributes)
CASES = [
    ("typo.yml", None, "unknown-field", "error", 10, 5,
     {"field": "CommandLien", "suggestion": "CommandLine"}),
    ("typo.yaral", None, "unknown-field", "error", 8, 8,
     {"field": "target.process.file.full_pth", "suggestion": "target.process.file.full_path"}),
    ("undefined_macro.yml", None, "unknown-field", "warning", 11, 57,
     {"field": "process", "suggestion": None}),
    ("noisy.yml", None, "noisy-indicator", "warning", 8, 22,
     {"field": "Image", "value": "\\cmd.exe"}),
    ("exclusion.toml", None, "missing-common-exclusion", "note", 15, 1,
     {"field": "destination.ip", "value": "127.0.0.0/8"}),
    ("untagged.yml", None, "untagged-technique", "warning", 3, 1, {"suggestion": "T1219"}),
    ("anydesk_copy.eql", "eql", "similar-rule", "note", 1, 1, {}),
    ("broken.toml", None, "parse-error", "error", 16, 1, {}),
    ("broken_condition.yml", None, "parse-error", "error", 10, 27, {}),  # after 'and'
    ("unknown_modifier.yml", None, "parse-error", "error", 8, 11, {}),
    ("undefined_macro.yml", None, "opaque", "warning", 11, 10, {"value": "`sysmon`"}),
]  # fmt: skip


@pytest.mark.parametrize(("draft", "language", "code", "severity", "line", "col", "attrs"), CASES)
def test_each_flaw_is_found_where_it_is(
    conn: Any, draft: str, language: str | None, code: str, severity: str, line: int,
    col: int, attrs: dict[str, Any],
) -> None:  # fmt: skip
    found = [f for f in _lint(conn, draft, language).findings if f.code == code]
    assert found, f"no {code} in {draft}"
    f = found[0]
    assert (f.severity, f.line, f.column) == (severity, line, col), f.message
    for k, v in attrs.items():
        assert getattr(f, k) == v, (k, f.to_json())


def test_a_copy_in_another_vendors_language_is_found_as_similar(conn: Any) -> None:
    """The EQL draft restates Sigma's "Remote Access Tool - AnyDesk Execution"."""
    found = [f for f in _lint(conn, "anydesk_copy.eql", "eql").findings if f.code == "similar-rule"]
    best = found[0].related[0]
    assert (best["vendor"], best["id"]) == ("sigma", "b52e84a3-029e-4529-b09b-71d19dd27e94")
    assert best["score"] >= 0.8
    assert best["url"].startswith("https://github.com/SigmaHQ/sigma/") and best["url"] in (
        found[0].message
    )
    shared = {(s.get("field"), s.get("value")) for s in best["shared"]}
    assert ("process.name", "anydesk.exe") in shared


def test_messages_speak_the_users_terms(conn: Any) -> None:
    cond = _lint(conn, "broken_condition.yml").findings[0].message
    assert "'selection and'" in cond and "the end of the condition" in cond
    assert "W:(" not in cond and "Expected {" not in cond  # pyparsing's grammar names
    noisy = next(f for f in _lint(conn, "noisy.yml").findings if f.code == "noisy-indicator")
    reach = noisy.related[0]["reach"]
    assert reach >= default("noisy", "min_peers") and f"{reach} catalog rules" in noisy.message
    assert noisy.related[0]["narrowed_by"][0]["field"] in noisy.message


def test_a_clean_corpus_rule_is_not_its_own_duplicate(conn: Any, corpora: Path) -> None:
    rule = corpora / "sigma/rules/windows/process_creation"
    path = next(rule.glob("proc_creation_win_remote_access_tools_anydesk.yml"))
    result = lint.lint_file(conn, path)
    own = "b52e84a3-029e-4529-b09b-71d19dd27e94"
    assert not [f for f in result.findings if any(r.get("id") == own for r in f.related)]
    assert not [f for f in result.findings if f.severity == "error"]


def default(section: str, key: str) -> Any:
    return lint.default_settings()[section][key]


def test_unreadable_format_is_a_draft_error(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_text("process.name : cmd.exe")
    with pytest.raises(DraftError, match="--language"):
        read_draft(p)
    assert read_draft(p, "kql").rules[0].stages[0].expr is not None


# -- the command: exit codes and output formats ----------------------------------------------

EXIT_CASES = [
    (["typo.yml"], [], 1),  # an error-severity finding
    (["noisy.yml"], [], 0),  # warnings only
    (["noisy.yml"], ["--set", "severity.noisy-indicator=error"], 1),
    (["noisy.yml"], ["--set", "noisy.nonsense=1"], 2),  # usage error
    (["missing.yml"], [], 1),  # a file that cannot be read
]


@pytest.mark.parametrize(("files", "options", "code"), EXIT_CASES)
def test_exit_codes(lint_db: Path, files: list[str], options: list[str], code: int) -> None:
    args = ["lint", "--db", str(lint_db), *options, *(str(DRAFTS / f) for f in files)]
    assert CliRunner().invoke(main, args).exit_code == code


def test_no_catalog_exits_3(tmp_path: Path) -> None:
    args = ["lint", "--db", str(tmp_path / "none.sqlite"), str(DRAFTS / "typo.yml")]
    assert CliRunner().invoke(main, args).exit_code == 3


def test_text_output_is_compiler_style(lint_db: Path) -> None:
    out = CliRunner().invoke(main, ["lint", "--db", str(lint_db), str(DRAFTS / "typo.yml")]).output
    first = out.splitlines()[0]
    assert first.startswith(f"{DRAFTS / 'typo.yml'}:10:5: error: ") and first.endswith(
        "[unknown-field]"
    )


def test_json_output_has_the_documented_keys(lint_db: Path) -> None:
    args = ["lint", "--db", str(lint_db), "--format", "json", str(DRAFTS / "untagged.yml")]
    doc = json.loads(CliRunner().invoke(main, args).output)
    finding = doc[0]["findings"][0]
    assert {"code", "severity", "message", "line", "column"} <= set(finding)
    assert set(finding) <= {"code", "severity", "message", "line", "column", "field", "value",
                            "suggestion", "related"}  # fmt: skip
