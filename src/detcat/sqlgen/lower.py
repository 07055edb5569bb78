"""The predicate model lowered to ``sqlgen.ir``, test for test as ``match.evaluate``
evaluates it (that module's docstring is the specification; each branch below
names the function of it that it mirrors)."""

from __future__ import annotations

import ipaddress
import math
from typing import Any

from detcat.match.evaluate import Dialect, number
from detcat.match.needs import re2_compiles, regex_literals, wildcard_pieces
from detcat.model import Expr, Op, Opaque, Predicate, _rebuild, value_text
from detcat.normalize.values import lookup_name
from detcat.sqlgen.ir import (
    FALSE,
    SEP,
    TEXT_ALL,
    TEXT_ALL_FOLD,
    TRUE,
    AllEmpty,
    Col,
    Has,
    IpIn,
    Node,
    NonNull,
    NumCmp,
    Python,
    Regex,
    SameValue,
    Unknown,
    Variant,
    all_,
    any_,
    neg,
)
from detcat.sqlgen.relax import near


def lower(expr: Expr | None, d: Dialect) -> Node:
    """``expr`` as an IR tree, folded as it is built (Kleene constants)."""
    if expr is None:
        return Unknown("no query")
    # model's iterative post-order rebuild: trees nest as deep as rules do.
    return _rebuild(
        expr,
        lambda p: predicate(p, d),
        lambda o: _opaque(o, d),
        lambda kids: all_(list(kids)),
        lambda kids: any_(list(kids)),
        neg,
    )


def _opaque(o: Opaque, d: Dialect) -> Node:
    """``_compile``'s Opaque case: unknown, unless the language evaluates the text
    (EQL functions), which only Python does."""
    if d.opaque is not None and d.opaque(o) is not None:
        return Python(f"language function: {o.why()} (evaluated by the Python matcher)")
    return Unknown(o.why())


def predicate(p: Predicate, d: Dialect) -> Node:
    """``compile_predicate``."""
    if p.kind == "implied":
        return TRUE
    if p.kind == "derived" and lookup_name(p, d.computed)[0] == p.field_raw:
        if d.derived is not None and d.derived(p) is not None:
            return Python(f"computed value: {p.field_raw} (evaluated by the Python matcher)")
        return Unknown(f"computed value {p.field_raw} not evaluated")
    if p.op is Op.KEYWORD:
        return _keyword(p)
    if p.whole_event:
        return _whole_event(p)
    if not p.field:  # the matcher reads no values: every test fails, is_null holds
        return TRUE if p.op is Op.IS_NULL else FALSE
    if p.field.startswith("_"):  # detcat's own row columns start with _
        return Python(f"reserved name: field {p.field} is named like detcat's own columns")
    text = Col(p.field)
    if p.op is Op.IN_LIST:
        # The deployer's list: unknown when the field has values, false without.
        why = f"members of the deployer's list {p.value!r} unknown"
        return all_([_has_values(text), Unknown(why)])
    if p.op is Op.IS_NULL:
        return AllEmpty(text)
    if p.op is Op.EXISTS:
        return NonNull(p.field)
    if p.op is Op.FIELD_REF:  # ``_field_ref``: the value sets meet (folded unless case matters)
        names = d.refs(str(p.value)) if d.refs else (str(p.value),)
        if any(n.startswith("_") for n in names):
            return Python(f"reserved name: field {names} is named like detcat's own columns")
        others = tuple(_value_col(n, p.case_sensitive) for n in names)
        return SameValue(_value_col(p.field, p.case_sensitive), others)
    if p.op is Op.EQ and number(p.value) is not None:
        return _numeric_equals(p, p.field)
    return _text_test(p, p.field, d.full_match)


def _has_values(col: Col) -> Node:
    """The field has at least one value (a joined non-empty list holds a SEP)."""
    return Has(col, SEP)


def _fold(text: str, case_sensitive: bool) -> str:
    return text if case_sensitive else text.casefold()


