"""A regex RE2 refuses, relaxed to one RE2 runs that holds wherever the original
holds: a necessary condition SQL tests before the row goes to the Python matcher.

Rules with such a regex run on the Python matcher for the rows their SQL
prefilter keeps (``ir.prefilter``); without this, the regex reads as unknown and
keeps every row the rest of the rule allows (Splunk's alternate-data-stream rule:
one process-creation row in six, at ~100 µs a row in Python). Lowered as
``near AND Python(...)``, the rule stays a fallback rule but its prefilter drops
the rows where ``near`` is false.

Relaxing removes the lookaround assertions (zero-width: they only narrow a
match); what else RE2 refuses (backreferences, atomic groups, …) is left as it
is, with no relaxation. Python's ``re`` and RE2 read the rest alike on plain
text only: on ``str`` patterns Python's ``\\w``, ``\\d``, ``\\s`` and ``\\b`` are
Unicode-aware, its ``\\s`` also holds ``\\v`` and ``\\x1c``-``\\x1f``, its ``$`` also
holds before a final newline, and its case folding is Unicode's. So ``near`` is
"the relaxed regex holds, or the value has a character other than printable
ASCII, tab, CR or FF" (``NOT_PLAIN``). Patterns RE2 reads otherwise (``{,n}``,
``[[:alpha:]]``) or with text outside ASCII are not relaxed. (A Python regex
that runs out of time is unknown to the matcher; where ``near`` is false it
would have found no match, given the time.)
"""

from __future__ import annotations

import re
import re._parser as sre_parse  # Python's own parse of a pattern: checks the removal
from typing import Any

from detcat.match.needs import re2_compiles
from detcat.sqlgen.ir import Any_, Col, Node, Regex

NOT_PLAIN = r"[^\x20-\x7E\t\r\f]"  # a character where Python's re and RE2 may differ
_LOOKAROUND = ("(?=", "(?!", "(?<=", "(?<!")
_ASSERTS = (sre_parse.ASSERT, sre_parse.ASSERT_NOT)


def near(col: Col, pattern: str, flags: str, full: bool) -> Node | None:
    """A test of list column ``col`` that holds wherever ``pattern`` (Python's
    ``re`` with ``flags``, found or matching whole) holds on a value; None when
    no relaxation is known."""
    relaxed = relax(pattern)
    if relaxed is None:
        return None
    return Any_(
        (
            Regex(col, relaxed, flags, True, full, ()),
            Regex(col, NOT_PLAIN, "", True, False, ()),
        )
    )


def relax(pattern: str) -> str | None:
    """``pattern`` without its lookarounds, if RE2 takes that and both engines read
    it alike on plain text (see the module docstring); else None."""
    if not pattern.isascii() or "{," in pattern or "[:" in pattern:
        return None
    relaxed = without_lookarounds(pattern)
    if relaxed == pattern or not re2_compiles(relaxed):
        return None
    try:
        same = _tree(sre_parse.parse(relaxed)) == _tree(sre_parse.parse(pattern))
    except re.error:
        return None
    return relaxed if same else None


def without_lookarounds(pattern: str) -> str:
    """The pattern's text with each ``(?=…)``, ``(?!…)``, ``(?<=…)``, ``(?<!…)`` cut out
    (escapes and character classes read, so their parentheses are no groups)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith(_LOOKAROUND, i):
            i = _group_end(pattern, i)
            continue
        step = _token(pattern, i)
        out.append(pattern[i:step])
        i = step
    return "".join(out)


def _token(pattern: str, i: int) -> int:
    """The end of the token at ``i``: an escape, a character class, or one character."""
    if pattern[i] == "\\":
        return i + 2
    if pattern[i] != "[":
        return i + 1
    j = i + 1
    if j < len(pattern) and pattern[j] == "^":
        j += 1
    if j < len(pattern) and pattern[j] == "]":  # a leading ] is a member
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        j += 2 if pattern[j] == "\\" else 1
    return j + 1


def _group_end(pattern: str, start: int) -> int:
    """The index after the parenthesis closing the group that opens at ``start``."""
    depth = 0
    i = start
    while i < len(pattern):
        if pattern[i] == "(":
            depth += 1
        elif pattern[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i = _token(pattern, i)
    return len(pattern)


def _tree(parsed: Any) -> list[Any]:
    """A parsed pattern as nested lists, lookaround assertions left out."""
    out = []
    for op, av in parsed.data:
        if op in _ASSERTS:
            continue
        out.append((op, _value(av)))
    return out


def _value(av: Any) -> Any:
    if isinstance(av, sre_parse.SubPattern):
        return _tree(av)
    if isinstance(av, list | tuple):
        return [_value(x) for x in av]
    return av
