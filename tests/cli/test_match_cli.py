"""``detcat match`` on what users hand it (issue 11, §6): stdin, directories, empty
files, bad lines among good ones; results stream out as events are read."""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from detcat.cli import main
from detcat.cli.match import SHOWN_BAD

ANYDESK_ID = "00000000-0000-4000-8000-000000000002"


def sysmon_1(image: str) -> str:
    system = {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}, "EventID": 1,
              "Channel": "Microsoft-Windows-Sysmon/Operational"}  # fmt: skip
    data = {"Image": image, "ParentImage": "C:\\Windows\\System32\\cmd.exe"}
    return json.dumps({"Event": {"System": system, "EventData": data}})


HIT = sysmon_1("C:\\Tools\\AnyDesk.exe")
MISS = sysmon_1("C:\\Tools\\other.exe")


def match(db: Path, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, ["match", "--db", str(db), *args], input=stdin)


def test_dash_reads_stdin(faces_db: Path) -> None:
    res = match(faces_db, "-", "--json", stdin=f"{HIT}\n{MISS}\n")
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert [r["event"] for r in got] == ["-:1", "-:2"]
    assert [m["id"] for m in got[0]["matches"]] == [ANYDESK_ID] and got[1]["matches"] == []


@pytest.mark.parametrize(
    ("make", "code", "message"),
    [
        (lambda p: p.mkdir(), 2, "is a directory: give the event files in it"),
        (lambda p: p.write_text(""), 1, "empty: no JSON event in it"),
        (lambda p: p.write_text("\n\n"), 1, "empty: no JSON event in it"),
        (lambda p: None, 3, "no such event file"),
    ],
    ids=["directory", "empty", "blank", "missing"],
)
def test_unusable_event_files_get_one_line(
    faces_db: Path, tmp_path: Path, make: object, code: int, message: str
) -> None:
    path = tmp_path / "events"
    make(path)  # type: ignore[operator]
    res = match(faces_db, str(path))
    assert res.exit_code == code
    assert res.output.startswith("error: ") and message in res.output
    assert res.output.count("\n") == 1 and "Traceback" not in res.output


BAD_LINES = [
    ("[" * 50_000 + "]" * 50_000, "JSON nested too deeply"),
    ('{"n": ' + "1" * 100_000 + "}", "not readable JSON: Exceeds the limit"),
    ("{not json}", "not JSON: Expecting property name"),
    ('{"a": ' + "[" * 300 + "]" * 300 + "}", "event nested deeper than 100 levels"),
    ('{"a": ' + "[" * 50 + "]" * 50 + "}", None),  # nested, but an event
]


@pytest.mark.parametrize(("line", "message"), BAD_LINES)
def test_a_bad_line_is_a_bad_event_and_the_rest_is_matched(
    faces_db: Path, tmp_path: Path, line: str, message: str | None
) -> None:
    f = tmp_path / "e.jsonl"
    f.write_text(f"{HIT}\n{line}\n{HIT}\n")
    res = match(faces_db, str(f), "--json")
    items = json.loads(res.stdout)
    assert [i["event"] for i in items if "matches" in i and i["matches"]] == [f"{f}:1", f"{f}:3"]
    if message is None:
        assert res.exit_code == 0 and len(items) == 3
        return
    assert res.exit_code == 1
    assert [(i["event"], i["error"][: len(message)]) for i in items if "error" in i] == [
        (f"{f}:2", message)
    ]
    assert res.stderr.startswith(f"error: bad event {f}:2: {message}")


def test_many_bad_lines_are_counted_not_all_shown(faces_db: Path, tmp_path: Path) -> None:
    f = tmp_path / "e.jsonl"
    f.write_text("nope\n" * (SHOWN_BAD + 5) + HIT + "\n")
    res = match(faces_db, str(f))
    assert res.exit_code == 1
    lines = res.stderr.splitlines()
    assert len(lines) == SHOWN_BAD + 1
    assert lines[-1] == f"error: {SHOWN_BAD + 5} bad events in all (the first 20 are shown above)"
    assert f"{f}:{SHOWN_BAD + 6}: 1 matching rule" in res.stdout


def test_results_stream_out_before_the_input_ends(faces_db: Path) -> None:
    """The first event's result is written while stdin is still open."""
    cmd = [sys.executable, "-c", "from detcat.cli import main; main()",
           "match", "-", "--db", str(faces_db)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(HIT + "\n" + MISS + "\n")
        proc.stdin.flush()
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            # A guard against hanging, not a measurement: loading takes ~1 s.
            assert sel.select(timeout=120), "no result while the input is open"
        assert proc.stdout.readline() == "-:1: 1 matching rule\n"
    finally:
        proc.stdin.close()
        proc.wait(timeout=120)
    assert proc.returncode == 0
