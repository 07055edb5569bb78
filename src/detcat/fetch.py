"""Download pinned snapshots of the public rule repositories into a cache.

Used by ``detcat build`` when no sources directory is given. Offline, it fails
with a message saying how to pass local sources instead.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import tomllib
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from detcat.attack import BUNDLE_FILE
from detcat.errors import DetcatError


class FetchError(DetcatError):
    pass


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "detcat" / "sources"


def pins() -> dict[str, Any]:
    return tomllib.loads(resources.files("detcat").joinpath("data/sources.toml").read_text())


def ensure_sources(console: Console, target: Path | None = None) -> Path:
    """The cached sources directory, downloading whatever is missing."""
    target = target or cache_dir()
    spec = pins()
    missing = [r for r in spec["repo"] if not (target / r["folder"]).is_dir()]
    attack_missing = not (target / BUNDLE_FILE).exists()
    if not missing and not attack_missing:
        return target
    console.print(f"No sources directory given: downloading pinned snapshots into {target}")
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), console=console) as progress:  # fmt: skip
        for repo in missing:
            with tempfile.TemporaryDirectory() as tmp:
                archive = Path(tmp) / "repo.tar.gz"
                _download(repo["url"], archive, progress, repo["folder"])
                _unpack(archive, target / repo["folder"], repo["keep"])
        if attack_missing:
            (target / BUNDLE_FILE).parent.mkdir(parents=True, exist_ok=True)
            _download(spec["attack"]["url"], target / BUNDLE_FILE, progress, "ATT&CK")
    return target


def _download(url: str, dest: Path, progress: Progress, label: str) -> None:
    task = progress.add_task(f"download {label}", total=None)
    part = dest.with_suffix(dest.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, part.open("wb") as out:
            length = resp.headers.get("Content-Length")
            progress.update(task, total=int(length) if length else None)
            while chunk := resp.read(1 << 16):
                out.write(chunk)
                progress.advance(task, len(chunk))
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        part.unlink(missing_ok=True)
        raise FetchError(
            f"cannot download {label} ({url}): {e}. Offline? Pass a local sources directory "
            "with `detcat build --sources DIR` or set DETCAT_SOURCES "
            "(DIR holds sigma/ elastic/ splunk/ chronicle/ attack/enterprise-attack.json)."
        ) from e
    part.replace(dest)


def _unpack(archive: Path, dest: Path, keep: list[str]) -> None:
    """Extract the kept top-level paths of a GitHub archive (one root folder)."""
    staging = dest.with_name(dest.name + ".unpacking")
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(archive) as tar:
        members = []
        for m in tar.getmembers():
            parts = m.name.split("/", 1)
            if len(parts) == 2 and parts[1].split("/")[0] in keep:
                m.name = parts[1]
                members.append(m)
        tar.extractall(staging, members=members, filter="data")
    shutil.rmtree(dest, ignore_errors=True)
    staging.replace(dest)
