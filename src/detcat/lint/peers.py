"""What peer rules in the catalog do that a draft does not (for ``lint``).

- *noisy indicators*: an indicator the draft uses on its own although many
  rules check it, or although the rules that check it almost always narrow it
  with other conditions (and which ones);
- *missing common exclusions*: exclusions many rules of the draft's technique
  on the same events carry;
- *technique suggestion*: the technique the draft's indicators mostly belong to.

"On its own" is read from the stage's expression in disjunctive normal form:
an indicator stands alone when one conjunction holds nothing else but
event-kind selectors, presence checks and exclusions.
"""

from __future__ import annotations

import itertools
import json
import math
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import cache
from typing import Any

from detcat.guide import corpus_reach
from detcat.model import (
    And,
    Expr,
    Not,
    Opaque,
    Or,
    Predicate,
    Rule,
    StageRole,
    expr_from_json,
    leaves,
)
from detcat.normalize import indicator_key
from detcat.normalize.events import CLASS_FIELDS, ID_FIELDS, PROVIDER_FIELDS
from detcat.similar import collapse_implied

Key = tuple[str, str, str]  # (canonical field, op, case-folded value)
_NO_VALUE_OPS = ("exists", "is_null")
_OPAQUE: Key = ("?", "opaque", "")


@dataclass
class Context:
    conn: sqlite3.Connection
    text: str  # the draft file
    start: int  # offset of the rule's query in the text
    rule: Rule
    cfg: dict[str, Any]


@cache
def _selectors(extra: tuple[str, ...]) -> frozenset[str]:
    return ID_FIELDS | PROVIDER_FIELDS | CLASS_FIELDS | frozenset(extra)


def selectors(cfg: dict[str, Any]) -> frozenset[str]:
    return _selectors(tuple(cfg["selectors"]["fields"]))


# -- conjunctions ---------------------------------------------------------------------------


def conjunctions(expr: Expr | None, sel: frozenset[str], cap: int) -> list[frozenset[Key]] | None:
    """The positive conjunctions of ``expr`` (implied twins collapsed), each the
    set of narrowing indicator keys; None when there are more than ``cap``."""
    try:
        return _terms(collapse_implied(expr), sel, cap)
    except _TooMany:
        return None


class _TooMany(Exception):
    pass


def _terms(e: Expr | None, sel: frozenset[str], cap: int) -> list[frozenset[Key]]:
    match e:
        case None | Not():
            return [frozenset()]  # exclusions and negations narrow nothing positively
        case Opaque():
            return [frozenset({_OPAQUE})]  # unknown logic may narrow: never "alone"
        case Predicate():
            if e.op in _NO_VALUE_OPS or (e.field or "") in sel:
                return [frozenset()]
            return [frozenset({indicator_key(e)})]
        case Or(children):
            out = [t for c in children for t in _terms(c, sel, cap)]
        case And(children):
            out = [frozenset()]
            for c in children:
                out = [a | b for a, b in itertools.product(out, _terms(c, sel, cap))]
                if len(out) > cap:
                    raise _TooMany
    if len(out) > cap:
        raise _TooMany
    return out


def alone_keys(terms: list[frozenset[Key]]) -> set[Key]:
    return {next(iter(t)) for t in terms if len(t) == 1} - {_OPAQUE}


def _stage_alone(expr: Expr | None, ctx_cfg: dict[str, Any]) -> set[Key] | None:
    terms = conjunctions(expr, selectors(ctx_cfg), ctx_cfg["dnf"]["max_terms"])
    return None if terms is None else alone_keys(terms)


# -- noisy indicators -----------------------------------------------------------------------


def noisy_indicators(ctx: Context) -> list[dict[str, Any]]:
    """Findings (as keyword dicts) for indicators the draft uses alone that are
    noisy by reach or by how peers use them."""
    out = []
    for stage in ctx.rule.stages:
        if stage.role is not StageRole.EVENTS or stage.negated:
            continue
        alone = _stage_alone(stage.expr, ctx.cfg)
        if not alone:
            continue
        nodes = _nodes_by_key(stage.expr)
        for key in sorted(alone):
            found = _noisy(ctx, key, nodes[key]) if key in nodes else None
            if found:
                out.append(found)
    return out


def _nodes_by_key(expr: Expr | None) -> dict[Key, Predicate]:
    """The written predicate behind each key (an implied key's source predicate)."""
    out: dict[Key, Predicate] = {}
    last: Predicate | None = None
    for lf in leaves(expr):
        p = lf.node
        if isinstance(p, Predicate):
            out.setdefault(indicator_key(p), last if p.kind == "implied" and last else p)
            last = p
    return out


