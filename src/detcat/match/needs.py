"""What a stage needs of an event before it can hold: the literal prefilter's input.

``clauses(expr)`` gives clauses that all hold on every event the filter is true or
unknown on (*necessary* conditions; none when this module can prove none). A
clause is a set of *atoms*, one of which holds; an atom is ``(field, literal)``:

- ``literal`` a string: some value of ``field``, case-folded (``str.casefold``),
  contains ``literal`` (already case-folded);
- ``literal`` None: the event has ``field`` at all.

The prefilter (``match.prefilter``) skips a stage when one of its clauses has no
atom that holds. Skipping is safe only when the filter would answer False (not
unknown, not EQL's NULL), so the walk follows the three-valued semantics of
``match.evaluate``:

- ``And`` is true or unknown only when every child is: the clauses of all children;
- ``Or`` is true or unknown only when some child is: one clause, the union of one
  clause of each child (the cheapest), or none when a child has none;
- ``Not``, ``Opaque``, implied and derived predicates, ``is_null`` (true on a
  missing field): none;
- a string test (``eq``, ``contains``, ``starts_with``, ``ends_with``) holds only if
  the folded value contains the folded literal (folding is per character, so a
  case-sensitive match is also one of the folded texts);
- ``wildcard`` and ``regex_match`` (RE2, case-insensitive by Unicode's simple case
  folding): literal runs the pattern requires, cut to ASCII, where simple and
  full folding agree; a regex RE2 refuses (it runs on Python's ``re``) gives none;
- every other test of a field (numbers, CIDR, lists, exists, field references)
  fails on a missing field: the field itself.

``can_hold`` finds the stages that are unknown on every event (a metrics search
kept as Opaque): of a rule that only reports the stages that hold, they need no
evaluation at all.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from detcat.match.evaluate import number
from detcat.model import And, Expr, Not, Op, Opaque, Or, Predicate, value_text
from detcat.normalize.regex import class_end, top_level_branches
from detcat.normalize.values import lookup_name

Atom = tuple[str, str | None]  # (canonical field, folded literal or None: present)
Needs = frozenset[Atom]

# Pseudo-field of field-less keyword searches: every string value of the event.
ALL_TEXT = "\x00text"
# Shorter ASCII literals say too little to be worth an automaton hit: the field
# instead (a non-ASCII character, a Cyrillic "А", is a fine literal alone).
MIN_LITERAL = 2
SURE = 1.0  # the cost of an atom that (nearly) every event has

_STRING_OPS = (Op.EQ, Op.CONTAINS, Op.STARTS_WITH, Op.ENDS_WITH)
# Tests that fail on a missing field (``match.evaluate``); ``is_null`` holds there.
_FIELD_OPS = frozenset(Op) - {Op.IS_NULL, Op.KEYWORD}


def clauses(
    expr: Expr | None,
    vague: frozenset[str] = frozenset(),
    computed: dict[str, Any] | None = None,
) -> list[Needs]:
    """Clauses (sets of atoms) that must all hold, one atom each, for ``expr`` to be
    true or unknown: a conjunction of disjunctions. ``vague``: fields whose values
    say little (``event.category``, which catalog events imply: an ``Or`` picks
    around them); ``computed``: the stage's computed fields (``params["derived"]``)."""
    match expr:
        case Predicate():
            n = _predicate(expr, computed)
            return [n] if n is not None else []
        case And(children):
            return [c for child in children for c in clauses(child, vague, computed)]
        case Or(children):
            out: set[Atom] = set()
            for child in children:
                options = clauses(child, vague, computed)
                if not options:
                    return []
                out |= min(options, key=lambda n: cost(n, vague))
            return [frozenset(out)] if out else []
    return []  # Not, Opaque: no condition on the event is necessary


def cost(atoms: Needs, vague: frozenset[str] = frozenset()) -> float:
    """How likely one of the atoms holds, roughly (``SURE``: always): long literals
    are rare, a field's presence is common, a vague field's values are common.
    Many literals of one field (a list of names) are not sure to hold: below
    ``SURE`` whatever their number."""
    total = 0.0
    for name, literal in atoms:
        if name in vague:
            return SURE
        total += 0.2 if literal is None else 0.6 ** len(literal)
    return min(total, 0.9)


