"""The literal prefilter: the few stages of a route an event's values admit.

A *route* is the set of stages written for one kind of event (its catalog event
and log-source scopes: ``Matcher.route``). For each stage, ``match.needs`` gives
clauses that must all hold for its filter to be true or unknown; the route picks
one clause per stage as its *key* (the rarest) and keeps up to ``CHECKED`` more.

Per event, every atom of every kept clause is tested at once: one Aho–Corasick
automaton per canonical field over the literals the route's clauses look for in
it (run on the field's case-folded values), plus a set lookup per field whose mere
presence a clause asks. A stage is evaluated only when an atom of its key holds
and each kept clause has one that holds; stages without a usable key are always
evaluated. Skipping is thus limited to stages whose filter is False on the event
(``match.needs`` explains why), so the results equal the reference's, which
evaluates every stage the route admits (``Matcher.match_reference``).
"""

from __future__ import annotations

from collections import defaultdict
from operator import itemgetter
from typing import TYPE_CHECKING

import ahocorasick

from detcat.match.events import Event, FieldNames
from detcat.match.needs import ALL_TEXT, SURE, Atom, Needs, clauses, cost

if TYPE_CHECKING:
    from detcat.match import StagePlan

# Clauses checked besides the key: each rejects more, and costs a set test.
CHECKED = 2
# Kinds of events (sets of field names) a route keeps its choices for.
MAX_SELECTIONS = 1024
# A stage's clauses: (atoms, cost, fields whose presence it asks).
Plan = list[tuple[Needs, float, frozenset[str]]]

_value = itemgetter(1)
_SEPARATOR = "\x00"


class Route:
    """The stages of one route with the automata that select among them."""

    def __init__(self, stages: list[StagePlan], plans: list[Plan], common: frozenset[str]) -> None:
        """``plans``: each stage's clauses (``stage_plan``); ``common``: fields the
        route's events have (those of its first event), whose presence says nothing."""
        self.stages = stages
        self._reads = [s.reads or None for s in stages]  # see ``candidates``
        self._ids: dict[Atom, int] = {}
        self._keyed: dict[int, list[int]] = defaultdict(list)  # atom -> stages it keys
        self.always: list[int] = []  # stages without a key
        self._checks: dict[int, tuple[frozenset[int], ...]] = {}
        for i, plan in enumerate(plans):
            self._plan(i, plan, common)
        self._present: dict[str, int] = {}
        literals: dict[str, dict[str, int]] = defaultdict(dict)
        for (name, literal), atom in self._ids.items():
            if literal is None:
                self._present[name] = atom
            else:
                literals[name][literal] = atom
        self._all_text = _automaton(literals.pop(ALL_TEXT)) if ALL_TEXT in literals else None
        self._automata = {name: _automaton(words) for name, words in literals.items()}
        self._present_names = frozenset(self._present)
        self._literal_names = frozenset(self._automata)
        self._selections: dict[FieldNames, _Selection] = {}

    def _plan(self, i: int, plan: Plan, common: frozenset[str]) -> None:
        # A clause asking for a field every event of the route has is no filter.
        usable = [(p, c) for c, p, asked in plan if p < SURE and asked.isdisjoint(common)]
        ranked = [c for _, c in sorted(usable, key=itemgetter(0))]
        if not ranked:
            self.always.append(i)
            return
        for atom in ranked[0]:
            self._keyed[self._id(atom)].append(i)
        checks = tuple(frozenset(map(self._id, c)) for c in ranked[1 : 1 + CHECKED])
        if checks:
            self._checks[i] = checks

    def _id(self, atom: Atom) -> int:
        return self._ids.setdefault(atom, len(self._ids))

    def hits(self, ev: Event) -> set[int]:
        """The atoms that hold on ``ev``."""
        return self._hits(ev, self.selection(ev))

    def _hits(self, ev: Event, sel: _Selection) -> set[int]:
        found = set(sel.present)
        texts = ev.folded
        for name, automaton in sel.scans:
            values = texts[name]
            # Values joined by NUL, which no literal has: one scan, no match across.
            text = values[0] if len(values) == 1 else _SEPARATOR.join(values)
            found.update(map(_value, automaton.iter(text)))
        if self._all_text is not None:  # values folded one by one: most are ASCII, fast
            found.update(map(_value, self._all_text.iter(_SEPARATOR.join(ev.all_text(True)))))
        return found

    def selection(self, ev: Event) -> _Selection:
        """What the event's field names decide, worked out once per kind of event."""
        names = ev.names
        if names is None:  # an event not made by canonical_event: its own names
            return _Selection(self, frozenset(ev.fields))
        got = self._selections.get(names)
        if got is None:
            if len(self._selections) >= MAX_SELECTIONS:
                self._selections.clear()
            got = self._selections[names] = _Selection(self, names.names)
        return got

    def candidates(self, ev: Event) -> list[StagePlan]:
        """The route's stages whose clauses ``ev`` satisfies and, for a stage no
        field is required by, that read one of its fields (``StagePlan.reads``), in
        route order."""
        sel = self.selection(ev)
        found = self._hits(ev, sel)
        picked: set[int] = set()
        keyed = self._keyed
        for atom in found:
            stages_keyed = keyed.get(atom)
            if stages_keyed:
                picked.update(stages_keyed)
        checks, reads, names = self._checks, self._reads, sel.names
        out = list(sel.always)
        for i in picked:
            kept = checks.get(i)
            if kept is not None and not _all_hit(kept, found):
                continue
            needed = reads[i]
            if needed is None or not needed.isdisjoint(names):
                out.append(i)
        out.sort()
        stages = self.stages
        return [stages[i] for i in out]


class _Selection:
    """A route's choices for events with one set of field names: the atoms their
    presence makes hold, the fields to scan for literals, the stages without a key
    that read one of the fields."""

    __slots__ = ("names", "present", "scans", "always")

    def __init__(self, route: Route, names: frozenset[str]) -> None:
        self.names = names
        present = route._present
        self.present = frozenset(present[n] for n in route._present_names.intersection(names))
        automata = route._automata
        self.scans = tuple((n, automata[n]) for n in sorted(route._literal_names & names))
        reads = route._reads
        self.always = tuple(
            i for i in route.always if reads[i] is None or not reads[i].isdisjoint(names)
        )


def _all_hit(kept: tuple[frozenset[int], ...], found: set[int]) -> bool:
    for atoms in kept:  # noqa: SIM110 (a loop: no generator made per call)
        if found.isdisjoint(atoms):
            return False
    return True


def _automaton(words: dict[str, int]) -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton()
    for word, atom in words.items():
        assert _SEPARATOR not in word, "a literal with NUL is no atom (match.needs)"
        automaton.add_word(word, atom)
    automaton.make_automaton()
    return automaton


def stage_plan(stage: StagePlan, vague: frozenset[str]) -> Plan:
    """The stage's clauses (``match.needs``), each with its cost and the fields
    whose mere presence it asks."""
    found = clauses(stage.expr, vague, stage.params.get("derived"))
    return [(c, cost(c, vague), frozenset(n for n, lit in c if lit is None)) for c in found]