def _noisy(ctx: Context, key: Key, node: Predicate) -> dict[str, Any] | None:
    cfg = ctx.cfg["noisy"]
    reach = corpus_reach(ctx.conn, *key)
    if reach < cfg["min_peers"]:
        return None
    peers = _peers(ctx.conn, key, cfg["peer_sample"])
    alone_in = [pk for pk, exprs in peers.items() if any(
        (a := _stage_alone(e, ctx.cfg)) is not None and key in a for e in exprs)]  # fmt: skip
    share = len(alone_in) / len(peers) if peers else 0.0
    if reach < cfg["reach"] and share > cfg["alone_share"]:
        return None
    skip = selectors(ctx.cfg) | {key[0]} | _path_twins(key)
    narrowing = _narrowing_fields(ctx.conn, [pk for pk in peers if pk not in alone_in], skip)
    how = ", ".join(f"{f} ({n})" for f, n in narrowing[:3]) or "nothing in common"
    shown = f"{node.field_raw} {node.op} '{node.value}'"
    msg = (
        f"{shown} is the only condition of one branch: {reach} catalog rules check "
        f"{key[0]} {key[1]} '{key[2]}', and {len(peers) - len(alone_in)} of the "
        f"{len(peers)} read narrow it with other conditions, most often {how}"
    )
    return {
        "node": node,
        "message": msg,
        "field": node.field_raw,
        "value": node.value,
        "suggestion": f"add a condition on {narrowing[0][0]}" if narrowing else None,
        "related": [{"reach": reach, "alone_share": round(share, 3),
                     "narrowed_by": [{"field": f, "rules": n} for f, n in narrowing[:5]]}],
    }  # fmt: skip


def _peers(conn: sqlite3.Connection, key: Key, sample: int) -> dict[int, list[Expr | None]]:
    """Events-stage expressions of (up to ``sample``) rules checking ``key``."""
    pks = [r[0] for r in conn.execute(
        """SELECT DISTINCT rule_pk FROM predicates WHERE field IS ? AND op = ? AND value_key = ?
        AND negated = 0 AND stage_role = 'events' ORDER BY rule_pk DESC LIMIT ?""",
        (*key, sample))]  # fmt: skip
    out: dict[int, list[Expr | None]] = defaultdict(list)
    for pk, expr in conn.execute(
        f"SELECT rule_pk, expr FROM stages WHERE role = 'events' AND rule_pk IN "
        f"({','.join('?' * len(pks))})",
        pks,
    ):
        out[pk].append(expr_from_json(json.loads(expr)))
    return out


def _narrowing_fields(
    conn: sqlite3.Connection, pks: list[int], skip: frozenset[str]
) -> list[tuple[str, int]]:
    """Other fields the peers filter on positively, by number of peers."""
    if not pks:
        return []
    rows = conn.execute(
        f"""SELECT field, COUNT(DISTINCT rule_pk) FROM predicates
        WHERE rule_pk IN ({",".join("?" * len(pks))}) AND negated = 0
          AND stage_role = 'events' AND kind != 'implied' AND field IS NOT NULL
          AND op NOT IN ('exists', 'is_null')
        GROUP BY field""",
        pks,
    ).fetchall()
    ranked = sorted(((f, n) for f, n in rows if f not in skip), key=lambda t: (-t[1], t[0]))
    return ranked


def _path_twins(key: Key) -> frozenset[str]:
    """Fields naming the same thing as the key's field (``process.executable`` for
    ``process.name``): filtering both is not narrowing."""
    stem = key[0].rsplit(".", 1)[0]
    leaves_ = ("name", "executable", "path", "pe.original_file_name")
    return frozenset(f"{stem}.{leaf}" for leaf in leaves_)


# -- missing common exclusions ------------------------------------------------------------


def missing_exclusions(ctx: Context, techniques: list[str]) -> list[dict[str, Any]]:
    if not techniques:
        return []
    cfg = ctx.cfg["exclusion"]
    events = sorted({e for s in ctx.rule.stages for e in s.events})
    peers = _technique_rules(ctx.conn, techniques, events)
    if len(peers) < cfg["min_rules"]:
        return []
    have = {indicator_key(p) for s in ctx.rule.stages for lf in leaves(collapse_implied(s.expr))
            if lf.exclusion and isinstance(p := lf.node, Predicate)}  # fmt: skip
    carriers: dict[Key, set[int]] = defaultdict(set)
    spelling: dict[Key, str] = {}
    marks = ",".join("?" * len(peers))
    for f, op, vkey, value, pk in ctx.conn.execute(
        f"""SELECT field, op, value_key, value, rule_pk FROM predicates
        WHERE exclusion = 1 AND kind != 'implied' AND rule_pk IN ({marks})""",
        sorted(peers),
    ):
        carriers[(f, op, vkey)].add(pk)
        spelling.setdefault((f, op, vkey), value)
    need = max(cfg["min_rules"], math.ceil(cfg["min_share"] * len(peers)))
    common = [k for k, v in carriers.items() if len(v) >= need and k not in have]
    common.sort(key=lambda k: (-len(carriers[k]), k))
    label = "/".join(techniques)
    return [_exclusion_finding(ctx, k, spelling[k], carriers[k], len(peers), label)
            for k in common[: cfg["limit"]]]  # fmt: skip


