"""`detcat parse` errors say what to write, in the user's words (issue 11): no
grammar token names (``_EVENTS``, ``RBRACE``) reach a YARA-L message."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from detcat.cli import main
from detcat.languages import yaral


def terminals() -> set[str]:
    return {t.name for lenient in (False, True) for t in yaral._parser(lenient).terminals}


def test_every_yaral_terminal_has_words_for_users() -> None:
    named = {n for n in terminals() if not n.startswith("__")}  # lark's anonymous ones
    assert set(yaral.EXPECTED_WORDS) == named
    assert all(w is None or (w.strip() == w and w) for w in yaral.EXPECTED_WORDS.values())


BAD_RULES = [  # (rule text, what the message must tell the user to write)
    ('rule x {\n meta:\n  a = "b"\n}\n', "write one of: events:"),
    ("rule x { }", "write one of: meta:, events:"),
    ('rule x {\n events:\n  $e.metadata.event_type = "X"\n}\n', "condition:"),
    ("rulex", "write rule NAME {"),
    ("rule x {\n events:\n  $e.metadata.event_type = \n condition:\n $e\n}\n", "a number"),
]


@pytest.mark.parametrize(("text", "hint"), BAD_RULES)
def test_yaral_errors_say_what_to_write(text: str, hint: str) -> None:
    res = CliRunner().invoke(main, ["parse", "yaral"], input=text)
    assert res.exit_code == 1 and res.output.startswith("error: unexpected ")
    assert hint in res.output and res.output.count("\n") == 1
    leaked = [
        n for n in terminals() if re.search(rf"(?<![\w']){re.escape(n)}(?![\w'])", res.output)
    ]
    assert leaked == [], res.output
