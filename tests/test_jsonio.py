"""``jsonio.loads``: orjson's speed, ``json``'s answers, on what the two read differently."""

from __future__ import annotations

import json

import pytest

from detcat.jsonio import loads

SAME_AS_JSON = [
    '{"EventID": 1, "Image": "C:\\\\Windows\\\\cmd.exe"}',
    "[18446744073709551615, 18446744073709551616, -9223372036854775809]",
    '{"id": 123456789012345678901234567890}',
    "[1e400, -1e400, 5e-324, -0.0]",
    '{"a": NaN, "b": Infinity}',
    '"\\ud800"',  # a lone surrogate
    '{"a": 1, "a": 2}',
    '{"hash": "1234567890123456789012345"}',  # a long digit run in a string
    pytest.param('{"a": "' + chr(0xD800) + '"}', id="a lone surrogate itself"),
    '{"n": "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660'
    '\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669"}',  # other digits
]


@pytest.mark.parametrize("text", SAME_AS_JSON)
def test_values_and_types_are_json_s(text: str) -> None:
    assert repr(loads(text)) == repr(json.loads(text))  # repr: 1 vs 1.0, nan, -0.0


@pytest.mark.parametrize("text", ['{"a": }', "[1, 2", '{"a": 1} x', ""])
def test_errors_are_json_s(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as got:
        loads(text)
    with pytest.raises(json.JSONDecodeError) as want:
        json.loads(text)
    assert str(got.value) == str(want.value)
