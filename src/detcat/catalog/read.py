"""Reading one vendor's rule files into catalog rows (runs in worker processes).

Each file becomes a ``FileResult``: its rules as ``store.RuleRows`` (prepared
here, so that only flat rows travel back to the parent), its problems, and what
the build cache needs to know whether the file must be read again: the digest of
its bytes and of the shared definitions (Splunk macros and lookups) it looked up.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detcat import similar, store
from detcat.errors import DetcatError
from detcat.model import Opaque, Problem, QueryError, Reason, Rule, check_depth
from detcat.sources import files as source_files
from detcat.sources import registry

Item = store.RuleRows | Problem


@dataclass(slots=True)
class FileResult:
    """What one source file gave. ``path`` is relative to the vendor folder; ""
    holds what no one file owns (shared definitions' problems, or every rule of
    a vendor that reads its folder whole)."""

    path: str
    items: list[Item] = field(default_factory=list)
    digest: str = ""  # of the file's bytes; "" when they could not be read
    stamp: str = ""  # file_stamp, taken before its bytes were read
    uses: tuple[str, ...] = ()  # shared definitions it looked up
    uses_digest: str = ""

    @property
    def rules(self) -> list[store.RuleRows]:
        return [x for x in self.items if isinstance(x, store.RuleRows)]


@dataclass
class VendorResult:
    vendor: str
    files: list[FileResult] = field(default_factory=list)
    shared: list[Item] = field(default_factory=list)  # the "" entry's items
    seconds: float = 0.0
    collection: str = "public"

    @property
    def rule_count(self) -> int:
        return sum(len(f.rules) for f in self.files) + sum(
            isinstance(x, store.RuleRows) for x in self.shared
        )


def read_vendor(
    vendor: str,
    root: Path,
    include_deprecated: bool,
    files: list[Path] | None = None,
    *,
    report_shared: bool = True,
    max_file_bytes: int = source_files.DEFAULT_MAX_BYTES,
) -> VendorResult:
    """Read and normalize one vendor's rules, or the given files of it (runs in a
    worker process). ``report_shared``: also return the problems of the files
    every rule shares (Splunk macros and lookups), which one shard reports."""
    started = time.perf_counter()
    result = VendorResult(vendor)
    with source_files.size_limit(max_file_bytes):
        _read_into(result, vendor, root, include_deprecated, files, report_shared)
    result.seconds = time.perf_counter() - started
    return result


def _read_into(
    result: VendorResult,
    vendor: str,
    root: Path,
    include_deprecated: bool,
    files: list[Path] | None,
    report_shared: bool,
) -> None:
    try:
        reader = registry.get(vendor)
    except (ImportError, DetcatError) as e:
        result.shared.append(Problem(str(root), f"no reader for {vendor}: {e}", vendor=vendor))
        return
    shared = prepare(reader, vendor, root, include_deprecated)
    if report_shared:
        result.shared += shared
    if files is None:
        try:
            files = reader.rule_files(root, include_deprecated)
        except Exception as e:  # an unreadable folder: its rules are lost, said once
            failed = f"cannot list the rule files: {type(e).__name__}: {e}"
            result.shared.append(clean(Problem(str(root), failed, vendor=vendor)))
            files = []
    if files is None:  # a vendor that reads its folder whole: isolated per rule only
        result.shared += [_rows(x) for x in _read_whole(reader, vendor, root, include_deprecated)]
    else:
        result.files = [read_source(reader, vendor, f, root) for f in files]


def prepare(reader: Any, vendor: str, root: Path, include_deprecated: bool) -> list[Item]:
    """The vendor's shared definitions read (in this process), and their problems."""
    work = lambda: reader.prepare(root, include_deprecated=include_deprecated)  # noqa: E731
    return [p for p in _guarded(vendor, root, root, work) if isinstance(p, Problem)]


def read_source(reader: Any, vendor: str, path: Path, root: Path) -> FileResult:
    """One rule file as a ``FileResult``."""
    # Stamp first: a file changed while it is read is read again next time. Its
    # bytes are read once, for the digest and the reader.
    stamp = file_stamp(path)
    with source_files.read_once(path, root) as data:
        digest = "" if data is None else _digest(data)
        items = read_one(reader, vendor, path, root)
    uses = tuple(reader.shared_names())
    return FileResult(_rel(path, root), items, digest, stamp, uses, uses_digest(reader, root, uses))


# A file changed less than this long ago gets no stamp: a change within the same
# tick of the file system's clock would leave its stamp as it was.
_RACY_SECONDS = 2.0


def file_stamp(path: Path | str) -> str:
    """Size, modification and change times, inode and device of a file: when they
    are what they were, the file is taken as unchanged without reading it (as
    git does); "" for a file changed too recently to trust that, or gone.

    The change time (``st_ctime``) is what catches an edit that keeps the size
    and sets the modification time back (``touch -r``, ``cp -p``, ``rsync -t``
    in place): no program can set it, and every write, rename or ``chmod`` moves
    it to now. A stamp is only taken of a file unchanged for ``_RACY_SECONDS``
    (by both times), so that a second edit within the same tick of the file
    system's clock cannot leave the stamp as it was ("racy git")."""
    try:
        st = os.stat(path)
    except OSError:
        return ""
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < _RACY_SECONDS * 1e9:
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}"


