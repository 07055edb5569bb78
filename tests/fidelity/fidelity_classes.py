"""Why a backend's output and the Sigma rule can read differently.

Three kinds of rules live here, each counted in the round-trip report:

* **equivalences** (``same_meaning``, ``logsource_added``): the same meaning spelled
  two ways; applied to every key before comparing.
* **backend defects** (``DEFECTS``): the backend's output does not say what the
  Sigma rule says, and detcat reads the output faithfully. Each class re-derives
  what the backend wrote from the Sigma key (or the reverse) and removes exactly
  the pairs it explains; a rule whose every difference is explained agrees.
* **suspects** (``SUSPECTS``): known differences where detcat's reading is in
  question (a parser limitation or a disputed language rule). They only label a
  disagreement; it still counts against the target.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from detcat.normalize.regex import regex_literal

if TYPE_CHECKING:
    from fidelity_oracle import Comparison


class Key(NamedTuple):
    field: str
    op: str
    value: str
    negated: bool

    def __str__(self) -> str:
        neg = "NOT " if self.negated else ""
        return f"{neg}{self.field} {self.op} {self.value!r}"


# -- equivalences ------------------------------------------------------------------

# Escapes of characters that are never special in PCRE, RE2 or Lucene regexes: the
# EQL backend writes "\/" for "/", YARA-L needs "\/" inside /…/ literals.
_NEEDLESS_ESCAPE = re.compile(r"""\\([/"'`:;,=@%!#&~<> -])""")


_SUBSTRING = ("contains", "starts_with", "ends_with")


def same_meaning(k: Key) -> Key:
    """One spelling per meaning: ``not is_null`` is ``exists`` (which has no value),
    and so is a substring test of the empty string (ES|QL ``starts_with(f, "")``);
    a regex without needless escapes."""
    if k.op == "is_null":
        return Key(k.field, "exists", "", not k.negated)
    if k.op == "exists" or (k.op in _SUBSTRING and k.value == ""):
        return Key(k.field, "exists", "", k.negated)
    if k.op == "regex_match":
        # A leading (?i) is the comparison's case rule, which keys do not carry.
        value = k.value[4:] if k.value.startswith("(?i)") else k.value
        return k._replace(value=_NEEDLESS_ESCAPE.sub(r"\1", value))
    return k


def match_all(target: str, extra: set[Key]) -> set[Key]:
    """A bare ``*`` search term matches every event: no condition at all."""
    return {k for k in extra if k.op == "keyword" and k.value == "*" and not k.negated}


_ENCODINGS = {"base64", "base64offset", "wide", "utf16", "utf16le", "utf16be"}


def encoded_values(doc: dict) -> dict[str, set[str]]:
    """Decoded text -> its encodings, for the Sigma items with encoding modifiers.
    detcat keeps the decoded text as the indicator; backends write the encodings."""
    from sigma.rule import SigmaDetection, SigmaRule

    out: dict[str, set[str]] = {}

    def walk(det: SigmaDetection) -> None:
        for item in det.detection_items:
            if isinstance(item, SigmaDetection):
                walk(item)
                continue
            mods = {m.__name__.lower().removeprefix("sigma").removesuffix("modifier")
                    for m in item.modifiers}  # fmt: skip
            if not mods & _ENCODINGS or len(item.original_value) != len(item.value):
                continue
            for plain, enc in zip(item.original_value, item.value, strict=True):
                encs = getattr(enc, "values", [enc])
                key = _plain(plain)
                out.setdefault(key, set()).update(_plain(e) for e in encs)

    try:
        rule = SigmaRule.from_dict(doc)
    except Exception:  # the rule is read elsewhere; no encodings to offer here
        return out
    for det in rule.detection.detections.values():
        walk(det)
    return out


def _plain(v: object) -> str:
    text = v.to_plain() if hasattr(v, "to_plain") else str(v)
    return text.strip("*").casefold()


def encodings_equivalent(c: Comparison) -> bool:
    """Remove each decoded Sigma value with the encoded target values it stands for."""
    table = encoded_values(c.rule.doc) if c.missing and c.extra else {}
    hit = False
    for m in sorted(c.missing):
        encs = table.get(m.value)
        found = {e for e in c.extra if e.field == m.field and e.value in encs} if encs else set()
        if found:
            c.missing.discard(m)
            c.extra -= found
            hit = True
    return hit


# Canonical fields through which each pipeline states the log source (Sysmon
# channel, EventCode, UDM event type): a condition the pipeline adds for the
# logsource is not a filter the Sigma rule wrote.
_WINLOG = frozenset({"event.code", "winlog.channel", "event.provider", "log.file.path"})
LOGSOURCE_FIELDS = {
    "splunk": _WINLOG,
    "splunk_data_model": _WINLOG,
    "eql": _WINLOG,
    "esql": _WINLOG,
    "secops_yara_l": _WINLOG | {"event.category"},
}


def logsource_added(target: str, extra: set[Key], ours: set[Key]) -> set[Key]:
    """Target conditions on a logsource field the Sigma rule itself does not test."""
    fields = LOGSOURCE_FIELDS.get(target, frozenset()) - {k.field for k in ours}
    return {k for k in extra if k.field in fields and not k.negated}


# -- explanation classes -----------------------------------------------------------


@dataclass(frozen=True)
class Explanation:
    name: str
    targets: frozenset[str]
    apply: Callable[[Comparison], bool]  # True when it explained something


def _pairs(c: Comparison, want: Callable[[Key], set[Key]]) -> bool:
    """Remove each missing key together with the target keys ``want`` derives from it,
    when all of them are present."""
    hit = False
    for m in sorted(c.missing):
        expected = want(m)
        if expected and expected <= c.extra:
            c.missing.discard(m)
            c.extra -= expected
            hit = True
    return hit


def keyword_as_bare_string(c: Comparison) -> bool:
    """EQL has no free-text search: the EQL backend writes a Sigma keyword as a bare
    string literal, which is no condition at all (detcat: Opaque "bare value used as
    a condition")."""
    bare = [r for r in c.opaque if r == "bare value used as a condition"]
    keywords = {k for k in c.missing if k.op == "keyword"}
    if not (bare and keywords):
        return False
    c.missing -= keywords
    c.opaque = [r for r in c.opaque if r != "bare value used as a condition"]
    return True


def searching_regex_anchored(c: Comparison) -> bool:
    """Sigma's ``|re`` searches; EQL ``regex`` and ES|QL ``RLIKE`` match the whole
    value, and the backends do not add ``.*``. A literal regex therefore becomes an
    equality in the target (``\\$a\\.b`` -> ``eq '$a.b'``)."""

    def want(m: Key) -> set[Key]:
        if m.op != "regex_match":
            return set()
        lit = regex_literal(m.value, True)
        return {Key(m.field, str(lit.op), v, m.negated) for v in lit.values} if lit else set()

    return _pairs(c, want)


_WILD = {"contains": "*{}*", "ends_with": "*{}", "starts_with": "{}*", "eq": "{}"}


def esql_like_backslash(c: Comparison) -> bool:
    """In an ES|QL ``LIKE`` pattern a backslash escapes the next character (Lucene
    wildcard syntax); the ES|QL backend escapes a backslash for the string literal
    only, so ``*\\\\AppData\\\\*`` reaches LIKE as ``*\\AppData\\*``: ``\\A`` is
    ``A`` and the final ``\\*`` a literal star."""
    from detcat.languages.esql import like_predicate

    def want(m: Key) -> set[Key]:
        shape = _WILD.get(m.op)
        if shape is None or "\\" not in m.value or m.op == "eq":
            return set()
        p = like_predicate(m.field, shape.format(m.value), False)
        value = "" if p.value is None or p.value is True else str(p.value).casefold()
        return {Key(m.field, str(p.op), value, m.negated)}

    return _pairs(c, want)


def list_as_unanchored_alternation(c: Comparison) -> bool:
    """The SecOps backend joins a value list into one regex alternation and drops
    each value's anchors (``endswith`` ``\\a.exe``, ``\\b.exe`` -> ``/\\\\a\\.exe|\\\\b\\.exe/``)
    and, for equality lists, the escaping of ``.`` and ``(``: the values become
    substrings (and parentheses groups).
    (Signs are matched separately: see ``negation_lost``.)"""
    hit = False
    for e in sorted(c.extra):
        branches = (
            _branches(e) if e.op == "regex_match" else [e.value] if e.op == "contains" else []
        )
        found = [m for b in branches for m in _same_value(c.missing, e, b)]
        if branches and len(found) >= len(branches):
            c.extra.discard(e)
            c.missing -= set(found)
            hit = True
            if any(m.negated != e.negated for m in found):
                c.classes.append(NEGATION_LOST)
    return hit


def _branches(k: Key) -> list[str]:
    parts = re.split(r"(?<!\\)\|", k.value)
    return [re.sub(r"\\(.)", r"\1", p) for p in parts]


def _same_value(missing: set[Key], e: Key, value: str) -> list[Key]:
    """Sigma keys this branch stands for; unescaped parentheses in a branch became
    regex groups, so they are compared without them."""
    ops = ("eq", "ends_with", "starts_with", "contains")
    bare = _no_parens(value)
    return [
        m
        for m in missing
        if m.field == e.field and m.op in ops and (m.value == value or _no_parens(m.value) == bare)
    ]


def _no_parens(text: str) -> str:
    return text.replace("(", "").replace(")", "")


NEGATION_LOST = "secops: negation lost or not pushed into groups"


def undelimited_regex(c: Comparison) -> bool:
    """For some wildcard values the SecOps backend writes the regex without its
    ``/…/`` delimiters (``= \\\\7z.*\\.exe nocase``), which is not YARA-L; detcat
    keeps it as Opaque ("undelimited value")."""
    bare = [r for r in c.opaque if r == "undelimited value"]
    wild = {m for m in c.missing if m.op == "wildcard"}
    if not bare or not wild:
        return False
    c.missing -= wild
    c.opaque = [r for r in c.opaque if r != "undelimited value"]
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
    and sometimes drops the ``not`` entirely: the same comparison, opposite sign."""
    return _pairs(c, lambda m: {m._replace(negated=not m.negated)})


def regex_backslash_doubled(c: Comparison) -> bool:
    """The SecOps backend escapes every backslash of a Sigma regex again, so ``\\s``
    (whitespace) becomes ``\\\\s`` (a backslash, then ``s``)."""

    def want(m: Key) -> set[Key]:
        if m.op != "regex_match" or "\\" not in m.value:
            return set()
        doubled = m.value.replace("\\", "\\\\")
        lit = regex_literal(doubled, False)
        if lit is None:
            return {same_meaning(Key(m.field, "regex_match", doubled, m.negated))}
        return {Key(m.field, str(lit.op), v, m.negated) for v in lit.values}

    return _pairs(c, want)


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
        "backend: quote inside a regex breaks the string literal",
        frozenset({"eql", "esql"}),
        quote_breaks_string,
    ),
]


ALL_TARGETS = frozenset({"splunk", "splunk_data_model", "eql", "esql", "secops_yara_l"})

# -- suspects: labels only -----------------------------------------------------------


def _rex_flag(c: Comparison) -> bool:
    flag = re.compile(r"condition\d*$")
    return any(flag.search(k.field.lower()) and k.value == "true" for k in c.extra)


def _escaped_wildcard(c: Comparison) -> bool:
    literal = any(k.op != "wildcard" and ("*" in k.value or "?" in k.value) for k in c.missing)
    escaped = any("\\*" in k.value or "\\?" in k.value or k.value.endswith("\\")
                  for k in c.extra)  # fmt: skip
    return literal or escaped


def _sigma_regex_unconverted(c: Comparison) -> bool:
    """sources/sigma.py stores a ``|re`` value as pySigma's SigmaString, not a str, so
    normalize leaves literal regexes unconverted on the Sigma side only."""
    return any(k.op == "regex_match" and regex_literal(k.value, False) for k in c.missing)


def _hash_not_split(c: Comparison) -> bool:
    return any(k.field.endswith(".hash") and "=" in k.value for k in c.extra)


def _value_vocabulary(c: Comparison) -> bool:
    fields = {(k.field, k.op, k.negated) for k in c.missing}
    return any((k.field, k.op, k.negated) in fields for k in c.extra)


def _crash(c: Comparison) -> bool:
    return c.error.startswith("parser crashed")


SUSPECTS = [
    Explanation(
        "spl parser: regex as rex + eval flag not folded",
        frozenset({"splunk", "splunk_data_model"}),
        _rex_flag,
    ),
    Explanation(
        "eql/spl parsers: escaped wildcard read as backslash + wildcard",
        frozenset({"eql", "splunk", "splunk_data_model"}),
        _escaped_wildcard,
    ),
    Explanation("parser crash", ALL_TARGETS, _crash),
    Explanation(
        "sigma source: literal regex left unconverted (SigmaString value)",
        ALL_TARGETS,
        _sigma_regex_unconverted,
    ),
    Explanation(
        "normalize: 'ALGO=digest' hash value not split after a regex literal",
        ALL_TARGETS,
        _hash_not_split,
    ),
    Explanation("same field and operator, other value", ALL_TARGETS, _value_vocabulary),
]


def explain(target: str, c: Comparison) -> None:
    """Apply the backend-defect classes of ``target``, then label what remains."""
    if encodings_equivalent(c):
        c.equivalences.append("encoded values (base64, utf16) read as their decoded text")
    if c.settled:
        return
    for d in DEFECTS:
        if target in d.targets and d.apply(c):
            c.classes.append(d.name)
    c.classes[:] = list(dict.fromkeys(c.classes))
    if c.settled:
        return
    for s in SUSPECTS:
        if target in s.targets and s.apply(c):
            c.classes.append("suspect: " + s.name)
