"""Core without vendor names: outside ``sources/`` (one module per vendor) and
``languages/`` (one per query language), detcat asks the vendor registry; a
string literal naming a vendor or a vendor's language is a vendor fact in the
wrong place."""

from __future__ import annotations

import ast
from pathlib import Path

from detcat.sources import registry

SRC = Path(__file__).resolve().parents[1] / "src" / "detcat"
VENDOR_LAYERS = ("sources/", "languages/")
# Known debt, with its reason; the test fails when an entry is fixed or grows.
KNOWN: dict[str, int] = {}


def vendor_literals(path: Path) -> list[str]:
    """String constants (docstrings aside) equal to a vendor or language name, or
    spelling a namespaced ``vendor:field``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    vendors = set(registry.names())
    names = vendors | set(registry.languages())

    def smells(text: str) -> bool:
        prefix, colon, _ = text.partition(":")
        return text in names or bool(colon and prefix in vendors)

    return [
        f"{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docs
        and smells(node.value)
    ]


def test_core_modules_name_no_vendor() -> None:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if not rel.startswith(VENDOR_LAYERS) and (hits := vendor_literals(path)):
            found[rel] = hits
    assert {rel: len(hits) for rel, hits in found.items()} == KNOWN, found


def test_the_check_finds_a_vendor_name(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('"""A docstring may say sigma."""\nVENDOR = "splunk"\nFIELD = "sigma:Image"\n')
    assert vendor_literals(bad) == ["2: 'splunk'", "3: 'sigma:Image'"]


def test_vendors_name_engines_the_matcher_has() -> None:
    """The matcher picks engines by the names vendors give (no vendor names in match/)."""
    from detcat.match.stateful import ENGINES

    named = {
        engine
        for v in registry.vendors()
        for engine in (*v.language_engines.values(), *v.rule_type_engines.values())
    }
    assert named == ENGINES
