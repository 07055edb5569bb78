"""Two-valued predicate trees fused into one generated Python function.

``match.evaluate`` compiles a predicate tree into closures, one per node: an
``And`` of three leaves costs four calls and a loop per event. Most trees answer
only True or False (no Opaque part, no regex that may run out of time: *sure*
tests, see ``sure``), and for those the whole tree can be one Python
expression with Python's own short-circuit ``and`` / ``or`` / ``not``, which is
exactly two-valued logic. ``fuse`` writes that expression and compiles it once.

Each sure closure carries a ``node``: how to write it in the expression.

- ``("and", [nodes])``, ``("or", [nodes])``, ``("not", node)``;
- ``("in", want, fold, field)``: ``want`` is one of the field's texts (folded or
  plain), the commonest leaf (``process.name == "cmd.exe"``);
- ``("disjoint", values, fold, field)``: one of the field's texts is in the set;
- any other sure closure is called: ``("call", test)``.

The reference path (``Matcher.match_reference``) keeps evaluating the unfused
closures, so the equality tests compare the two.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Node = tuple[Any, ...]
# Generated code nests one level per tree level; normalize refuses deeper queries
# long before (100 levels), this only keeps compile() away from its own limits.
MAX_DEPTH = 50


def sure(test: Callable[..., Any], node: Node | None = None) -> Callable[..., Any]:
    """Mark ``test`` as answering only True or False, never unknown nor NULL: an And,
    Or or Not of such tests needs no three-valued bookkeeping, and can be fused into
    one function (``node`` says how it is written)."""
    test.sure = True  # type: ignore[attr-defined]
    if node is not None:
        test.node = node  # type: ignore[attr-defined]
    return test


def is_sure(test: Callable[..., Any]) -> bool:
    return getattr(test, "sure", False)


def node_of(test: Callable[..., Any]) -> Node:
    """How ``test`` is written in a fused expression."""
    return getattr(test, "node", None) or ("call", test)


def fuse(test: Callable[..., Any]) -> Callable[..., Any]:
    """One generated function for a sure tree of ``and``, ``or`` and ``not``;
    ``test`` itself otherwise (or when the tree is too deep to write)."""
    node = getattr(test, "node", None)
    if node is None or node[0] not in ("and", "or", "not"):
        return test  # one leaf: already one call
    names: dict[str, Any] = {}
    try:
        code = _write(node, names, 0)
    except _TooDeep:
        return test
    source = f"def fused(ev):\n    F = ev.folded\n    P = ev.plain\n    return {code}\n"
    namespace = dict(names)
    exec(compile(source, "<detcat fused predicate>", "exec"), namespace)  # noqa: S102
    return sure(namespace["fused"], node)


class _TooDeep(Exception):
    pass


def _write(node: Node, names: dict[str, Any], depth: int) -> str:
    if depth > MAX_DEPTH:
        raise _TooDeep
    kind = node[0]
    if kind in ("and", "or"):
        parts = [_write(child, names, depth + 1) for child in node[1]]
        return "(" + f" {kind} ".join(parts) + ")" if parts else repr(kind == "and")
    if kind == "not":
        return f"(not {_write(node[1], names, depth + 1)})"
    if kind == "in":
        _, want, fold, field = node
        texts = "F" if fold else "P"
        return f"({_bind(want, names)} in {texts}[{_bind(field, names)}])"
    if kind == "disjoint":
        _, values, fold, field = node
        texts = "F" if fold else "P"
        return f"(not {_bind(values, names)}.isdisjoint({texts}[{_bind(field, names)}]))"
    return f"{_bind(node[1], names)}(ev)"


def _bind(value: Any, names: dict[str, Any]) -> str:
    """A name for ``value`` in the generated function's globals."""
    name = f"v{len(names)}"
    names[name] = value
    return name