def _value_col(field: str, case_sensitive: bool) -> Col:
    return Col(field, Variant.TEXT if case_sensitive else Variant.FOLD)


def has(col: Col, needle: str, before: str = "", after: str = "") -> Node:
    """Some value contains ``needle`` (with ``before``/``after`` SEPs: at a value's
    start / end). A needle holding SEP is in no value (rows with SEP in a value are
    the Python matcher's)."""
    if SEP in needle:
        return FALSE
    return Has(col, before + needle + after) if needle or before or after else _has_values(col)


def _numeric_equals(p: Predicate, field: str) -> Node:
    """``_numeric_equals``: a value equal as a number, or as folded text."""
    want = number(p.value)
    assert want is not None
    text = _fold(value_text(p.value), p.case_sensitive)
    as_text = has(Col(field, Variant.FOLD), text, SEP, SEP)
    if math.isnan(want):  # NaN equals nothing
        return as_text
    return any_([NumCmp(Col(field, Variant.NUM), "eq", want), as_text])


def _text_test(p: Predicate, field: str, full_match: bool) -> Node:
    """``_text_test``, for any value of the field."""
    want = _fold(value_text(p.value), p.case_sensitive)
    col = _value_col(field, p.case_sensitive)
    match p.op:
        case Op.EQ:
            return has(col, want, SEP, SEP)
        case Op.CONTAINS:
            return has(col, want)
        case Op.STARTS_WITH:
            return has(col, want, before=SEP)
        case Op.ENDS_WITH:
            return has(col, want, after=SEP)
        case Op.WILDCARD:
            col = Col(field, Variant.TEXT if p.case_sensitive else Variant.FOLD)
            simple = _simple_wildcard(str(p.value), p.case_sensitive, col, whole=True)
            if simple is not None:
                return simple
            body = wildcard_body(str(p.value))
            flags = _flags(p.case_sensitive, False)
            return Regex(Col(field), SEP_RX + body + SEP_RX, flags, literals=_piece(str(p.value)))
        case Op.REGEX_MATCH:
            return _regex(p, field, full_match)
        case Op.CIDR:
            return _cidr(field, str(p.value))
        case Op.GT | Op.GTE | Op.LT | Op.LTE:
            return _compare(p, field)
    return Unknown(f"operator {p.op} on {p.value!r} not evaluated")


# -- patterns ------------------------------------------------------------------------------

SEP_RX = r"\x{1F}"
_NOT_SEP = r"[^\x{1F}]"


def rx_literal(text: str) -> str:
    """``text`` as a regex matching itself, in the syntax RE2 and Java share: ASCII
    letters and digits as they are, every other character as ``\\x{HEX}``."""
    return "".join(c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):X}}}" for c in text)


def wildcard_body(pattern: str) -> str:
    """A wildcard (``*``, ``?``) inside one value of a joined column."""
    return "".join(
        f"{_NOT_SEP}*" if c == "*" else _NOT_SEP if c == "?" else rx_literal(c) for c in pattern
    )


def _simple_wildcard(pattern: str, case_sensitive: bool, col: Col, whole: bool) -> Node | None:
    """A wildcard that is one literal with ``*`` at either end (``*\\cmd.exe``,
    ``C:\\*``, ``*psexec*``) as a substring test, far cheaper than a regex; None
    for any other. ``whole``: the literal is anchored where no ``*`` stands (a
    field's value), else searched (keywords). A case-insensitive one must be ASCII:
    RE2's folding of ASCII letters agrees with ``str.casefold`` on every character
    whose fold is one character, and rows with a character folding to several
    (``ß``, ``İ``) are the Python matcher's (``rows.RowMaker``)."""
    while "**" in pattern:
        pattern = pattern.replace("**", "*")
    core = pattern.strip("*")
    if "*" in core or "?" in core or not (case_sensitive or core.isascii()):
        return None
    if not whole:
        return has(col, _fold(core, case_sensitive))
    before = "" if pattern.startswith("*") else SEP
    after = "" if pattern.endswith("*") and core else SEP
    if not core and pattern:  # "*": any value
        return _has_values(col)
    return has(col, _fold(core, case_sensitive), before, after)


