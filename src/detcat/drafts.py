"""A user's draft rule file -> the Rules the catalog would hold for it, and where
things are in the file.

``detcat lint`` reads drafts exactly as the build reads the corpora: Sigma,
Elastic and YARA-L files through their sources' readers, a Splunk detection
through ``splunk.detection_rule`` (with no macro or lookup definitions at hand,
as ``detcat parse spl`` does), a bare query through ``detcat.parse``. Every rule
is then normalized by ``normalize_rule``. Nothing here interprets the rules: the
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

import yaml

from detcat.errors import DetcatError
from detcat.model import Opaque, Predicate, Problem, QueryError, Rule
from detcat.parse import languages, parse_rules

# Whole-rule file formats read here besides ``detcat.parse``'s languages (which
# cover Sigma and YARA-L rules and bare kql/eql/esql/spl queries).
RULE_FILES = ("elastic", "splunk")


def formats() -> tuple[str, ...]:
    """Every value ``--language`` accepts."""
    return tuple(dict.fromkeys((*languages(), *RULE_FILES)))


_YARAL_HEAD = re.compile(r"^\s*rule\s+[\w.-]+\s*\{", re.MULTILINE)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
    elif fmt == "elastic":
        _read_elastic(draft, Path(path))
    elif fmt == "splunk":
        _read_splunk(draft)
    else:
        raise DraftError(f"unknown draft format {fmt!r} (one of {', '.join(formats())})")
    return draft


def detect_format(path: Path, text: str) -> str:
    """The format of a draft from its suffix and top-level keys."""
    suffix = path.suffix.lower()
    if suffix == ".toml":
        return "elastic"
    if suffix == ".yaral" or _YARAL_HEAD.search(text):
        return "yaral"
    if suffix in (".yml", ".yaml"):
        keys = set(re.findall(r"^([A-Za-z_][\w-]*)\s*:", text, re.MULTILINE))
        if keys & {"detection", "correlation"}:
            return "sigma"
        if "search" in keys:
            return "splunk"
        raise DraftError(
            f"{path}: YAML with neither 'detection' (Sigma) nor 'search' (Splunk)", path=str(path)
        )
    raise DraftError(
        f"{path}: cannot tell the rule format from the file; pass --language "
        f"({', '.join(languages())}) for a bare query",
        path=str(path),
    )


def _read_query(draft: Draft) -> None:
    """Sigma and YARA-L rules and bare queries, through ``detcat.parse``."""
    try:
        draft.rules = parse_rules(draft.format, draft.text)
    except QueryError as e:
        draft.problems.append(Problem(draft.path, e.message, e.line, e.column))
    for rule in draft.rules:
        rule.source_path = draft.path
        draft.problems += rule.problems


def _read_elastic(draft: Draft, path: Path) -> None:
    from detcat.normalize import normalize_rule
    from detcat.sources import elastic

    got = elastic.read_file(path.resolve(), path.resolve().parent)
    if isinstance(got, Problem):
        draft.problems.append(got)
        return
    normalize_rule(got)
    draft.rules = [got]
    draft.problems += got.problems


def _read_splunk(draft: Draft) -> None:
    from detcat.languages import spl
    from detcat.normalize import normalize_rule
    from detcat.sources import splunk

    try:
        doc = yaml.load(draft.text, Loader=_LOADER)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        draft.problems.append(Problem(draft.path, f"invalid YAML: {e}", line, col))
        return
    line = _line_of(draft.text, re.search(r"^search\s*:", draft.text, re.MULTILINE))
    rule = splunk.detection_rule(
        doc, draft.path, splunk.Macros(), _no_lookup, spl.parse, search_line=line
    )
    normalize_rule(rule)
    draft.rules = [rule]
    draft.problems += rule.problems


def _no_lookup(*_: object) -> None:
    """Lookup tables are not at hand for a draft: their content stays unknown."""
    return None


def _line_of(text: str, m: re.Match[str] | None) -> int | None:
    return text.count("\n", 0, m.start()) + 1 if m else None


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
