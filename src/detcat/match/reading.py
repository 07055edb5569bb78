"""Reading event files for ``detcat match``: one pass, bounded memory, bad input reported.

An event file holds one JSON document, a JSON array of them, several documents one
after another (SigmaHQ's regression data, pretty-printed) or JSON lines; ``-`` is
standard input. The file is read line by line and never held whole:

* a line that is a complete JSON value is decoded as it is (the JSON-lines case,
  at the speed of orjson);
* otherwise brackets are counted, outside strings, until the document closes. JSON
  strings cannot span lines, so counting line by line is exact for valid JSON;
* a top-level array is streamed item by item.

A document that cannot be read (not JSON, nested too deeply, a number too long to
convert, not UTF-8, larger than ``MAX_DOCUMENT_BYTES``) becomes a ``BadEvent``
naming its file and line, and reading goes on with the next document. A broken
document in JSON lines costs its own line only: a line that starts at column 0 with
a complete JSON object ends any document left unterminated before it.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from detcat.errors import DetcatError, UsageProblem
from detcat.jsonio import loads as _loads
from detcat.match.events import Event, TooDeep, canonical_event

MAX_DOCUMENT_BYTES = 16 * 2**20  # one event (or one line) larger than this is reported
STDIN = "-"

# A JSON string (or the rest of a line after an unterminated one), or a bracket.
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|[\[\]{}]')
_CLOSE = {"}": "{", "]": "["}
_DECODER = json.JSONDecoder()


class EventFileError(DetcatError, ValueError):
    """A file that holds no readable JSON event (or a bad event, when not tolerated)."""


@dataclass(frozen=True, slots=True)
class BadEvent:
    """A document that could not be read: where it starts, and why."""

    label: str  # "<file>:<line>"
    message: str

    def __str__(self) -> str:
        return f"{self.label}: {self.message}"


OnBad = Callable[[BadEvent], None]
Document = dict[str, Any]


def _raise(bad: BadEvent) -> None:
    raise EventFileError(str(bad))


def read_events(path: Path | str, on_bad: OnBad = _raise) -> Iterator[Event]:
    """Every event in ``path`` (``-`` for stdin), flattened and canonicalized.
    A document that cannot be read goes to ``on_bad`` (by default: raise
    ``EventFileError``), and the events after it are still read."""
    for label, doc in read_documents(path, on_bad):
        try:
            yield canonical_event(label, doc)
        except TooDeep as e:
            on_bad(BadEvent(label, str(e)))


def read_documents(
    path: Path | str, on_bad: OnBad = _raise
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, document) for each JSON object in the file. The label is the file
    name for a file holding one document, else ``file:line`` of the document."""
    name = str(path)
    pending: tuple[int, Document] | None = None  # one document of look-ahead
    count = 0
    with _open(path) as stream:
        for line, doc, error in _Splitter().documents(_lines(stream)):
            count += 1
            if error is not None:
                on_bad(BadEvent(f"{name}:{line}", error))
                continue
            if pending is not None:
                yield f"{name}:{pending[0]}", pending[1]
            pending = (line, doc)  # type: ignore[assignment]
    if pending is not None:
        yield (name if count == 1 else f"{name}:{pending[0]}"), pending[1]
    elif count == 0:
        raise EventFileError(f"{name}: empty: no JSON event in it")


def check_event_file(path: Path | str) -> None:
    """Refuse, before any reading, what cannot be an event file: a directory
    (``UsageProblem``) or nothing at all (``EventFileNotFound``)."""
    if str(path) == STDIN:
        return
    p = Path(path)
    if p.is_dir():
        raise UsageProblem(f"{p} is a directory: give the event files in it ({p}/*.json)")
    if not p.exists():
        raise EventFileNotFound(f"no such event file: {p}")


class EventFileNotFound(EventFileError, FileNotFoundError):
    pass


