"""Parser tables come from the user's cache folder when they can, and parse alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from detcat.languages.lalr import lalr

GRAMMAR = """
start: pair ("," pair)*
pair: NAME "=" NUMBER
%import common.CNAME -> NAME
%import common.INT -> NUMBER
%ignore " "
"""
TEXTS = ["a=1", "a = 1, b=22", "x=0,y=1,z=2"]


@pytest.mark.parametrize("text", TEXTS)
def test_a_parser_loaded_from_the_cache_parses_as_a_fresh_one(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fresh = lalr(GRAMMAR)
    cached_files = list((tmp_path / "detcat" / "lark").iterdir())
    assert len(cached_files) == 1, "the first build writes the tables"
    before = cached_files[0].stat().st_mtime_ns
    loaded = lalr(GRAMMAR)
    assert cached_files[0].stat().st_mtime_ns == before, "the second one only reads them"
    assert loaded.parse(text) == fresh.parse(text)


def test_another_grammar_gets_its_own_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    lalr(GRAMMAR)
    other = lalr(GRAMMAR.replace('"="', '":"'))
    assert len(list((tmp_path / "detcat" / "lark").iterdir())) == 2
    assert other.parse("a:1").children[0].children[1] == "1"


def test_without_a_cache_folder_parsers_still_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    assert lalr(GRAMMAR).parse("a=1").data == "start"
