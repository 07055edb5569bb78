"""Regex and wildcard patterns for ``detcat match``: RE2 (linear time) first, Python's
``re`` under a time limit only for what RE2 refuses (look-arounds, back-references).
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Callable
from functools import cache
from typing import Any

from detcat.match.fuse import sure as _sure

REGEX_TIME_LIMIT = 0.05  # seconds for one backtracking match (fallback engine only)


def wildcard_regex(pattern: str) -> str:
    """Our wildcard spelling (``*``, ``?``, no escapes) as a regex."""
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)


@cache
def compiled_regex(pattern: str, case_sensitive: bool, full: bool) -> Callable[[str], bool | None]:
    """A linear-time matcher (RE2); Python's ``re`` with a time limit only for what
    RE2 cannot compile; an always-unknown matcher for a pattern nobody compiles."""
    import re2

    options = re2.Options()
    options.log_errors = False  # a pattern RE2 refuses is expected: it falls back
    options.case_sensitive = case_sensitive
    options.dot_nl = full
    try:
        rx = re2.compile(pattern, options)
    except re2.error:
        return _fallback(pattern, case_sensitive, full)
    return _sure(re2_test(rx, full))


def re2_test(rx: Any, full: bool) -> Callable[[str], bool]:
    """Whether the compiled RE2 pattern ``rx`` matches a text (whole if ``full``).
    RE2's own ``Match`` on the UTF-8 bytes where the binding has it: the wrapper's
    ``search``/``fullmatch`` build a match object, its offsets decoded back to
    characters, that a yes/no never reads (twice the cost of the match itself)."""
    regexp = getattr(rx, "_regexp", None)
    anchors = getattr(regexp, "Anchor", None)
    if anchors is None:  # another binding: its public API
        run = rx.fullmatch if full else rx.search
        return lambda s: run(s) is not None
    match = regexp.Match
    anchor = anchors.ANCHOR_BOTH if full else anchors.UNANCHORED

    def test(s: str) -> bool:
        data = s.encode()
        return match(anchor, data, 0, len(data))[0][0] != -1  # group 0's span, (-1, -1) if none

    return test


def _fallback(pattern: str, case_sensitive: bool, full: bool) -> Callable[[str], bool | None]:
    flags = (0 if case_sensitive else re.IGNORECASE) | (re.DOTALL if full else 0)
    try:
        rx = re.compile(pattern, flags)
    except re.error:
        return lambda s: None
    run = rx.fullmatch if full else rx.search
    return lambda s: bounded(lambda: run(s) is not None)


class _Timeout(Exception):
    pass


def bounded(fn: Callable[[], bool]) -> bool | None:
    """``fn()`` under ``REGEX_TIME_LIMIT``; None when it ran out of time or when no
    limit can be set (not the main thread): never an unbounded backtracking match."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "setitimer"
    ):
        return None

    def alarm(signum: int, frame: Any) -> None:
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, alarm)
    # The alarm may fire anywhere from arming to disarming (a loaded machine takes
    # the whole limit between two bytecodes): the outer try catches it everywhere.
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, REGEX_TIME_LIMIT)
            return fn()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Timeout:
        return None
    finally:
        signal.signal(signal.SIGALRM, previous)
