"""Without a sources directory, `detcat build` downloads pinned snapshots;
offline it must fail clearly (exit 1) and say how to pass local sources."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from detcat import fetch
from detcat.cli import main


def test_pins_name_every_vendor_and_attack() -> None:
    spec = fetch.pins()
    assert {r["folder"] for r in spec["repo"]} == {"sigma", "elastic", "splunk", "chronicle"}
    assert all(len(r["url"].rsplit("/", 1)[1]) == 40 for r in spec["repo"]), "pin full commits"
    assert spec["attack"]["url"].endswith(".json")


def test_offline_build_fails_with_instructions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DETCAT_SOURCES", raising=False)
    unreachable = "http://127.0.0.1:9/nothing.tar.gz"  # discard port: connection refused
    spec = fetch.pins()
    for repo in spec["repo"]:
        repo["url"] = unreachable
    monkeypatch.setattr(fetch, "pins", lambda: spec)
    out = CliRunner().invoke(main, ["build", "--db", str(tmp_path / "c.sqlite")])
    assert out.exit_code == 1
    assert "--sources" in out.output and "DETCAT_SOURCES" in out.output
    assert not (tmp_path / "c.sqlite").exists()


def test_unpack_keeps_only_the_named_folders(tmp_path: Path) -> None:
    archive = tmp_path / "repo.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("sigma-abc/rules/a.yml", "sigma-abc/tests/t.py", "sigma-abc/LICENSE"):
            data = b"x"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    fetch._unpack(archive, tmp_path / "sigma", ["rules", "LICENSE"])
    got = sorted(
        p.relative_to(tmp_path / "sigma").as_posix() for p in (tmp_path / "sigma").rglob("*")
    )
    assert got == ["LICENSE", "rules", "rules/a.yml"]