@contextmanager
def _open(path: Path | str) -> Iterator[IO[bytes]]:
    if str(path) == STDIN:
        yield sys.stdin.buffer
        return
    check_event_file(path)
    try:
        stream = open(path, "rb")  # noqa: SIM115 (closed below)
    except OSError as e:
        raise EventFileError(f"{path}: cannot read: {e.strerror}") from None
    with stream:
        yield stream


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, str | None, str | None]]:
    """(number, text, error) per line, decoded; a line longer than the limit or not
    UTF-8 is an error, and an overlong line is skipped without being held."""
    number = 0
    while raw := stream.readline(MAX_DOCUMENT_BYTES + 1):
        number += 1
        if len(raw) > MAX_DOCUMENT_BYTES and not raw.endswith(b"\n"):
            while (more := stream.readline(MAX_DOCUMENT_BYTES)) and not more.endswith(b"\n"):
                pass
            yield number, None, f"line longer than {MAX_DOCUMENT_BYTES >> 20} MiB: skipped"
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield number, None, f"not UTF-8 (byte {e.start + 1} of the line)"
            continue
        yield number, text.lstrip("\ufeff") if number == 1 else text, None


_Item = tuple[int, Document | None, str | None]  # (line, document, error)


class _Splitter:
    """Cuts a stream of lines into JSON documents (see the module docstring)."""

    def __init__(self) -> None:
        self.parts: list[str] = []  # the open document's text so far
        self.size = 0
        self.start = 0  # line where the open document starts
        self.stack: list[str] = []  # open brackets of the open document
        self.oversized = False  # the open document is being skipped, not kept
        self.array: int | None = None  # line of an open top-level "[", if any
        self.indent = 0  # column of the open document's first bracket
        # After a document broke mid-way, its remaining lines are skipped up to the
        # next line that starts a document at most this indented (None: not skipping).
        self.skip_to: int | None = None

    def documents(self, lines: Iterator[tuple[int, str | None, str | None]]) -> Iterator[_Item]:
        for number, text, error in lines:
            if error is not None:
                yield from self._abandon(number, error)
            else:
                yield from self._line(number, text or "")
        if self.parts or self.oversized:
            yield from self._close(at_end=True)
        elif self.array is not None:
            yield self.array, None, "array not closed at the end of the file"

    def _abandon(self, number: int, error: str) -> Iterator[_Item]:
        """An unreadable line: it spoils any open document, whose rest is skipped."""
        if self.parts or self.oversized:
            yield self.start, None, f"document broken by line {number}: {error}"
            self._break()
        elif self.skip_to is None:
            yield number, None, error

    def _break(self) -> None:
        self._reset()
        self.skip_to = self.indent

    def _skipping(self, text: str) -> bool:
        """Whether ``text`` is still part of a broken document (see ``skip_to``)."""
        if self.skip_to is None:
            return False
        body = text.lstrip(" \t")
        indent = len(text) - len(body)
        if (
            indent <= self.skip_to
            and body[:1] in ("{", "[")
            or (self.array is not None and body[:1] == "]" and indent < self.skip_to)
        ):
            self.skip_to = None
            return False
        return True

    def _reset(self) -> None:
        self.parts, self.size, self.stack, self.oversized = [], 0, [], False

    def _line(self, number: int, text: str) -> Iterator[_Item]:
        pos = 0
        if self._skipping(text):
            return
        if self.parts and text[:1] == "{" and _whole_object(text):
            yield self.start, None, f"document not terminated before line {number}"
            self._reset()
        while pos < len(text):
            if not (self.parts or self.oversized):
                pos = _skip(text, pos, ", \t\r\n" if self.array is not None else " \t\r\n")
                if pos >= len(text):
                    return
                pos, opened = yield from self._start(number, text, pos)
                if not opened:
                    continue
            pos = yield from self._continue(number, text, pos)

    def _start(self, number: int, text: str, pos: int) -> Generator[_Item, None, tuple[int, bool]]:
        """At the first character of a document: decode the rest of the line at once
        when it is one document, else open the document (or the top-level array).
        Returns where to go on, and whether a document is now open."""
        first = text[pos]
        if self.array is not None and first == "]":
            self.array = None
            return pos + 1, False
        rest = text[pos:].rstrip()
        if self.array is not None:
            rest = rest.rstrip(",").rstrip()
        if first == "{" or (first == "[" and self.array is not None):
            try:
                yield from _emit(number, _loads(rest))
                return len(text), False
            except (ValueError, RecursionError):
                pass  # several lines, several documents on the line, or bad: count
        elif first == "[":
            self.array = number
            return pos + 1, False
        else:  # a scalar: say so and go on after it (the next array item may be fine)
            try:
                value, end = _DECODER.raw_decode(text, pos)
            except (ValueError, RecursionError):
                yield number, None, f"expected a JSON object, found {rest[:20]!r}"
                return len(text), False
            yield from _not_object(number, value)
            return end, False
        self.start, self.indent = number, pos
        return pos, True

    def _continue(self, number: int, text: str, pos: int) -> Generator[_Item, None, int]:
        """Count brackets from ``pos``; emit the document when it closes, and return
        where the line goes on after it."""
        begin = pos
        for m in _TOKEN.finditer(text, pos):
            token = m.group()
            if token in "{[":
                self.stack.append(token)
            elif token in "}]":
                if not self.stack or self.stack.pop() != _CLOSE[token]:
                    yield self.start, None, f"unbalanced {token!r} on line {number}"
                    self._break()
                    return len(text)
                if not self.stack:
                    self._keep(text[begin : m.end()])
                    yield from self._close()
                    return m.end()
        self._keep(text[begin:])
        return len(text)

    def _keep(self, piece: str) -> None:
        if self.oversized:
            return
        self.size += len(piece)
        if self.size > MAX_DOCUMENT_BYTES:
            self.parts, self.oversized = [], True
        else:
            self.parts.append(piece)

    def _close(self, at_end: bool = False) -> Iterator[_Item]:
        """Decode the open document; ``at_end``: the file ended before it closed."""
        text, oversized = "".join(self.parts), self.oversized
        self._reset()
        if oversized:
            yield self.start, None, f"document larger than {MAX_DOCUMENT_BYTES >> 20} MiB: skipped"
            return
        try:
            doc = _loads(text)
        except (ValueError, RecursionError) as e:
            self.skip_to = self.indent  # its brackets may have closed early: resync
            yield self.start, None, _why_not(e, text, at_end)
            return
        yield from _emit(self.start, doc)


