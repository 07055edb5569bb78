"""What a build promises beyond "one file, one problem": it says loudly when
it loses rules, leaves no debris after a kill, takes its workers down with it,
writes the catalog like any other output file, and bounds the work one small
input can cause (depth, YAML aliases, macro growth, long tokens)."""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner
from hostile_sources import make_sources

from detcat import catalog, store
from detcat.cli import main
from detcat.model import QueryError
from detcat.parse import parse_rules
from detcat.sources import files
from detcat.sources.splunk_macros import MAX_MACRO_CALLS, Macros
from detcat.workers import workers_pool

# -- fewer rules than before -------------------------------------------------------


def test_a_build_that_loses_rules_says_so(tmp_path: Path) -> None:
    src, db = make_sources(tmp_path), tmp_path / "c.sqlite"
    assert catalog.build(src, db, workers=1).dropped == {}
    (src / "sigma" / "rules" / "good1.yml").write_text("title: [broken\n")
    (src / "chronicle" / "rules" / "good1.yaral").unlink()
    result = CliRunner().invoke(main, ["build", "--sources", str(src), "--db", str(db)])
    assert result.exit_code == 0
    assert "FEWER RULES" in result.output
    said = " ".join(result.output.split())
    assert "sigma 2 -> 1 (-1)" in said and "chronicle 2 -> 1 (-1)" in said
    assert catalog.build(src, db, workers=1).dropped == {}  # compared with the last catalog


def test_strict_fails_on_lost_rules_alone(tmp_path: Path) -> None:
    src, db = make_sources(tmp_path), tmp_path / "c.sqlite"
    catalog.build(src, db, workers=1)
    (src / "chronicle" / "rules" / "good1.yaral").unlink()  # no problem, one rule fewer
    strict = ["build", "--sources", str(src), "--db", str(db), "--strict", "--json"]
    result = CliRunner().invoke(main, strict)
    assert result.exit_code == 1
    assert '"chronicle": {\n      "before": 2,\n      "now": 1' in result.output


# -- files ---------------------------------------------------------------------------


def test_catalog_mode_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        catalog.build(make_sources(tmp_path), tmp_path / "c.sqlite", workers=1)
    finally:
        os.umask(old)
    assert (tmp_path / "c.sqlite").stat().st_mode & 0o777 == 0o640


def test_stale_temp_files_are_removed_live_ones_kept(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [tmp_path / f".c.sqlite.{dead.pid}.1a2b3c4d.tmp", tmp_path / ".c.sqlite.x7k2_9.tmp"]
    live = tmp_path / f".c.sqlite.{os.getppid()}.5e6f7a8b.tmp"  # our parent runs
    other = tmp_path / f".other.sqlite.{dead.pid}.00000000.tmp"
    for f in (*stale, live, other):
        f.write_bytes(b"x" * 1000)
    catalog.build(make_sources(tmp_path), db, workers=1)
    assert store.temp_files(db) == [live]
    assert other.exists()


WORKER_SCRIPT = """
import time
from detcat.workers import workers_pool
with workers_pool(2) as pool:
    busy = [pool.submit(time.sleep, 120) for _ in range(2)]
    time.sleep(1)
    print(*pool._processes, flush=True)
    time.sleep(120)
"""


def test_workers_die_with_their_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    workers = [int(p) for p in parent.stdout.readline().split()]
    assert len(workers) == 2 and all(_alive(p) for p in workers)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(50):  # up to 5 s; the pool's own shutdown never ran
        if not any(_alive(p) for p in workers):
            break
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie is dead
    except FileNotFoundError:
        return False


# -- work bounded by the input --------------------------------------------------------

DEPTHS = [
    ("kql", "not " * 1000 + "process.name : x"),
    ("eql", "process where " + "not " * 1000 + "true"),
    ("esql", "from a | where " + "(" * 1000 + "b == 1" + ")" * 1000),
    ("spl", "NOT " * 1000 + "a=1"),
    ("yaral", "rule r {\n events:\n " + "not " * 1000 + '$e.a = "b"\n condition:\n $e\n}'),
]


@pytest.mark.parametrize(("language", "text"), DEPTHS, ids=[d[0] for d in DEPTHS])
def test_over_deep_queries_are_query_errors(language: str, text: str) -> None:
    with pytest.raises(QueryError, match="nested"):
        parse_rules(language, text)


def test_yaml_aliases_cannot_expand_a_small_file() -> None:
    levels = zip("abcdefgh", "bcdefghi", strict=True)
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in levels
    )
    with pytest.raises(files.SourceFileError, match="more than"):
        files.load_yaml(laughs)
    assert files.load_yaml("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}


def test_macro_growth_stops_at_the_budget() -> None:
    macros = Macros()
    for i in range(30):
        body = f"`m{i + 1}` OR `m{i + 1}`" if i < 29 else "x=1"
        macros.add({"name": f"m{i}", "definition": body})
    exp = macros.expand("`m0`")
    assert exp.over_budget and exp.calls <= 2 * MAX_MACRO_CALLS
    assert [o.why() for o in exp.opaques] == ["unresolved macro: expansion over budget"]
    assert Macros().expand("a=1").over_budget is False


LONG_TOKENS = [
    ("yaral", 'rule r {{\n events:\n $e.a = "{}"\n condition:\n $e\n}}'),
    ("yaral", "rule r {{\n events:\n $e.a = /{}/\n condition:\n $e\n}}"),
    ("kql", 'a : "{}"'),
    ("kql", "a : {}"),
    ("eql", 'process where a == "{}"'),
    ("eql", "process where a == 1 /* {} */"),
    ("esql", 'from a | where b == "{}"'),
    ("spl", 'a="{}"'),
    ("spl", "a={}"),
]


@pytest.mark.parametrize(("language", "template"), LONG_TOKENS)
def test_long_tokens_cost_linear_memory(language: str, template: str) -> None:
    """A 1 MiB token may cost a few copies of itself, not ~200 bytes per byte
    (the regex engine's state per repetition of an alternation)."""
    parse_rules(language, template.format("a"))  # the grammar is built on first use
    text = template.format("a" * 2**20)
    tracemalloc.start()
    try:
        parse_rules(language, text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 60 * len(text), f"{peak / len(text):.0f} bytes per input byte"


POOL_SCRIPT = """
import multiprocessing, os, sys
from detcat.workers import workers_pool
if __name__ == "__main__":
    multiprocessing.set_start_method(sys.argv[1], force=True)
    with workers_pool(2) as pool:
        print(pool.submit(os.getpid).result() != os.getpid())
"""


@pytest.mark.parametrize("method", multiprocessing.get_all_start_methods())
def test_workers_start_whatever_the_default_start_method(tmp_path: Path, method: str) -> None:
    """Python 3.14 makes a fork server the default on Linux: the pool still works."""
    script = tmp_path / "pool.py"
    script.write_text(POOL_SCRIPT)
    run = subprocess.run([sys.executable, str(script), method], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "True"


def test_workers_start_when_stderr_is_not_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """As under click's CliRunner or an IDE console: no file descriptor behind stderr."""
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with workers_pool(2) as pool:
        assert pool.submit(os.getpid).result() != os.getpid()