def _predicate(p: Predicate, computed: dict[str, Any] | None) -> Needs | None:
    if p.kind == "implied":
        return None  # always true
    if p.kind == "derived" and lookup_name(p, computed)[0] == p.field_raw:
        return None  # computed in the query: maybe unknown (a rename or case fold of
        # a field is evaluated as a test of that field, as here)
    if p.op is Op.KEYWORD:
        return _literal_atoms(ALL_TEXT, _keyword_literal(p))
    if p.whole_event:  # searched in every value (match.evaluate), or unknown
        searched = p.op in (Op.CONTAINS, Op.REGEX_MATCH)
        return _literal_atoms(ALL_TEXT, _literal(p)) if searched else None
    if not p.field or p.op not in _FIELD_OPS:
        return None
    return _literal_atoms(p.field, _literal(p))


def _literal_atoms(name: str, literals: list[str] | None) -> Needs | None:
    """Atoms for texts one of which a value of ``name`` contains; short or no
    literals fall back to the field's presence (nothing for keywords)."""
    if literals and all(_usable(lit) for lit in literals):
        return frozenset((name, lit) for lit in literals)
    return None if name == ALL_TEXT else frozenset({(name, None)})


def _usable(literal: str) -> bool:
    """Long enough to say something, and without NUL (the prefilter joins an
    event's values with it)."""
    return (len(literal) >= MIN_LITERAL or not literal.isascii()) and "\x00" not in literal


def _literal(p: Predicate) -> list[str] | None:
    """Texts (folded) one of which a value of the field must contain, if known."""
    if p.op in _STRING_OPS:
        if p.op is Op.EQ and number(p.value) is not None:
            return None  # compared as numbers: "0x10" is 16
        return [value_text(p.value).casefold()]
    if p.op is Op.WILDCARD:
        return _longest(wildcard_pieces(str(p.value)))
    if p.op is Op.REGEX_MATCH:
        return regex_literals(str(p.value))
    return None


def _keyword_literal(p: Predicate) -> list[str] | None:
    text = value_text(p.value)
    if "*" in text or "?" in text:
        return _longest(wildcard_pieces(text))
    return [text.casefold()]


def _longest(pieces: list[str]) -> list[str] | None:
    return [max(pieces, key=len)] if pieces else None


def wildcard_pieces(pattern: str) -> list[str]:
    """The ASCII runs between ``*`` and ``?`` (folded)."""
    out: list[str] = []
    run: list[str] = []
    for c in pattern:
        if c in "*?" or not c.isascii():
            _flush(run, out)
        else:
            run.append(c)
    _flush(run, out)
    return out


def _flush(run: list[str], out: list[str]) -> None:
    if run:
        out.append("".join(run).casefold())
        run.clear()


# -- regular expressions ------------------------------------------------------------------

# Characters that stand for themselves in a regex (outside a class); anything else
# ends a literal run. Deliberately short: a doubt costs a little speed, never a match.
_PLAIN = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-/:,=%@'\"!<>&;~#`"
)
# Escaped characters that stand for themselves.
_ESCAPED = frozenset(".\\/-()[]{}*+?|^$ \"':,=%@!<>&;~#`_")
_QUANTIFIERS = frozenset("*?{")
# Escapes of one character that match something other than themselves (classes,
# anchors, control characters); any other escape (``\x41``, ``\p{L}``, ``\Q``) ends
# the reading of the branch.
_CLASS_ESCAPES = frozenset("dDsSwWbBAzZntrfvae")


@cache
def regex_literals(pattern: str) -> list[str] | None:
    """Texts (folded, ASCII) one of which every match of ``pattern`` contains: the
    longest literal run of each top-level branch; None when a branch has none or
    the pattern cannot be read. Groups, classes and escapes other than punctuation
    are skipped, never read; a pattern RE2 refuses gives None."""
    if not re2_compiles(pattern):
        return None
    branches = top_level_branches(pattern)
    if branches is None:
        return None
    out = []
    for branch in branches:
        best = _longest(_branch_pieces(branch))
        if best is None:
            return None
        out.extend(best)
    return out


