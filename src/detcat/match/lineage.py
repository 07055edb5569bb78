"""EQL lineage over a stream of events: ``descendant of``, ``child of``, ``event of``.

Only the legacy ``eql`` package (Endgame's EQL) defines lineage — Elasticsearch
rejects it — so its semantics are followed. Each event belongs to the process it
names (``data/process_identity.toml``: ECS, Sysmon, legacy/Endgame spellings), and
each lineage clause's bracketed subquery is tested on every event of the stream:

- ``event of [Q]``: an event of the same process, earlier or this one, matched Q;
- ``child of [Q]``: when the process was created, its parent had matched Q;
- ``descendant of [Q]``: when the process was created, its parent had matched Q
  or was itself a descendant of Q. Both are fixed at the creation event, as in
  the legacy engine, so an ancestor may leave the tree without its descendants
  forgetting.
- A termination event still belongs to its process, and so do the events up to
  the next process event (the legacy engine's rule: late events of the process);
  after that the pid names another process (pid reuse), as it does at a new
  creation event with a live pid.

**When "yes" is sound.** The facts were seen in the stream and are linked by
unique ids (``process.entity_id``, ``ProcessGuid``, ``unique_pid``). A pid alone
identifies a process only while every creation and termination with that pid is
seen, so links through pids alone count only in a complete stream.

**When "no" is sound.** Only in a stream declared *complete*: every event of the
hosts it covers is in it, and an event not in it did not happen (the legacy
engine's own assumption: a sandbox run, a capture from boot — the eql package's
test data). Otherwise "no" is never said, only "yes" or undetermined. The
tempting rule "no when every ancestor of the chain was seen, none matched, and
the root's parent was never seen" is unsound: the root's parent may have run,
and matched, before the first event (a python.exe started at 09:05 by a cmd.exe
from 08:00, in a capture from 09:00), and an input filtered to process events
holds none of the file events a ``file where`` subquery needs.

**Memory.** At most ``MAX_PROCESSES`` processes, the least recently seen dropped
first. Once one was dropped, a process the tree does not hold, or meets after
its creation, is undetermined even in a complete stream.

Outside a stream (a stage's filter tested on one event by itself) lineage is
undetermined: ``answer`` needs the tree of the stream being matched.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from detcat.match.events import Event
from detcat.model import Expr, opaques
from detcat.tables import PROCESS_IDENTITY, load

MAX_PROCESSES = 100_000

# An Opaque condition that may hold lineage: its stage is compiled up front, so the
# tree tests the clause's subquery from the stream's first event on.
_LINEAGE = re.compile(r"\b(?:descendant|child|event)\s+of\s*\[", re.IGNORECASE)


# Why a stage with lineage is undetermined (``detcat match``'s "unknown").
UNSETTLED = (
    "lineage: what this stream shows of the process's ancestry does not settle it "
    "(a 'no' needs the stream declared a complete capture)"
)


@dataclass(eq=False)
class Clause:
    """One ``<kind> of [subquery]`` of a rule (compiled by ``match.eql``)."""

    kind: str  # "descendant", "child" or "event"
    subquery: Callable[[Event], Any]  # True, False, NULL (no match) or None (unknown)
    nested: bool = False  # inside another clause's subquery


def mentions_lineage(expr: Expr | None) -> bool:
    return any(_LINEAGE.search(o.text) for o in opaques(expr))


# The tree of the stream whose event is being matched (set by ProcessTree.observing).
_CURRENT: ContextVar[ProcessTree | None] = ContextVar("detcat_process_tree", default=None)


def answer(clause: Clause, ev: Event) -> bool | None:
    """The clause on ``ev``: True, False, or None (undetermined)."""
    tree = _CURRENT.get()
    return None if tree is None else tree.answer(clause, ev)


# -- what an event says of its process ---------------------------------------------------


@dataclass(frozen=True)
class Identity:
    host: str | None
    uid: str | None
    pid: str | None
    parent_uid: str | None
    ppid: str | None
    process_event: bool
    life: str | None  # "start", "end", or None (another event of the process)


@cache
def _table() -> dict[str, Any]:
    return load(PROCESS_IDENTITY)


def _first(ev: Event, name: str) -> str | None:
    """The first value of ``name`` as the document spells it (canonical names mix
    shapes: Sysmon's ProcessId is also ``process.pid``)."""
    for v in ev.raw.get(name) or ():
        if v is not None and v != "":
            return str(v)
    return None


def _has(ev: Event, pairs: list[list[str]]) -> bool:
    """Whether the event has one of the (name, value) pairs, as spelled or as a
    canonical field (a Sysmon event's derived ``event.type``)."""
    return any(value in (ev.raw.get(name) or ev.fields.get(name) or ()) for name, value in pairs)


def identity(ev: Event) -> Identity | None:
    """The process ``ev`` belongs to, or None when it names none."""
    for shape in _table()["shape"]:
        uid, pid = _first(ev, shape["uid"]), _first(ev, shape["pid"])
        if uid is None and (pid is None or shape.get("require_uid")):
            continue
        host = next((h for n in shape["host"] if (h := _first(ev, n)) is not None), None)
        parent_uid, ppid = _first(ev, shape["parent_uid"]), _first(ev, shape["ppid"])
        life = _table()["life"]
        if not _has(ev, life["process"]):
            return Identity(host, uid, pid, parent_uid, ppid, False, None)
        started = "start" if _has(ev, life["start"]) else None
        ended = "end" if _has(ev, life["end"]) else None
        return Identity(host, uid, pid, parent_uid, ppid, True, started or ended)
    return None


# -- the tree --------------------------------------------------------------------------------

Key = tuple[str, str | None, str]  # ("uid" or "pid", host, id)
_ABSENT = object()


@dataclass(eq=False)
class _Process:
    by_pid: bool  # keyed by its pid alone (no unique id)
    known: bool  # its whole life is in the stream, as far as the stream is complete
    pid: tuple[str | None, str] | None  # (host, pid)
    # clause index -> True (an event of it matched the subquery) or None (one may have)
    matched: dict[int, bool | None] = field(default_factory=dict)
    # clause index -> the child / descendant answer, fixed when it was first met
    lineage: dict[int, bool | None] = field(default_factory=dict)


def _or(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


class ProcessTree:
    """The processes of one stream, at most ``limit`` (see the module docstring)."""

    def __init__(self, clauses: Sequence[Clause], complete: bool = False):
        self.clauses = list(clauses)  # inner clauses before the ones whose subquery uses them
        self.index = {id(c): i for i, c in enumerate(self.clauses)}
        self.complete = complete
        self.limit = MAX_PROCESSES
        self.processes: OrderedDict[Key, _Process] = OrderedDict()  # least recent first
        self.pids: dict[tuple[str | None, str], Key] = {}  # (host, pid) -> its live process
        self.dropped = 0
        self._ended: list[tuple[tuple[str | None, str], Key]] = []
        self._event: Event | None = None
        self._process: _Process | None = None
        self._idle = False  # the event names pid 0

    @contextmanager
    def observing(self, ev: Event) -> Iterator[None]:
        """Take ``ev`` into the tree, and answer lineage about it while matching it."""
        token = _CURRENT.set(self)
        try:
            self._observe(ev)
            yield
        finally:
            _CURRENT.reset(token)

    def answer(self, clause: Clause, ev: Event) -> bool | None:
        i = self.index.get(id(clause))
        proc = self._process
        if i is None or ev is not self._event:
            return None
        if self._idle:
            # Pid 0, the idle loop, is no process: nothing created it and the legacy
            # engine never counts its events. A sensor may write 0 for "unknown", so
            # "no" again only in a complete stream.
            return False if self.complete else None
        if proc is None:
            return None
        if proc.by_pid and not self.complete:
            return None  # a pid alone may be another process's (see "yes" above)
        if clause.kind == "event":
            return self._matched(proc, i)
        return proc.lineage.get(i)

    # -- taking an event in ----------------------------------------------------------------

    def _observe(self, ev: Event) -> None:
        self._event, self._process = ev, None
        who = identity(ev)
        if who is not None and who.process_event:
            self._forget_ended()
        self._idle = who is not None and who.pid == "0"
        if who is None or self._idle:
            return
        key, proc = self._find(who)
        self._process = proc
        for i, clause in enumerate(self.clauses):
            r = clause.subquery(ev)
            if r is True:
                proc.matched[i] = True
            elif r is None and i not in proc.matched:
                proc.matched[i] = None
        if who.life == "end" and who.pid is not None:
            self._ended.append(((who.host, who.pid), key))

    def _forget_ended(self) -> None:
        """The processes ended before this process event: their pids name new ones."""
        for pid_key, key in self._ended:
            if self.pids.get(pid_key) == key:
                del self.pids[pid_key]
        self._ended.clear()

    def _find(self, who: Identity) -> tuple[Key, _Process]:
        """The event's process, met now for the first time if need be."""
        if who.life != "start":
            key = self._known_key(who)
            if key is not None:
                self.processes.move_to_end(key)
                return key, self.processes[key]
        created = who.life == "start"
        pid = (who.host, who.pid) if who.pid is not None else None
        proc = _Process(by_pid=who.uid is None, known=created or not self.dropped, pid=pid)
        for i, clause in enumerate(self.clauses):
            if clause.kind != "event":
                # met after its creation: nothing seen of its ancestors
                inherited = self._inherited(who, i, clause.kind) if created else self._no(proc)
                proc.lineage[i] = inherited
        key = _key(who)
        earlier = self.processes.get(key) if who.uid is not None else None
        if earlier is not None:
            proc.matched = earlier.matched  # its events logged before its creation event
        self._add(key, proc)
        return key, proc

    def _known_key(self, who: Identity) -> Key | None:
        """The key of the process the tree holds for ``who``, if any."""
        key = _key(who) if who.uid is not None else self.pids.get((who.host, who.pid or ""))
        return key if key in self.processes else None

    def _inherited(self, who: Identity, i: int, kind: str) -> bool | None:
        """The child / descendant answer of a process created now, from its parent."""
        parent = self._parent(who)
        if parent is None:
            # Never seen: in a complete stream it had no event, so matched nothing.
            no_parent_event = self.complete and not self.dropped
            return False if no_parent_event and (who.parent_uid or who.ppid) else None
        got = self._matched(parent, i)
        return got if kind == "child" else _or(got, parent.lineage.get(i))

    def _parent(self, who: Identity) -> _Process | None:
        if who.parent_uid is not None:
            return self.processes.get(("uid", who.host, who.parent_uid))
        if who.ppid is not None and self.complete:
            key = self.pids.get((who.host, who.ppid))
            return self.processes.get(key) if key else None
        return None

    def _add(self, key: Key, proc: _Process) -> None:
        self.processes.pop(key, None)
        self.processes[key] = proc
        if proc.pid is not None:
            self.pids[proc.pid] = key
        while len(self.processes) > self.limit:
            old_key, old = self.processes.popitem(last=False)
            if old.pid is not None and self.pids.get(old.pid) == old_key:
                del self.pids[old.pid]
            self.dropped += 1

    # -- facts -------------------------------------------------------------------------------

    def _no(self, proc: _Process) -> bool | None:
        """What nothing seen means for ``proc``: no, only when the stream is complete
        and holds the process's whole life."""
        return False if self.complete and proc.known else None

    def _matched(self, proc: _Process, i: int) -> bool | None:
        got = proc.matched.get(i, _ABSENT)
        return self._no(proc) if got is _ABSENT else got  # type: ignore[return-value]


def _key(who: Identity) -> Key:
    return ("uid", who.host, who.uid) if who.uid is not None else ("pid", who.host, who.pid or "")
