"""Eval'd values as programs ``detcat match`` can compute.

``| eval n = len(process_name), exe = if(substr(process_name, -4) == ".exe", 1, 0)``
and ``| rex field=file_name "(?<ext>\\.[^.]+)$"`` make fields no event has; a
filter on them (``| search n=5 exe=1``) is a derived predicate. ``program()``
turns such an eval expression into a small JSON program over the event's own
fields, which the pipeline records in the filtering stage's
``params["computed"]`` (name -> program) and ``match.spl``
runs. A ``| where`` condition on a computed value (``len(user) >= 8``) stays an
``Opaque`` node of the stage; its program goes in ``params["conditions"]``
(the node's text -> program). The forms:

- ``["num", 5]``, ``["str", ".exe"]``, ``["null"]``: constants;
- ``["field", raw]``: an event field, its vendor name resolved (renames undone);
- ``["call", name, [args]]``: a function call (``match.spl`` says which it computes);
- ``["arith", [a, op, b, op, c …]]``: ``+ - . * / %``, left to right;
- ``["neg", a]``, ``["not", a]``, ``["and", [a …]]``, ``["or", [a …]]``,
  ``["cmp", op, a, b]``, ``["in", a, [b …]]``;
- ``["rex", a, regex, group]``: the named group of ``rex`` in the first match.

Only what reads raw event fields (or fields eval'd before from them) becomes a
program; anything else (an aggregate, a lookup output, the raw event) gives None,
and the filter stays unknown, as it does where ``match.spl`` meets a function it
does not compute.
"""

from __future__ import annotations

from typing import Any

from lark import Token, Tree

from detcat.languages.spl.expr import RAW_TEXT, FieldRef, Scope, eval_string, number, unquote

MAX_PROGRAM = 200  # nodes: eval'd fields are inlined, so a long chain could grow


def program(expr: Tree | Token, scope: Scope, at: int) -> list[Any] | None:
    """The program computing ``expr`` at this point of the pipeline (``at``: its
    count of value changes, ``Pipeline.changes``), or None."""
    try:
        prog = _node(expr, scope, at)
    except (_NotComputable, RecursionError):  # nested past Python's stack: not computed
        return None
    return prog if _size(prog) <= MAX_PROGRAM else None


class _NotComputable(Exception):
    pass


def _node(n: Tree | Token, scope: Scope, at: int) -> list[Any]:
    if isinstance(n, Token):
        return _token(n, scope, at)
    kids = n.children
    match n.data:
        case "e_func":
            name = str(kids[0]).lower()
            args = kids[1].children if len(kids) > 1 else []
            if name == "null" and not args:
                return ["null"]
            return ["call", name, [_node(a, scope, at) for a in args]]
        case "e_sum" | "e_prod":
            return ["arith", [str(k) if _is_op(k) else _node(k, scope, at) for k in kids]]
        case "e_minus":
            return ["neg", _node(kids[0], scope, at)]
        case "e_neg":
            return ["not", _node(kids[0], scope, at)]
        case "e_and" | "e_or":
            return [n.data[2:], [_node(k, scope, at) for k in kids]]
        case "e_compare":
            op = "==" if str(kids[1]) == "=" else str(kids[1])
            return ["cmp", op, _node(kids[0], scope, at), _node(kids[2], scope, at)]
        case "e_like":
            return ["call", "like", [_node(kids[0], scope, at), _node(kids[2], scope, at)]]
        case "e_in":
            items = kids[2].children if len(kids) > 2 else []
            return ["in", _node(kids[0], scope, at), [_node(k, scope, at) for k in items]]
    raise _NotComputable  # xor, and whatever the grammar adds later


def _is_op(k: Tree | Token) -> bool:
    return isinstance(k, Token) and k.type in ("E_ADD", "E_MUL")


def _token(t: Token, scope: Scope, at: int) -> list[Any]:
    if t.type == "NUMBER":
        n = number(str(t))
        return ["num", float(str(t)) if n is None else n]
    if t.type == "STRING":
        return ["str", eval_string(str(t))]
    if t.type in ("EFIELD", "QFIELD"):
        return _field(scope.resolve(unquote(str(t))[0]), at)
    raise _NotComputable


def record(programs: dict[str, Any], name: str, prog: list[Any] | None) -> None:
    """Record ``prog`` as ``name``'s program; a name met with two different ones
    gets None: neither is computed (its filters stay unknown)."""
    if programs.setdefault(name, prog) != prog:
        programs[name] = None


def rex_program(source: FieldRef, regex: str, group: str, at: int) -> list[Any] | None:
    """``rex field=source "(?<group>…)"``: the group's text in the first match."""
    try:
        return ["rex", _field(source, at), regex, group]
    except _NotComputable:
        return None


def _field(ref: FieldRef, at: int) -> list[Any]:
    """A field as the events have it, or the program of an earlier eval of it (while
    no command since may have changed it)."""
    if ref.level != 0 or ref.lookup is not None:
        raise _NotComputable  # an aggregate or lookup output: not in the event
    if ref.kind == "derived":
        if ref.program is None or ref.program_at != at:
            raise _NotComputable
        return ref.program
    if ref.raw == RAW_TEXT:
        raise _NotComputable  # the whole raw event: no field detcat reads holds it
    read = ["field", ref.raw]
    return ["call", "lower", [read]] if ref.ci else read


def _size(prog: Any) -> int:
    if isinstance(prog, list):
        return 1 + sum(_size(p) for p in prog)
    return 0
