"""A user's draft rule file -> the Rules the catalog would hold for it, and where
things are in the file.

``detcat lint`` reads drafts exactly as the build reads the corpora: the vendor
that recognizes the file (``Vendor.draft_format``) reads it, a whole rule in a
language (Sigma, YARA-L) through ``detcat.parse``, a rule file (Elastic TOML, a
Splunk detection, with no macro or lookup definitions at hand) through
``Vendor.read_draft``; a bare query through ``detcat.parse``. Every rule is then
normalized by ``normalize_rule``. Nothing here interprets the rules: the
analytics above get canonical Rules plus the text to point into.

Positions: parsers keep none for predicates, so ``locate`` finds a predicate's
field (and, after it, its value) in the text from where the query starts. It is
a search, not a parse: a field written twice points at the occurrence followed by
the value, and a value the vendor spells with escapes points at the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from detcat.errors import DetcatError
from detcat.model import Opaque, Predicate, Problem, QueryError, Rule
from detcat.parse import languages, parse_rules
from detcat.sources import registry


def formats() -> tuple[str, ...]:
    """Every value ``--language`` accepts: the query languages, and the vendors
    whose rule files are read whole (``Vendor.read_draft``)."""
    files = (v.name for v in registry.vendors() if v.reads_rule_file_drafts)
    return tuple(dict.fromkeys((*languages(), *files)))


class DraftError(DetcatError):
    """A draft detcat cannot even classify (unknown format, unreadable file)."""


@dataclass
class Draft:
    """One draft file: its text, format, rules (normalized) and reading problems."""

    path: str
    text: str
    format: str
    rules: list[Rule] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def read_draft(path: Path, language: str | None = None) -> Draft:
    """Read and normalize one draft; ``language`` forces a bare query (or a whole
    Sigma / YARA-L rule) in that language. Raises ``DraftError`` when the file
    cannot be read or its format cannot be told."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DraftError(f"cannot read {path}: {e}", path=str(path)) from None
    fmt = language or detect_format(Path(path), text)
    draft = Draft(str(path), text, fmt)
    if fmt in languages():
        _read_query(draft)
    elif fmt in formats():
        _read_rule_file(draft, registry.get(fmt).read_draft(Path(path), text))
    else:
        raise DraftError(f"unknown draft format {fmt!r} (one of {', '.join(formats())})")
    return draft


def detect_format(path: Path, text: str) -> str:
    """The format of a draft, as the first vendor that recognizes it says."""
    for vendor in registry.vendors():
        fmt = vendor.draft_format(path, text)
        if fmt:
            return fmt
    raise DraftError(
        f"{path}: cannot tell the rule format from the file; pass --language "
        f"({', '.join(languages())}) for a bare query",
        path=str(path),
    )


def _read_query(draft: Draft) -> None:
    """Whole rules in a language (Sigma, YARA-L) and bare queries, through
    ``detcat.parse``."""
    try:
        draft.rules = parse_rules(draft.format, draft.text)
    except QueryError as e:
        draft.problems.append(Problem(draft.path, e.message, e.line, e.column))
    for rule in draft.rules:
        rule.source_path = draft.path
        draft.problems += rule.problems


def _read_rule_file(draft: Draft, items: list[Rule | Problem]) -> None:
    from detcat.normalize import normalize_rule

    for item in items:
        if isinstance(item, Problem):
            draft.problems.append(item)
            continue
        normalize_rule(item)
        draft.rules.append(item)
        draft.problems += item.problems


# -- positions -------------------------------------------------------------------------


def query_offset(text: str, rule: Rule) -> int:
    """Where the rule's query starts in the file (0 when it cannot be found)."""
    first = next((ln.strip() for ln in rule.query.splitlines() if ln.strip()), "")
    at = text.find(first) if first else -1
    return max(at, 0)


def position(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a character offset."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def locate(
    text: str, start: int, node: Predicate | Opaque, at_field: bool = False
) -> tuple[int, int]:
    """Best (line, column) of a predicate's value (its field with ``at_field``,
    or when the value is not found) or of an opaque part."""
    if isinstance(node, Opaque):
        return position(text, _find(text, node.text.strip()[:80], start, 0))
    fld = node.field_raw or ""
    value = "" if node.value is None or isinstance(node.value, bool) else str(node.value)
    # the field as a whole name, or after a YARA-L event variable ($e.field)
    pattern = rf"(?<![\w.])(?:\$\w+\.)?({re.escape(fld)})(?![\w])"
    spots = [m.start(1) for m in re.finditer(pattern, text)] if fld else []
    spots = [s for s in spots if s >= start] or spots
    if value:
        low, folded = text.casefold(), value.casefold()
        for s in spots:
            v = low.find(folded, s)
            if 0 <= v < next((t for t in spots if t > s), len(text)):
                return position(text, s if at_field else v)
        if not spots:
            return position(text, _find(text, value, start, start))
    return position(text, spots[0] if spots else start)


def _find(text: str, needle: str, start: int, default: int) -> int:
    if not needle:
        return default
    at = text.casefold().find(needle.casefold(), start)
    return at if at >= 0 else default
