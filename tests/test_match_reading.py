"""Reading event files for ``detcat match`` (issue 11, §6): every shape in one pass
with bounded memory; a document that cannot be read is a bad event naming its
file and line, and the documents after it are still read."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detcat.match.reading import BadEvent, EventFileError, read_documents, read_events

DEEP_ARRAY = "[" * 100_000 + "]" * 100_000
# Deeper than the json module of any Python reads (3.13's reads 5,000 levels; the
# events then refuse them, events.MAX_DEPTH)
DEEP_OBJECT = '{"a":' * 100_000 + "1" + "}" * 100_000
BIG_INT = '{"a": ' + "9" * 100_000 + "}"
PRETTY = '{\n  "a": [\n    1,\n    2\n  ],\n  "b": {"c": 3, "e": [{"d": 4}]}\n}\n{"a": 5}\n'

# (file text, labels of the documents read, (line, start of the message) of each bad one)
FILES: list[tuple[str | bytes, list[str], list[tuple[int, str]]]] = [
    ('{"a": 1}', ["f"], []),
    ('{"a": 1}\n{"a": 2}\n', ["f:1", "f:2"], []),
    ('[\n  {"a": 1},\n  {"a": 2}\n]', ["f:2", "f:3"], []),
    ('{\n  "a": 1\n}\n{\n  "a": 2\n}', ["f:1", "f:4"], []),
    ('[{"a": 1}, {"a": 2}]', ["f:1", "f:1"], []),
    ('{"a": 1} {"a": 2}\n', ["f:1", "f:1"], []),
    ('\ufeff{"a": 1}', ["f"], []),
    ('{\n "a": "}{[",\n "b": "\\"}"\n}\n', ["f"], []),
    # one bad line in JSON lines costs that line only
    ('{"a": 1}\n{"a": \n{"a": 3}\n', ["f:1", "f:3"],
     [(2, "document not terminated before line 3")]),
    ('{"a": 1}\nnot json\n{"a": 3}\n', ["f:1", "f:3"], [(2, "expected a JSON object")]),
    # (the json module's own words follow; they differ by Python version)
    ('{"a": 1,}\n{"a": 3}\n', ["f:2"], [(1, "not JSON: ")]),
    (f'{{"a": 1}}\n{DEEP_ARRAY}\n{{"a": 3}}\n', ["f:1", "f:3"], [(2, "JSON nested too deeply")]),
    (f'{{"a": 1}}\n{DEEP_OBJECT}\n{{"a": 3}}\n', ["f:1", "f:3"], [(2, "JSON nested too deeply")]),
    (f'{{"a": 1}}\n{BIG_INT}\n{{"a": 3}}\n', ["f:1", "f:3"], [(2, "not readable JSON: Exceeds")]),
    ('42\n{"a": 2}\n', ["f:2"], [(1, "a JSON event is an object, not int")]),
    ('nope\n{"a": 2}\n', ["f:2"], [(1, "expected a JSON object, found 'nope'")]),
    ('}\n{"a": 2}\n', ["f:2"], [(1, "expected a JSON object, found '}'")]),
    ('[\n {"a": 1},\n {"a": },\n {"a": 3}\n]\n', ["f:2", "f:4"],
     [(3, "not JSON: Expecting value")]),
    ('[\n {"a": 1},\n', ["f:2"], [(1, "array not closed at the end of the file")]),
    ('[1, {"a": 2}]', ["f:1"], [(1, "a JSON event is an object, not int")]),
    ('{\n  "a": 1,\n  "b": [1,\n}\n{\n  "a": 2\n}\n', ["f:5"], [(1, "unbalanced '}' on line 4")]),
    ('{"a": 1}\n{"b": [\n', ["f:1"], [(2, "document not terminated at the end of the file")]),
    # a broken pretty-printed document costs one bad event; the next one is read
    (PRETTY.replace('"c": 3', '"c" 3'), ["f:8"], [(1, "not JSON: Expecting ':' delimiter")]),
    (PRETTY.replace('{"d"', '"d"'), ["f:8"], [(1, "unbalanced '}' on line 6")]),
    (PRETTY.replace("  ],", "  ]],"), ["f:8"], [(1, "unbalanced ']' on line 5")]),
    (PRETTY.encode().replace(b"1,", b"\xff,"), ["f:8"], [(1, "document broken by line 3")]),
]  # fmt: skip


def read(tmp_path: Path, data: str | bytes) -> tuple[list[str], list[tuple[int, str]]]:
    f = tmp_path / "f"
    f.write_bytes(data.encode() if isinstance(data, str) else data)
    bad: list[BadEvent] = []
    labels = [label.replace(str(tmp_path) + "/", "") for label, _ in read_documents(f, bad.append)]
    lines = [(int(b.label.rsplit(":", 1)[1]), b.message) for b in bad]
    return labels, lines


@pytest.mark.parametrize(("text", "labels", "bad"), FILES)
def test_event_files(
    tmp_path: Path, text: str | bytes, labels: list[str], bad: list[tuple[int, str]]
) -> None:
    got_labels, got_bad = read(tmp_path, text)
    assert got_labels == labels
    assert [(n, m[: len(want)]) for (n, m), (_, want) in zip(got_bad, bad, strict=True)] == bad


def test_a_line_that_is_not_utf8_is_one_bad_event(tmp_path: Path) -> None:
    labels, bad = read(tmp_path, b'{"a": 1}\n{"a": "\xff"}\n{"a": 3}\n')
    assert labels == ["f:1", "f:3"] and bad == [(2, "not UTF-8 (byte 8 of the line)")]


@pytest.mark.parametrize("text", ["", "\n \n\t\n"])
def test_an_empty_file_says_so(tmp_path: Path, text: str) -> None:
    with pytest.raises(EventFileError, match="empty: no JSON event in it"):
        read(tmp_path, text)


def test_bad_events_raise_unless_a_handler_takes_them(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text('{"a": 1}\nnope\n')
    with pytest.raises(EventFileError, match=r"f:2: expected a JSON object"):
        list(read_events(f))


def test_an_event_nested_too_deep_to_flatten_is_a_bad_event(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text('{"a": 1}\n' + '{"a":' * 500 + "1" + "}" * 500 + "\n")
    bad: list[BadEvent] = []
    assert [e.label.rsplit("/", 1)[1] for e in read_events(f, bad.append)] == ["f:1"]
    assert [b.message for b in bad] == ["event nested deeper than 100 levels"]


def test_reading_holds_one_document_at_a_time(tmp_path: Path) -> None:
    """8 MiB of JSON lines read with well under 1 MiB of memory at the peak."""
    doc = {"Event": {"EventData": {"CommandLine": "x" * 900, "Image": "C:\\a.exe"}}}
    line = json.dumps(doc) + "\n"
    f = tmp_path / "big.jsonl"
    f.write_text(line * (8 * 2**20 // len(line)))
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_documents(f))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 8 * 2**20 // len(line)
    assert peak < 2**20, f"peak {peak} bytes"


# -- properties -----------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)


def nested(kids: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3)


objects = st.dictionaries(
    st.text(max_size=10), st.recursive(scalars, nested, max_leaves=8), max_size=5
)


def layouts(docs: list[dict[str, Any]]) -> list[str]:
    """The same documents as JSON lines, pretty-printed one after another, and an array."""
    return [
        "".join(json.dumps(d) + "\n" for d in docs),
        "\n".join(json.dumps(d, indent=2) for d in docs),
        json.dumps(docs, indent=1),
    ]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(objects, min_size=1, max_size=5))
def test_every_layout_reads_back_the_same_documents(
    tmp_path: Path, docs: list[dict[str, Any]]
) -> None:
    for text in layouts(docs):
        f = tmp_path / "f"
        f.write_text(text)
        assert [d for _, d in read_documents(f)] == docs


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(['{"a": 1}', "{", "}", "[", "]", '"x', ",", "\n", ":", "1e9999",
                                 '"\\u00e9"', "null", "\ufeff", " "]), max_size=40)
       | st.text(max_size=200))  # fmt: skip
def test_any_text_is_documents_or_bad_events(tmp_path: Path, text: str | list[str]) -> None:
    """Nothing but ``EventFileError`` (an empty file) ever escapes the reader."""
    f = tmp_path / "f"
    f.write_text("".join(text) if isinstance(text, list) else text, errors="surrogatepass")
    bad: list[BadEvent] = []
    try:
        docs = list(read_documents(f, bad.append))
    except EventFileError as e:
        assert "empty" in str(e)
        return
    assert all(isinstance(d, dict) for _, d in docs)
    assert all(b.label.startswith(f"{f}:") for b in bad)


def test_the_regex_time_limit_never_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the 100 MiB ``detcat match`` run on a loaded machine: the alarm fired
    between arming the timer and entering the guarded block, and the timeout crashed
    the command. With a limit shorter than any call, every call must end in None."""
    from detcat.match import patterns

    monkeypatch.setattr(patterns, "REGEX_TIME_LIMIT", 2e-6)
    results = {patterns.bounded(lambda: sum(range(20)) > 0) for _ in range(2000)}
    assert results <= {True, None}
