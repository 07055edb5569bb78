"""EQL lineage over a stream (``match.lineage``): ``descendant of``, ``child of`` and
``event of`` answered from the stream's process tree. Each case feeds events in
order to one stream and lists, per event, what the rule said: ``yes``, ``no`` or
``?`` (undetermined). Events are ECS unless said otherwise; ``complete`` declares
the stream a complete capture, the only case where lineage may say "no"."""

from __future__ import annotations

from typing import Any

import pytest
from match_helpers import rule_catalog

from detcat.match import Matcher, RulePlan, lineage
from detcat.match.events import Event, canonical_event
from detcat.match.lineage import identity
from detcat.normalize import normalize_rule
from detcat.sources.elastic import build_rule
from detcat.tables import PROCESS_IDENTITY, load


def ecs(label: str, uid: str | None, parent: str | None = None, *, pid: int | None = None,
        ppid: int | None = None, name: str = "x.exe", kind: str = "process",
        life: str = "", host: str = "h1", file: str | None = None) -> Event:  # fmt: skip
    """An ECS event of process ``uid`` (entity id; None: pids only)."""
    proc: dict[str, Any] = {"name": name}
    if uid is not None:
        proc["entity_id"] = uid
    if pid is not None:
        proc["pid"] = pid
    par = {k: v for k, v in (("entity_id", parent), ("pid", ppid)) if v is not None}
    if par:
        proc["parent"] = par
    event: dict[str, Any] = {"category": kind}
    if life:
        event["type"] = life
    doc = {"event": event, "process": proc, "host": {"id": host}}
    return canonical_event(label, doc | ({"file": {"name": file}} if file else {}))


def start(label: str, uid: str | None, parent: str | None = None, **kw: Any) -> Event:
    return ecs(label, uid, parent, life="start", **kw)


def end(label: str, uid: str | None, **kw: Any) -> Event:
    return ecs(label, uid, life="end", **kw)


def run(query: str, events: list[Event], complete: bool = False) -> list[str]:
    rule = build_rule({"rule_id": "r", "name": "r", "type": "eql", "language": "eql",
                       "query": query}, {}, "r.toml")  # fmt: skip
    assert not rule.problems, rule.problems
    normalize_rule(rule)
    m = Matcher([RulePlan.from_rule(rule)]).stream(complete=complete)
    out = []
    for e in events:
        r = m.match(e)
        out.append("yes" if r.matches else "?" if r.undetermined else "no")
    return out


CHILD_OF_CMD = 'process where process.name == "whoami.exe" and child of [process where process.name == "cmd.exe"]'  # noqa: E501
UNDER_CMD = 'process where process.name == "whoami.exe" and descendant of [process where process.name == "cmd.exe"]'  # noqa: E501
NOT_UNDER_CMD = 'process where process.name == "whoami.exe" and not descendant of [process where process.name == "cmd.exe"]'  # noqa: E501
EVENT_OF_CMD = 'file where event of [process where process.name == "cmd.exe"]'

# A chain explorer -> cmd -> python -> whoami, entity ids e, c, p, w; explorer's
# parent (userinit) is never seen.
CHAIN = [
    start("e", "e", "userinit", name="explorer.exe"),
    start("c", "c", "e", name="cmd.exe"),
    start("p", "p", "c", name="python.exe"),
    start("w", "w", "p", name="whoami.exe"),
]
# whoami under explorer only
OTHER = [start("e", "e", "userinit", name="explorer.exe"), start("w", "w", "e", name="whoami.exe")]

