"""Reading one source file without trusting it.

Rule folders come from repositories nobody here wrote. Every reader takes its
text through ``read_text`` and its YAML through ``load_yaml``, so that for any
file:

- a link that leaves the vendor's folder is not followed (its target could be
  ``/etc/passwd``, which would then be quoted in problems);
- a file larger than the size limit is not read (``--max-file-size``);
- bytes that are not UTF-8 are reported with their line;
- a parsed document (YAML or TOML) that nests too deeply or that YAML aliases
  expand into too many values (the "billion laughs") is refused before anything
  walks, stores or serializes it.

Each refusal raises ``SourceFileError``; the reader turns it into a problem for
that file, and the build goes on.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from detcat.errors import DetcatError
from detcat.sources.yaml_loader import FastSafeLoader

DEFAULT_MAX_BYTES = 4 * 1024 * 1024  # the largest public rule file is 0.3 MB, a lookup 2.2 MB
MAX_VALUES = 250_000  # scalars + containers of one document, aliases counted each time used
MAX_NESTING = 100  # containers inside containers

_LOADER: Any = FastSafeLoader
_max_bytes = DEFAULT_MAX_BYTES


class SourceFileError(DetcatError):
    """A source file detcat refuses to read; ``line`` when it is known."""


@contextlib.contextmanager
def size_limit(limit: int) -> Iterator[None]:
    """The size limit while a build reads (in its process or a worker), then the
    one before: a build with ``--max-file-size`` leaves no limit behind."""
    global _max_bytes
    before, _max_bytes = _max_bytes, limit
    _real_dir.cache_clear()  # folders may have changed since the last build
    try:
        yield
    finally:
        _max_bytes = before


def max_bytes() -> int:
    return _max_bytes


def read_text(path: Path, root: Path) -> str:
    """The UTF-8 text of ``path``, a file under ``root``, or ``SourceFileError``."""
    data = read_bytes(path, root)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        bad = data[e.start : e.end].hex(" ")
        raise SourceFileError(f"cannot read: not UTF-8 text (bytes {bad})", line=line) from None


def read_bytes(path: Path, root: Path) -> bytes:
    """The bytes of ``path``, a file under ``root`` within the size limit (those
    handed over by ``read_once`` when it is that file)."""
    if _handed is not None and _handed[0] == (path, root):
        return _handed[1]
    check_inside(path, root)
    try:
        size = path.stat().st_size
        if size > _max_bytes:
            raise SourceFileError(
                f"file is {size:,} bytes, over the {_max_bytes:,}-byte limit (--max-file-size)"
            )
        return path.read_bytes()
    except OSError as e:
        raise SourceFileError(f"cannot read: {e.strerror or e}") from None


_handed: tuple[tuple[Path, Path], bytes] | None = None


@contextlib.contextmanager
def read_once(path: Path, root: Path) -> Iterator[bytes | None]:
    """Read a file's bytes (None when they cannot be read) for the caller, and hand
    the same bytes to any ``read_bytes`` of that file inside the block: a build
    digests each rule file and then has it read, and both must see one version."""
    global _handed
    try:
        data = read_bytes(path, root)
    except (SourceFileError, OSError):
        data = None  # the reader meets (and reports) the same refusal
    before, _handed = _handed, None if data is None else ((path, root), data)
    try:
        yield data
    finally:
        _handed = before


def check_inside(path: Path, root: Path) -> None:
    """Refuse a path whose links lead outside ``root`` (or loop)."""
    try:
        real, base = _realpath(os.fspath(path)), _real_dir(os.fspath(root))
    except (OSError, RuntimeError) as e:
        raise SourceFileError(
            f"cannot follow the path: {getattr(e, 'strerror', None) or e}"
        ) from None
    if real != base and not real.startswith(base.rstrip(os.sep) + os.sep):
        raise SourceFileError("a link that leaves the sources folder: not followed")


def _realpath(path: str) -> str:
    """``os.path.realpath(strict=True)``, resolving each folder once per build: a
    file that is not a link is its folder's real path plus its name (a build
    checks thousands of files in a few hundred folders). Strings, not ``Path``:
    this runs for every file of every build."""
    if os.path.islink(path) or not os.path.lexists(path):
        return os.path.realpath(path, strict=True)
    return os.path.join(_real_dir(os.path.dirname(path)), os.path.basename(path))


@functools.lru_cache(maxsize=4096)
def _real_dir(folder: str) -> str:
    return os.path.realpath(folder, strict=True)


def load_yaml(text: str) -> Any:
    """One YAML document, refused when it nests or expands beyond the limits.
    ``yaml.YAMLError`` stays the caller's to report with its position."""
    try:
        doc = yaml.load(text, Loader=_LOADER)
    except RecursionError:
        raise SourceFileError(f"the document nests deeper than {MAX_NESTING} levels") from None
    check_shape(doc)
    return doc


def check_shape(doc: Any) -> None:
    """Count a parsed document's values the way anything walking it would meet
    them (a shared YAML alias once per use), and stop at the first limit: the
    walk costs at most ``MAX_VALUES`` steps whatever the document holds."""
    seen = 0
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise SourceFileError(
                f"the document holds more than {MAX_VALUES:,} values "
                "(YAML aliases expanding?): not read"
            )
        if isinstance(node, dict | list | tuple | set):
            if depth >= MAX_NESTING:
                raise SourceFileError(f"the document nests deeper than {MAX_NESTING} levels")
            items = node.items() if isinstance(node, dict) else ((None, v) for v in node)
            for key, value in items:
                stack.append((value, depth + 1))
                if key is not None:
                    stack.append((key, depth + 1))
