"""Split SPL text into commands: pipes, subsearches, macros, comments.

Works on raw characters so that quoted strings, ``[…]`` subsearches and
backquoted macro names are respected before any grammar sees the text.
Every piece keeps its offset in the query, so errors point at the source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from detcat.languages.lalr import position
from detcat.model import QueryError

_COMMENT = re.compile(r"```.*?```", re.S)
_NAME = re.compile(r"\s*([A-Za-z_][\w-]*)")
# Subsearches are replaced by a placeholder of the same length (when it fits),
# so offsets inside a command still point into the query.
OPEN, PAD, CLOSE = "\ue000", "\ue002", "\ue001"
# Commands that may open a (sub)search without a leading pipe.
GENERATING = frozenset(
    {"search", "tstats", "mstats", "inputlookup", "from", "datamodel", "makeresults", "rest"}
)


@dataclass(slots=True)
class Command:
    name: str  # lower-case command name; "search" for the implicit base search
    args: str  # text after the name, subsearches replaced by placeholders
    offset: int  # offset of ``args`` in the query
    subs: list[tuple[int, int]] = field(default_factory=list)  # subsearch bodies
    macros: list[str] = field(default_factory=list)  # backquoted names left in the text


def strip_comments(text: str) -> str:
    """Blank out triple-backtick comments, keeping every offset and line break."""
    return _COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)


def _error(src: str, pos: int, message: str) -> QueryError:
    return QueryError(message, *position(src, pos))


_STRING_STOP = re.compile(r'["\\]')


def string_end(src: str, i: int, end: int) -> int:
    """Index just after the double-quoted string starting at ``i``."""
    j = i + 1
    while (m := _STRING_STOP.search(src, j, end)) is not None:
        if m.group() == '"':
            return m.end()
        j = m.end() + 1  # skip the escaped character
    raise _error(src, i, "unterminated quoted string")


_BRACKET_STOP = re.compile(r'["\[\]]')


def bracket_end(src: str, i: int, end: int) -> int:
    """Index just after the ``]`` matching the ``[`` at ``i``."""
    depth, j = 0, i
    while (m := _BRACKET_STOP.search(src, j, end)) is not None:
        c, j = m.group(), m.start()
        if c == '"':
            j = string_end(src, j, end)
            continue
        depth += 1 if c == "[" else -1
        j += 1
        if depth == 0:
            return j
    raise _error(src, i, "unbalanced '[': subsearch is not closed")


@dataclass(slots=True)
class _Segment:
    start: int
    end: int
    subs: list[tuple[int, int]] = field(default_factory=list)
    macros: list[tuple[int, int]] = field(default_factory=list)


_SPECIAL = re.compile(r'["\\`\[\]|]')  # the characters the scanner acts on


def _segments(src: str, start: int, end: int) -> list[_Segment]:
    segs = [_Segment(start, end)]
    i = start
    while (m := _SPECIAL.search(src, i, end)) is not None:
        c, i = m.group(), m.start()
        if c == '"':
            i = string_end(src, i, end)
        elif c == "\\":  # an escaped character, e.g. `*\"privileged\":true*`
            i += 2
        elif c == "`" and (j := src.find("`", i + 1, end)) != -1:
            segs[-1].macros.append((i, j + 1))
            i = j + 1
        elif c == "[":
            j = bracket_end(src, i, end)
            segs[-1].subs.append((i, j))
            i = j
        elif c == "]":
            raise _error(src, i, "unbalanced ']'")
        elif c == "|":
            segs[-1].end = i
            segs.append(_Segment(i + 1, end))
            i += 1
        else:
            i += 1
    return segs


def _placeholder(index: int, length: int) -> str:
    body = f"{OPEN}{index}"
    return body + PAD * max(0, length - len(body) - 1) + CLOSE


def _command(src: str, seg: _Segment, first: bool) -> Command | None:
    text = src[seg.start : seg.end]
    # Macros and subsearches never overlap; replace from the right so that
    # earlier offsets stay valid even if a placeholder cannot keep the length.
    spans = [(a, b, " " * (b - a)) for a, b in seg.macros]
    spans += [(a, b, _placeholder(k, b - a)) for k, (a, b) in enumerate(seg.subs)]
    for a, b, repl in sorted(spans, reverse=True):
        text = text[: a - seg.start] + repl + text[b - seg.start :]
    macros = [src[a:b] for a, b in seg.macros]
    subs = [(a + 1, b - 1) for a, b in seg.subs]
    m = _NAME.match(text)
    name = m.group(1).lower() if m else ""
    if first and name not in GENERATING:
        return Command("search", text, seg.start, subs, macros)
    if not m:
        if text.strip():
            raise _error(src, seg.start, "expected a command name after '|'")
        return Command("", "", seg.start, subs, macros) if macros else None
    return Command(name, text[m.end() :], seg.start + m.end(), subs, macros)


def scan(src: str, start: int = 0, end: int | None = None) -> list[Command]:
    """The commands of the pipeline in ``src[start:end]``, empty ones dropped
    (a removed macro leaves ``| |`` behind)."""
    end = len(src) if end is None else end
    segs = _segments(src, start, end)
    out = []
    for n, seg in enumerate(segs):
        first = n == 0 and bool(src[seg.start : seg.end].strip())
        cmd = _command(src, seg, first)
        if cmd is not None:
            out.append(cmd)
    return out


_ARG_STOP = re.compile(r'["(),\s]')


def arg_tokens(text: str) -> list[tuple[int, str]]:
    """A command's arguments as (offset, token): split at whitespace and commas
    (a comma is its own token); quoted strings and ``(…)`` groups stay whole."""
    out: list[tuple[int, str]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c == ",":
            out.append((i, ","))
            i += 1
            continue
        j, depth = i, 0
        while (m := _ARG_STOP.search(text, j)) is not None:
            c, j = m.group(), m.start()
            if c == '"':
                j = _quoted_end(text, j)
                continue
            if c == "(":
                depth += 1
            elif c == ")":
                depth = max(0, depth - 1)
            elif depth == 0:
                break  # whitespace or a comma ends the token
            j += 1
        else:
            j = n
        out.append((i, text[i:j]))
        i = j
    return out


def _quoted_end(text: str, i: int) -> int:
    """Like string_end, but lenient: arguments were already checked by the scanner."""
    j = i + 1
    while (m := _STRING_STOP.search(text, j)) is not None:
        if m.group() == '"':
            return m.end()
        j = m.end() + 1
    return len(text)
