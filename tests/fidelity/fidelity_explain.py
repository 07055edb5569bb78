"""Suspects, and ``explain``: how a round-trip disagreement gets its classes.

``explain`` applies the equivalence of encoded values, then the backend-defect
classes of ``fidelity_classes`` (which settle what they explain), then labels
what remains with a **suspect**: a known difference where detcat's reading is in
question (a parser limitation or a disputed language rule). A suspect only
labels a disagreement; it still counts against the target.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from fidelity_classes import ALL_TARGETS, DEFECTS, Explanation
from fidelity_equivalences import encodings_equivalent

from detcat.model import Reason

if TYPE_CHECKING:
    from fidelity_oracle import Comparison


def _macro_in_quotes(c: Comparison) -> bool:
    """Splunk: "Macros inside of quoted values are not expanded" (Knowledge Manager
    Manual, "Use search macros in searches"). detcat's macro expansion
    (sources/splunk.py, ``_expand_in_string``) expands a backquoted word inside a
    quoted value, so ``"*I`E`X*"`` reads ``*IX*`` plus Opaque "undefined macro E"."""
    quoted = re.search(r'"[^"\n]*`[^"\n`]+`[^"\n]*"', c.query)
    return bool(quoted) and any(r.startswith(Reason.UNRESOLVED_MACRO) for r in c.opaque)


def _escaped_wildcard(c: Comparison) -> bool:
    literal = any(k.op != "wildcard" and ("*" in k.value or "?" in k.value) for k in c.missing)
    escaped = any("\\*" in k.value or "\\?" in k.value or k.value.endswith("\\")
                  for k in c.extra)  # fmt: skip
    return literal or escaped


def _value_vocabulary(c: Comparison) -> bool:
    fields = {(k.field, k.op, k.negated) for k in c.missing}
    return any((k.field, k.op, k.negated) in fields for k in c.extra)


def _crash(c: Comparison) -> bool:
    return c.error.startswith("parser crashed")


SUSPECTS = [
    Explanation(
        "splunk source: macro expanded inside a quoted value",
        frozenset({"splunk", "splunk_data_model"}),
        _macro_in_quotes,
    ),
    Explanation(
        "eql parser: escaped wildcard read as backslash + wildcard",
        frozenset({"eql"}),
        _escaped_wildcard,
    ),
    Explanation("parser crash", ALL_TARGETS, _crash),
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
