"""The comparison vocabulary of the round-trip oracle and its equivalences.

A reading is reduced to a set of ``Key`` = (canonical field, op, case-folded value,
negated). The **equivalences** here (``same_meaning``, ``match_all``,
``encodings_equivalent``, ``logsource_added``) are the same meaning spelled two
ways; they are applied before any difference is explained, and each application
is counted in the round-trip report. The backend-defect classes that explain what
still differs live in ``fidelity_classes``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple

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
# EQL backend writes "\/" for "/", YARA-L needs "\/" inside /…/ literals. Escapes
# pair up from the left: in "\\\\-" the backslash is escaped and "-" is plain.
_NEEDLESS_ESCAPE = re.compile(r"""(?<!\\)((?:\\\\)*)\\([/"'`:;,=@%!#&~<> -])""")


SUBSTRING_OPS = ("contains", "starts_with", "ends_with")


def same_meaning(k: Key) -> Key:
    """One spelling per meaning: ``not is_null`` is ``exists`` (which has no value),
    and so is a substring test of the empty string (ES|QL ``starts_with(f, "")``);
    a regex without needless escapes."""
    if k.op == "is_null":
        return Key(k.field, "exists", "", not k.negated)
    if k.op == "exists" or (k.op in SUBSTRING_OPS and k.value == ""):
        return Key(k.field, "exists", "", k.negated)
    if k.op == "regex_match":
        # A leading (?i) is the comparison's case rule, which keys do not carry.
        value = k.value[4:] if k.value.startswith("(?i)") else k.value
        return k._replace(value=_NEEDLESS_ESCAPE.sub(r"\1\2", value))
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
    """Remove each decoded Sigma value with the encoded target values it stands for
    (the decoded value may also be written plainly elsewhere in the rule, so it is
    looked up in the whole Sigma reading)."""
    table = encoded_values(c.rule.doc) if c.extra else {}
    hit = False
    for m in sorted(c.missing | c.ours):
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
    """Target conditions on a logsource field the Sigma rule itself does not test,
    or tests only in an exclusion (``not Channel: [...]`` beside the pipeline's
    ``winlog.channel == "System"`` for ``service: system``)."""
    fields = LOGSOURCE_FIELDS.get(target, frozenset()) - {k.field for k in ours if not k.negated}
    return {k for k in extra if k.field in fields and not k.negated}
