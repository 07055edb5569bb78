"""An SPL pipeline -> stages.

Runs the commands in order, keeping a ``FieldScope`` of what each field name
means. Every filter (base search, ``| search``, ``| where``, ``| regex``,
``tstats … where``) is split into its top-level AND members, and each member
goes to the stage of the aggregation level of the fields it reads: filters on
raw-event fields land in "main" wherever they are written, filters on
aggregation outputs in "aggregate[n]". Subsearches become their own stages.
The commands themselves are read by ``spl.commands``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from detcat.languages.lalr import position
from detcat.languages.spl.computed import record
from detcat.languages.spl.eval import where_conjuncts
from detcat.languages.spl.expr import Conjunct, FieldRef, classify, search_conjuncts
from detcat.languages.spl.fields import Agg, FieldScope
from detcat.languages.spl.scan import Command, scan
from detcat.model import (
    Expr,
    Not,
    Op,
    Opaque,
    Predicate,
    QueryError,
    Reason,
    Stage,
    StageRole,
    and_,
    leaves,
    map_predicates,
    or_,
)
from detcat.tables import SPL, load

LookupResolver = Callable[[str, str, Expr | None], tuple[list[str], bool] | None]


# Commands that neither filter events nor define fields a filter could read:
# understood and passed over (data/spl.toml says which, and why).
IGNORED = frozenset(c for group in load(SPL)["ignored_commands"].values() for c in group)
# Commands after which an eval'd value still holds (data/spl.toml, [computed]).
KEEP_VALUES = frozenset(load(SPL)["computed"]["keep_values"])


@dataclass(eq=False, slots=True)
class Lookup:
    """``| lookup name col AS field … OUTPUT col AS alias …`` (identity-compared)."""

    name: str
    inputs: list[tuple[str, FieldRef]]  # (lookup column, event field)
    outputs: dict[str, str]  # event-side alias -> lookup column
    level: int


def lookup_chars(value: str) -> list[tuple[str, bool]]:
    """A resolved lookup value: ``*`` is a wildcard, except that the resolver
    escapes the values of non-wildcard columns that contain one (``\\*`` is a
    literal star and ``\\\\`` one backslash)."""
    if "\\*" not in value:
        return [(c, c == "*") for c in value]
    out: list[tuple[str, bool]] = []
    i = 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value) and value[i + 1] in "\\*":
            out.append((value[i + 1], False))
            i += 2
        else:
            out.append((value[i], value[i] == "*"))
            i += 1
    return out


class Pipeline:
    """Runs one pipeline (the query, or a subsearch) and assembles its stages."""

    def __init__(
        self,
        src: str,
        lookup: LookupResolver | None,
        name: str = "main",
        scope: FieldScope | None = None,
        level: int = 0,
    ) -> None:
        self.src, self.lookup, self.name = src, lookup, name
        self.scope = scope or FieldScope()
        self.base = self.level = self.floor = level
        self.count = level  # aggregations so far (levels are numbered from it)
        self.terms: dict[int, list[Expr]] = {level: []}
        self.params: dict[int, dict[str, Any]] = {level: {}}
        self.sub_stages: list[Stage] = []
        self.subs = 0
        # Commands so far that may change field values the parser does not track: a
        # value eval computed is computable while this count stays as it was then.
        self.changes = 0
        self.cmd = Command("", "", 0)
        self.spawned: set[int] = set()
        self.commands: list[Command] = []
        self.position = 0  # index of the running command
        self.done = False  # a command consumed the rest of the pipeline

    # -- the Scope protocol used by the expression builders ---------------------------

    def resolve(self, name: str) -> FieldRef:
        return self.scope.resolve(name)

    def here(self) -> FieldRef:
        return FieldRef("", level=self.level)

    def subsearch(self, index: int, negated: bool) -> None:
        self.spawn(index, negated=negated)

    # -- running ----------------------------------------------------------------------

    def run(self, commands: list[Command]) -> list[Stage]:
        self.commands = commands
        for n, cmd in enumerate(commands):
            if self.done:
                break
            self.cmd, self.spawned, self.position = cmd, set(), n
            for macro in cmd.macros:
                self.add(Opaque(macro, Reason.UNRESOLVED_MACRO, "undefined"), self.level)
            if cmd.macros or (cmd.name and cmd.name not in KEEP_VALUES):
                self.changes += 1
            if cmd.name:
                self.dispatch(cmd)
            for k in range(len(cmd.subs)):
                if k not in self.spawned:
                    self.spawn(k, params={"command": cmd.name})
        return self.stages()

    def dispatch(self, cmd: Command) -> None:
        # Subclasses handle a command ``x`` in a method ``cmd_x``.
        handler = getattr(self, "cmd_" + cmd.name.replace("-", "_"), None)
        if handler is not None:
            handler(cmd)
        elif cmd.name not in IGNORED:
            self.add(Opaque(self.text(cmd), Reason.UNSUPPORTED_COMMAND, cmd.name), self.level)

    def text(self, cmd: Command) -> str:
        """A command as written (with its subsearches and macros)."""
        return f"{cmd.name} {self.src[cmd.offset : cmd.offset + len(cmd.args)].strip()}".strip()

    def spawn(
        self,
        index: int,
        *,
        negated: bool = False,
        params: dict[str, Any] | None = None,
        join_keys: list[str] | None = None,
        inherit: bool = False,
        text: str | None = None,
    ) -> None:
        """Run subsearch ``index`` of the current command (or the search ``text``
        of a ``map``) as stages of their own; ``inherit`` continues from the
        results so far (``appendpipe``)."""
        self.spawned.add(index)
        self.subs += 1
        prefix = "" if self.name == "main" else f"{self.name}."
        sub = type(self)(
            self.src if text is None else text,
            self.lookup,
            f"{prefix}subsearch[{self.subs}]",
            FieldScope(self.scope.defs) if inherit else None,
            self.level if inherit else 0,
        )
        if text is None:
            stages = sub.run(scan(self.src, *self.cmd.subs[index]))
        else:
            try:
                stages = sub.run(scan(text))
            except QueryError as e:  # positions inside the string mean nothing here
                line, column = position(self.src, self.cmd.offset)
                message = f"in the search of {self.cmd.name}: {e.message}"
                raise QueryError(message, line, column) from None
        head = stages[0]
        head.negated = negated
        head.params.update(params or {})
        head.join_keys = list(join_keys or [])
        self.sub_stages.extend(stages)

    # -- placing filters ------------------------------------------------------------------

    def add(self, expr: Expr, level: int) -> None:
        level = max(level, self.floor)
        self.terms.setdefault(level, []).append(expr)

    def level_of(self, refs: list[FieldRef]) -> int:
        return max([r.level for r in refs], default=self.level)

    def filter(self, conjuncts: list[Conjunct]) -> None:
        """Place each conjunct; conjuncts that only test one lookup's outputs
        become that lookup's condition."""
        pending: dict[int, tuple[Lookup, list[Expr]]] = {}
        for c in conjuncts:
            found = {id(r.lookup): r.lookup for r in c.refs if r.lookup is not None}
            plain = any(r.lookup is None for r in c.refs)
            if len(found) == 1 and not plain:
                lk = next(iter(found.values()))
                pending.setdefault(id(lk), (lk, []))[1].append(c.expr)
            else:
                level = max(self.level_of(c.refs), self.floor)
                self.note_programs(c.refs, level)
                self.note_conditions(c.conditions, level)
                self.add(c.expr, level)
        for lk, exprs in pending.values():
            self.add(self.lookup_filter(lk, and_(*exprs)), lk.level)

    def note_programs(self, refs: list[FieldRef], level: int) -> None:
        """Record in the stage's ``params["computed"]`` how to compute the eval'd
        fields a filter reads (``spl.computed``); a name eval'd twice and filtered
        in one stage both ways, or whose value a command since may have changed,
        gets None: its filters stay unknown."""
        for r in refs:
            if r.kind == "derived" and r.program is not None:
                computed = self.params.setdefault(level, {}).setdefault("computed", {})
                record(computed, r.raw, r.program if r.program_at == self.changes else None)

    def note_conditions(self, conditions: dict[str, Any], level: int) -> None:
        """Record in ``params["conditions"]`` how to compute each condition kept
        ``Opaque`` for a computed value (``spl.eval.EvalBuilder``), by its text; a
        text met twice in a stage with two meanings gets None (it stays unknown)."""
        for text, prog in conditions.items():
            record(self.params.setdefault(level, {}).setdefault("conditions", {}), text, prog)

    def lookup_filter(self, lk: Lookup, cond: Expr) -> Expr:
        """The lookup and the filter on its outputs as predicates on its input fields."""
        if not lk.inputs:
            return cond
        # ``isnull(out)`` keeps the events whose value is *not* in the table.
        negate = all(
            isinstance(lf.node, Predicate) and lf.node.op is Op.IS_NULL for lf in leaves(cond)
        )

        def to_columns(p: Predicate) -> Expr:
            col = lk.outputs.get(p.field_raw or "", p.field_raw)
            return replace(p, field_raw=col, kind="", op=Op.EXISTS if negate else p.op)

        query = map_predicates(cond, to_columns)
        found = [self._resolved(lk, col, ref, query) for col, ref in lk.inputs]
        if all(f is not None for f in found):
            expr = and_(*[f for f in found if f is not None])
        else:
            listed = [
                Predicate(ref.raw, Op.IN_LIST, lk.name, "lookup", kind=f"lookup:{lk.name}")
                for _, ref in lk.inputs
            ]
            expr = and_(*listed) if negate else and_(*listed, cond)
        return Not(expr) if negate else expr

    def _resolved(self, lk: Lookup, col: str, ref: FieldRef, query: Expr | None) -> Expr | None:
        answer = self.lookup(lk.name, col, query) if self.lookup else None
        if not answer or not answer[0]:
            return None
        values, cs = answer
        preds = []
        for v in dict.fromkeys(values):
            op, value = classify(lookup_chars(v))
            preds.append(Predicate(ref.raw, op, value, "lookup", cs, kind=f"lookup:{lk.name}"))
        return or_(*preds)

    # -- levels ------------------------------------------------------------------------------

    def aggregate(self, agg: Agg, params: dict[str, Any]) -> None:
        """Start a new aggregation level (``agg.level`` is assigned here)."""
        self.count += 1
        self.level = agg.level = self.count
        self.params[self.level] = params
        self.scope.defs.append(agg)

    # -- stages -------------------------------------------------------------------------------

    def stages(self) -> list[Stage]:
        out: list[Stage] = []
        for n, level in enumerate(
            sorted(lv for lv in self.terms if lv == self.base or self.terms[lv])
        ):
            if n == 0:
                name = self.name
            else:
                name = f"aggregate[{n}]" if self.name == "main" else f"{self.name}.aggregate[{n}]"
            terms = self.terms[level]
            out.append(
                Stage(
                    name=name,
                    expr=and_(*terms) if terms else None,
                    role=StageRole.EVENTS if level == 0 else StageRole.AGGREGATE,
                    params=dict(self.params.get(level, {})),
                )
            )
        return out + self.sub_stages

    # -- helpers for handlers -----------------------------------------------------------------

    def search(self, text: str, offset: int) -> None:
        self.filter(search_conjuncts(text, self, self.src, offset))

    def where(self, text: str, offset: int) -> None:
        self.filter(where_conjuncts(text, self, self.src, offset, self.changes))

    def derive(self, name: str, level: int) -> None:
        self.scope.bind(name, FieldRef(name, "derived", level))
