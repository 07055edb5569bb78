"""Operators and values: one spelling per meaning, plus implied predicates.

Applied after the field is known:

- the case rule the target field's type implies (``data/field_types.toml``: a
  ``.caseless`` or full-text field ignores case, KQL on a keyword field does not);
- ``lower(f)`` / ``upper(f)`` / ``TO_LOWER(f)`` … around a field: the field, compared
  case-insensitively;
- a regex that is a plain literal -> eq / starts_with / ends_with / contains;
- a wildcard pattern left unclassified (``*x*``) -> contains, …;
- Sysmon ``Hashes`` values ``ALGO=digest`` -> the field of that algorithm (also
  when the value was a regex literal, as in the SecOps backend's ``/IMPHASH=…/``);
- an enumerated value spelled differently per vendor -> one spelling, from the
  ``values.toml`` vocabularies (``OUTBOUND``, ``outgoing``, Sysmon ``Initiated``
  ``true`` -> ``network.direction`` ``egress``);
- a path ``ends_with \\name`` (or ``eq`` a full path, or a wildcard path whose last
  component has no wildcard) -> ``And(original, <name field> eq name)``, the second
  predicate of kind ``"implied"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from detcat.model import And, Expr, Op, Predicate, map_predicates, or_, replace
from detcat.normalize.regex import regex_literal
from detcat.normalize.tables import FIELD_TYPES, FIELDS, load

VALUES = "values.toml"

_CASE_FN = re.compile(
    r"^\s*(?:lower|upper|to_lower|to_upper|tolower|toupper|lcase|ucase|strings\.to_lower"
    r"|strings\.to_upper)\s*\(\s*(.+?)\s*\)\s*$",
    re.IGNORECASE,
)
_WILDCARDS = ("*", "?")
_PATH_SEPARATORS = ("\\", "/")


def unwrap_case_function(raw: str | None) -> tuple[str | None, bool]:
    """(the field inside a case-folding function, whether one was there)."""
    if raw is None or "(" not in raw:
        return raw, False
    m = _CASE_FN.match(raw)
    return (m.group(1), True) if m else (raw, False)


_BARE_FIELD = re.compile(r"^\s*([A-Za-z_@][\w.@]*)\s*$")


def resolve_derived(raw: str, derived: dict[str, object]) -> tuple[str, bool] | None:
    """The source field of a field computed in the query as a rename or a case
    fold of another field (``Esql.x = TO_LOWER(url.original)``), with whether it
    was folded; None for any other computation."""
    folded, hops = False, 0
    while hops < 4:  # a short chain of renames / folds
        expr = derived.get(raw)
        if not isinstance(expr, str):
            break
        inner, fn = unwrap_case_function(expr)
        m = _BARE_FIELD.match(inner or "")
        if m is None:
            return None
        raw, folded, hops = m.group(1), folded or fn, hops + 1
    return (raw, folded) if hops else None


def lookup_name(p: Predicate, derived: dict[str, object] | None) -> tuple[str | None, bool]:
    """The field name to look up for ``p`` and whether the query case-folds it: the
    field inside a case function, or the source of a rename/fold computed in the query."""
    raw, folded = unwrap_case_function(p.field_raw)
    if derived and raw in derived:
        raw, folded = resolve_derived(raw, derived) or (raw, folded)
    return raw, folded


@cache
def implied_fields() -> dict[str, str]:
    return dict(load(FIELDS)["implied"])


@cache
def hash_fields() -> dict[str, str]:
    return {k.upper(): v for k, v in load(FIELDS)["hashes"].items()}


@cache
def vocabularies() -> dict[str, dict[str, str]]:
    """canonical field -> {case-folded vendor spelling: canonical value}."""
    return {f: {k.casefold(): v for k, v in t.items()} for f, t in load(VALUES).items()}


@dataclass(frozen=True, slots=True)
class FieldTypes:
    """``data/field_types.toml`` for one vendor: which fields are full text, which
    sub-fields fold case, and which languages take their case rule from them."""

    type_decides: frozenset[str]
    text: frozenset[str]
    text_suffixes: tuple[str, ...]
    caseless_suffixes: tuple[str, ...]


@cache
def field_types(vendor: str) -> FieldTypes | None:
    t = load(FIELD_TYPES).get(vendor)
    if t is None:
        return None
    return FieldTypes(
        frozenset(t["type_decides"]),
        frozenset(t["text"]),
        tuple(t["text_suffixes"]),
        tuple(t["caseless_suffixes"]),
    )


_TEXT_OPS = (Op.EQ, Op.CONTAINS, Op.STARTS_WITH, Op.ENDS_WITH, Op.WILDCARD)


def case_by_field_type(p: Predicate, vendor: str, language: str) -> Predicate:
    """``p`` with the case rule the type of its target field implies: a
    ``.caseless`` or full-text field compares case-insensitively in every language
    (and a KQL ``:`` equality on full text is a phrase match, ``contains``); a KQL
    comparison on any other (keyword, wildcard) field is case-sensitive."""
    types = field_types(vendor)
    raw = p.field_raw
    if types is None or raw is None or p.op not in _TEXT_OPS or not isinstance(p.value, str):
        return p
    text = p.field in types.text or raw.endswith(types.text_suffixes)
    if text or raw.endswith(types.caseless_suffixes):
        phrase = text and language in types.type_decides and p.op is Op.EQ and p.syntax == ":"
        return replace(p, case_sensitive=False, op=Op.CONTAINS if phrase else p.op)
    if language in types.type_decides:
        return replace(p, case_sensitive=True)
    return p


_PRESENCE: dict[Op, bool | None] = {Op.EXISTS: True, Op.IS_NULL: None}
# A substring of a hash list "MD5=…,IMPHASH=…" is still one whole digest.
_WHOLE_VALUE = (Op.EQ, Op.CONTAINS, Op.STARTS_WITH, Op.ENDS_WITH)


def normalize_value(p: Predicate, full_match: bool) -> Expr:
    """``p`` (field already canonical) with its operator and value normalized."""
    if p.op in _PRESENCE and p.value is not _PRESENCE[p.op]:
        return replace(p, value=_PRESENCE[p.op])  # one spelling: exists True, is_null None
    if not isinstance(p.value, str):
        return _vocabulary(p)  # Sigma `Initiated: true` is a boolean, `LogonType: 10` a number
    if p.op is Op.REGEX_MATCH:
        out = _from_regex(p, full_match)
        return p if out is p else map_predicates(out, _string_value)
    if p.op is Op.WILDCARD:
        p = _classify_wildcard(p)
    return _string_value(p)


def _string_value(p: Predicate) -> Predicate:
    if p.field and p.field.endswith(".hash"):
        p = _split_hash(p)
    return _vocabulary(p)


def _vocabulary(p: Predicate) -> Predicate:
    table = vocabularies().get(p.field or "")
    if table is None or p.op is not Op.EQ or p.value is None or isinstance(p.value, float):
        return p
    value = table.get(vocabulary_key(p.value))
    return p if value is None else replace(p, value=value)


def vocabulary_key(value: str | int | bool) -> str:
    """How a value is looked up in a vocabulary: case-folded text, ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).casefold()