def folder_stamps(folder: Path) -> list[tuple[str, str]] | None:
    """Every folder under ``folder`` (itself as "") with its ``file_stamp``: a file
    added, removed or renamed changes its folder's. None when a stamp cannot be
    trusted (a folder changed too recently) or does not cover what a reader may
    list (a link to a folder: its target's contents)."""
    top = os.fspath(folder)
    out: list[tuple[str, str]] = []
    todo = [""]
    while todo:
        rel = todo.pop()
        path = os.path.join(top, rel) if rel else top
        stamp = file_stamp(path)  # before listing it: a later change shows next time
        if not stamp:
            return None
        out.append((rel, stamp))
        try:
            with os.scandir(path) as entries:
                for e in entries:
                    if e.is_dir(follow_symlinks=False):
                        todo.append(f"{rel}/{e.name}" if rel else e.name)
                    elif e.is_symlink() and e.is_dir():
                        return None
        except OSError:
            return None
    return sorted(out)


def file_digest(path: Path, root: Path) -> str:
    """The digest of a rule file's bytes, read as the readers read them (inside
    the folder, within the size limit); "" when they cannot be read."""
    try:
        return _digest(source_files.read_bytes(path, root))
    except (source_files.SourceFileError, OSError):
        return ""


def uses_digest(
    reader: Any, root: Path, uses: Iterable[str], memo: dict[str, str] | None = None
) -> str:
    """One digest of the named shared definitions as they are now."""
    memo = {} if memo is None else memo
    parts = []
    for name in sorted(uses):
        if name not in memo:
            memo[name] = reader.shared_digest(root, name)
        parts.append(f"{name}={memo[name]}")
    return _digest("\n".join(parts).encode()) if parts else ""


def shared_stamp(reader: Any, root: Path) -> str:
    """One stamp of the files the vendor's shared definitions come from
    (``Vendor.shared_files``), to take before ``prepare`` reads them; "" when they
    are not known or one changed too recently to trust its stamp."""
    try:
        files = reader.shared_files(root)
    except Exception:  # a reader bug: prepare, as every build did before
        return ""
    stamps = [(p, file_stamp(p)) for p in files or ()]
    if files is None or not all(s for _, s in stamps):
        return ""
    return _digest("\n".join(f"{p}\0{s}" for p, s in stamps).encode())


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _read_whole(
    reader: Any, vendor: str, root: Path, include_deprecated: bool
) -> Iterator[Rule | Problem]:
    """A folder read whole (no ``rule_files``): an exception ends the folder's
    remaining rules (the vendor cannot say which file failed), with a problem."""
    try:
        for item in reader.read(root, include_deprecated=include_deprecated):
            yield _finish(item, vendor)
    except Exception as e:
        yield clean(
            Problem(str(root), f"{vendor} reader failed: {type(e).__name__}: {e}", vendor=vendor)
        )


def read_one(reader: Any, vendor: str, path: Path, root: Path) -> list[Item]:
    """The rules of one file, bounded, normalized and made rows, or problems
    naming it.

    This is the one place a file is isolated: whatever goes wrong while it is
    read, decoded, loaded, shape-checked, parsed or normalized costs this file
    only (``RecursionError`` and ``MemoryError`` included)."""

    def work() -> list[Item]:
        got = reader.read_file(path, root)
        items = [got] if isinstance(got, Rule | Problem) else list(got)
        return [_rows(_finish(item, vendor)) for item in items]

    return _guarded(vendor, path, root, work)


def _rows(item: Rule | Problem) -> Item:
    """A rule's rows and similarity features; one whose rows cannot be prepared
    is a problem naming its file."""
    if isinstance(item, Problem):
        return item
    try:
        rows = store.rule_rows(item)
    except store.UnstorableRule as e:
        return clean(Problem(item.source_path, e.message, vendor=item.vendor))
    rows.features = frozenset(similar.rule_features(item))
    return rows


def _guarded(vendor: str, path: Path, root: Path, work: Callable[[], Any]) -> list[Any]:
    try:
        return list(work())
    except RecursionError:
        message = "nested too deeply to read (RecursionError)"
    except MemoryError:
        message = "ran out of memory reading this file"
    except Exception as e:  # a reader bug or a shape nobody foresaw: this file only
        message = f"could not be read: {type(e).__name__}: {e}"
    return [clean(Problem(_rel(path, root), message, vendor=vendor))]


def _finish(item: Rule | Problem, vendor: str) -> Rule | Problem:
    """Bound a rule's depth (before anything walks or pickles it), normalize it,
    and make every problem safe to show."""
    from detcat.normalize import normalize_rule

    if isinstance(item, Problem):
        item.vendor = item.vendor or vendor
        return clean(item)
    _bound_depth(item)
    try:
        normalize_rule(item)
    except Exception as e:  # a normalization bug must not lose the rule
        item.problems.append(
            Problem(item.source_path, f"normalization failed: {type(e).__name__}: {e}")
        )
    item.problems = [clean(p) for p in item.problems]
    return item


def _bound_depth(rule: Rule) -> None:
    """A stage nested deeper than ``MAX_DEPTH`` becomes Opaque, with a problem."""
    for stage in rule.stages:
        try:
            check_depth(stage.expr)
        except QueryError as e:
            stage.expr = Opaque(rule.query, Reason.SYNTAX_ERROR, e.message)
            rule.problems.append(Problem(rule.source_path, e.message, rule_id=rule.id))


_EXCERPT = 300  # characters of a problem message kept; messages may quote the file


def clean(p: Problem) -> Problem:
    """One short line: control characters escaped, long quotes cut."""
    text = p.message
    if not text.isprintable():
        text = "".join(c if c.isprintable() else _escape(c) for c in text)
    p.message = text if len(text) <= _EXCERPT else text[:_EXCERPT] + "… (cut)"
    return p


def _escape(c: str) -> str:
    return c.encode("unicode_escape").decode("ascii")


def _rel(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)
