"""The fast YAML loader gives exactly what PyYAML's safe loader gives.

Each document is loaded by both (the reference: PyYAML's C safe loader); values
(with their types and key order), the sharing of aliased objects, and errors
must agree. Documents the fast path builds itself are marked, and the test
checks it did not hand them back.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from detcat.sources import yaml_loader
from detcat.sources.yaml_loader import FastSafeLoader

FAST, HANDED_BACK = "fast", "handed back"

CASES = [
    ("plain rule", FAST, "title: x\ndetection:\n  sel:\n    Image|endswith: '\\a.exe'\n"),
    ("implicit scalars", FAST, "a: yes\nb: No\nc: on\nd: ~\ne: null\nf: 0o17\ng: 017\nh: 0x1F\n"),
    ("numbers", FAST, "a: 1_000\nb: -2.5e3\nc: .inf\nd: -.Inf\ne: .nan\nf: 1:30\ng: +12\n"),
    ("dates", FAST, "date: 2024-01-02\nmodified: 2024/01/02\nts: 2001-12-14t21:59:43.10-05:00\n"),
    ("quoted stay text", FAST, "a: 'yes'\nb: \"12\"\nc: '2024-01-02'\nd: ''\n"),
    ("explicit tags", FAST, "a: !!str 12\nb: !!int '7'\nc: !!float 1\nd: !!binary aGk=\n"),
    ("duplicate keys, last wins", FAST, "a: 1\nb: 2\na: 3\n"),
    ("non-text keys", FAST, "1: a\ntrue: b\n2024-01-02: c\n~: d\n1.5: e\n"),
    ("aliases share", FAST, "x: &l [1, 2]\ny: *l\nz: &m {k: *l}\nw: [*m, *m]\n"),
    ("self-reference", FAST, "&a [1, *a]\n"),
    ("scalar document", FAST, "just text\n"),
    ("empty document", FAST, ""),
    ("deep nesting", FAST, "[" * 300 + "]" * 300),
    ("merge key", HANDED_BACK, "base: &b {x: 1}\nthis:\n  <<: *b\n  y: 2\n"),
    ("value key", HANDED_BACK, "a:\n  =: 1\n"),
    ("set", HANDED_BACK, "!!set {a, b}\n"),
    ("ordered map", HANDED_BACK, "!!omap [a: 1, b: 2]\n"),
    ("pairs", HANDED_BACK, "!!pairs [a: 1, a: 2]\n"),
    ("list as key", HANDED_BACK, "? [a, b]\n: c\n"),
    ("unknown tag", HANDED_BACK, "a: !Ref x\n"),
    ("bad timestamp", HANDED_BACK, "a: !!timestamp nope\n"),
    ("bad int", HANDED_BACK, "a: !!int x\n"),
    ("two documents", HANDED_BACK, "a: 1\n---\nb: 2\n"),
    ("syntax error", HANDED_BACK, "a: [1, 2\n"),
]


def _load(text: str, loader: Any) -> tuple[str, Any]:
    try:
        return "value", yaml.load(text, Loader=loader)
    except Exception as e:  # compare errors by kind and message
        return "error", f"{type(e).__name__}: {e}"


def _shape(value: Any, seen: dict[int, int]) -> Any:
    """``value`` spelled out with types, each container numbered by first meeting,
    so that two loads agree only when they share the same objects."""
    if isinstance(value, dict | list):
        if id(value) in seen:
            return ("same as", seen[id(value)])
        seen[id(value)] = len(seen)
        if isinstance(value, dict):
            items = [(_shape(k, seen), _shape(v, seen)) for k, v in value.items()]
            return ("dict", seen[id(value)], items)
        return ("list", seen[id(value)], [_shape(v, seen) for v in value])
    if isinstance(value, float) and value != value:
        return ("float", "nan")
    return (type(value).__name__, value)


@pytest.mark.parametrize(("name", "path", "text"), CASES, ids=[c[0] for c in CASES])
def test_the_fast_loader_gives_what_the_safe_loader_gives(
    name: str, path: str, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reference: the loader detcat used before, libyaml's C safe loader.
    want_kind, want = _load(text, yaml_loader._Base)
    handed_back: list[bool] = []
    generic = yaml_loader._Base.construct_document

    def watched(self: Any, node: Any) -> Any:
        handed_back.append(True)
        return generic(self, node)

    monkeypatch.setattr(yaml_loader._Base, "construct_document", watched)
    kind, got = _load(text, FastSafeLoader)
    assert kind == want_kind
    if kind == "value":
        assert _shape(got, {}) == _shape(want, {})
    else:
        assert got == want
    if kind == "value" or handed_back:  # a parse error never reaches construction
        assert bool(handed_back) == (path == HANDED_BACK)
