"""splunk/security_content: ``detections/**/*.yml`` -> ``Rule``.

Each detection's ``search`` is SPL written against search macros (``macros/``)
and lookups (``lookups/``). Macros are expanded textually, as Splunk does,
before the SPL parser sees the search; lookups are resolved by the parser
through ``LookupTables.resolve``. Both folders are read once per ``read()``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from detcat.model import Opaque, Problem, QueryError, Reason, Rule, Stage, and_
from detcat.sources import files
from detcat.sources.files import SourceFileError
from detcat.sources.registry import ANY, NO_HINTS, Hints, Vendor, query_rule, tagged
from detcat.sources.splunk_lookups import LookupResolver, LookupTables
from detcat.tables import EVENT_SOURCES, FIELDS, SPL, load

VENDOR = "splunk"
UPSTREAM = "https://github.com/splunk/security_content/blob/develop/"

SplParse = Callable[..., list[Stage]]  # spl.parse(text, *, lookup=resolver)

_SEARCH_KEY = re.compile(r"^search\s*:", re.MULTILINE)

# CIM / utility macros that shape output but never filter events (data/spl.toml).
NO_FILTER_MACROS = frozenset(load(SPL)["macros"]["no_filter"])


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
    return [detection_rule(doc, rel, ctx.macros, ctx.lookups.resolve, _parser(), search_line=line)]


@dataclass(slots=True)
class _Support:
    """What the detections of one folder share."""

    macros: Macros
    lookups: LookupTables
    problems: list[Problem]
    include_deprecated: bool = False


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


def _texts(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [s for s in (_text(v) for v in items) if s]


def _support_problem(path: Path, root: Path, message: str, line: int | None = None) -> Problem:
    return Problem(path.relative_to(root).as_posix(), message, line, vendor=VENDOR)


def _brief(e: Exception) -> str:
    """An exception in one short line (messages may quote the file)."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:200]}"


# -- macros -------------------------------------------------------------------------

_SPECIAL = re.compile(r'```|\\.|["`]', re.DOTALL)
_QUOTED_CALL = re.compile(r"`([A-Za-z0-9_.:-]+(?:\([^`]*\))?)`")
_GROUP_START = re.compile(r"(?:^|(?<=[\s(]))(?:NOT\s*)?\($", re.IGNORECASE)
_EMPTY_GROUP_END = re.compile(r"\s*\)")
_EMPTY_PIPE = re.compile(r"\|\s+(?=\|)")  # "a | | b" left by an empty expansion
_CALL = re.compile(r"\s*([A-Za-z0-9_.:-]+)\s*(?:\((.*)\))?\s*", re.DOTALL)
_STANZA = re.compile(r"(.+?)\((\d+)\)")  # macros.conf stanza spelling: name(2)


@dataclass(frozen=True, slots=True)
class Macro:
    name: str
    args: tuple[str, ...]
    definition: str


@dataclass(slots=True)
class Expansion:
    """A search with its macros expanded, and what the expansion met on the way."""

    text: str = ""
    macros: list[str] = field(default_factory=list)  # names used, nested ones too
    opaques: list[Opaque] = field(default_factory=list)  # undefined macros, cycles
    problems: list[str] = field(default_factory=list)
    calls: int = 0  # macro calls expanded so far
    size: int = 0  # characters produced by them
    over_budget: bool = False


# Macros that call others several times grow exponentially (30 levels of two
# calls each: a billion). Upstream, a detection expands at most 16 calls and
# 4,600 characters (measured): these budgets are generous and bound the work.
MAX_MACRO_CALLS = 1_000
MAX_MACRO_NESTING = 50
MAX_EXPANDED_CHARS = 1_000_000


