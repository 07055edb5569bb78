"""libyaml's safe loader with a faster last step: nodes -> Python values.

PyYAML's C loader parses in C but builds the values in Python, node by node,
through generic machinery (a constructor lookup per node, generators for every
mapping and list). Rule files are plain mappings, lists and scalars, so this
loader builds those directly, in one iterative walk, calling PyYAML's own scalar
constructors (so ``2024-01-02`` is a date and ``yes`` a boolean exactly as in
``yaml.safe_load``), and sharing what an alias shares (a document's value count
stays bounded by its nodes; ``files.check_shape`` counts each use).

Anything else (merge keys ``<<``, ``=`` keys, sets, ordered maps, pairs, a list
or mapping as a key, an unknown tag) and any error (a malformed date) hands the
whole document back to PyYAML's constructor, so values and errors are PyYAML's.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_MAP, _SEQ, _STR = _TAG + "map", _TAG + "seq", _TAG + "str"
_SPECIAL_KEYS = frozenset({_TAG + "merge", _TAG + "value"})
# PyYAML's scalar constructors that are plain functions (the others are generators).
_SCALARS = {
    _TAG + name: yaml.SafeLoader.yaml_constructors[_TAG + name]
    for name in ("null", "bool", "int", "float", "binary", "timestamp", "str")
}


# Implicit scalar tags (``yes`` is a bool, ``12`` an int), by first character, the
# resolvers for any character last: what ``Resolver.resolve`` tries, in its order.
_ANY = tuple(yaml.SafeLoader.yaml_implicit_resolvers.get(None, []))
_IMPLICIT = {
    first: tuple(resolvers) + _ANY
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    if first is not None
}


class _Unusual(Exception):
    """A node this loader leaves to PyYAML's constructor."""


class FastSafeLoader(_Base):  # type: ignore[misc]
    """``yaml.CSafeLoader`` (or ``SafeLoader``) building plain documents faster."""

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        """``Resolver.resolve`` for a scalar, without its generic steps (the safe
        loader has no path resolvers): called by the parser for every scalar."""
        if kind is not ScalarNode or self.yaml_path_resolvers:
            return super().resolve(kind, value, implicit)  # type: ignore[no-any-return]
        if implicit[0]:
            for tag, pattern in _IMPLICIT.get(value[:1], _ANY):
                if pattern.match(value):
                    return tag  # type: ignore[no-any-return]
        return _STR

    def construct_document(self, node: Node) -> Any:
        try:
            return _build(self, node)
        except Exception:  # _Unusual, or a bad scalar: PyYAML's own value or error
            return super().construct_document(node)


def _build(loader: Any, root: Node) -> Any:
    """The value of ``root``: containers are made empty, remembered (an alias is
    the same object), and filled from a stack, so depth costs no recursion."""
    made: dict[int, Any] = {}
    stack: list[tuple[Node, Any]] = []

    def value(node: Node) -> Any:
        if type(node) is ScalarNode:
            if node.tag == _STR:
                return node.value
            make = _SCALARS.get(node.tag)
            if make is None:
                raise _Unusual
            return make(loader, node)
        found = made.get(id(node))
        if found is not None:
            return found
        if type(node) is MappingNode and node.tag == _MAP:
            obj: Any = {}
        elif type(node) is SequenceNode and node.tag == _SEQ:
            obj = []
        else:
            raise _Unusual
        made[id(node)] = obj
        stack.append((node, obj))
        return obj

    top = value(root)
    while stack:
        node, obj = stack.pop()
        if type(obj) is list:
            obj.extend(value(item) for item in node.value)
            continue
        for key_node, value_node in node.value:
            if type(key_node) is not ScalarNode or key_node.tag in _SPECIAL_KEYS:
                raise _Unusual
            obj[value(key_node)] = value(value_node)
    return top
