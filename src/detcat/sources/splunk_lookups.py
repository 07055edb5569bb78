"""Splunk lookup tables: resolve ``| lookup L key AS f OUTPUT out | search out=…``.

A lookup followed by a filter on one of its output fields keeps only the events
whose input field matches a CSV row that satisfies the filter. Where the CSV is
part of the repository we evaluate the filter against every row and hand the
parser the key column's values of the rows that pass: these are the indicator
values (for ``remote_access_software`` the tool names and domains).

The definition (``lookups/<name>.yml``, the transforms.conf stanza upstream)
decides how those values match: ``match_type = WILDCARD(col)`` keeps ``*`` as a
wildcard, ``case_sensitive_match`` (Splunk's default is true) sets the case
flag, ``max_matches = 1`` means only the first row per key counts, and
``min_matches`` with ``default_match`` gives events that match no row a default
output value, which the filter may accept.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detcat.errors import DetcatError
from detcat.model import And, Expr, Not, Op, Opaque, Or, Predicate, Problem, value_text
from detcat.sources import files
from detcat.sources.files import SourceFileError

Row = dict[str, str]
LookupResolver = Callable[[str, str, Expr | None], tuple[list[str], bool] | None]

# Splunk compares booleans from CSVs ("TRUE", "True", "true") case-insensitively
# in practice because detections write them in every spelling.
_BOOLEANS = {"true", "false"}
_SPLUNK_MAX_MATCHES = 100  # transforms.conf default without time_field
_WILDCARD_RE = re.compile(r"WILDCARD\(\s*([^)\s]+)\s*\)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Table:
    columns: tuple[str, ...]
    rows: list[Row]


class Unresolvable(DetcatError):
    """A filter the resolver cannot evaluate against CSV rows."""


@dataclass(slots=True)
class LookupDef:
    """One ``lookups/<name>.yml``: a CSV-backed lookup or a KV-store collection."""

    name: str
    filename: str | None = None  # None for KV-store collections (no rows to read)
    wildcard_fields: frozenset[str] = frozenset()
    case_sensitive: bool = True
    min_matches: int = 0
    max_matches: int = _SPLUNK_MAX_MATCHES
    default_match: str | None = None

    @classmethod
    def from_yaml(cls, d: dict[str, Any]) -> LookupDef:
        return cls(
            name=str(d["name"]),
            filename=str(d["filename"]) if d.get("filename") else None,
            wildcard_fields=frozenset(_WILDCARD_RE.findall(str(d.get("match_type") or ""))),
            case_sensitive=_truthy(d.get("case_sensitive_match", True)),
            min_matches=int(d.get("min_matches") or 0),
            max_matches=int(d.get("max_matches") or _SPLUNK_MAX_MATCHES),
            default_match=None if d.get("default_match") is None else str(d["default_match"]),
        )


@dataclass(slots=True)
class LookupTables:
    """Every lookup definition of a repository; CSVs are read on first use only."""

    folder: Path
    defs: dict[str, LookupDef] = field(default_factory=dict)
    _tables: dict[str, Table | None] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path, root: Path | None = None) -> tuple[LookupTables, list[Problem]]:
        """Every definition of ``folder``; a bad one (or one whose CSV lies outside
        the folder or over the size limit) is a problem, whatever is wrong. Paths
        in problems are relative to ``root`` (default: the folder's parent)."""
        root = root or folder.parent
        tables, problems = cls(folder), []
        for path in sorted(folder.glob("*.yml")) if folder.is_dir() else ():
            rel = path.relative_to(root).as_posix()
            try:
                d = LookupDef.from_yaml(files.load_yaml(files.read_text(path, root)))
                if d.filename:
                    _check_csv(folder / d.filename, folder)
                tables.defs[d.name] = d
            except SourceFileError as e:
                problems.append(Problem(rel, e.message, e.line, vendor="splunk"))
            except Exception as e:  # YAML errors, wrong shapes: one lookup, not the vendor
                text = " ".join(str(e).split())[:200]
                problems.append(
                    Problem(rel, f"bad lookup: {type(e).__name__}: {text}", vendor="splunk")
                )
        return tables, problems

    def definition(self, name: str) -> LookupDef | None:
        """The named definition; Splunk also accepts a CSV file name directly."""
        if name in self.defs:
            return self.defs[name]
        for known, d in self.defs.items():  # names differ in case upstream (brandMonitoring)
            if known.casefold() == name.casefold():
                return d
        if name.endswith(".csv") and (self.folder / name).is_file():
            return self.defs.setdefault(name, LookupDef(name=name, filename=name))
        return None

    def table(self, name: str) -> Table | None:
        if name not in self._tables:
            d = self.definition(name)
            path = self.folder / d.filename if d and d.filename else None
            self._tables[name] = _read_csv(path, self.folder) if path else None
        return self._tables[name]

    def resolve(self, name: str, key: str, condition: Expr | None) -> tuple[list[str], bool] | None:
        """The parser's ``LookupResolver``: key-column values of the rows that pass
        ``condition`` and the lookup's case sensitivity, or None when that set is
        unknown (no CSV, unknown column, a filter we cannot evaluate, or a filter
        that also keeps events matching no row at all)."""
        d, table = self.definition(name), self.table(name)
        if d is None or table is None or key not in table.columns:
            return None
        try:
            if condition is not None and _keeps_unmatched(d, table, condition):
                return None
            values = _matching_keys(d, table.rows, key, condition)
        except Unresolvable:
            return None
        return values, d.case_sensitive


def _keeps_unmatched(d: LookupDef, table: Table, condition: Expr) -> bool:
    """Whether an event that matches no row passes the filter: its output fields
    are null, or ``default_match`` when ``min_matches`` asks for one."""
    fill = d.default_match if d.min_matches > 0 else None
    return evaluate(condition, dict.fromkeys(table.columns, fill or ""))


def _matching_keys(d: LookupDef, rows: list[Row], key: str, cond: Expr | None) -> list[str]:
    """Key values of passing rows, in file order, without duplicates. With
    ``max_matches = 1`` only the first row of a key decides for that key."""
    fold = (lambda s: s) if d.case_sensitive else str.casefold
    seen: set[str] = set()
    out: list[str] = []
    for row in rows:
        value = row.get(key, "")
        ident = fold(value)
        if not value or ident in seen:
            continue
        passes = cond is None or evaluate(cond, row)
        if passes or d.max_matches == 1:
            seen.add(ident)
        if passes:
            out.append(value)
    return out


# -- evaluating a filter on one CSV row -------------------------------------------


def evaluate(expr: Expr, row: Row) -> bool:
    match expr:
        case And(children):
            return all(evaluate(c, row) for c in children)
        case Or(children):
            return any(evaluate(c, row) for c in children)
        case Not(child):
            return not evaluate(child, row)
        case Predicate():
            return _compare(expr, row)
        case Opaque():
            raise Unresolvable(expr.why())
    raise TypeError(f"not an Expr: {expr!r}")


def _compare(p: Predicate, row: Row) -> bool:
    name = p.field_raw or p.field
    if name is None:  # free-text keyword: Splunk matches raw events, not columns
        raise Unresolvable("keyword")
    cell = row.get(name, "")
    if p.op is Op.EXISTS:
        return cell != ""
    if p.op is Op.IS_NULL:
        return cell == ""
    if cell == "":
        return False  # a null field fails every comparison, as in Splunk
    if p.op is Op.FIELD_REF:
        return _equal(cell, row.get(str(p.value), ""), p.case_sensitive)
    test = _TESTS.get(p.op)
    if test is None:
        raise Unresolvable(str(p.op))
    return test(cell, p.value, p.case_sensitive)


def _fold(a: str, b: str, case_sensitive: bool) -> tuple[str, str]:
    if not case_sensitive or (a.casefold() in _BOOLEANS and b.casefold() in _BOOLEANS):
        return a.casefold(), b.casefold()
    return a, b


def _equal(cell: str, value: Any, case_sensitive: bool) -> bool:
    a, b = _number(cell), _number(value)
    if a is not None and b is not None:
        return a == b
    x, y = _fold(cell, value_text(value), case_sensitive)
    return x == y


def _pattern(cell: str, value: Any, case_sensitive: bool, shape: str) -> bool:
    x, y = _fold(cell, value_text(value), case_sensitive)
    match shape:
        case "contains":
            return y in x
        case "starts":
            return x.startswith(y)
        case "ends":
            return x.endswith(y)
    return fnmatch.fnmatchcase(x, y)


def _ordered(cell: str, value: Any, op: Op) -> bool:
    a, b = _number(cell), _number(value)
    if a is None or b is None:
        raise Unresolvable(f"{op} on a non-number")
    return {Op.GT: a > b, Op.GTE: a >= b, Op.LT: a < b, Op.LTE: a <= b}[op]


def _regex(cell: str, value: Any, case_sensitive: bool) -> bool:
    try:
        return (
            re.search(value_text(value), cell, 0 if case_sensitive else re.IGNORECASE) is not None
        )
    except re.error as e:
        raise Unresolvable("bad regex") from e


_TESTS: dict[Op, Callable[[str, Any, bool], bool]] = {
    Op.EQ: _equal,
    Op.IN_LIST: _equal,
    Op.CONTAINS: lambda c, v, cs: _pattern(c, v, cs, "contains"),
    Op.STARTS_WITH: lambda c, v, cs: _pattern(c, v, cs, "starts"),
    Op.ENDS_WITH: lambda c, v, cs: _pattern(c, v, cs, "ends"),
    Op.WILDCARD: lambda c, v, cs: _pattern(c, v, cs, "glob"),
    Op.REGEX_MATCH: _regex,
    Op.GT: lambda c, v, cs: _ordered(c, v, Op.GT),
    Op.GTE: lambda c, v, cs: _ordered(c, v, Op.GTE),
    Op.LT: lambda c, v, cs: _ordered(c, v, Op.LT),
    Op.LTE: lambda c, v, cs: _ordered(c, v, Op.LTE),
}


# -- small helpers ------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def _truthy(value: Any) -> bool:
    return str(value).strip().casefold() in {"true", "1", "t", "yes"}


def _check_csv(path: Path, folder: Path) -> None:
    """A definition's CSV must stay inside the lookups folder (a ``filename`` of
    ``../../etc/passwd`` is not read) and within the size limit."""
    if path.exists() or path.is_symlink():
        files.check_inside(path, folder)
        if path.is_file() and path.stat().st_size > files.max_bytes():
            raise SourceFileError(f"{path.name} is over the size limit (--max-file-size)")


def _read_csv(path: Path, folder: Path) -> Table | None:
    """The table, or None when it is absent, not a CSV (an MLTK model stored under
    lookups/) or unreadable (its definition was reported when loaded)."""
    if path.suffix.lower() != ".csv":
        return None
    try:
        text = files.read_bytes(path, folder).decode("utf-8-sig", errors="replace")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = [_clean(r) for r in reader]
    except (SourceFileError, csv.Error):
        return None
    return Table(tuple(c.strip() for c in reader.fieldnames or ()), rows)


def _clean(row: dict[str | None, Any]) -> Row:
    # Ragged rows put extras under the key None; cells may be None when short.
    return {k.strip(): (v or "").strip() for k, v in row.items() if isinstance(k, str)}
