"""Splunk search macros (``macros/*.yml``): read, and expanded textually in a
search as Splunk expands them, before the SPL parser sees it.

A detection's expansion records every macro name it asked for (``Macros.looked_up``),
defined or not: what the build cache must watch for that detection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detcat.model import Opaque, Problem, Reason
from detcat.sources import files
from detcat.sources.files import SourceFileError
from detcat.tables import SPL, load

# CIM / utility macros that shape output but never filter events (data/spl.toml).
NO_FILTER_MACROS = frozenset(load(SPL)["macros"]["no_filter"])


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
    # Every name a call asked for since cleared, defined or not (``_filter`` hooks
    # too): what a detection's expansion depends on.
    looked_up: set[str] = field(default_factory=set)

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
        name, args = str(d["name"]).strip(), tuple(texts(d.get("arguments")))
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
        self.looked_up.add(name)
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


def texts(value: Any) -> list[str]:
    """A YAML value as a list of non-empty stripped strings (None: none)."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [s for s in (str(v).strip() for v in items if v is not None) if s]


def _support_problem(path: Path, root: Path, message: str, line: int | None = None) -> Problem:
    return Problem(path.relative_to(root).as_posix(), message, line, vendor="splunk")


def _brief(e: Exception) -> str:
    """An exception in one short line (messages may quote the file)."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:200]}"
