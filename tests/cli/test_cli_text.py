"""What the text output of the catalog commands shows (issue 11, "CLI polish"):
values exactly as stored, the sections the JSON holds, validated limits, clean
ATT&CK prose, plain messages, plurals, ids that survive a pipe."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cli_helpers import FLOCK, FLOCK_ID
from click.testing import CliRunner, Result

from detcat.cli import main


def run(db: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, [*args, "--db", str(db)], env=env)


def test_values_are_shown_exactly_as_stored(faces_db: Path) -> None:
    """A trailing backslash is one backslash in tables and in rule trees."""
    stored = json.loads(run(faces_db, "rule", FLOCK_ID, "--json").output)
    assert FLOCK in [i["value"] for i in stored["indicators"]]
    for args in (["technique", "T1219", "--all"], ["rule", FLOCK_ID]):
        out = run(faces_db, *args).output
        assert f'"{FLOCK}"' in out, args
        assert FLOCK + "\\" not in out and "\\\\" not in out, args


def test_rule_text_shows_what_its_json_holds(faces_db: Path) -> None:
    data = json.loads(run(faces_db, "rule", FLOCK_ID, "--json").output)
    out = run(faces_db, "rule", FLOCK_ID).output
    for section in ("Exclusions", "Indicators", "Source query", "EXCL"):
        assert section in out
    for x in data["exclusions"] + data["indicators"]:
        assert f'"{x["value"]}"' in out


LIMITS = [  # (arguments, exit code)
    (["technique", "T1219", "--limit", "0"], 2),
    (["technique", "T1219", "--limit", "-1"], 2),
    (["search", "flock", "--limit", "0"], 2),
    (["coverage", "--events", "sysmon:1", "--limit", "0"], 2),
    (["similar", "x", "--limit", "-1"], 2),
    (["clusters", "--limit", "-1"], 2),
    (["technique", "T1219", "--limit", "1"], 0),
    (["technique", "T1219", "--all"], 0),
]


@pytest.mark.parametrize(("args", "code"), LIMITS)
def test_limit_is_at_least_one(faces_db: Path, args: list[str], code: int) -> None:
    assert run(faces_db, *args).exit_code == code


def test_all_shows_every_row_and_a_limit_says_so(faces_db: Path) -> None:
    every = json.loads(run(faces_db, "technique", "T1219", "--all", "--json").output)
    assert len(every["indicators"]) == every["indicator_count"] > 1
    one = run(faces_db, "technique", "T1219", "--limit", "1").output
    assert f"1 of {every['indicator_count']} distinct; --all shows every row" in one


def test_technique_description_is_plain_text(faces_db: Path) -> None:
    out = run(faces_db, "technique", "T1219").output
    assert "Adversaries use remote tools such as AnyDesk." in out
    assert not re.search(r"\(Citation:|\]\(https?:|</?code>", out)


def test_a_technique_without_rules_says_so(faces_db: Path) -> None:
    res = run(faces_db, "technique", "T1001")
    assert res.exit_code == 0
    assert "no rules in the catalog tag T1001" in res.output
    assert "Fields filtered most" not in res.output and "┏" not in res.output


@pytest.mark.parametrize("spelling", ["T1219 ", " t1219", "t1219"])
def test_technique_ids_are_forgiving(faces_db: Path, spelling: str) -> None:
    res = run(faces_db, "technique", spelling, "--json")
    assert res.exit_code == 0 and json.loads(res.output)["technique"]["id"] == "T1219"


MESSAGES = [  # (arguments, exit code, the one line on stderr)
    (["search", "process.name:"], 2, "error: process.name: has no value: write process.name:"),
    (["search", "Image: anydesk"], 2, "error: Image: has no value"),
    (["technique", "T9999"], 3, "error: unknown technique T9999"),
    (["rule", "nope"], 3, "error: no rule with id nope"),
    (["rule", "nope", "--vendor", "sigma"], 3, "error: no sigma rule with id nope"),
]


@pytest.mark.parametrize(("args", "code", "line"), MESSAGES)
def test_mistakes_get_one_line(faces_db: Path, args: list[str], code: int, line: str) -> None:
    res = run(faces_db, *args)
    assert res.exit_code == code
    assert res.output.startswith(line) and res.output.count("\n") == 1
    assert "Traceback" not in res.output


PLURALS = [  # (arguments, text that must appear, text that must not)
    (["technique", "T1105"], "1 rule (", "1 rules"),
    (["technique", "T1219"], "2 rules (", "2 rule ("),
    (["search", "transfer"], "1 rule match", "1 rules"),
    (["search", "anydesk OR flock"], "0 rules match", "0 rule "),
]


@pytest.mark.parametrize(("args", "present", "absent"), PLURALS)
def test_counts_are_plural_only_when_many(
    faces_db: Path, args: list[str], present: str, absent: str
) -> None:
    out = run(faces_db, *args).output
    assert present in out and absent not in out


@pytest.mark.parametrize("columns", [None, "80"])
@pytest.mark.parametrize("args", [["technique", "T1219"], ["search", "flock"]])
def test_ids_never_wrap(faces_db: Path, args: list[str], columns: str | None) -> None:
    """Piped output keeps each id on one line, so it can be pasted into `detcat rule`
    (also when COLUMNS asks for a narrow layout)."""
    out = run(faces_db, *args, env={"COLUMNS": columns} if columns else None).output
    assert any(FLOCK_ID in line for line in out.splitlines()), out
