"""Elastic's TOML goes through rtoml, and must read as tomllib reads it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from detcat.sources.elastic import load_toml

# Every kind of TOML value, and the spellings rule files use.
DOCUMENTS = [
    "a = \"x\"\nb = 'lit\\\\'\nc = \"\"\"multi\nline\\\n  joined\"\"\"\nd = '''raw\nline'''",
    'e = "\\u00e9\\t\\"q\\""\nf = "emoji \\U0001F600"',
    "i = 42\nj = 0x1F\nk = 0o17\nl = 0b101\nm = 1_000",
    "x = 3.25\ny = -1e-3\nz = inf\nw = -inf\nv = nan",
    "t = true\nu = false",
    "d1 = 1979-05-27T07:32:00Z\nd2 = 1979-05-27T00:32:00.999-07:00\nd3 = 1979-05-27T07:32:00",
    "d4 = 1979-05-27\nd5 = 07:32:00.5",
    'creation_date = "2020/02/18"\ntags = ["Domain: Endpoint", "OS: Windows"]',
    '[rule]\nname = "n"\n[[rule.threat]]\nframework = "MITRE ATT&CK"\n'
    '[[rule.threat.technique]]\nid = "T1059"\n[[rule.threat]]\nframework = "x"',
    '[metadata]\nmaturity = "production"\n[rule.a.b]\nc = { d = 1, e = [1, [2, 3]] }',
    "empty = []\nnested = [[], [[]]]\ninline = {}",
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_rtoml_reads_what_tomllib_reads(text: str) -> None:
    assert repr(load_toml(text)) == repr(tomllib.loads(text))  # repr: nan != nan


@pytest.mark.parametrize(
    "text",
    [
        "a = ",  # unfinished
        'a = "unclosed',
        "a = 1\na = 2",  # a key twice
        "a = " + "[" * 200 + "]" * 200,  # deeper than rtoml goes
    ],
)
def test_what_rtoml_refuses_tomllib_judges(text: str) -> None:
    try:
        expected = repr(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, RecursionError) as e:
        with pytest.raises(type(e)):
            load_toml(text)
    else:
        assert repr(load_toml(text)) == expected


def test_the_elastic_corpus_reads_the_same(corpora: Path) -> None:
    files = sorted((corpora / "elastic" / "rules").rglob("*.toml"))[::10]  # a tenth of them
    assert len(files) > 150
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert repr(load_toml(text)) == repr(tomllib.loads(text)), path