@dataclass(slots=True)
class Macros:
    """Search macros keyed by (name, number of arguments), as Splunk keys them."""

    defs: dict[tuple[str, int], Macro] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path, root: Path | None = None) -> tuple[Macros, list[Problem]]:
        """Every macro file of ``folder``; a bad one is a problem, whatever is wrong.
        Paths in problems are relative to ``root`` (default: the folder's parent)."""
        root = root or folder.parent
        macros, problems = cls(), []
        for path in sorted(folder.glob("*.yml")) if folder.is_dir() else ():
            try:
                macros.add(files.load_yaml(files.read_text(path, root)))
            except SourceFileError as e:
                problems.append(_support_problem(path, root, e.message, e.line))
            except Exception as e:  # YAML errors, wrong shapes: one macro, not the vendor
                problems.append(_support_problem(path, root, f"bad macro: {_brief(e)}"))
        return macros, problems

    def add(self, d: Any) -> None:
        if not isinstance(d, dict):
            raise TypeError("the document is not a mapping")
        if not isinstance(d.get("arguments") or [], list):
            raise TypeError("arguments is not a list")
        name, args = str(d["name"]).strip(), tuple(_texts(d.get("arguments")))
        if stanza := _STANZA.fullmatch(name):  # "name(n)" with the arity in the name
            name = stanza.group(1)
            args = args or tuple(f"arg{i + 1}" for i in range(int(stanza.group(2))))
        self.defs[(name, len(args))] = Macro(name, args, str(d.get("definition") or ""))

    def expand(self, search: str) -> Expansion:
        exp = Expansion()
        exp.text = self._expand(search, (), exp)
        return exp

    def _expand(self, text: str, stack: tuple[str, ...], exp: Expansion) -> str:
        """Replace every `macro` outside ```comments```. A lone backtick inside a
        quoted string is literal (``split(x, "`")``), yet Splunk does expand a
        whole macro call inside one (``map search="search `sysmon` …"``)."""
        out: list[str] = []
        pos = 0
        while (m := _SPECIAL.search(text, pos)) is not None:
            out.append(text[pos : m.start()])
            token, start = m.group(), m.start()
            if token == "`" and (end := text.find("`", start + 1)) >= 0:
                body = self._call(text[start + 1 : end], stack, exp)
                out, pos = _splice(out, body, text, end + 1)
                continue
            if token == '"':
                end = _string_end(text, start)
                out.append(self._expand_in_string(text[start:end], stack, exp))
            elif token == "```":
                end = text.find("```", start + 3)
                end = len(text) if end < 0 else end + 3
                out.append(text[start:end])
            else:  # an escaped character, or a lone backtick the parser will report
                end = m.end()
                out.append(token)
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def _expand_in_string(self, quoted: str, stack: tuple[str, ...], exp: Expansion) -> str:
        if "`" not in quoted:
            return quoted
        text = _QUOTED_CALL.sub(lambda c: self._call(c.group(1), stack, exp), quoted)
        return _EMPTY_PIPE.sub("", text) if text != quoted else text

    def _call(self, ref: str, stack: tuple[str, ...], exp: Expansion) -> str:
        call = _CALL.fullmatch(ref)
        if call is None:
            exp.opaques.append(Opaque(f"`{ref}`", Reason.UNRESOLVED_MACRO, "malformed reference"))
            return ""
        name, args = call.group(1), _split_args(call.group(2))
        macro = self.defs.get((name, len(args)))
        if macro is None:
            return _undefined(name, ref, exp)
        _note(exp.macros, name)
        if name in stack:
            exp.problems.append("macro cycle: " + " -> ".join((*stack, name)))
            exp.opaques.append(Opaque(f"`{ref}`", Reason.UNRESOLVED_MACRO, "cycle"))
            return ""
        if not _within_budget(exp, ref, len(stack), len(macro.definition)):
            return ""
        body = macro.definition
        for param, value in zip(macro.args, args, strict=True):
            body = body.replace(f"${param}$", value)
        return self._expand(body, (*stack, name), exp)


def _within_budget(exp: Expansion, ref: str, nesting: int, size: int) -> bool:
    """Count one more call; past a budget, stop expanding (once reported): the
    rest of the search is unknown logic, an Opaque node."""
    exp.calls += 1
    exp.size += size
    if exp.over_budget:
        return False
    if exp.calls > MAX_MACRO_CALLS or nesting >= MAX_MACRO_NESTING or exp.size > MAX_EXPANDED_CHARS:
        exp.over_budget = True
        exp.problems.append(
            f"macro expansion stopped at `{ref[:80]}`: over {MAX_MACRO_CALLS:,} calls, "
            f"{MAX_MACRO_NESTING} levels or {MAX_EXPANDED_CHARS:,} characters"
        )
        exp.opaques.append(Opaque(f"`{ref}`", Reason.UNRESOLVED_MACRO, "expansion over budget"))
        return False
    return True


def _undefined(name: str, ref: str, exp: Expansion) -> str:
    """Upstream leaves every detection's ``<name>_filter`` undefined on purpose (an
    empty customer hook); CIM utility macros do not filter; anything else is
    unknown logic that must show up as Opaque."""
    if name.endswith("_filter"):
        return ""
    _note(exp.macros, name)
    if name not in NO_FILTER_MACROS:
        exp.opaques.append(Opaque(f"`{ref}`", Reason.UNRESOLVED_MACRO, f"{name} undefined"))
    return ""


def _splice(out: list[str], body: str, text: str, after: int) -> tuple[list[str], int]:
    """Append a macro's expansion and return where to continue in ``text``. An
    empty expansion must not leave an empty command or group behind:
    ``a | `x_filter` | b`` reads ``a | b``, ``a NOT (`undefined`) b`` reads
    ``a  b`` (the undefined macro is reported as Opaque separately)."""
    if body.strip():
        out.append(body)
        return out, after
    done = "".join(out).rstrip()
    if done.endswith("|") and _next_is_pipe_or_end(text, after):
        return [done[:-1].rstrip()], after
    close, group = _EMPTY_GROUP_END.match(text, after), _GROUP_START.search(done)
    if close and group:  # a search group, not a function call such as coalesce()
        return [done[: group.start()]], close.end()
    out.append(body)
    return out, after


def _next_is_pipe_or_end(text: str, pos: int) -> bool:
    while True:
        rest = text[pos:].lstrip()
        if rest.startswith("```"):  # look past comments, which the parser drops
            end = rest.find("```", 3)
            if end < 0:
                return True
            pos = len(text) - len(rest) + end + 3
            continue
        return rest == "" or rest[0] in "|]"


def _string_end(text: str, start: int) -> int:
    """Index just past the double-quoted string opening at ``start``."""
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == '"':
            return i + 1
        else:
            i += 1
    return len(text)


def _split_args(text: str | None) -> list[str]:
    """Macro arguments: commas at depth 0 outside quotes separate them."""
    if text is None or not text.strip():
        return []
    args, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            i = _string_end(text, i)
            continue
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
        i += 1
    args.append(text[start:].strip())
    return args


def _note(names: list[str], name: str) -> None:
    if name not in names:
        names.append(name)


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