def _piece(wildcard: str) -> tuple[str, ...]:
    """The longest literal run of a wildcard (folded, ASCII): in every match."""
    pieces = wildcard_pieces(wildcard)
    return (max(pieces, key=len),) if pieces else ()


def _flags(case_sensitive: bool, dot_nl: bool) -> str:
    return ("" if case_sensitive else "i") + ("s" if dot_nl else "")


def _whole_event(p: Predicate) -> Node:
    """``_whole_event``: ``contains`` as a keyword without wildcards; a regex runs on
    the Python matcher (on the joined text it could span two values)."""
    if p.op is Op.CONTAINS:
        return _in_text(value_text(p.value), p.case_sensitive)
    if p.op is Op.REGEX_MATCH:
        return Python(f"field-less regex {p.value!r}: searched in each value of the event")
    return Unknown(f"{p.op} on the event's whole text not evaluated")


def _keyword(p: Predicate) -> Node:
    """``_keyword``: any string value of the document contains the term; a term
    with wildcards is searched (dot matching newlines) in each value."""
    text = value_text(p.value)
    if "*" in text or "?" in text:
        col = TEXT_ALL if p.case_sensitive else TEXT_ALL_FOLD
        simple = _simple_wildcard(text, p.case_sensitive, col, whole=False)
        if simple is not None:
            return simple
        flags = _flags(p.case_sensitive, True)
        return Regex(TEXT_ALL, wildcard_body(text), flags, literals=_piece(text))
    return _in_text(text, p.case_sensitive)


def _in_text(text: str, case_sensitive: bool) -> Node:
    """``_in_text``: some string value of the document contains ``text``."""
    return has(TEXT_ALL if case_sensitive else TEXT_ALL_FOLD, _fold(text, case_sensitive))


def _regex(p: Predicate, field: str, full_match: bool) -> Node:
    """``compiled_regex``: RE2 searches or matches whole, dot matching newlines only
    when whole; a pattern RE2 refuses runs on Python's ``re`` (Python here too)."""
    pattern = str(p.value)
    flags = _flags(p.case_sensitive, full_match)
    if not re2_compiles(pattern):
        why = Python(f"backtracking regex: {pattern!r} (RE2 refuses it; Python's re)")
        necessary = near(Col(field, Variant.LIST), pattern, flags, full_match)
        return why if necessary is None else all_([necessary, why])  # see sqlgen.relax
    literals = tuple(regex_literals(pattern) or ())
    return Regex(Col(field, Variant.LIST), pattern, flags, True, full_match, literals)


# -- numbers and addresses -------------------------------------------------------------


def _compare(p: Predicate, field: str) -> Node:
    """``_compare``: numbers order numerically; a text bound orders text (rare)."""
    bound = number(p.value)
    if bound is None:
        return Python(f"text ordering: {p.op} {p.value!r}")
    if math.isnan(bound):
        return FALSE  # nothing compares with NaN
    return NumCmp(Col(field, Variant.NUM), str(p.op), bound)


def ip_key(address: Any) -> str | None:
    """An address as fixed-width text ordered like its integer: ``4:`` and 8 hex
    digits, ``6:`` and 32 (Spark has no 128-bit integer); None if not one."""
    try:
        ip = ipaddress.ip_address(str(address).strip())
    except ValueError:
        return None
    width = 8 if ip.version == 4 else 32
    return f"{ip.version}:{int(ip):0{width}x}"


def _cidr(field: str, value: str) -> Node:
    """``_cidr``: an address in the network, as a range of ``ip_key``."""
    try:
        net = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return FALSE
    lo, hi = ip_key(net.network_address), ip_key(net.broadcast_address)
    assert lo is not None and hi is not None
    return IpIn(Col(field, Variant.IP), lo, hi)
