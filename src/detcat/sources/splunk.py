"""splunk/security_content: ``detections/**/*.yml`` -> ``Rule``.

Each detection's ``search`` is SPL written against search macros (``macros/``)
and lookups (``lookups/``). Macros are expanded textually, as Splunk does,
before the SPL parser sees the search; lookups are resolved by the parser
through ``LookupTables.resolve``. Both folders are read once per ``read()``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from detcat.model import Opaque, Problem, QueryError, Reason, Rule, Stage, and_
from detcat.normalize.fields import DATAMODEL
from detcat.sources import files
from detcat.sources.files import SourceFileError
from detcat.sources.registry import ANY, NO_HINTS, Hints, Vendor, query_rule, tagged
from detcat.sources.splunk_lookups import LookupResolver, LookupTables
from detcat.sources.splunk_macros import Expansion, Macros
from detcat.sources.splunk_macros import texts as _texts
from detcat.tables import EVENT_SOURCES, FIELDS, load

VENDOR = "splunk"
UPSTREAM = "https://github.com/splunk/security_content/blob/develop/"

SplParse = Callable[..., list[Stage]]  # spl.parse(text, *, lookup=resolver)

_SEARCH_KEY = re.compile(r"^search\s*:", re.MULTILINE)


def rule_files(root: Path, include_deprecated: bool = False) -> list[Path]:
    files = sorted((root / "detections").rglob("*.yml"))
    if include_deprecated:
        return files
    return [f for f in files if f.relative_to(root).parts[1:2] != ("deprecated",)]


def read(root: Path, *, include_deprecated: bool = False) -> Iterator[Rule | Problem]:
    root = Path(root)
    yield from prepare(root, include_deprecated=include_deprecated)
    for path in rule_files(root, include_deprecated):
        yield from read_file(path, root)


def prepare(root: Path, *, include_deprecated: bool = False) -> list[Problem]:
    """Read the macros and lookups every detection of ``root`` shares (again, if
    they were read before) and return their problems. ``read_file`` prepares
    a folder on first use by itself; a build calls this once per worker."""
    root = Path(root)
    macros, problems = Macros.load(root / "macros", root)
    lookups, lookup_problems = LookupTables.load(root / "lookups", root)
    _prepared.clear()  # one folder at a time: a build reads one Splunk folder
    support = _Support(macros, lookups, problems + lookup_problems, include_deprecated)
    _prepared[root] = support
    return support.problems


def read_file(path: Path, root: Path) -> list[Rule | Problem]:
    """One detection file: a rule, a problem, or nothing (a deprecated status,
    unless the folder was prepared with ``include_deprecated``)."""
    global _last_used
    _last_used = ()
    root = Path(root)
    rel = path.relative_to(root).as_posix()
    loaded = _load_detection(path, root, rel)
    if isinstance(loaded, Problem):
        return [loaded]
    doc, line = loaded
    if root not in _prepared:
        prepare(root)
    ctx = _prepared[root]
    if not ctx.include_deprecated and str(doc.get("status", "")).lower() == "deprecated":
        return []
    used: set[str] = set()

    def lookup(name: str, key: str, condition: Any) -> tuple[list[str], bool] | None:
        used.add(f"lookup:{name}")
        return ctx.lookups.resolve(name, key, condition)

    ctx.macros.looked_up.clear()
    rule = detection_rule(doc, rel, ctx.macros, lookup, _parser(), search_line=line)
    _last_used = tuple(sorted(used | {f"macro:{m}" for m in ctx.macros.looked_up}))
    return [rule]


_last_used: tuple[str, ...] = ()  # what the last read_file looked up (Splunk.shared_names)


def shared_digest(root: Path, name: str) -> str:
    """A digest of a macro (every arity of the name) or a lookup (its definition
    and CSV bytes) of ``root``; an undefined name has its own constant digest."""
    root = Path(root)
    if root not in _prepared:
        prepare(root)
    ctx = _prepared[root]
    kind, _, key = name.partition(":")
    if kind == "macro":
        return ctx.macro_digest(key)
    d = ctx.lookups.definition(key)
    if d is None:
        return _digest(b"undefined")
    csv = b""
    if d.filename:
        with contextlib.suppress(OSError, SourceFileError):
            csv = files.read_bytes(ctx.lookups.folder / d.filename, root)
    # Sorted, not repr(d): a frozenset's order changes from one process to the next.
    fields = (d.name, d.filename, sorted(d.wildcard_fields), d.case_sensitive,
              d.min_matches, d.max_matches, d.default_match)  # fmt: skip
    return _digest(repr(fields).encode() + b"\0" + csv)


def shared_files(root: Path) -> list[Path] | None:
    """Every file of the macros and lookups folders (``prepare`` reads some of
    them); None when a linked folder there would hide some."""
    out: list[Path] = []
    for folder in (Path(root) / "macros", Path(root) / "lookups"):
        for dirpath, dirnames, filenames in os.walk(folder):
            if any(os.path.islink(os.path.join(dirpath, d)) for d in dirnames):
                return None
            out += [Path(dirpath, f) for f in filenames]
    return sorted(out)


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(slots=True)
class _Support:
    """What the detections of one folder share."""

    macros: Macros
    lookups: LookupTables
    problems: list[Problem]
    include_deprecated: bool = False
    # name -> digest of its definitions, every arity (shared_digest), made on first use
    _macro_digests: dict[str, str] = field(default_factory=dict)

    def macro_digest(self, name: str) -> str:
        if not self._macro_digests:  # one pass over the macros, not one per name asked
            by_name: dict[str, list[tuple[int, tuple[str, ...], str]]] = {}
            for (k, n), m in self.macros.defs.items():
                by_name.setdefault(k, []).append((n, m.args, m.definition))
            self._macro_digests.update(
                (k, _digest(repr(sorted(found)).encode())) for k, found in by_name.items()
            )
        got = self._macro_digests.get(name)
        return got if got is not None else _digest(repr([]).encode())


_prepared: dict[Path, _Support] = {}


def _parser() -> SplParse:
    # Imported late: the parser's grammar loads on first use, not at import time.
    from detcat.languages import spl

    return spl.parse


def _load_detection(
    path: Path, root: Path, rel: str
) -> tuple[dict[str, Any], int | None] | Problem:
    """The YAML document and the file line where its ``search`` starts."""
    try:
        text = files.read_text(path, root)
        doc = files.load_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        msg = " ".join(str(getattr(e, "problem", None) or e).split())
        return Problem(rel, f"malformed YAML: {msg}", line, col, VENDOR)
    except SourceFileError as e:
        return Problem(rel, e.message, e.line, vendor=VENDOR)
    if not isinstance(doc, dict):
        return Problem(rel, "not a detection: the YAML document is not a mapping", vendor=VENDOR)
    key = _SEARCH_KEY.search(text)
    return doc, (text.count("\n", 0, key.start()) + 1 if key else None)


# -- one detection -------------------------------------------------------------


def detection_rule(
    doc: dict[str, Any],
    rel: str,
    macros: Macros,
    lookup: LookupResolver,
    parse: SplParse,
    *,
    search_line: int | None = None,
) -> Rule:
    tags = doc.get("tags") or {}
    search = doc.get("search")
    if not isinstance(tags, dict):  # a list or a string: its ids cannot be told apart
        shape = type(tags).__name__
        tags = {}
    else:
        shape = ""
    rule = Rule(
        vendor=VENDOR,
        id=_text(doc.get("id")),
        title=_text(doc.get("name")),
        source_path=rel,
        language="spl",
        query=search if isinstance(search, str) else "",
        description=_text(doc.get("description")),
        author=_text(doc.get("author")),
        status=_text(doc.get("status")),
        type=_text(doc.get("type")),
        references=_texts(doc.get("references")),
        techniques=[t.upper() for t in _texts(tags.get("mitre_attack_id"))],
        context={"data_source": _texts(doc.get("data_source") or doc.get("data_sources"))},
        extra=_extra(doc, tags),
        upstream_url=UPSTREAM + rel,
    )
    if shape:
        rule.problems.append(_problem(rule, f"tags is a {shape}, not a mapping: ignored"))
    if "datamodel" in doc:
        rule.context["datamodel"] = _texts(doc["datamodel"])
    if not rule.query.strip():
        rule.problems.append(_problem(rule, "detection has no search"))
        return rule
    expansion = macros.expand(rule.query)
    rule.context["macros"] = expansion.macros
    rule.extra["expanded_search"] = expansion.text
    rule.problems.extend(_problem(rule, m) for m in expansion.problems)
    rule.stages = _stages(rule, expansion, lookup, parse, search_line)
    return rule


def _stages(
    rule: Rule, exp: Expansion, lookup: LookupResolver, parse: SplParse, line: int | None
) -> list[Stage]:
    try:
        stages = parse(exp.text, lookup=lookup)
    except QueryError as e:
        # The problem points at the file's search key; the parser's position is
        # within the search after macro expansion, so it goes into the message.
        at = f" at {e.line}:{e.column} of the expanded search" if e.line else ""
        rule.problems.append(_problem(rule, f"parse error{at}: {e.message}", line))
        return [Stage(expr=Opaque(rule.query, Reason.SYNTAX_ERROR, e.message))]
    except Exception as e:  # a parser bug must cost one rule, not the build
        rule.problems.append(_problem(rule, f"parser crashed: {type(e).__name__}: {e}"))
        return [Stage(expr=Opaque(rule.query, Reason.PARSER_FAILURE, type(e).__name__))]
    if exp.opaques:  # undefined macros and cycles: unknown logic, ANDed to the first stage
        stages = stages or [Stage()]
        stages[0].expr = and_(*([stages[0].expr] if stages[0].expr else []), *exp.opaques)
    return stages


def _extra(doc: dict[str, Any], tags: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "version": doc.get("version"),
        "date": _text(doc.get("date")),
        "how_to_implement": _text(doc.get("how_to_implement")),
        "known_false_positives": _text(doc.get("known_false_positives")),
        "analytic_story": _texts(tags.get("analytic_story")),
    }
    for key in ("security_domain", "asset_type", "risk_score", "confidence", "impact"):
        if tags.get(key) is not None:
            extra[key] = tags[key] if isinstance(tags[key], int | float) else _text(tags[key])
    if tags.get("cve"):
        extra["cve"] = _texts(tags["cve"])
    return extra


def _problem(rule: Rule, message: str, line: int | None = None, col: int | None = None) -> Problem:
    return Problem(rule.source_path, message, line, col, VENDOR, rule.id)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


# -- the vendor ---------------------------------------------------------------------


class Splunk(Vendor):
    """splunk/security_content: SPL over CIM data models; scopes and events from
    the data model and the ``data_source`` names."""

    name = VENDOR
    display_name = "Splunk"
    languages = ("spl",)

    read = staticmethod(read)
    rule_files = staticmethod(rule_files)
    read_file = staticmethod(read_file)
    prepare = staticmethod(prepare)
    shared_digest = staticmethod(shared_digest)
    shared_files = staticmethod(shared_files)

    def shared_names(self) -> tuple[str, ...]:
        return _last_used

    def parse_text(self, language: str, text: str) -> list[Rule]:
        """Macros expand as ``read`` expands them, with no definitions at hand: CIM
        utility and ``*_filter`` macros vanish, any other is an Opaque condition."""
        expansion = Macros().expand(text)
        stages = _parser()(expansion.text)
        if expansion.opaques:
            stages = stages or [Stage()]
            first = [stages[0].expr] if stages[0].expr is not None else []
            stages[0].expr = and_(*first, *expansion.opaques)
        return [query_rule(VENDOR, language, stages)]

    reads_rule_file_drafts = True

    def draft_format(self, path: Path, text: str) -> str | None:
        yaml_file = path.suffix.lower() in (".yml", ".yaml")
        return VENDOR if yaml_file and _SEARCH_KEY.search(text) else None

    def read_draft(self, path: Path, text: str) -> list[Rule | Problem]:
        """One detection, its macros undefined and its lookups unknown (as
        ``detcat parse spl`` reads a search)."""
        try:
            doc = files.load_yaml(text)
        except SourceFileError as e:
            return [Problem(str(path), e.message, vendor=VENDOR)]
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
            return [Problem(str(path), f"invalid YAML: {e}", line, col, VENDOR)]
        if not isinstance(doc, dict):
            return [Problem(str(path), "not a detection: the YAML document is not a mapping")]
        key = _SEARCH_KEY.search(text)
        line = text.count("\n", 0, key.start()) + 1 if key else None
        no_lookup: LookupResolver = lambda *_: None  # noqa: E731
        return [detection_rule(doc, str(path), Macros(), no_lookup, _parser(), search_line=line)]

    def scopes(self, rule: Rule, stage: Stage) -> tuple[str, ...]:
        platforms = data_source_platforms(tuple(rule.context.get("data_source") or ()))
        return tagged("datamodel", [stage.params.get("datamodel")])[:-1] + platforms

    def hints(self, rule: Rule, stage: Stage, classes: Sequence[str]) -> Hints:
        return data_source_hints(
            rule.context.get("data_source") or [], stage.params.get("datamodel")
        )

    def event_scopes(
        self, raw: Mapping[str, Sequence[Any]], log_scopes: tuple[str, ...]
    ) -> tuple[str, ...]:
        return (ANY, "platform:windows")  # CIM names of the Windows add-on

    def catalog_event_gates(self, event_id: str) -> tuple[str, ...]:
        return tuple(f"{DATAMODEL}{m}" for m in data_models().get(event_id, ()))


@cache
def _platform_prefixes() -> list[tuple[str, str]]:
    table = load(FIELDS).get(VENDOR, {}).get("platforms", {})
    return sorted(table.items(), key=lambda kv: -len(kv[0]))


@cache
def data_source_platforms(data_sources: tuple[str, ...]) -> tuple[str, ...]:
    """Platform scopes of a search from its data_source names."""
    found: list[str] = []
    for name in data_sources:
        hit = next((p for pre, p in _platform_prefixes() if str(name).startswith(pre)), None)
        if hit:
            found.append(f"platform:{hit}")
    return (*dict.fromkeys(found), ANY)


def _event_sources() -> dict[str, Any]:
    return load(EVENT_SOURCES)[VENDOR]


@cache
def _data_source_patterns() -> list[tuple[re.Pattern[str], dict[str, Any]]]:
    return [(re.compile(e["pattern"]), e) for e in _event_sources()["data_source"]]


@cache
def data_source(name: str) -> Hints:
    for rx, entry in _data_source_patterns():
        m = rx.match(name.strip())
        if m is None:
            continue
        arg = m.group(1) if rx.groups else ""
        # auditd record types: "Linux Auditd Add User" -> ADD_USER
        arg = arg.upper().replace(" ", "_") if entry.get("upper") else arg
        events = tuple(e.replace("{1}", arg) for e in entry.get("events", []))
        return Hints(events, tuple(entry.get("providers", [])))
    return NO_HINTS


@cache
def data_models() -> dict[str, tuple[str, ...]]:
    """Catalog event -> the data models (``Endpoint``, not ``Endpoint.Processes``)
    whose datasets ``event_sources.toml`` fills with it: a Sysmon process event is
    no search's over ``Web`` or ``Risk``. Models, not datasets: a search over a
    whole model reads every dataset's events."""
    out: dict[str, dict[str, None]] = {}
    for dataset, events in _event_sources()["datamodel"].items():
        for event in events:
            out.setdefault(event, {})[dataset.split(".", 1)[0]] = None
    return {event: tuple(models) for event, models in out.items()}


def data_source_hints(data_sources: Iterable[str], datamodel: str | None) -> Hints:
    implied: list[str] = []
    providers: list[str] = []
    for name in data_sources:
        # "Sysmon EventID 1 AND Sysmon EventID 3" names two sources
        for part in re.split(r"\s+AND\s+", str(name)):
            hint = data_source(part)
            implied.extend(hint.implied)
            providers.extend(hint.providers)
    if not implied and datamodel:
        implied.extend(_event_sources()["datamodel"].get(datamodel, []))
    return Hints(tuple(dict.fromkeys(implied)), tuple(dict.fromkeys(providers)))
