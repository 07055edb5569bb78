"""JSON text read at orjson's speed, with the standard library's answers.

orjson decodes 2.5 times faster than ``json``, but not always as ``json`` does: it
refuses NaN, Infinity, numbers beyond a double and lone surrogates, and reads an
integer beyond 64 bits as a float. ``loads`` gives such text to ``json`` (any
run of 19 digits sends it there), so values and errors are ``json``'s own.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_LONG_NUMBER = re.compile(r"\d{19}")  # 2**63 has 19 digits


def loads(text: str) -> Any:
    if _LONG_NUMBER.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)