def _why_not(e: Exception, text: str, at_end: bool) -> str:
    """The message for a document ``json.loads`` refused."""
    if isinstance(e, RecursionError):
        return "JSON nested too deeply"
    if not isinstance(e, json.JSONDecodeError):  # e.g. an integer too long to convert
        return f"not readable JSON: {_short(str(e))}"
    if at_end and e.pos >= len(text.rstrip()):
        return "document not terminated at the end of the file"
    where = f"line {e.lineno}, column {e.colno}" if e.lineno > 1 else f"column {e.colno}"
    return f"not JSON: {e.msg} ({where} of the document)"


def _emit(number: int, doc: Any) -> Iterator[_Item]:
    if isinstance(doc, dict):
        yield number, doc, None
    elif isinstance(doc, list):
        for item in doc:
            yield from _emit(number, item) if isinstance(item, dict) else _not_object(number, item)
    else:
        yield from _not_object(number, doc)


def _not_object(number: int, value: Any) -> Iterator[_Item]:
    yield number, None, f"a JSON event is an object, not {type(value).__name__}"


def _whole_object(text: str) -> bool:
    try:
        return isinstance(_loads(text), dict)
    except (ValueError, RecursionError):
        return False


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _short(message: str) -> str:
    return message if len(message) <= 120 else message[:117] + "..."
