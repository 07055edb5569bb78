"""``--db`` naming something that is not a catalog of this version (issue 11, §7):
every command says so in one line with exit code 3, ``serve`` does not start, and
``build`` does not overwrite someone's file unless told to."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from cli_helpers import RULES, write_sources
from click.testing import CliRunner

from detcat import store
from detcat.cli import main


def text_file(p: Path) -> None:
    p.write_text("not a database\n")


def empty_file(p: Path) -> None:
    p.write_bytes(b"")


def foreign_sqlite(p: Path) -> None:
    with closing(sqlite3.connect(p)) as c, c:  # closed, not only committed
        c.execute("CREATE TABLE notes (body TEXT)")


def other_version(p: Path, faces_db: Path) -> None:
    shutil.copyfile(faces_db, p)
    with closing(sqlite3.connect(p)) as c, c:
        c.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")


def directory(p: Path) -> None:
    p.mkdir()


NOT_CATALOGS: list[Callable[..., None]] = [
    text_file, empty_file, foreign_sqlite, other_version, directory,
]  # fmt: skip

COMMANDS = [
    ["technique", "T1219"],
    ["rule", "x"],
    ["stats"],
    ["stats", "--unmapped"],
    ["problems"],
    ["search", "anydesk"],
    ["match", "{events}"],
    ["coverage", "--events", "sysmon:1"],
    ["export-csv", "{out}"],
    ["export-site", "{out}"],
    ["serve", "--port", "1"],
]


@pytest.fixture(autouse=True)
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve`` must refuse before it listens: reaching uvicorn is a failure."""
    import uvicorn

    def run(*args: object, **kwargs: object) -> None:
        raise AssertionError("serve started on something that is not a catalog")

    monkeypatch.setattr(uvicorn, "run", run)


def make(kind: Callable[..., None], path: Path, faces_db: Path) -> None:
    if kind is other_version:
        kind(path, faces_db)
    else:
        kind(path)


@pytest.mark.parametrize("kind", NOT_CATALOGS, ids=lambda k: k.__name__)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0] + "".join(c[1:2]))
def test_every_command_refuses_what_is_not_a_catalog(
    tmp_path: Path, faces_db: Path, kind: Callable[..., None], command: list[str]
) -> None:
    db = tmp_path / "x.sqlite"
    make(kind, db, faces_db)
    events = tmp_path / "events.json"
    events.write_text('{"a": 1}')
    args = [a.format(events=events, out=tmp_path / "out") for a in command]
    res = CliRunner().invoke(main, [*args, "--db", str(db)])
    assert res.exit_code == 3, res.output
    assert res.output.count("\n") == 1 and "Traceback" not in res.output
    assert res.output.startswith(f"error: {db} is not a detcat catalog"), res.output
    if kind is not directory:
        assert "run `detcat build`" in res.output


def test_a_build_records_its_schema_version(faces_db: Path) -> None:
    with closing(sqlite3.connect(faces_db)) as c:
        meta = dict(c.execute("SELECT key, value FROM meta"))
    assert meta["schema_version"] == store.SCHEMA_VERSION


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    return write_sources(tmp_path / "sources", {"transfer.yml": RULES["transfer.yml"]})


def build(sources: Path, db: Path, *extra: str) -> tuple[int, str]:
    args = ["build", "--sources", str(sources), "--db", str(db), "--workers", "1", *extra]
    res = CliRunner().invoke(main, args)
    return res.exit_code, res.output


@pytest.mark.parametrize("kind", [text_file, foreign_sqlite], ids=lambda k: k.__name__)
def test_build_keeps_a_file_that_is_not_a_catalog(
    sources: Path, tmp_path: Path, kind: Callable[..., None]
) -> None:
    db = tmp_path / "precious.db"
    kind(db)
    before = db.read_bytes()
    code, out = build(sources, db)
    assert code == 2 and "is not a detcat catalog: not replacing it" in out and "--force" in out
    assert db.read_bytes() == before
    code, out = build(sources, db, "--force")
    assert code == 0, out
    with closing(store.connect(db)) as c:
        assert c.execute("SELECT COUNT(*) FROM rules").fetchone()[0] == 1


REPLACEABLE = [empty_file, other_version]  # nothing to lose, or detcat's own


@pytest.mark.parametrize("kind", REPLACEABLE, ids=lambda k: k.__name__)
def test_build_replaces_a_catalog_of_any_version(
    sources: Path, tmp_path: Path, faces_db: Path, kind: Callable[..., None]
) -> None:
    db = tmp_path / "old.sqlite"
    make(kind, db, faces_db)
    code, out = build(sources, db)
    assert code == 0, out
    with closing(store.connect(db)) as c:
        assert c.execute("SELECT COUNT(*) FROM rules").fetchone()[0] == 1


def test_serve_does_not_start_on_a_foreign_file(tmp_path: Path) -> None:
    from detcat.web.app import create_app

    db = tmp_path / "foreign.sqlite"
    foreign_sqlite(db)
    with pytest.raises(store.NotACatalog, match="is not a detcat catalog"):
        create_app(db)
