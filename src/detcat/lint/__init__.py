"""Lint a draft rule against the catalog: what the community would say about it.

A draft (``drafts.read_draft``: any vendor's rule format or a bare query, read
and normalized exactly as the catalog is) yields findings
``{code, severity, message, line, column, field?, value?, suggestion?, related?}``:

- ``parse-error``   the draft (or part of it) cannot be read; where and why
- ``opaque``        a part detcat does not understand, so the advice is partial
- ``unknown-field`` a field no catalog rule of the vendor uses on the draft's
                    events, with the closest known spelling
- ``noisy-indicator``, ``missing-common-exclusion``, ``untagged-technique``
                    peers' habits (``lint.peers``)
- ``similar-rule``  catalog rules of any vendor scoring high against the draft
                    (``similar``)

Everything here works on canonical Rules and the store; the vendor only selects
which catalog field spellings a draft's field is compared with. Settings and
severities are ``data/lint.toml``.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import sqlite3
from dataclasses import asdict, dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from detcat import similar
from detcat.drafts import Draft, locate, position, query_offset, read_draft
from detcat.errors import DetcatError
from detcat.lint import peers
from detcat.model import Opaque, Predicate, Problem, Reason, Rule, Stage, StageRole, leaves
from detcat.normalize.tables import load

SEVERITIES = ("error", "warning", "note")


@dataclass
class Finding:
    code: str
    severity: str
    message: str
    line: int
    column: int
    field: str | None = None
    value: Any = None
    suggestion: str | None = None
    # the class attribute `field` shadows dataclasses.field here
    related: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, [])}


@dataclass
class LintResult:
    path: str
    format: str
    rules: list[str]  # titles (or ids) of the rules read from the file
    findings: list[Finding]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "rules": self.rules,
            "findings": [f.to_json() for f in self.findings],
        }


@cache
def default_settings() -> dict[str, Any]:
    return load("lint.toml")


def settings_with(overrides: dict[str, str]) -> dict[str, Any]:
    """The defaults with ``section.key=value`` overrides (numbers stay numbers)."""
    out = copy.deepcopy(default_settings())
    for dotted, raw in overrides.items():
        section, _, key = dotted.partition(".")
        if section not in out or key not in out[section]:
            raise LintSettingError(f"unknown lint setting {dotted!r}")
        old = out[section][key]
        try:
            out[section][key] = type(old)(raw) if not isinstance(old, list) else raw.split(",")
        except ValueError:
            raise LintSettingError(f"{dotted} needs a {type(old).__name__}, not {raw!r}") from None
    return out


class LintSettingError(DetcatError):
    pass


def lint_file(
    conn: sqlite3.Connection,
    path: Path,
    language: str | None = None,
    cfg: dict[str, Any] | None = None,
) -> LintResult:
    """Read one draft and lint it (``DraftError`` when it cannot even be read)."""
    return lint_draft(conn, read_draft(path, language), cfg)


def lint_draft(
    conn: sqlite3.Connection, draft: Draft, cfg: dict[str, Any] | None = None
) -> LintResult:
    cfg = cfg or default_settings()
    findings = [_parse_error(draft, p, cfg) for p in draft.problems]
    for rule in draft.rules:
        findings += lint_rule(conn, draft, rule, cfg)
    findings.sort(key=lambda f: (f.line, f.column, SEVERITIES.index(f.severity), f.code))
    titles = [r.title or r.id for r in draft.rules]
    return LintResult(draft.path, draft.format, titles, findings)


def lint_rule(
    conn: sqlite3.Connection, draft: Draft, rule: Rule, cfg: dict[str, Any]
) -> list[Finding]:
    ctx = peers.Context(conn, draft.text, query_offset(draft.text, rule), rule, cfg)
    findings = _opaque(ctx, draft.problems)
    findings += _unknown_fields(ctx)
    techniques = peers.resolved_techniques(conn, rule)
    suggested = None
    if not techniques:
        suggested = peers.suggest_technique(conn, peers.indicator_keys(rule), cfg)
        if suggested:
            findings.append(_untagged(ctx, suggested))
            techniques = [suggested["technique"]]
    for f in peers.noisy_indicators(ctx):
        findings.append(_finding(ctx, "noisy-indicator", **f))
    for f in peers.missing_exclusions(ctx, techniques):
        findings.append(_finding(ctx, "missing-common-exclusion", **f))
    findings += _similar(ctx)
    return findings


def _finding(ctx: peers.Context, code: str, **kw: Any) -> Finding:
    node = kw.pop("node", None)
    line, col = locate(ctx.text, ctx.start, node) if node else position(ctx.text, ctx.start)
    return Finding(code, ctx.cfg["severity"][code], line=line, column=col, **kw)


# -- parse errors and opaque parts --------------------------------------------------------

_QUOTED = re.compile(r"'([^'\n]{1,80})'")


_COLUMN_IN = re.compile(r"\(column (\d+)\)")


def _parse_error(draft: Draft, p: Problem, cfg: dict[str, Any]) -> Finding:
    """A reading problem where it happened; without a position, at the first
    quoted text of the message that the file contains (``Unknown modifier
    'endwith'``; plus N-1 for a message saying ``(column N)`` of that text, as
    a broken Sigma condition does), else at the start of the query."""
    line, col = p.line, p.column
    if line is None:
        spots = [draft.text.find(q) for q in _QUOTED.findall(p.message)]
        at = next((s for s in spots if s >= 0), None)
        if at is None:
            at = max((query_offset(draft.text, r) for r in draft.rules), default=0)
        elif m := _COLUMN_IN.search(p.message):
            at += int(m.group(1)) - 1
        line, col = position(draft.text, at)
    return Finding("parse-error", cfg["severity"]["parse-error"], p.message, line, col or 1)


def _opaque(ctx: peers.Context, problems: list[Problem]) -> list[Finding]:
    """Opaque parts, except those that only restate a parse error already reported."""
    out = []
    for stage in ctx.rule.stages:
        for lf in leaves(stage.expr):
            node = lf.node
            if not isinstance(node, Opaque) or _restates(node, problems, ctx.rule):
                continue
            msg = f"detcat does not understand this part ({node.why()}): advice below is partial"
            out.append(_finding(ctx, "opaque", node=node, message=msg, value=node.text[:200]))
    return out


def _restates(node: Opaque, problems: list[Problem], rule: Rule) -> bool:
    """An Opaque node standing for text that failed to parse (reported as such)."""
    if not problems:
        return False
    failed = node.reason in (Reason.SYNTAX_ERROR, Reason.PARSER_FAILURE)
    return failed or node.text.strip() in (rule.query.strip(), "")


# -- unknown fields ---------------------------------------------------------------------


def _unknown_fields(ctx: peers.Context) -> list[Finding]:
    out = []
    seen: set[str] = set()
    for stage in ctx.rule.stages:
        if stage.role is not StageRole.EVENTS:
            continue
        known = known_fields(ctx.conn, ctx.rule.vendor, tuple(sorted(stage.events)))
        for p in _written_predicates(stage):
            raw = p.field_raw or ""
            if not raw or raw in known or raw in seen:
                continue
            seen.add(raw)
            out.append(_unknown_field(ctx, p, stage, known))
    return out


def _written_predicates(stage: Stage) -> list[Predicate]:
    """Predicates on fields the author wrote (not computed in the query, not
    resolved from a lookup, not implied by normalization)."""
    return [lf.node for lf in leaves(stage.expr)
            if isinstance(lf.node, Predicate) and lf.node.kind == ""]  # fmt: skip


def _unknown_field(
    ctx: peers.Context, p: Predicate, stage: Stage, known: frozenset[str]
) -> Finding:
    raw = p.field_raw or ""
    best, dist = closest(raw, known)
    scope = f"events {', '.join(stage.events)}" if stage.events else "any event"
    msg = f"no {ctx.rule.vendor} rule in the catalog uses field {raw!r} on {scope}"
    code = "unknown-field"
    if best is not None and dist <= ctx.cfg["unknown_field"]["max_distance"]:
        msg += f"; did you mean {best!r}?"
        typo = dist > 0  # a case-only difference may still work in some backends
        return Finding(
            code, ctx.cfg["severity"]["unknown-field-typo" if typo else code], msg,
            *locate(ctx.text, ctx.start, p, at_field=True), field=raw, suggestion=best,
        )  # fmt: skip
    at = locate(ctx.text, ctx.start, p, at_field=True)
    return Finding(code, ctx.cfg["severity"][code], msg, *at, field=raw)


@lru_cache(maxsize=32)
def known_fields(conn: sqlite3.Connection, vendor: str, events: tuple[str, ...]) -> frozenset[str]:
    """Field spellings the vendor's catalog rules use on these events (on any
    event when the draft's events are unknown, or no rule of the vendor has them).
    Cached per connection (it holds one catalog file open for its lifetime): a
    query over many rules that every draft of a log source asks again."""
    if events:
        marks = ",".join("?" * len(events))
        rows = conn.execute(
            f"""SELECT DISTINCT p.field_raw FROM rule_events re
            JOIN predicates p ON p.rule_pk = re.rule_pk AND p.stage_idx = re.stage_idx
            JOIN rules r ON r.pk = p.rule_pk
            WHERE re.event IN ({marks}) AND r.vendor = ? AND p.field_raw IS NOT NULL""",
            (*events, vendor),
        )
    else:
        rows = conn.execute(
            """SELECT DISTINCT p.field_raw FROM predicates p JOIN rules r ON r.pk = p.rule_pk
            WHERE r.vendor = ? AND p.field_raw IS NOT NULL""",
            (vendor,),
        )
    got = frozenset(r[0] for r in rows)
    return got if got or not events else known_fields(conn, vendor, ())


def closest(word: str, candidates: frozenset[str]) -> tuple[str | None, int]:
    """The candidate with the smallest case-insensitive edit distance (ties: the
    shorter, then alphabetical)."""
    best: tuple[int, int, str] | None = None
    w = word.casefold()
    for c in candidates:
        if abs(len(c) - len(word)) > 3:
            continue
        d = edit_distance(w, c.casefold(), 4)
        if best is None or (d, len(c), c) < best:
            best = (d, len(c), c)
    return (best[2], best[0]) if best else (None, 99)


def edit_distance(a: str, b: str, cap: int) -> int:
    """Levenshtein distance, stopping early once every path exceeds ``cap``."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        if min(cur) > cap:
            return cap + 1
        prev = cur
    return prev[-1]


