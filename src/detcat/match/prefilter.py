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

from detcat.match.events import Event
from detcat.match.needs import ALL_TEXT, SURE, Atom, Needs, clauses, cost

if TYPE_CHECKING:
    from detcat.match import StagePlan

# Clauses checked besides the key: each rejects more, and costs a set test.
CHECKED = 2
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
        fields = ev.fields
        present = self._present
        found = {present[n] for n in self._present_names.intersection(fields)}
        automata = self._automata
        for name in self._literal_names.intersection(fields):
            texts = ev.texts(name, True)
            # Values joined by NUL, which no literal has: one scan, no match across.
            text = texts[0] if len(texts) == 1 else _SEPARATOR.join(texts)
            found.update(map(_value, automata[name].iter(text)))
        if self._all_text is not None:
            found.update(map(_value, self._all_text.iter(_SEPARATOR.join(ev.all_text(True)))))
        return found

    def candidates(self, ev: Event) -> list[StagePlan]:
        """The route's stages whose clauses ``ev`` satisfies and, for a stage no
        field is required by, that read one of its fields (``StagePlan.reads``), in
        route order."""
        found = self.hits(ev)
        picked = set(self.always)
        keyed = self._keyed
        for atom in found:
            stages_keyed = keyed.get(atom)
            if stages_keyed:
                picked.update(stages_keyed)
        checks, reads, stages, fields = self._checks, self._reads, self.stages, ev.fields
        out = []
        for i in sorted(picked):
            kept = checks.get(i)
            if kept is not None and not _all_hit(kept, found):
                continue
            needed = reads[i]
            if needed is None or not needed.isdisjoint(fields):
                out.append(stages[i])
        return out


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