def _exclusion_finding(
    ctx: Context, key: Key, value: str, carriers: set[int], peers: int, label: str
) -> dict[str, Any]:
    refs = _refs(ctx.conn, sorted(carriers)[:10])
    return {
        "message": (
            f"{len(carriers)} of {peers} {label} rules on the same events exclude "
            f"{key[0]} {key[1]} {value!r}; the draft does not"
        ),
        "field": key[0],
        "value": value,
        "suggestion": f"NOT {key[0]} {key[1]} {value!r}",
        "related": refs,
    }


def _technique_rules(
    conn: sqlite3.Connection, techniques: list[str], events: list[str]
) -> set[int]:
    """Rules tagged with the techniques (or their sub-techniques) on these events."""
    out: set[int] = set()
    for tid in techniques:
        parent = tid.split(".")[0]
        out.update(r[0] for r in conn.execute(
            "SELECT rule_pk FROM rule_techniques WHERE technique_id = ? OR technique_id LIKE ?",
            (parent, parent + ".%")))  # fmt: skip
    if events and out:
        marks = ",".join("?" * len(events))
        sql = f"SELECT DISTINCT rule_pk FROM rule_events WHERE event IN ({marks})"
        out &= {r[0] for r in conn.execute(sql, events)}
    return out


def _refs(conn: sqlite3.Connection, pks: list[int]) -> list[dict[str, Any]]:
    marks = ",".join("?" * len(pks))
    rows = conn.execute(
        f"SELECT vendor, id, title FROM rules WHERE pk IN ({marks}) ORDER BY vendor, title", pks
    )
    return [{"vendor": v, "id": i, "title": t} for v, i, t in rows]


# -- techniques ----------------------------------------------------------------------------


def resolved_techniques(conn: sqlite3.Connection, rule: Rule) -> list[str]:
    """The draft's technique ids, names resolved against the catalog's ATT&CK."""
    out = list(rule.techniques)
    for name in rule.context.get("technique_names", []):
        row = conn.execute(
            "SELECT id FROM techniques WHERE lower(name) = lower(?)", (str(name).strip(),)
        ).fetchone()
        if row:
            out.append(row[0])
    return list(dict.fromkeys(t.upper() for t in out))


def indicator_keys(rule: Rule) -> list[Key]:
    """Positive indicator keys of the events stages (implied twins collapsed)."""
    keys = {indicator_key(lf.node) for s in rule.stages if s.role is StageRole.EVENTS
            for lf in leaves(collapse_implied(s.expr))
            if isinstance(lf.node, Predicate) and not lf.negated
            and lf.node.op not in _NO_VALUE_OPS}  # fmt: skip
    return sorted(keys)


def suggest_technique(
    conn: sqlite3.Connection, keys: list[Key], cfg: dict[str, Any]
) -> dict[str, Any] | None:
    """The (parent) technique the keys' tagged rules mostly have: each key votes
    with weight ln(1 + N/reach), split over the techniques of its tagged rules."""
    sel = selectors(cfg)
    n = conn.execute("SELECT COUNT(*) FROM rules").fetchone()[0]
    votes: Counter[str] = Counter()
    support: dict[str, set[int]] = defaultdict(set)
    total = 0.0
    for key in keys:
        if key[0] in sel:
            continue
        tagged = _tagged_rules(conn, key)
        if not tagged:
            continue
        w = math.log(1 + n / corpus_reach(conn, *key))
        total += w
        by_tech: dict[str, set[int]] = defaultdict(set)
        for pk, tid in tagged:
            by_tech[tid.split(".")[0]].add(pk)
        rules = {pk for pk, _ in tagged}
        for tid, pks in by_tech.items():
            votes[tid] += w * len(pks) / len(rules)
            support[tid] |= pks
    if not votes:
        return None
    tid, v = max(votes.items(), key=lambda kv: (kv[1], kv[0]))
    share = v / total
    if share < cfg["untagged"]["min_share"] or len(support[tid]) < cfg["untagged"]["min_rules"]:
        return None
    name = conn.execute("SELECT name FROM techniques WHERE id = ?", (tid,)).fetchone()
    return {
        "technique": tid,
        "name": name[0] if name else "",
        "share": share,
        "rules": len(support[tid]),
        "related": _refs(conn, sorted(support[tid])[:10]),
    }


def _tagged_rules(conn: sqlite3.Connection, key: Key) -> list[tuple[int, str]]:
    return conn.execute(
        """SELECT DISTINCT p.rule_pk, rt.technique_id FROM predicates p
        JOIN rule_techniques rt ON rt.rule_pk = p.rule_pk
        WHERE p.field IS ? AND p.op = ? AND p.value_key = ? AND p.negated = 0
          AND p.stage_role = 'events'""",
        key,
    ).fetchall()