# -- technique suggestion and similar rules -------------------------------------------------


def _untagged(ctx: peers.Context, s: dict[str, Any]) -> Finding:
    share = round(100 * s["share"])
    msg = (
        f"no ATT&CK technique tagged; {share}% of the weight of its indicators belongs to "
        f"rules tagged {s['technique']} ({s['name']}), {s['rules']} rules"
    )
    return _finding(ctx, "untagged-technique", message=msg, suggestion=s["technique"],
                    related=s["related"])  # fmt: skip


def _similar(ctx: peers.Context) -> list[Finding]:
    cfg = ctx.cfg["similar"]
    feats = similar.rule_features(ctx.rule)
    if not feats or not similar.available(ctx.conn):
        return []
    weights = similar.weighted_features(ctx.conn, feats)
    own = ctx.conn.execute(
        "SELECT pk FROM rules WHERE vendor = ? AND id = ?", (ctx.rule.vendor, ctx.rule.id)
    ).fetchone()  # linting a catalog rule itself: do not find it
    found = similar.neighbours(
        ctx.conn, weights, exclude=own[0] if own else None,
        min_score=cfg["min_score"], limit=cfg["limit"],
    )  # fmt: skip
    out = []
    for n in found:
        copy_ = n["score"] >= cfg["copy"]
        what = "a near-copy of" if copy_ else "similar to"
        n["url"] = _upstream(ctx.conn, n["vendor"], n["id"])
        msg = (
            f"{what} {n['vendor']} rule {n['title']!r} ({n['id']}): score {n['score']:.2f}, "
            f"{len(n['shared'])} shared features" + (f", {n['url']}" if n["url"] else "")
        )
        f = _finding(ctx, "similar-rule", message=msg, related=[n])
        f.severity = ctx.cfg["severity"]["near-copy" if copy_ else "similar-rule"]
        out.append(f)
    return out


def _upstream(conn: sqlite3.Connection, vendor: str, rule_id: str) -> str:
    """The rule's page in its upstream repository ("" for a private rule)."""
    row = conn.execute(
        "SELECT upstream_url FROM rules WHERE vendor = ? AND id = ?", (vendor, rule_id)
    ).fetchone()
    return str(row[0] or "") if row else ""
