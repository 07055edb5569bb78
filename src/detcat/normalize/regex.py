"""Regexes that are plain literals, optionally anchored, become string operators.

YARA-L and ES|QL express most string tests as regexes (``/\\\\anydesk\\.exe$/``,
``RLIKE ".*anydesk.*"``); as literals they aggregate with the other vendors'
``ends_with``/``contains``. Anything beyond literals, anchors, ``.*`` at the ends,
one alternation group and an ``(?i)`` flag stays a regex. An alternation of
literals is a value list however long (the model's one predicate per value: the
SecOps backend writes a Sigma list of 789 driver hashes as one alternation).
"""

from __future__ import annotations

from dataclasses import dataclass

from detcat.model import Op

_META = frozenset(".^$*+?()[]{}|")
# Escapes that are classes or assertions, not literal characters.
_CLASS_ESCAPES = frozenset("dDwWsSbBAzZGpPhHvVkKQEnrtfae0123456789xuc")


@dataclass(frozen=True, slots=True)
class Literal:
    op: Op
    values: tuple[str, ...]
    case_insensitive: bool  # an inline (?i) flag


def regex_literal(pattern: str, full_match: bool) -> Literal | None:
    """The string tests ``pattern`` stands for, or None when it is a real regex.

    ``full_match``: the language matches the whole value (Lucene/EQL ``regex``,
    ES|QL ``RLIKE``) rather than searching it (RE2, PCRE).
    """
    ci = False
    if pattern.startswith("(?i)"):
        ci, pattern = True, pattern[4:]
    branches = top_level_branches(pattern)
    if branches is None:
        return None
    found: list[tuple[Op, str]] = []
    for branch in branches:
        lit = _branch(branch, full_match)
        if lit is None:
            return None
        found.extend(lit)
    ops = {op for op, _ in found}
    if len(ops) != 1:
        return None
    return Literal(ops.pop(), tuple(dict.fromkeys(v for _, v in found)), ci)


def _branch(text: str, full_match: bool) -> list[tuple[Op, str]] | None:
    start, text = _strip_start(text, full_match)
    end, text = _strip_end(text, full_match)
    expanded = _expand(text)
    if not expanded or any(v == "" for v in expanded):
        return None
    op = _OPS[(start, end)]
    return [(op, v) for v in expanded]


_OPS = {
    (True, True): Op.EQ,
    (True, False): Op.STARTS_WITH,
    (False, True): Op.ENDS_WITH,
    (False, False): Op.CONTAINS,
}


def _strip_start(text: str, full_match: bool) -> tuple[bool, str]:
    anchored = full_match
    if text.startswith("^") or text.startswith("\\A"):
        anchored, text = True, text[1 if text[0] == "^" else 2 :]
    if text.startswith(".*"):
        anchored, text = False, text[2:]
    return anchored, text


def _strip_end(text: str, full_match: bool) -> tuple[bool, str]:
    anchored = full_match
    if _unescaped_suffix(text, "$"):
        anchored, text = True, text[:-1]
    elif _unescaped_suffix(text, "\\z") or _unescaped_suffix(text, "\\Z"):
        anchored, text = True, text[:-2]
    if _unescaped_suffix(text, ".*"):
        anchored, text = False, text[:-2]
    return anchored, text


def _unescaped_suffix(text: str, suffix: str) -> bool:
    if not text.endswith(suffix):
        return False
    i, slashes = len(text) - len(suffix) - 1, 0
    while i >= 0 and text[i] == "\\":
        slashes, i = slashes + 1, i - 1
    return slashes % 2 == 0


def top_level_branches(pattern: str) -> list[str] | None:
    """``pattern`` split at its top-level ``|`` (not inside a group or a character
    class); None when parentheses or classes do not close."""
    out, start, depth, i = [], 0, 0, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            end = class_end(pattern, i)
            if end is None:
                return None
            i = end
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                return None
        elif c == "|" and depth == 0:
            out.append(pattern[start:i])
            start = i + 1
        i += 1
    if depth:
        return None
    out.append(pattern[start:])
    return out


def class_end(pattern: str, i: int) -> int | None:
    """Index after the character class opening at ``i`` (``[]a]``, ``[^]a]``,
    ``[[:alpha:]]``, escapes)."""
    j = i + 1
    if j < len(pattern) and pattern[j] == "^":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    while j < len(pattern):
        c = pattern[j]
        if c == "\\":
            j += 2
        elif c == "[" and pattern.startswith("[:", j):
            end = pattern.find(":]", j + 2)
            if end < 0:
                return None
            j = end + 2
        elif c == "]":
            return j + 1
        else:
            j += 1
    return None


def _expand(text: str) -> list[str] | None:
    """Literal strings ``text`` matches: literal chars around at most one group
    of literal alternatives."""
    open_at = _find_unescaped(text, "(")
    if open_at < 0:
        lit = _unescape(text)
        return None if lit is None else [lit]
    close_at = text.rfind(")")
    inner = text[open_at + 1 : close_at]
    if inner.startswith("?:"):
        inner = inner[2:]
    head, tail = _unescape(text[:open_at]), _unescape(text[close_at + 1 :])
    alts = top_level_branches(inner)
    if head is None or tail is None or alts is None:
        return None
    out = []
    for alt in alts:
        lit = _unescape(alt)
        if lit is None:
            return None
        out.append(head + lit + tail)
    return out


def _find_unescaped(text: str, ch: str) -> int:
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == ch:
            return i
        i += 1
    return -1


def _unescape(text: str) -> str | None:
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 >= len(text) or text[i + 1] in _CLASS_ESCAPES:
                return None
            out.append(text[i + 1])
            i += 2
            continue
        if c in _META:
            return None
        out.append(c)
        i += 1
    return "".join(out)
