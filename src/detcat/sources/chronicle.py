"""Google SecOps (Chronicle) detection rules: ``rules/**/*.yaral`` -> ``Rule``.

Each file holds one or more YARA-L 2.0 rules (``languages/yaral.py``); the rule
name is the id. ATT&CK techniques come in several meta spellings, all taken:
``technique = "T1003.001"``, ``mitre_attack_url = ".../techniques/T1078/004/"``,
``mitre_attack_technique`` holding an id or a *name* (names go to
``context["technique_names"]``; the catalog maps them through ATT&CK), and the
older ``mitre = "execution, t1059"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from detcat.languages.yaral import MetaValue, YaraLRule, parse_rules
from detcat.model import Opaque, Problem, QueryError, Reason, Rule, Stage, positive_values
from detcat.sources import files
from detcat.sources.files import SourceFileError
from detcat.sources.registry import Hints, Vendor, tagged
from detcat.tables import EVENT_SOURCES, load

VENDOR = "chronicle"
UPSTREAM = "https://github.com/chronicle/detection-rules/blob/main/"
DEPRECATED_DIR = "_deprecated"

_TECHNIQUE_ID = re.compile(r"\bT\d{4}(?:\.\d{3})?\b", re.IGNORECASE)
_TECHNIQUE_URL = re.compile(
    r"attack\.mitre\.org/(?:versions/[^/]+/)?techniques/(T\d{4})(?:/(\d{3}))?"
)
# Meta keys whose values name techniques by id (`mitre` also lists tactics: ignored).
_TECHNIQUE_KEYS = re.compile(r"technique|^mitre(_attack)?$", re.IGNORECASE)
_NAME_KEY = "mitre_attack_technique"
_CONTEXT_META = ("data_source", "platform", "product", "service", "category")


def rule_files(root: Path, include_deprecated: bool = False) -> list[Path]:
    files = sorted((root / "rules").rglob("*.yaral"))
    return [f for f in files if include_deprecated or not _deprecated(f, root)]


def read(root: Path, *, include_deprecated: bool = False) -> Iterator[Rule | Problem]:
    for path in rule_files(root, include_deprecated):
        yield from read_file(path, root)


def _deprecated(path: Path, root: Path) -> bool:
    return DEPRECATED_DIR in path.relative_to(root).parts


def read_file(path: Path, root: Path) -> Iterator[Rule | Problem]:
    """The rules of one file; a file that does not parse is one rule with a problem."""
    rel = path.relative_to(root).as_posix()
    deprecated = _deprecated(path, root)
    try:
        text = files.read_text(path, root)
    except SourceFileError as e:
        yield Problem(rel, e.message, e.line, vendor=VENDOR)
        return
    try:
        parsed = parse_rules(text)
    except QueryError as e:
        yield broken_rule(text, rel, e, deprecated=deprecated)
        return
    except Exception as e:  # a parser bug must not cost the vendor's other rules
        failure = QueryError(f"yaral parser failed: {type(e).__name__}: {e}")
        yield broken_rule(text, rel, failure, deprecated=deprecated)
        return
    for yrule in parsed:
        yield build_rule(yrule, rel, deprecated=deprecated)


def build_rule(y: YaraLRule, rel: str, *, deprecated: bool = False) -> Rule:
    meta = y.meta
    rule = Rule(
        vendor=VENDOR,
        id=y.name,
        title=_text(meta.get("rule_name")) or y.name,
        source_path=rel,
        language="yaral",
        query=y.text,
        description=_text(meta.get("description")),
        author=_text(meta.get("author")),
        status="deprecated" if deprecated else _text(meta.get("status")),
        severity=_text(meta.get("severity")).lower(),
        type=_text(meta.get("type")).lower(),
        references=_references(y.meta_items),
        tags=_split(_values(y.meta_items, "tags")),
        stages=y.stages,
        upstream_url=UPSTREAM + quote(rel),
    )
    rule.techniques, names = techniques(y.meta_items)
    if names:
        rule.context["technique_names"] = names
    rule.context["event_types"] = field_values(y.stages, "metadata.event_type")
    rule.context["log_types"] = field_values(y.stages, "metadata.log_type")
    rule.context.update({k: _text(meta[k]) for k in _CONTEXT_META if k in meta})
    rule.extra = _extra(y)
    return rule


def broken_rule(text: str, rel: str, err: QueryError, *, deprecated: bool = False) -> Rule:
    """A file that does not parse: name and meta read line by line, an Opaque stage."""
    name = re.search(r"\brule\s+([^\s{]+)", text)
    start = name.start() if name else 0
    head = text[start : text.find("events:", start) if "events:" in text else len(text)]
    meta: list[tuple[str, MetaValue]] = [
        (k, v) for k, v in re.findall(r'^\s*(\w+)\s*=\s*"(.*)"\s*$', head, re.MULTILINE)
    ]
    y = YaraLRule(name=name.group(1) if name else Path(rel).stem, meta_items=meta)
    y.meta = dict(reversed(meta))  # first value of each key wins, as in the parser
    y.text = text[start:]
    y.stages = [Stage(expr=Opaque(y.text, Reason.SYNTAX_ERROR, err.message))]
    rule = build_rule(y, rel, deprecated=deprecated)
    rule.problems.append(Problem(rel, err.message, err.line, err.column, VENDOR, rule.id))
    return rule


def techniques(meta: Iterable[tuple[str, MetaValue]]) -> tuple[list[str], list[str]]:
    """(technique ids, technique names) named by the meta section, in file order."""
    ids: list[str] = []
    names: list[str] = []
    for key, value in meta:
        if not isinstance(value, str):
            continue
        for tech, sub in _TECHNIQUE_URL.findall(value):
            ids.append(f"{tech}.{sub}" if sub else tech)
        if not _TECHNIQUE_KEYS.search(key) or "url" in key.lower():
            continue
        found = _TECHNIQUE_ID.findall(value)
        ids.extend(found)
        if key.lower() == _NAME_KEY and not found:
            names.extend(n.strip() for n in value.split(",") if n.strip())
    return list(dict.fromkeys(i.upper() for i in ids)), list(dict.fromkeys(names))


def field_values(stages: list[Stage], field_raw: str) -> list[str]:
    """Text values a rule requires of one field: non-negated ``eq`` predicates, in order."""
    want = lambda p: p.field_raw == field_raw and isinstance(p.value, str)  # noqa: E731
    return list(dict.fromkeys(v for s in stages for v in positive_values(s.expr, want)))


def _text(value: MetaValue | None) -> str:
    return "" if value is None else str(value).strip()


def _values(meta: Iterable[tuple[str, MetaValue]], *keys: str) -> list[str]:
    return [_text(v) for k, v in meta if k.lower() in keys and _text(v)]


def _split(values: list[str]) -> list[str]:
    return list(dict.fromkeys(p.strip() for v in values for p in v.split(",") if p.strip()))


def _references(meta: Iterable[tuple[str, MetaValue]]) -> list[str]:
    """`reference`, `references`, `reference1`…; comma-separated URL lists are split."""
    refs: list[str] = []
    for key, value in meta:
        if re.fullmatch(r"references?\d*", key.lower()) and _text(value):
            parts = [p.strip() for p in _text(value).split(",")]
            urls = all(p.startswith(("http://", "https://")) for p in parts)
            refs.extend(parts if urls else [_text(value)])
    return list(dict.fromkeys(refs))


def _extra(y: YaraLRule) -> dict[str, Any]:
    extra: dict[str, Any] = {"meta": dict(y.meta)}
    false_positives = _values(y.meta_items, "false_positives", "falsepositives")
    if false_positives:
        extra["false_positives"] = false_positives
    tactics = _split(_values(y.meta_items, "mitre_attack_tactic", "tactic"))
    if tactics:
        extra["tactics"] = tactics
    for key in ("match", "outcome", "condition", "options"):
        value = getattr(y, key)
        if value:
            extra[key] = value
    return extra


# -- the vendor ---------------------------------------------------------------------

UDM_EVENT_TYPE = "metadata.event_type"
_RULE_HEAD = re.compile(r"^\s*rule\s+[\w.-]+\s*\{", re.MULTILINE)


class Chronicle(Vendor):
    """Google SecOps YARA-L rules over UDM: scopes and events from the UDM event
    types a stage tests (else those the rule declares)."""

    name = VENDOR
    display_name = "Google SecOps"
    languages = ("yaral",)
    language_engines = {"yaral": "windows"}
    dotted_event_names = True

    read = staticmethod(read)
    rule_files = staticmethod(rule_files)
    read_file = staticmethod(read_file)

    def parse_text(self, language: str, text: str) -> list[Rule]:
        try:
            parsed = parse_rules(text)
        except QueryError as strict:
            # Generated rules (pySigma's SecOps backend) carry known flaws the lenient
            # grammar accepts; hand-written text that fails both reports the strict error.
            try:
                parsed = parse_rules(text, lenient=True)
            except QueryError:
                raise strict from None
        if not parsed:
            raise QueryError("no YARA-L rule in the text", 1, 1)
        return [build_rule(y, "<query>") for y in parsed]

    def draft_format(self, path: Path, text: str) -> str | None:
        return "yaral" if path.suffix.lower() == ".yaral" or _RULE_HEAD.search(text) else None

    def scopes(self, rule: Rule, stage: Stage) -> tuple[str, ...]:
        return tagged("event", udm_event_types(rule, stage))

    def hints(self, rule: Rule, stage: Stage, classes: Sequence[str]) -> Hints:
        types = list(classes) or list(rule.context.get("event_types") or [])
        provider = load(EVENT_SOURCES)[VENDOR]["event_type_provider"]
        return Hints(tuple(f"{provider}:{t}" for t in types))

    def event_scopes(
        self, raw: Mapping[str, Sequence[Any]], log_scopes: tuple[str, ...]
    ) -> tuple[str, ...]:
        return tagged("event", raw.get(UDM_EVENT_TYPE, ()))


def udm_event_types(rule: Rule, stage: Stage) -> list[str]:
    """The UDM event types a stage filters on, else those the rule declares."""
    found = positive_values(stage.expr, lambda p: p.field_raw == UDM_EVENT_TYPE)
    if found:
        return [str(v) for v in found]
    declared = rule.context.get("event_types") or []
    return [str(v) for v in declared]