CASES = [
    # (name, query, events, complete, expected per event)
    ("a descendant: yes, in any stream", UNDER_CMD, CHAIN, False, ["no", "no", "no", "yes"]),
    (
        "a grandchild is no child: never said without completeness",
        CHILD_OF_CMD,
        CHAIN,
        False,
        ["no", "no", "no", "?"],
    ),
    ("... and no in a complete stream", CHILD_OF_CMD, CHAIN, True, ["no", "no", "no", "no"]),
    ("not a descendant: undetermined unless complete", UNDER_CMD, OTHER, False, ["no", "?"]),
    ("not a descendant in a complete stream: no", UNDER_CMD, OTHER, True, ["no", "no"]),
    ("not descendant of: the same honesty", NOT_UNDER_CMD, OTHER, False, ["no", "?"]),
    ("not descendant of, complete", NOT_UNDER_CMD, OTHER, True, ["no", "yes"]),
    ("not descendant of a real descendant", NOT_UNDER_CMD, CHAIN, False, ["no", "no", "no", "no"]),
    (
        "the parent never seen: undetermined",
        UNDER_CMD,
        [start("w", "w", "c", name="whoami.exe")],
        False,
        ["?"],
    ),
    (
        "the parent never seen, complete: it had no event, so no",
        UNDER_CMD,
        [start("w", "w", "c", name="whoami.exe")],
        True,
        ["no"],
    ),
    (
        "a creation naming no parent: undetermined, even complete",
        UNDER_CMD,
        [start("w", "w", name="whoami.exe")],
        True,
        ["?"],
    ),
    (
        "met after its creation: its ancestry unknown",
        UNDER_CMD,
        [start("c", "c", name="cmd.exe"), ecs("w", "w", "c", name="whoami.exe")],
        False,
        ["no", "?"],
    ),
    (
        "the ancestor matched after the child's creation: no (fixed at creation)",
        UNDER_CMD,
        [
            start("c", "c", "userinit", name="x.exe"),
            start("w", "w", "c", name="whoami.exe"),
            ecs("c2", "c", name="cmd.exe"),
            end("w2", "w", name="whoami.exe"),
        ],
        True,
        ["no", "no", "no", "no"],
    ),
    (
        "a termination event still belongs to the descendant",
        UNDER_CMD,
        [*CHAIN, end("w-end", "w", name="whoami.exe")],
        False,
        ["no", "no", "no", "yes", "yes"],
    ),
    (
        "the ancestor may leave the tree: descendants keep their answer",
        UNDER_CMD,
        [*CHAIN[:3], end("c-end", "c", name="cmd.exe"), CHAIN[3]],
        False,
        ["no", "no", "no", "no", "yes"],
    ),
    (
        "pids repeat across hosts",
        UNDER_CMD,
        [start("c", "c", name="cmd.exe"), start("w", "w", "c", name="whoami.exe", host="h2")],
        True,
        ["no", "no"],
    ),
    (
        "event of: another event of the same process",
        EVENT_OF_CMD,
        [start("c", "c", name="cmd.exe"), ecs("f", "c", kind="file")],
        False,
        ["no", "yes"],
    ),
    (
        "event of: an event logged before its process's creation event",
        EVENT_OF_CMD,
        [
            ecs("c0", "c", name="cmd.exe"),
            start("c", "c", "userinit", name="x.exe"),
            ecs("f", "c", kind="file"),
        ],
        True,
        ["no", "no", "yes"],
    ),
    (
        "event of: an event of another process, undetermined",
        EVENT_OF_CMD,
        [start("c", "c", name="cmd.exe"), ecs("f", "x", kind="file")],
        False,
        ["no", "?"],
    ),
    (
        "event of: an event of another process, complete: no",
        EVENT_OF_CMD,
        [start("c", "c", name="cmd.exe"), ecs("f", "x", kind="file")],
        True,
        ["no", "no"],
    ),
    (
        "an event naming no process: undetermined, even complete",
        EVENT_OF_CMD,
        [canonical_event("f", {"event": {"category": "file"}})],
        True,
        ["?"],
    ),
    (
        "the subquery's category: another category matches nothing",
        EVENT_OF_CMD,
        [ecs("c", "c", name="cmd.exe", kind="network"), ecs("f", "c", kind="file")],
        True,
        ["no", "no"],
    ),
]

# Pids alone (no entity ids): a pid names a process only while its life is seen.
PIDS = [
    start("c", None, pid=10, ppid=1, name="cmd.exe"),
    start("w", None, pid=20, ppid=10, name="whoami.exe"),
]
REUSED = [
    start("c", None, pid=10, ppid=1, name="cmd.exe"),
    end("c-end", None, pid=10, name="cmd.exe"),
    start("n", None, pid=10, ppid=1, name="notepad.exe"),
    start("w", None, pid=20, ppid=10, name="whoami.exe"),
]
CASES += [
    ("pids only: undetermined unless complete", UNDER_CMD, PIDS, False, ["no", "?"]),
    ("pids only, complete", UNDER_CMD, PIDS, True, ["no", "yes"]),
    ("pid reuse after a termination", UNDER_CMD, REUSED, True, ["no", "no", "no", "no"]),
    (
        "pid reuse without the termination: a creation starts a new life",
        UNDER_CMD,
        [REUSED[0], *REUSED[2:]],
        True,
        ["no", "no", "no"],
    ),
    (
        "after a termination, the pid names another process from the next process event",
        EVENT_OF_CMD,
        [
            start("c", None, pid=10, ppid=1, name="cmd.exe"),
            end("c-end", None, pid=10, name="cmd.exe"),
            ecs("f", None, pid=10, kind="file"),  # a late event of cmd (legacy engine)
            start("x", None, pid=30, ppid=1),
            ecs("g", None, pid=10, kind="file"),
        ],
        True,
        ["no", "no", "yes", "no", "no"],
    ),
]


