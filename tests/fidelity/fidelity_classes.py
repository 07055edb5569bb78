"""Why a backend's output and the Sigma rule can read differently.

After the equivalences of ``fidelity_equivalences`` (the same meaning spelled two
ways), two kinds of rules live here, each counted in the round-trip report:

* **backend defects** (``DEFECTS``): the backend's output does not say what the
  Sigma rule says, and detcat reads the output faithfully. Each class re-derives
  what the backend wrote from the Sigma key (or the reverse) and removes exactly
  the pairs it explains; a rule whose every difference is explained agrees.
Suspects (known differences where detcat's reading is in question) and
``explain``, which applies both, live in ``fidelity_explain``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fidelity_equivalences import SUBSTRING_OPS, Key, same_meaning

from detcat.model import Predicate, Reason, replace
from detcat.normalize.regex import regex_literal

if TYPE_CHECKING:
    from fidelity_oracle import Comparison


# -- explanation classes -----------------------------------------------------------


@dataclass(frozen=True)
class Explanation:
    name: str
    targets: frozenset[str]
    apply: Callable[[Comparison], bool]  # True when it explained something


def _pairs(c: Comparison, want: Callable[[Key], set[Key]]) -> bool:
    """Remove each missing key together with the target keys ``want`` derives from it,
    when all of them are present (or already paired: the backend may write two Sigma
    values as one, ``*9???`` and ``*9????`` both as ``*9*``)."""
    hit = False
    paired: set[Key] = set()
    for m in sorted(c.missing):
        expected = want(m)
        if expected and expected <= c.extra | paired:
            c.missing.discard(m)
            c.extra -= expected
            paired |= expected
            hit = True
    return hit


def keyword_as_bare_string(c: Comparison) -> bool:
    """EQL has no free-text search: the EQL backend writes a Sigma keyword as a bare
    string literal, which is no condition at all (detcat: Opaque "bare value used as
    a condition")."""
    bare = [r for r in c.opaque if r.startswith(Reason.NOT_A_CONDITION)]
    keywords = {k for k in c.missing if k.op == "keyword"}
    if not (bare and keywords):
        return False
    c.missing -= keywords
    c.opaque = [r for r in c.opaque if not r.startswith(Reason.NOT_A_CONDITION)]
    return True


def searching_regex_anchored(c: Comparison) -> bool:
    """Sigma's ``|re`` searches; EQL ``regex`` and ES|QL ``RLIKE`` match the whole
    value, and the backends do not add ``.*``. A literal regex therefore becomes an
    equality in the target (``\\$a\\.b`` -> ``eq '$a.b'``); the Sigma side reads
    the same literal regex as the substring test it is (``contains '$a.b'``)."""
    anchored = re.search(r"\b(?:rlike|regex~?)\s", c.query, re.IGNORECASE) is not None

    def want(m: Key) -> set[Key]:
        if m.op == "contains" and anchored:
            return {m._replace(op="eq")}
        if m.op != "regex_match":
            return set()
        lit = regex_literal(m.value, True)
        return {Key(m.field, str(lit.op), v, m.negated) for v in lit.values} if lit else set()

    return _pairs(c, want)


def derived_keys(p: Predicate, negated: bool, full_match: bool = False) -> set[Key]:
    """The keys of a predicate a class re-derives (its field already canonical),
    normalized as the target's own predicates are."""
    from detcat.model import predicates
    from detcat.normalize import indicator_key
    from detcat.normalize.values import normalize_value

    expr = normalize_value(p, full_match)
    return {same_meaning(Key(*indicator_key(q), negated)) for q in predicates(expr)}


def esql_like_backslash(c: Comparison) -> bool:
    """In an ES|QL ``LIKE`` pattern a backslash escapes the next character (Lucene
    wildcard syntax); the ES|QL backend escapes ``\\``, ``*`` and ``?`` once, and the
    string literal consumes that escape of a backslash, so ``*\\\\AppData\\\\*``
    reaches LIKE as ``*\\AppData\\*``: ``\\A`` is ``A`` and the final ``\\*`` a
    literal star. Re-derived: Sigma's pattern, the backend's escaping, the string
    literal's reading (esql_syntax.string_value), then LIKE's (esql.like_predicate)."""
    from detcat.languages.esql import like_predicate
    from detcat.languages.esql_syntax import string_value

    def want(m: Key) -> set[Key]:
        chars = sigma_chars(m) if m.op != "eq" else None  # == is not a LIKE
        if chars is None or not any(ch == "\\" and not wild for ch, wild in chars):
            return set()
        body = "".join(ch if wild else re.sub(r'([\\*?"])', r"\\\1", ch) for ch, wild in chars)
        p = like_predicate(None, string_value(f'"{body}"'), False)  # type: ignore[arg-type]
        return derived_keys(replace(p, field=m.field), m.negated, True)

    return _pairs(c, want)


def esql_eq_escaped_wildcard(c: Comparison) -> bool:
    """The ES|QL backend escapes ``*`` and ``?`` in every string, also in an ``==``
    value, where nothing is a wildcard; the string literal keeps a backslash it does
    not know as an escape (``\\*``), so the value gains a backslash."""

    def want(m: Key) -> set[Key]:
        if m.op != "eq" or not any(ch in m.value for ch in "*?"):
            return set()
        return {m._replace(value=re.sub(r"([*?])", r"\\\1", m.value))}

    return _pairs(c, want)


def list_as_unanchored_alternation(c: Comparison) -> bool:
    """The SecOps backend joins a value list into one regex alternation and drops
    each value's anchors (``endswith`` ``\\a.exe``, ``\\b.exe`` -> ``/\\\\a\\.exe|\\\\b\\.exe/``)
    and, for equality lists, the escaping of ``.`` and ``(``: the values become
    substrings (and parentheses groups). Wildcard values become ``.*``/``.``.
    Each branch must stand for a Sigma value of the same field; a value may also
    be tested elsewhere in the rule, so branches are looked up in the whole Sigma
    reading. (Signs are matched separately: see ``negation_lost``.)"""
    hit = False
    for e in sorted(c.extra):
        branches = (
            _branches(e) if e.op == "regex_match" else [e.value] if e.op == "contains" else []
        )
        found = [_same_value(c.missing | c.ours, e, b) for b in branches]
        if not branches or not all(found):
            continue
        c.extra.discard(e)
        for keys in found:
            c.missing -= keys
        hit = True
        if any(all(m.negated != e.negated for m in keys) for keys in found):
            c.classes.append(NEGATION_LOST)
    return _branch_elsewhere(c) or hit


def _branch_elsewhere(c: Comparison) -> bool:
    """A missing Sigma value whose unanchored branch the target has although that
    branch is no extra key (the rule also tests it unanchored: a ``startswith``
    list and a ``contains`` list of the same paths)."""
    unanchored = [(t, b) for t in c.theirs for b in (_branches(t) if t.op == "regex_match"
                  else [t.value] if t.op == "contains" else [])]  # fmt: skip
    hit = False
    for m in sorted(c.missing):
        if any(m in _same_value({m}, t, b) for t, b in unanchored):
            c.missing.discard(m)
            hit = True
    return hit


def _branches(k: Key) -> list[str]:
    """The alternatives of a regex, each unescaped (``.*`` stays as written)."""
    parts, cur, i = [], "", 0
    while i < len(k.value):
        ch = k.value[i]
        if ch == "\\" and i + 1 < len(k.value):
            cur += k.value[i + 1]
            i += 2
            continue
        if ch == "|":
            parts.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    return [*parts, cur]


def _same_value(keys: set[Key], e: Key, value: str) -> set[Key]:
    """Sigma keys this branch stands for; unescaped parentheses in a branch became
    regex groups, so they are compared without them."""
    ops = ("eq", "ends_with", "starts_with", "contains")
    bare = _no_parens(value)
    return {
        m
        for m in keys
        if m.field == e.field
        and (
            (m.op in ops and (m.value == value or _no_parens(m.value) == bare))
            or (m.op == "wildcard" and _wildcard_branch(m.value) == value)
            or (m.op == "exists" and value == "")  # Sigma's contains '' is exists
        )
    }


def _wildcard_branch(value: str) -> str:
    """A Sigma wildcard value as the backend's unanchored regex branch reads once
    unescaped: the outer ``*`` dropped, ``*`` -> ``.*``, ``?`` -> ``.``."""
    return value.strip("*").replace("*", ".*").replace("?", ".")


def _no_parens(text: str) -> str:
    return text.replace("(", "").replace(")", "")


NEGATION_LOST = "secops: negation lost or not pushed into groups"


def undelimited_regex(c: Comparison) -> bool:
    """For some wildcard values the SecOps backend writes the regex without its
    ``/…/`` delimiters (``= \\\\7z.*\\.exe nocase``), and a value with a literal
    ``*`` without its quotes (``= +R +H \\\\\\*.cui nocase``: pySigma's
    ``decide_string_quoting`` skips quotes when ``*`` is in the value), neither of
    which is YARA-L; detcat keeps it as Opaque ("undelimited value")."""
    bare = [r for r in c.opaque if r.endswith("undelimited value")]
    # a wildcard value with an escaped literal ``*`` is a regex on the Sigma side
    wild = {m for m in c.missing if m.op in ("wildcard", "regex_match") or "*" in m.value}
    if not bare or not wild:
        return False
    c.missing -= wild
    c.opaque = [r for r in c.opaque if not r.endswith("undelimited value")]
    return True


def empty_as_null(c: Comparison) -> bool:
    """The SecOps backend writes both Sigma ``''`` and ``null`` as ``= ""`` / ``!= ""``
    (detcat: is_null / exists), in either sign."""

    def want(m: Key) -> set[Key]:
        if m.op != "eq" or m.value != "":
            return set()
        return {k for k in c.extra if k.field == m.field and k.op == "exists"}

    return _pairs(c, want)


def negation_lost(c: Comparison) -> bool:
    """The SecOps backend renders ``not (a or b)`` as ``a != … or b != …``, leaves
    comparisons inside nested groups (and ``net.ip_in_range_cidr`` calls) un-negated
    and sometimes drops the ``not`` entirely: the same comparison, opposite sign.
    The opposite-sign twin may also be tested elsewhere in the rule, so it is looked
    up in the whole other reading."""
    hit = False
    for m in sorted(c.missing):
        twin = m._replace(negated=not m.negated)
        if twin in c.extra or twin in c.theirs:
            c.missing.discard(m)
            c.extra.discard(twin)
            hit = True
    for e in sorted(c.extra):
        if e._replace(negated=not e.negated) in c.ours:
            c.extra.discard(e)
            hit = True
    return hit


def regex_backslash_doubled(c: Comparison) -> bool:
    """The SecOps backend escapes a Sigma regex for a string literal (pySigma's
    ``re_escape_escape_char``: every ``\\``, ``"`` and ``/`` gets a backslash),
    but YARA-L's ``/…/`` is a regex literal, so ``\\s`` (whitespace) reaches RE2 as
    ``\\\\s`` (a backslash, then ``s``). Undoing the doubling gives the Sigma regex."""
    hit = False
    for e in sorted(c.extra):
        text = e.value if e.op == "regex_match" else re.escape(e.value)
        if "\\\\" not in text or e.op not in ("regex_match", *SUBSTRING_OPS, "eq"):
            continue
        sigma = same_meaning(e._replace(op="regex_match", value=_undouble(e)))
        lit = regex_literal(sigma.value, False)
        found = (
            {sigma}
            if lit is None
            else {Key(e.field, str(lit.op), v, e.negated) for v in lit.values}
        )
        if found <= c.missing | c.ours:
            c.extra.discard(e)
            c.missing -= found
            hit = True
    return hit


def _undouble(e: Key) -> str:
    """The regex the target key was read from with the backend's escaping undone
    (``\\\\`` -> ``\\``, ``\\"`` -> ``"``, ``\\/`` -> ``/``). A target regex that
    was a literal (``/\\\\$x/`` is ``contains '\\$x'``) is first escaped back into
    regex text."""
    text = e.value if e.op == "regex_match" else re.escape(e.value)
    text = _BACKEND_ESCAPE.sub(r"\1", text)
    if e.op in ("starts_with", "eq"):
        text = "^" + text
    if e.op in ("ends_with", "eq"):
        text += "$"
    return text


_BACKEND_ESCAPE = re.compile(r"""\\([\\"/])""")


def keyword_as_field_none(c: Comparison) -> bool:
    """The SecOps backend writes a Sigma keyword as a comparison on the field ``None``
    (``$e.None = /a|b/``)."""
    none = {e for e in c.extra if e.field.endswith(":None")}
    keywords = {m for m in c.missing if m.op == "keyword"}
    if not (none and keywords):
        return False
    values = {b for e in none for b in (_branches(e) if e.op == "regex_match" else [e.value])}
    explained = {m for m in keywords if m.value in values}
    if not explained:
        return False
    c.missing -= explained
    c.extra -= none
    return True


def search_or(c: Comparison) -> bool:
    """With a regex in the rule, the Splunk backend moves the first condition into
    the base search and writes the rest as ``| search OR …``: the dangling ``OR`` is
    a search term."""
    stray = {k for k in c.extra if k.op == "keyword" and k.value == "or"}
    if not stray or "| search OR" not in c.query.replace("\n", " "):
        return False
    c.extra -= stray
    return True


def single_wildcard_widened(c: Comparison) -> bool:
    """Splunk search has no one-character wildcard; the backend writes Sigma's ``?``
    as ``*``, which matches more."""

    def want(m: Key) -> set[Key]:
        if m.op != "wildcard" or "?" not in m.value:
            return set()
        wide = re.sub(r"\*+", "*", m.value.replace("?", "*"))
        core = wide.strip("*")
        if not core:
            return {Key(m.field, "exists", "", m.negated)}
        if "*" in core:
            return {Key(m.field, "wildcard", wide, m.negated)}
        lead, trail = wide.startswith("*"), wide.endswith("*")
        op = "contains" if lead and trail else "ends_with" if lead else "starts_with"
        return {Key(m.field, op, core, m.negated)}

    return _pairs(c, want)


Chars = list[tuple[str, bool]]  # pattern characters: (character, is a wildcard)


def sigma_chars(k: Key) -> Chars | None:
    """A Sigma key's value as pattern characters: substring operators add their
    wildcards; a regex of the shape the Sigma source writes for a wildcard value
    with a literal ``*``/``?`` (``^…$`` over escaped text, ``.*`` and ``.``) is
    read back; any other regex is None."""
    star = ("*", True)
    text = [(ch, False) for ch in k.value]
    shapes = {
        "eq": text,
        "contains": [star, *text, star],
        "starts_with": [*text, star],
        "ends_with": [star, *text],
        "wildcard": [(ch, ch in "*?") for ch in k.value],
    }
    return _wildcard_regex_chars(k.value) if k.op == "regex_match" else shapes.get(k.op)


def _wildcard_regex_chars(regex: str) -> Chars | None:
    if not (regex.startswith("^") and regex.endswith("$")):
        return None
    body, out, i = regex[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if i + 1 == len(body) or body[i + 1].isalnum() or body[i + 1] == "_":
                return None  # \d, \w …: a class, not an escaped literal
            out.append((body[i + 1], False))
            i += 2
        elif body.startswith(".*", i):
            out.append(("*", True))
            i += 2
        elif ch == ".":
            out.append(("?", True))
            i += 1
        elif ch in "^$|?*+()[]{}":
            return None
        else:
            out.append((ch, False))
            i += 1
    return out


def splunk_read_back(field: str, chars: Chars, negated: bool) -> set[Key]:
    """What Splunk reads in the backend's spelling of ``chars``: a literal ``\\``
    is written ``\\\\`` (one backslash), a literal ``*`` ``\\*`` (which Splunk
    reads as a backslash and a wildcard), a wildcard ``?`` as ``*``."""
    from detcat.languages.spl.expr import classify

    spl: Chars = []
    for ch, wild in chars:
        if ch == "*" and not wild:
            spl += [("\\", False), ("*", True)]
        else:
            spl.append(("*", True) if wild else (ch, False))
    op, value = classify(spl)
    return derived_keys(Predicate(None, op, value, field=field), negated)


def splunk_escaped_star(c: Comparison) -> bool:
    """Splunk search has no escape for ``*``: "The backslash symbol can't be used to
    escape the asterisk in search strings" (Splunk Search Manual, "Backslashes";
    SigmaHQ/sigma#3617, "literal * is not escaped"). The backend writes a literal
    ``*`` as ``\\*``, which Splunk reads as a backslash followed by a wildcard."""

    def want(m: Key) -> set[Key]:
        chars = sigma_chars(m)
        if chars is None or not any(ch == "*" and not wild for ch, wild in chars):
            return set()
        return splunk_read_back(m.field, chars, m.negated)

    return _pairs(c, want)


_FLAG_DEFINED = re.compile(r"\|\s*eval\s+(\w+)=if\(isnotnull\(\w+\)")


def flag_tested_in_tstats(c: Comparison) -> bool:
    """With a regex in the rule, the data-model backend writes the whole condition
    twice: in ``tstats … where``, and in a ``| search`` after ``| rex`` and
    ``| eval flag=if(isnotnull(match), "true", "false")`` define the regex's flag
    field. ``tstats`` filters indexed and data-model fields only ("statistical
    queries on indexed fields in tsidx files", Splunk Search Reference, tstats), so
    the first test of ``flag="true"`` is on a field that does not exist there; the
    ``| search`` copy is the one that carries the regex."""
    if not c.query.lstrip().startswith("| tstats"):
        return False
    where = c.query.split("| rex", 1)[0]
    flags = {f for f in _FLAG_DEFINED.findall(c.query) if f'{f}="true"' in where}
    stray = {
        k
        for k in c.extra
        if k.op == "eq" and k.value == "true" and k.field.split(":", 1)[-1] in flags
    }
    c.extra -= stray
    return bool(stray)


# NOT, then one term (no parenthesis before the OR), then OR.
_UNGROUPED_NOT = re.compile(r"\bnot\s+[^\s(][^()]*?\s+or\s", re.IGNORECASE)


def not_without_parentheses(c: Comparison) -> bool:
    """Sigma ``not (a or b)`` written ``NOT a OR b`` (Splunk) or ``not a or b``
    (ES|QL): "The NOT operator only applies to the term immediately following NOT"
    (Splunk Search Manual, "Boolean expressions"); in ES|QL too NOT binds tighter
    than AND and OR. So ``b`` is not negated."""
    if not _UNGROUPED_NOT.search(c.query):
        return False
    return _pairs(c, lambda m: {m._replace(negated=False)} if m.negated else set())


def regex_out_of_not(c: Comparison) -> bool:
    """A regex inside a negated group is written as a separate, positive
    ``| regex field="…"`` command after the search: its negation is lost."""
    if not re.search(r'\|\s*regex\s+[\w.]+="', c.query):
        return False

    def want(m: Key) -> set[Key]:
        return {m._replace(negated=False)} if m.negated and m.op == "regex_match" else set()

    return _pairs(c, want)


def quote_breaks_string(c: Comparison) -> bool:
    """A ``"`` inside a Sigma regex comes out of the backend as ``\\"``: the escaped
    backslash ends the escape and the quote ends the string early."""
    if not c.error.startswith("QueryError"):
        return False
    quoted = {k for k in c.missing if k.op == "regex_match" and '"' in k.value}
    if not quoted:
        return False
    c.error = ""
    c.missing -= quoted
    c.extra.clear()  # the rest of the query was never read
    c.missing.clear()
    return True


DEFECTS = [
    Explanation(
        "eql: keyword written as a bare string", frozenset({"eql"}), keyword_as_bare_string
    ),
    Explanation(
        "searching regex emitted as an anchored regex",
        frozenset({"eql", "esql"}),
        searching_regex_anchored,
    ),
    Explanation("esql: backslash not escaped in LIKE", frozenset({"esql"}), esql_like_backslash),
    Explanation(
        "esql: wildcard escaping applied to an '==' value",
        frozenset({"esql"}),
        esql_eq_escaped_wildcard,
    ),
    Explanation(
        "secops: value list as unanchored regex alternation",
        frozenset({"secops_yara_l"}),
        list_as_unanchored_alternation,
    ),
    Explanation(
        "secops: regex backslashes escaped twice",
        frozenset({"secops_yara_l"}),
        regex_backslash_doubled,
    ),
    Explanation(
        "secops: keyword written on a field named None",
        frozenset({"secops_yara_l"}),
        keyword_as_field_none,
    ),
    Explanation(
        "secops: regex written without delimiters",
        frozenset({"secops_yara_l"}),
        undelimited_regex,
    ),
    Explanation(
        "secops: empty string written as null", frozenset({"secops_yara_l"}), empty_as_null
    ),
    Explanation(NEGATION_LOST, frozenset({"secops_yara_l"}), negation_lost),
    Explanation(
        "splunk: condition split into '| search OR'",
        frozenset({"splunk", "splunk_data_model"}),
        search_or,
    ),
    Explanation(
        "splunk: single-character wildcard written as '*'",
        frozenset({"splunk", "splunk_data_model"}),
        single_wildcard_widened,
    ),
    Explanation(
        "splunk: literal '*' written as '\\*' (no escape in SPL)",
        frozenset({"splunk", "splunk_data_model"}),
        splunk_escaped_star,
    ),
    Explanation(
        "splunk_data_model: regex flag tested in tstats before it is defined",
        frozenset({"splunk_data_model"}),
        flag_tested_in_tstats,
    ),
    Explanation(
        "splunk, esql: negated group written without parentheses",
        frozenset({"splunk", "splunk_data_model", "esql"}),
        not_without_parentheses,
    ),
    Explanation(
        "splunk: negated regex written as a positive '| regex'",
        frozenset({"splunk", "splunk_data_model"}),
        regex_out_of_not,
    ),
    Explanation(
        "backend: quote inside a regex breaks the string literal",
        frozenset({"eql", "esql"}),
        quote_breaks_string,
    ),
]


ALL_TARGETS = frozenset({"splunk", "splunk_data_model", "eql", "esql", "secops_yara_l"})
