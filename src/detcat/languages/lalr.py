"""One way to build our lark LALR parsers.

lark-cython (by lark's author) reimplements lark's LALR parser and lexer in
Cython. A grammar whose callbacks use tokens only through ``.value``/``.type``/
positions (its tokens are not ``str``; test them with ``isinstance(x, TOKENS)``)
may ask for it with ``accelerate=True``; where lark-cython is not installed
lark's own engine gives the same results, only slower. The EQL, KQL and
YARA-L parsers use it.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import lark
from lark import Lark
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

try:
    import lark_cython

    _PLUGINS: dict[str, Any] = lark_cython.plugins
    # What a callback may be handed as a token: lark's, or lark-cython's (not a str).
    TOKENS: tuple[type, ...] = (lark.Token, lark_cython.Token)
except ImportError:  # pragma: no cover - the accelerator is optional
    _PLUGINS = {}
    TOKENS = (lark.Token,)


def lalr(grammar: str, *, accelerate: bool = False, **options: Any) -> Lark:
    """A LALR ``Lark`` parser for ``grammar``, on lark-cython when asked and present.

    Its tables are cached in the user's cache folder (lark's own ``cache``, which
    checks the grammar's digest before use): building them costs every build's
    every worker about a second; loading them, a few milliseconds."""
    plugins = _PLUGINS if accelerate else {}
    return Lark(
        grammar, parser="lalr", _plugins=plugins, cache=_cache_file(grammar, options), **options
    )


def _cache_file(grammar: str, options: dict[str, Any]) -> str | bool:
    """Where this grammar's tables are cached; False (no cache) when the cache
    folder cannot be made. The name digests the grammar and the options that shape
    the tables; lark checks the digest stored inside, so a stale file is rebuilt."""
    shaping = sorted((k, repr(v)) for k, v in options.items() if k != "transformer")
    digest = hashlib.sha256(f"{grammar}\0{shaping}\0{lark.__version__}".encode()).hexdigest()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "detcat", "lark")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError:
        return False
    return os.path.join(folder, f"{digest[:32]}.lark")


def position(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of ``offset`` in ``text``."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def unexpected(e: UnexpectedInput, text: str, language: str, unit: str = "query") -> str:
    """The message of a lark syntax error: "KQL: unexpected character ';'"."""
    if isinstance(e, UnexpectedCharacters):
        return f"{language}: unexpected character {text[e.pos_in_stream]!r}"
    token = getattr(e, "token", None)
    if isinstance(e, UnexpectedEOF) or token is None or token.type == "$END":
        return f"{language}: unexpected end of {unit}"
    return f"{language}: unexpected {token!s}"