@pytest.mark.parametrize(("name", "query", "events", "complete", "expected"), CASES,
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_lineage(name: str, query: str, events: list[Event], complete: bool,
                 expected: list[str]) -> None:  # fmt: skip
    assert run(query, events, complete) == expected


def test_an_undetermined_answer_says_why() -> None:
    rule = build_rule({"rule_id": "r", "name": "r", "type": "eql", "language": "eql",
                       "query": UNDER_CMD}, {}, "r.toml")  # fmt: skip
    normalize_rule(rule)
    m = Matcher([RulePlan.from_rule(rule)]).stream()
    results = [m.match(e) for e in OTHER]
    assert lineage.UNSETTLED in results[1].undetermined[0]["unknown"]


def test_an_unknown_subquery_leaves_descendants_undetermined() -> None:
    """A subquery Elasticsearch could not evaluate on the parent's event (length()
    of a number): the parent may have matched, so whoami may be its descendant."""
    query = (
        'process where process.name == "whoami.exe" and '
        "descendant of [process where length(process.pid) > 0]"
    )
    events = [start("c", "c", "userinit", pid=5), start("w", "w", "c", name="whoami.exe")]
    assert run(query, events, complete=True) == ["no", "?"]


def test_lineage_in_a_sequence() -> None:
    """A sequence step with lineage: the tree is updated before the steps are tested."""
    query = (
        "sequence by process.entity_id\n"
        '  [process where descendant of [process where process.name == "cmd.exe"]]\n'
        '  [file where file.name == "x.ps1"]'
    )
    rule = build_rule({"rule_id": "r", "name": "r", "type": "eql", "language": "eql",
                       "query": query}, {}, "r.toml")  # fmt: skip
    normalize_rule(rule)
    m = Matcher([RulePlan.from_rule(rule)]).stream()
    found = [
        d["events"]
        for e in [*CHAIN, ecs("f", "w", kind="file", file="x.ps1")]
        for d in m.match(e).matches
    ]
    assert found == [["w", "f"]]  # python is a descendant too, but wrote nothing


def test_nested_lineage() -> None:
    """whoami under a process that wrote x.ps1 while itself under cmd.exe."""
    query = (
        'process where process.name == "whoami.exe" and descendant of [file where '
        'file.name == "x.ps1" and descendant of [process where process.name == "cmd.exe"]]'
    )
    events = [
        *CHAIN[:3],
        ecs("f", "p", kind="file", file="x.ps1"),
        start("w", "w", "p", name="whoami.exe"),  # under python, which wrote x.ps1
        start("w2", "w2", "c", name="whoami.exe"),  # under cmd, which wrote nothing
    ]
    assert run(query, events, complete=True) == ["no", "no", "no", "no", "yes", "no"]


def test_a_dropped_process_makes_answers_undetermined(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tree holds two processes here."""
    monkeypatch.setattr(lineage, "MAX_PROCESSES", 2)
    others = [start("x1", "x1", "userinit"), start("x2", "x2", "userinit")]
    # explorer is dropped before whoami's creation: its "no" is lost
    assert run(UNDER_CMD, [OTHER[0], *others, OTHER[1]], complete=True) == ["no"] * 3 + ["?"]
    # cmd is dropped before whoami's creation: its "yes" is lost too
    assert run(UNDER_CMD, [*CHAIN[:2], *others, start("w", "w", "c", name="whoami.exe")],
               complete=True) == ["no"] * 4 + ["?"]  # fmt: skip
    # python's answer was fixed at its creation, while cmd was held
    assert run(UNDER_CMD, CHAIN, complete=True) == ["no", "no", "no", "yes"]


def test_outside_a_stream_lineage_is_undetermined() -> None:
    """A stage's filter tested on one event by itself has no process tree."""
    rule = build_rule({"rule_id": "r", "name": "r", "type": "eql", "language": "eql",
                       "query": UNDER_CMD}, {}, "r.toml")  # fmt: skip
    normalize_rule(rule)
    stage = RulePlan.from_rule(rule).stages[0]
    assert stage.test()(CHAIN[3]) is None


def sysmon(label: str, code: int, **data: Any) -> Event:
    system = {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}, "EventID": code,
              "Computer": "pc1"}  # fmt: skip
    return canonical_event(label, {"Event": {"System": system, "EventData": data}})


def test_sysmon_events() -> None:
    events = [
        sysmon("c", 1, Image="C:\\Windows\\System32\\cmd.exe", ProcessGuid="{c}",
               ProcessId="10", ParentProcessGuid="{e}", ParentProcessId="5"),
        sysmon("w", 1, Image="C:\\Windows\\System32\\whoami.exe", ProcessGuid="{w}",
               ProcessId="20", ParentProcessGuid="{c}", ParentProcessId="10"),
        sysmon("w-end", 5, Image="C:\\Windows\\System32\\whoami.exe", ProcessGuid="{w}",
               ProcessId="20"),
    ]  # fmt: skip
    assert run(CHILD_OF_CMD, events) == ["no", "yes", "yes"]


LINEAGE_RULE = f"""
[rule]
rule_id = "whoami-under-cmd"
name = "whoami under cmd"
type = "eql"
language = "eql"
query = '''{UNDER_CMD}'''
"""


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], ["no", "no", "yes", "no", "?"]),
        (["--complete-capture"], ["no", "no", "yes", "no", "no"]),
    ],
)
def test_detcat_match_answers_lineage(tmp_path: Any, flags: list[str], expected: list[str]) -> None:
    """Through the catalog and the command line: cmd -> whoami is a match; explorer ->
    whoami is no match only for a complete capture."""
    import json

    from click.testing import CliRunner

    from detcat.cli import main

    db = rule_catalog(tmp_path, "elastic", "rule.toml", LINEAGE_RULE)
    under_explorer = [
        start("e2", "e2", "userinit", name="explorer.exe"),
        start("w2", "w2", "e2", name="whoami.exe"),
    ]
    docs = [e.doc for e in [*CHAIN[:2], start("w", "w", "c", name="whoami.exe"), *under_explorer]]
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(d) + "\n" for d in docs))
    res = CliRunner().invoke(main, ["match", "--db", str(db), "--json", str(events), *flags])
    assert res.exit_code == 0, res.output
    got = ["yes" if r["matches"] else "?" if r.get("undetermined") else "no"
           for r in json.loads(res.output)]  # fmt: skip
    assert got == expected