def _from_regex(p: Predicate, full_match: bool) -> Expr:
    lit = regex_literal(p.value, full_match)  # type: ignore[arg-type]
    if lit is None:
        return p
    case = p.case_sensitive and not lit.case_insensitive
    return or_(*(replace(p, op=lit.op, value=v, case_sensitive=case) for v in lit.values))


def _classify_wildcard(p: Predicate) -> Predicate:
    # model.py: wildcard values carry no escapes, every other character is literal
    v: str = p.value  # type: ignore[assignment]
    core = v.strip("*")
    if not core or any(w in core for w in _WILDCARDS):
        return p
    lead, trail = v.startswith("*"), v.endswith("*")
    op = Op.CONTAINS if lead and trail else Op.ENDS_WITH if lead else Op.STARTS_WITH
    return replace(p, op=op, value=core)


def _split_hash(p: Predicate) -> Predicate:
    if p.op is Op.REGEX_MATCH:
        return p  # "MD5=a|MD5=b" is no single ALGO=digest pair
    algo, sep, digest = p.value.partition("=")  # type: ignore[union-attr]
    target = hash_fields().get(algo.strip().upper())
    if not sep or target is None or not digest:
        return p
    base = p.field[: -len(".hash")]  # type: ignore[index]
    op = Op.EQ if p.op in _WHOLE_VALUE else p.op
    return replace(p, field=f"{base}.{target}", op=op, value=digest.strip())


_NAMING_OPS = (Op.ENDS_WITH, Op.EQ, Op.WILDCARD)


def add_implied(p: Predicate) -> Expr:
    """``And(p, name eq tail)`` when ``p`` pins down the file name of a path field: an
    equality, an ends-with, or a wildcard pattern whose last path component has no
    wildcard (``?:\\WINDOWS\\system32\\lsass.exe`` names lsass.exe as ``*\\lsass.exe`` does)."""
    name_field = implied_fields().get(p.field or "")
    if name_field is None or p.op not in _NAMING_OPS or not isinstance(p.value, str):
        return p
    tail = _file_name(p.value)
    if tail is None:
        return p
    implied = replace(p, field=name_field, op=Op.EQ, value=tail, kind="implied")
    return And((p, implied))


def _file_name(path: str) -> str | None:
    cut = max(path.rfind(s) for s in _PATH_SEPARATORS)
    if cut < 0:
        return None
    tail = path[cut + 1 :]
    if not tail or any(w in tail for w in _WILDCARDS):
        return None
    return tail
