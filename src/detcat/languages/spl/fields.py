"""What a field name means at a point of an SPL pipeline.

Commands append definitions as the pipeline runs (``rename``, ``eval``,
``rex``, ``lookup``, ``stats`` …); a name is resolved by walking them back
from the current position. The result (``FieldRef``) says which vendor field
the name reads, whether the query computed it, and at which aggregation level
it lives — level 0 is the raw events, level n the output of the n-th
aggregation — which decides the stage a filter on it belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from detcat.languages.spl.expr import FieldRef


@dataclass(frozen=True, slots=True)
class Bind:
    """``name`` now means ``ref`` (eval, rex, spath, lookup output, exact rename)."""

    name: str
    ref: FieldRef


@dataclass(frozen=True, slots=True)
class Rename:
    """A wildcard rename, ``rename Processes.* AS *``; resolved lazily because
    it only renames the fields that exist at that point."""

    src: str
    dst: str


@dataclass(slots=True)
class Agg:
    """An aggregation: its group-by fields keep their meaning, its outputs are
    new fields at ``level``; ``stats`` drops every other field."""

    level: int
    by: list[str]
    # (output name or pattern, the field it carries — values(x), latest(x) … — or None)
    outputs: list[tuple[str, str | None]] = field(default_factory=list)
    keep: bool = False  # eventstats, streamstats, transaction keep the events' fields
    datamodel: bool = False  # tstats: "Processes.x" in ``by`` also answers to "x"

    def output(self, name: str) -> tuple[bool, str | None]:
        for pat, carried in self.outputs:
            if pat == name:
                return True, carried
        for pat, carried in self.outputs:
            if "*" in pat and (mid := glob_match(pat, name)) is not None:
                return True, carried.replace("*", mid, 1) if carried else None
        return False, None

    def unprefixed(self, name: str) -> str | None:
        """``drop_dm_object_name`` may have been removed with the other utility
        macros; accept ``x`` for a by-field ``Object.x``."""
        if not self.datamodel or "." in name:
            return None
        hits = [b for b in self.by if b.rsplit(".", 1)[-1] == name and "." in b]
        return hits[0] if len(hits) == 1 else None


Definition = Bind | Rename | Agg


def glob_match(pattern: str, name: str) -> str | None:
    """What the single ``*`` of ``pattern`` matched in ``name``, or None."""
    head, _, tail = pattern.partition("*")
    if len(name) >= len(head) + len(tail) and name.startswith(head) and name.endswith(tail):
        return name[len(head) : len(name) - len(tail)]
    return None


def _renamed(d: Rename, name: str) -> str | None:
    if "*" not in d.dst:
        return d.src if name == d.dst else None
    mid = glob_match(d.dst, name)
    return None if mid is None else d.src.replace("*", mid, 1)


class FieldScope:
    """The definitions made so far, and name resolution over them."""

    def __init__(self, defs: list[Definition] | None = None) -> None:
        self.defs: list[Definition] = list(defs or [])

    def bind(self, name: str, ref: FieldRef) -> None:
        self.defs.append(Bind(name, ref))

    def resolve(self, name: str, upto: int | None = None) -> FieldRef:
        i = len(self.defs) if upto is None else upto
        while i > 0:
            i -= 1
            d = self.defs[i]
            if isinstance(d, Bind):
                if d.name == name:
                    return d.ref
            elif isinstance(d, Rename):
                cand = _renamed(d, name)
                if cand is not None and self.exists(cand, i):
                    name = cand
            else:
                found, carried = d.output(name)
                if found:
                    return self._aggregated(d, name, carried, i)
                name = d.unprefixed(name) or name
        return FieldRef(name)

    def _aggregated(self, d: Agg, name: str, carried: str | None, i: int) -> FieldRef:
        if carried is None:  # count, dc(x), avg(x) …: a value the query computed
            return FieldRef(name, "derived", d.level)
        inner = self.resolve(carried, i)  # values(x), latest(x): still x's values
        return FieldRef(inner.raw, inner.kind, d.level, inner.ci, inner.lookup)

    def exists(self, name: str, upto: int) -> bool:
        """Whether ``name`` is a field at position ``upto`` (raw events have every field)."""
        i = upto
        while i > 0:
            i -= 1
            d = self.defs[i]
            if isinstance(d, Bind):
                if d.name == name:
                    return True
            elif isinstance(d, Rename):
                cand = _renamed(d, name)
                if cand is not None and self.exists(cand, i):
                    return True
            elif d.output(name)[0] or name in d.by or d.unprefixed(name):
                return True
            elif not d.keep:
                return False
        return True