# -- data/process_identity.toml ---------------------------------------------------------------

TABLE = load(PROCESS_IDENTITY)


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Dotted names as nested objects, as ECS documents hold them."""
    doc: dict[str, Any] = {}
    for name, value in flat.items():
        node = doc
        *path, last = name.split(".")
        for p in path:
            node = node.setdefault(p, {})
        node[last] = value
    return doc


@pytest.mark.parametrize("shape", TABLE["shape"], ids=[s["name"] for s in TABLE["shape"]])
def test_each_shape_names_a_process(shape: dict[str, Any]) -> None:
    assert set(shape) - {"require_uid"} == {"name", "uid", "parent_uid", "pid", "ppid", "host"}
    values = {shape["uid"]: "u1", shape["parent_uid"]: "u0", shape["pid"]: 7, shape["ppid"]: 3,
              shape["host"][0]: "pc"}  # fmt: skip
    who = identity(canonical_event("e", _nest(values)))
    assert who is not None
    assert (who.uid, who.parent_uid, who.pid, who.ppid, who.host) == ("u1", "u0", "7", "3", "pc")


def test_windows_names_without_the_sysmon_guid_name_no_process() -> None:
    """Security 4688's ProcessId is the creator's: Sysmon's names need its GUID."""
    assert identity(canonical_event("e", {"ProcessId": "0x1f0", "NewProcessId": "0x2a"})) is None
    assert identity(sysmon("e", 1, ProcessId="10")) is None


LIFE = [(life, pair) for life in ("start", "end") for pair in TABLE["life"][life]]


@pytest.mark.parametrize(("life", "pair"), LIFE, ids=[f"{a}:{b[0]}={b[1]}" for a, b in LIFE])
def test_each_life_value_is_read(life: str, pair: list[str]) -> None:
    for kind_field, kind in TABLE["life"]["process"]:
        doc = _nest({"process.pid": 7, kind_field: kind, pair[0]: pair[1]})
        who = identity(canonical_event("e", doc))
        assert who is not None and who.life == life
    other = identity(canonical_event("e", _nest({"process.pid": 7, pair[0]: pair[1]})))
    assert other is not None and other.life is None  # not a process event
