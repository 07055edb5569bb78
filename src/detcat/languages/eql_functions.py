"""EQL function calls: the ones that test a field against constants become
predicates, the others (``length``, ``substring``, arithmetic…) ``Opaque``."""

from __future__ import annotations

from detcat.languages.eql_values import Call, Computed, Field, Group, Lit, Node, Tuple, classify
from detcat.model import Expr, Op, Opaque, Predicate, Reason, or_

# lower-case name -> (op, legacy). op None: the value is a wildcard pattern to classify.
# Legacy functions come from Endgame EQL, which is case-insensitive throughout.
_TESTS: dict[str, tuple[Op | None, bool]] = {
    "wildcard": (None, True),
    "stringcontains": (Op.CONTAINS, False),
    "startswith": (Op.STARTS_WITH, False),
    "endswith": (Op.ENDS_WITH, False),
    "cidrmatch": (Op.CIDR, False),
    "match": (Op.REGEX_MATCH, True),
    "matchlite": (Op.REGEX_MATCH, True),
    "arraycontains": (Op.EQ, True),
}

# EQL function names are case-insensitive; reasons and syntax use one spelling.
_SPELLINGS = [
    "add",
    "arrayContains",
    "arrayCount",
    "arraySearch",
    "between",
    "cidrMatch",
    "concat",
    "divide",
    "endsWith",
    "indexOf",
    "length",
    "match",
    "matchLite",
    "modulo",
    "multiply",
    "number",
    "startsWith",
    "string",
    "stringContains",
    "substring",
    "subtract",
    "wildcard",
]
_SPELLING = {name.lower(): name for name in _SPELLINGS}


def spelling(name: str) -> str:
    return _SPELLING.get(name.lower(), name)


def call_expr(call: Call) -> Expr:
    """A function call used as a condition: ``startsWith~(process.name, "a")``."""
    key = call.name.lower()
    name = spelling(call.name)
    test = _TESTS.get(key)
    if test is None:
        return Opaque(call.text(), Reason.FUNCTION, f"{name}()")
    if not call.args:  # Elasticsearch rejects it; the rest of the query still reads
        return Opaque(call.text(), Reason.SYNTAX_ERROR, f"{name}() without arguments")
    field, *values = call.args
    if (
        not values
        or not isinstance(field, Field)
        or not all(isinstance(v, Lit | Field) for v in values)
    ):
        return Opaque(call.text(), Reason.COMPUTED_VALUE, f"{name}()")
    op, legacy = test
    syntax = f"{name}~()" if call.insensitive else f"{name}()"
    case_sensitive = not (legacy or call.insensitive or op is Op.CIDR)
    if key == "stringcontains":
        # Elasticsearch: an empty substring is in no string (an empty Or is false).
        values = [v for v in values if not (isinstance(v, Lit) and v.value == "")]
    return or_(*(_predicate(field.raw, op, v, syntax, case_sensitive) for v in values))


def _predicate(
    field: str, op: Op | None, arg: Lit | Field, syntax: str, case_sensitive: bool
) -> Predicate:
    if isinstance(arg, Field):
        return Predicate(field, Op.FIELD_REF, arg.raw, syntax, case_sensitive)
    value = arg.value
    if op is None:
        op, value = classify(value) if isinstance(value, str) else (Op.EQ, value)
    return Predicate(field, op, value, syntax, case_sensitive)


def reason(node: Node) -> tuple[Reason, str]:
    """Why a comparison whose operand is ``node`` (not a plain field) is opaque:
    (reason, detail)."""
    if isinstance(node, Call):
        return Reason.COMPUTED_VALUE, f"{spelling(node.name)}()"
    if isinstance(node, Computed):
        return node.reason, node.detail
    if isinstance(node, Tuple):
        return Reason.COMPUTED_VALUE, "list as a value"
    if isinstance(node, Group):
        return Reason.COMPUTED_VALUE, "boolean expression as a value"
    if isinstance(node, Lit):
        return Reason.CONSTANTS, ""
    return Reason.COMPUTED_VALUE, ""