def re2_compiles(pattern: str) -> bool:
    """Whether RE2 (linear time) takes ``pattern``; the matcher and the SQL lowering
    fall back to Python's ``re`` for what it refuses."""
    import re2

    options = re2.Options()
    options.log_errors = False
    try:
        re2.compile(pattern, options)
    except re2.error:
        return False
    return True


def _branch_pieces(branch: str) -> list[str]:
    """Literal runs of one branch without top-level ``|``."""
    out: list[str] = []
    run: list[str] = []
    i, n = 0, len(branch)
    while i < n:
        c, step = branch[i], 1
        if c == "\\":
            if i + 1 < n and branch[i + 1] in _ESCAPED:
                char, step = branch[i + 1], 2
            elif i + 1 < n and branch[i + 1] in _CLASS_ESCAPES:
                char, step = None, 2
            else:
                break  # an escape with an argument: not read
        elif c in _PLAIN:
            char = c
        else:
            char = None
        after = branch[i + step] if i + step < n else ""
        if char is None:
            _flush(run, out)
            if c == "[":
                step = (class_end(branch, i) or n) - i
            elif c == "(":
                step = _group_end(branch, i) - i
            elif c == "{":
                end = branch.find("}", i)
                step = (end + 1 if end >= 0 else n) - i
        elif after in _QUANTIFIERS:
            _flush(run, out)  # optional or repeated: not a fixed part of the run
        elif after == "+":
            run.append(char)  # at least once: the run ends after it
            _flush(run, out)
            step += 1
        else:
            run.append(char)
        i += step
    _flush(run, out)
    return out


def _group_end(branch: str, i: int) -> int:
    """Index after the group opening at ``i`` (its quantifier, if any, applies to
    the group, which is skipped whole)."""
    depth, j, n = 0, i, len(branch)
    while j < n:
        c = branch[j]
        if c == "\\":
            j += 2
            continue
        if c == "[":
            j = class_end(branch, j) or n
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return n


# -- stages that cannot hold --------------------------------------------------------------

_ANY = frozenset({True, False, None})


def selective(expr: Expr | None) -> bool:
    """Whether ``expr`` holds only on a value it checks: not when the fields an event
    has may make it hold alone (``exists``, a negation, an OR with such a branch).
    Such an expression holds on nearly every event of its kind and, holding, says
    nothing about the event."""
    match expr:
        case Predicate():
            return expr.kind != "implied" and expr.op not in (Op.EXISTS, Op.IS_NULL)
        case And(children):
            return any(selective(c) for c in children)
        case Or(children):
            return all(selective(c) for c in children)
        case Opaque():
            return True  # never holds, so it makes nothing hold
    return False  # a negation, or no expression


def can_hold(expr: Expr | None, computed: dict[str, Any] | None, evaluated: bool) -> bool:
    """Whether ``expr`` may be true on some event: not when it is unknown on every
    one (an ``Opaque`` part or a computed value the language's evaluator cannot
    read — ``evaluated``: it may read them, as EQL's does — where it must hold)."""
    return True in _outcomes(expr, computed, evaluated)


def _outcomes(expr: Expr | None, computed: dict[str, Any] | None, evaluated: bool) -> frozenset:
    """The answers ``expr`` may give (True, False, None), over-approximated."""
    match expr:
        case Predicate():
            if expr.kind == "implied":
                return frozenset({True})
            if (
                expr.kind == "derived"
                and not evaluated
                and lookup_name(expr, computed)[0] == expr.field_raw
            ):
                return frozenset({None})
            return _ANY
        case And(children) | Or(children):
            parts = [_outcomes(c, computed, evaluated) for c in children]
            decisive = isinstance(expr, Or)  # the value that settles it
            out = set()
            if any(decisive in p for p in parts):
                out.add(decisive)
            if all((not decisive) in p for p in parts):
                out.add(not decisive)
            if any(None in p for p in parts):
                out.add(None)
            return frozenset(out)
        case Not(child):
            inner = _outcomes(child, computed, evaluated)
            return frozenset(None if v is None else not v for v in inner)
        case Opaque():
            return _ANY if evaluated else frozenset({None})
    return _ANY
