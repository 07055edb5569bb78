"""Elasticsearch EQL's functions on values, as ``match.eql`` evaluates them.

Each function takes Python values (``str``, ``int``, ``float``, ``bool``; ``None``
is null) and returns one, following Elasticsearch's function processors
(``org.elasticsearch.xpack.eql.expression.function.scalar``), not the legacy
``eql`` package where they differ:

- ``between``: a left or right bound that is not found gives ``""`` (legacy: null);
  an empty source or bound gives the source unchanged;
- ``stringContains`` with an empty string or substring is false (legacy: true);
- ``indexOf`` starts at ``max(start, 0)`` (Python's ``find`` would count a
  negative start from the end) and gives null when not found;
- ``concat`` of anything null is null (legacy: nulls are skipped);
- ``divide``/``modulo`` of two integers are Java's truncating integer division
  and remainder (``-7 / 2 == -3``);
- ``substring`` slices as Python does (Elasticsearch ports those semantics);
- ``length``, ``startsWith`` … of a multi-valued field apply to each value (the
  comparison holds when one value passes it); legacy ``length`` of an array is
  its number of items.

A call Elasticsearch would reject or fail on (wrong types, division by zero, an
unparsable ``number``) raises ``Undetermined``: the rule's outcome is unknown.
String indices count code points; Java counts UTF-16 units, which differ only
beyond the Basic Multilingual Plane.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

Value = str | int | float | bool | None


class Undetermined(Exception):
    """What Elasticsearch would answer with an error, or what detcat cannot tell."""


class EvaluationError(Undetermined):
    """An error of the expression itself (a type error, a division by zero): what
    legacy ``safe()`` turns into null, unlike what detcat merely cannot tell."""


def _string(v: Any) -> str:
    if not isinstance(v, str):
        raise EvaluationError(f"a string is required, not {v!r}")
    return v


def _number(v: Any) -> int | float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise EvaluationError(f"a number is required, not {v!r}")
    return v


def _fold(s: str, insensitive: bool) -> str:
    return s.lower() if insensitive else s


# -- arithmetic ------------------------------------------------------------------------


def add(a: Any, b: Any) -> Value:
    return _number(a) + _number(b)


def subtract(a: Any, b: Any) -> Value:
    return _number(a) - _number(b)


def multiply(a: Any, b: Any) -> Value:
    return _number(a) * _number(b)


def divide(a: Any, b: Any) -> Value:
    x, y = _number(a), _number(b)
    if y == 0:
        raise EvaluationError("division by zero")
    if isinstance(x, int) and isinstance(y, int):
        q = abs(x) // abs(y)
        return q if (x >= 0) == (y >= 0) else -q
    return x / y


def modulo(a: Any, b: Any) -> Value:
    x, y = _number(a), _number(b)
    if y == 0:
        raise EvaluationError("division by zero")
    if isinstance(x, int) and isinstance(y, int):
        r = abs(x) % abs(y)
        return r if x >= 0 else -r
    import math

    return math.fmod(x, y)


ARITHMETIC: dict[str, Callable[[Any, Any], Value]] = {
    "+": add,
    "-": subtract,
    "*": multiply,
    "/": divide,
    "%": modulo,
}

# -- strings ---------------------------------------------------------------------------


def between(
    source: Any, left: Any, right: Any, greedy: Any = False, insensitive: bool = False
) -> Value:
    s, lft, rgt = _string(source), _string(left), _string(right)
    if not isinstance(greedy, bool):
        raise Undetermined("between(): greedy must be a boolean")
    if not s or not lft or not rgt:
        return s
    m, lft, rgt = _fold(s, insensitive), _fold(lft, insensitive), _fold(rgt, insensitive)
    idx = m.find(lft)
    if idx < 0:
        return ""
    start = idx + len(lft)
    end = m.rfind(rgt) if greedy else m.find(rgt, start)
    if end < 0:
        return ""
    if end < start:  # Java's substring throws: the search fails
        raise Undetermined("between(): right bound before the left one")
    return s[start:end]


def cidr_match(address: Any, *networks: Any) -> Value:
    try:
        ip = ipaddress.ip_address(_string(address).strip())
    except ValueError:
        return False
    for n in networks:
        try:
            if ip in ipaddress.ip_network(_string(n).strip(), strict=False):
                return True
        except ValueError as e:
            raise Undetermined(f"cidrMatch(): {e}") from None
    return False


def concat(*values: Any) -> Value:
    if any(v is None for v in values):
        return None
    return "".join(to_string(v) for v in values)


def ends_with(source: Any, suffix: Any, insensitive: bool = False) -> Value:
    s, x = _string(source), _string(suffix)
    return _fold(s, insensitive).endswith(_fold(x, insensitive))


def starts_with(source: Any, prefix: Any, insensitive: bool = False) -> Value:
    s, x = _string(source), _string(prefix)
    return _fold(s, insensitive).startswith(_fold(x, insensitive))


def string_contains(source: Any, sub: Any, insensitive: bool = False) -> Value:
    s, x = _string(source), _string(sub)
    if not s or not x:
        return False
    return _fold(x, insensitive) in _fold(s, insensitive)


def index_of(source: Any, sub: Any, start: Any = None, insensitive: bool = False) -> Value:
    s, x = _string(source), _string(sub)
    begin = 0 if start is None else int(_number(start))
    idx = _fold(s, insensitive).find(_fold(x, insensitive), max(begin, 0))
    return None if idx < 0 else idx


def length(source: Any) -> Value:
    return len(_string(source))


def substring(source: Any, start: Any, end: Any = None) -> Value:
    s = _string(source)
    a = int(_number(start))
    b = None if end is None else int(_number(end))
    return s[a:b]


def number(source: Any, base: Any = None) -> Value:
    s = _string(source).strip()
    radix = 10 if base is None else int(_number(base))
    try:
        if radix == 10:
            return float(s) if any(c in s for c in ".eE") else int(s)
        if radix == 16 and s[:2].lower() == "0x":
            s = s[2:]
        return int(s, radix)
    except ValueError:
        raise Undetermined(f"number(): cannot read {s!r} in base {radix}") from None


def to_string(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def string(v: Any) -> Value:
    return to_string(v)


# lower-case name -> (function, fewest and most arguments, whether a "~" form exists).
# A null argument makes the result null without a call, except for NULL_AWARE ones.
FUNCTIONS: dict[str, tuple[Callable[..., Value], int, int, bool]] = {
    "add": (add, 2, 2, False),
    "between": (between, 3, 4, True),
    "cidrmatch": (cidr_match, 2, 99, False),
    "concat": (concat, 1, 99, False),
    "divide": (divide, 2, 2, False),
    "endswith": (ends_with, 2, 2, True),
    "indexof": (index_of, 2, 3, True),
    "length": (length, 1, 1, False),
    "modulo": (modulo, 2, 2, False),
    "multiply": (multiply, 2, 2, False),
    "number": (number, 1, 2, False),
    "startswith": (starts_with, 2, 2, True),
    "string": (string, 1, 1, False),
    "stringcontains": (string_contains, 2, 2, True),
    "substring": (substring, 2, 3, False),
    "subtract": (subtract, 2, 2, False),
}

# Functions whose null arguments do not make a null result (concat decides itself).
NULL_AWARE = frozenset({"concat"})
