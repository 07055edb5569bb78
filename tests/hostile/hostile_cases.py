# ruff: noqa: E501  (a table of cases: one case, one line, reads best)
"""Hostile source files, per vendor and per category: each case writes one bad
file (or a few that belong together) into a sources directory and says which
path, relative to the vendor's folder, the catalog must then name, as a rule
or as a problem. ``None``: nothing to name (a folder loop is no file).

Categories: depth, size, aliases, shape, encoding, link, macro, loop.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hostile_sources import CHRONICLE, ELASTIC, SIGMA, write

SECRET = "root:x:0:0:SECRET-PASSWD-LINE:/root:/bin/bash\n"
SIZE_LIMIT_KIB = 64  # the builds here pass --max-file-size 64
BIG = "A" * (SIZE_LIMIT_KIB * 1024 + 1)

Writer = Callable[[Path, Path], "str | None"]  # (sources, outside folder) -> path to name


@dataclass(frozen=True)
class Case:
    id: str
    vendor: str
    category: str
    write: Writer


def _file(vendor: str, rel: str, content: str | bytes) -> Writer:
    def w(src: Path, outside: Path) -> str:
        write(src / vendor / rel, content)
        return rel

    return w


def _link(vendor: str, rel: str, target: Callable[[Path, Path], Path]) -> Writer:
    def w(src: Path, outside: Path) -> str:
        path = src / vendor / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target(path, outside), path)
        return rel

    return w


def _outside(name: str, content: str) -> Callable[[Path, Path], Path]:
    def t(path: Path, outside: Path) -> Path:
        return write(outside / name, content)

    return t


def _self(path: Path, outside: Path) -> Path:
    return path  # a link to itself: a loop


def _dangling(path: Path, outside: Path) -> Path:
    return path.parent / "nowhere.yml"


def _dir_loop(vendor: str, rel: str) -> Writer:
    def w(src: Path, outside: Path) -> None:
        path = src / vendor / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(path.parent, path, target_is_directory=True)
        return None

    return w


def _laughs(levels: int = 9) -> str:
    """YAML's billion laughs: ``levels`` anchors of ten aliases each."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        p = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([p] * 10)}]")
    return "\n".join(lines) + "\n"


def _sigma(n: str, old: str = "", new: str = "") -> str:
    """A good Sigma rule of its own id, with ``old`` replaced by ``new``."""
    text = SIGMA.format(n=0).replace("00000000-0000-4000-8000-000000000000", _uuid(n))
    return text.replace(old, new) if old else text


def _uuid(n: str) -> str:
    return f"00000000-0000-4000-8000-{zlib.crc32(n.encode()):012d}"


def _elastic(n: str, language: str = "kuery", query: str = 'a : "b"', extra: str = "") -> str:
    rule_type = {"kuery": "query"}.get(language, language)
    text = ELASTIC.format(n=n, type=rule_type, language=language, query=query)
    return text.replace("[[rule.threat]]", extra + "\n[[rule.threat]]", 1) if extra else text


def _elastic_threat(n: str, threat: str) -> str:
    head = _elastic(n).split("[[rule.threat]]")[0]
    return head + threat + "\n"


TAGS = "tags:\n  mitre_attack_id:\n  - T1219\n"


def _splunk(n: str, search: str = "`sysmon` a=1", tags: str = TAGS) -> str:
    return (
        f"name: hostile {n}\nid: hostile-splunk-{n}\nstatus: production\ntype: TTP\n"
        f"search: {_yaml_str(search)}\n{tags}"
    )


def _yaml_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _chronicle(n: str, events: str = '$e.metadata.event_type = "X"') -> str:
    body = CHRONICLE.format(n=n)
    start, end = body.index("events:") + len("events:"), body.index("condition:")
    return body[:start] + "\n    " + events + "\n  " + body[end:]


def _macro_chain(levels: int, calls: int) -> Writer:
    """Macros that each call the next ``calls`` times, and a detection using them."""

    def w(src: Path, outside: Path) -> str:
        for i in range(levels):
            body = " OR ".join([f"`grow{i + 1}`"] * calls) if i < levels - 1 else "x=1"
            write(
                src / "splunk" / "macros" / f"grow{i}.yml", f"name: grow{i}\ndefinition: '{body}'\n"
            )
        rel = "detections/endpoint/grows.yml"
        write(src / "splunk" / rel, _splunk("grows", "`sysmon` `grow0`"))
        return rel

    return w


def _macro_cycle(src: Path, outside: Path) -> str:
    write(src / "splunk" / "macros" / "cyc_a.yml", "name: cyc_a\ndefinition: '`cyc_b`'\n")
    write(src / "splunk" / "macros" / "cyc_b.yml", "name: cyc_b\ndefinition: '`cyc_a` x=1'\n")
    rel = "detections/endpoint/cycle.yml"
    write(src / "splunk" / rel, _splunk("cycle", "`sysmon` `cyc_a`"))
    return rel


def _lookup_escape(src: Path, outside: Path) -> str:
    write(outside / "secret.csv", "name\n" + SECRET)
    rel = "lookups/escape.yml"
    write(src / "splunk" / rel, "name: escape\nfilename: ../../../outside/secret.csv\n")
    return rel


def _lookup_link(src: Path, outside: Path) -> str:
    """A definition whose CSV is a link out of the lookups folder."""
    os.symlink(
        write(outside / "secret2.csv", "name\n" + SECRET), src / "splunk" / "lookups" / "l.csv"
    )
    rel = "lookups/linked.yml"
    write(src / "splunk" / rel, "name: linked\nfilename: l.csv\n")
    return rel


def _secret_file(vendor: str, folder: str) -> str:
    """A file outside the sources folder that would be read as a good rule (or
    macro, or lookup) carrying the secret, were the link followed."""
    mark = SECRET.split(":")[4]
    if folder == "macros":
        return f"name: sysmon\ndefinition: '{mark}'\n"
    if folder == "lookups":
        return f"name: {mark}\nfilename: tools.csv\n"
    return {
        "sigma": _sigma(mark, "title: good sigma 0", f"title: {mark}"),
        "elastic": _elastic(mark),
        "splunk": _splunk(mark),
        "chronicle": _chronicle(mark),
    }[vendor]


# Where each vendor reads files: (vendor, folder, extension).
LOCATIONS = (
    ("sigma", "rules", ".yml"),
    ("elastic", "rules", ".toml"),
    ("splunk", "detections/endpoint", ".yml"),
    ("chronicle", "rules", ".yaral"),
    ("splunk", "macros", ".yml"),
    ("splunk", "lookups", ".yml"),
)
DEEP = 1000
CASES: list[Case] = [
    # -- depth
    Case("sigma-deep-condition", "sigma", "depth",
         _file("sigma", "rules/deep_cond.yml", _sigma("dc", "condition: selection",
             "condition: " + "(" * DEEP + "selection" + ")" * DEEP))),
    Case("sigma-deep-not", "sigma", "depth",
         _file("sigma", "rules/deep_not.yml", _sigma("dn", "condition: selection",
             "condition: " + "not " * DEEP + "selection"))),
    Case("sigma-deep-yaml", "sigma", "depth",
         _file("sigma", "rules/deep_yaml.yml", _sigma("dy") + "x: " + "[" * 5000 + "]" * 5000 + "\n")),
    Case("elastic-deep-kql", "elastic", "depth",
         _file("elastic", "rules/deep_kql.toml", _elastic("dk", query="not " * DEEP + "a : b"))),
    Case("elastic-deep-eql", "elastic", "depth",
         _file("elastic", "rules/deep_eql.toml",
               _elastic("de", "eql", "process where " + "not " * DEEP + "a == 1"))),
    Case("elastic-deep-esql", "elastic", "depth",
         _file("elastic", "rules/deep_esql.toml",
               _elastic("dq", "esql", "from a | where " + "(" * DEEP + "b == 1" + ")" * DEEP))),
    Case("elastic-deep-toml", "elastic", "depth",
         _file("elastic", "rules/deep_toml.toml", _elastic("dt") + "\n[x]\ny = " + "[" * 10_000 + "]" * 10_000 + "\n")),
    Case("elastic-nested-toml", "elastic", "depth",
         _file("elastic", "rules/nested_toml.toml",
               _elastic("dn", extra="risk_score_mapping = " + "[" * 500 + "]" * 500))),
    Case("splunk-deep-spl", "splunk", "depth",
         _file("splunk", "detections/endpoint/deep_spl.yml", _splunk("ds", "NOT " * DEEP + "a=1"))),
    Case("splunk-deep-parens", "splunk", "depth",
         _file("splunk", "detections/endpoint/deep_par.yml",
               _splunk("dp", "| where " + "(" * DEEP + "a=1" + ")" * DEEP))),
    Case("splunk-deep-yaml", "splunk", "depth",
         _file("splunk", "detections/endpoint/deep_yaml.yml",
               _splunk("dy", tags="tags: " + "[" * 5000 + "]" * 5000 + "\n"))),
    Case("chronicle-deep-not", "chronicle", "depth",
         _file("chronicle", "rules/deep_not.yaral", _chronicle("dn", "not " * DEEP + '$e.a = "b"'))),
    Case("chronicle-deep-parens", "chronicle", "depth",
         _file("chronicle", "rules/deep_par.yaral",
               _chronicle("dp", "(" * DEEP + '$e.a = "b"' + ")" * DEEP))),
    # -- size
    Case("sigma-big", "sigma", "size",
         _file("sigma", "rules/big.yml", _sigma("big") + f"description: {BIG}\n")),
    Case("elastic-big", "elastic", "size",
         _file("elastic", "rules/big.toml", _elastic("big", query=f'a : "{BIG}"'))),
    Case("splunk-big", "splunk", "size",
         _file("splunk", "detections/endpoint/big.yml", _splunk("big", f'a="{BIG}"'))),
    Case("splunk-big-macro", "splunk", "size",
         _file("splunk", "macros/big.yml", f"name: big\ndefinition: '{BIG}'\n")),
    Case("splunk-big-lookup", "splunk", "size", _file("splunk", "lookups/big.yml",
         "name: big\nfilename: big.csv\n# " + BIG + "\n")),
    Case("chronicle-big", "chronicle", "size",
         _file("chronicle", "rules/big.yaral", _chronicle("big", f'$e.a = "{BIG}"'))),
    # -- YAML aliases (billion laughs)
    Case("sigma-laughs", "sigma", "aliases",
         _file("sigma", "rules/laughs.yml", _sigma("laughs") + _laughs().replace("a8:", "falsepositives:"))),
    Case("splunk-laughs", "splunk", "aliases",
         _file("splunk", "detections/endpoint/laughs.yml", _splunk("laughs") + _laughs())),
    Case("splunk-laughs-macro", "splunk", "aliases",
         _file("splunk", "macros/laughs.yml", "name: laughs\ndefinition: x\n" + _laughs())),
    Case("splunk-laughs-lookup", "splunk", "aliases",
         _file("splunk", "lookups/laughs.yml", "name: laughs\nfilename: tools.csv\n" + _laughs())),
    # -- wrong shapes
    Case("sigma-list-doc", "sigma", "shape", _file("sigma", "rules/list.yml", "- a\n- b\n")),
    Case("sigma-detection-string", "sigma", "shape",
         _file("sigma", "rules/det_str.yml", _sigma("ds").split("detection:")[0] + "detection: x\n")),
    Case("sigma-tags-dict", "sigma", "shape",
         _file("sigma", "rules/tags_dict.yml",
               _sigma("td", "tags:\n    - attack.t1219", "tags: {a: 1}"))),
    Case("sigma-title-list", "sigma", "shape",
         _file("sigma", "rules/title_list.yml", _sigma("tl", "title: good sigma 0", "title: [1, {a: 2}]"))),
    Case("sigma-empty", "sigma", "shape", _file("sigma", "rules/empty.yml", "")),
    Case("elastic-threat-strings", "elastic", "shape",
         _file("elastic", "rules/threat_str.toml", _elastic_threat("ts", 'threat = ["x"]'))),
    Case("elastic-rule-string", "elastic", "shape",
         _file("elastic", "rules/rule_str.toml", 'rule = "x"\n')),
    Case("elastic-technique-string", "elastic", "shape",
         _file("elastic", "rules/tech_str.toml", _elastic_threat(
             "tt", '[[rule.threat]]\nframework = "MITRE ATT&CK"\ntechnique = "T1219"'))),
    Case("elastic-filters-shape", "elastic", "shape",
         _file("elastic", "rules/filters.toml", _elastic("fs", extra='filters = ["x", 1]'))),
    Case("elastic-tags-int", "elastic", "shape",
         _file("elastic", "rules/tags_int.toml", _elastic("ti", extra="tags = 5\nindex = 7"))),
    Case("splunk-tags-list", "splunk", "shape",
         _file("splunk", "detections/endpoint/tags_list.yml", _splunk("tl", tags="tags:\n- T1219\n"))),
    Case("splunk-search-dict", "splunk", "shape",
         _file("splunk", "detections/endpoint/search_dict.yml",
               _splunk("sd").replace("search: '`sysmon` a=1'", "search: {a: 1}"))),
    Case("splunk-doc-list", "splunk", "shape",
         _file("splunk", "detections/endpoint/doc_list.yml", "- 1\n- 2\n")),
    Case("splunk-macro-list", "splunk", "shape", _file("splunk", "macros/list.yml", "- a\n")),
    Case("splunk-macro-args-dict", "splunk", "shape",
         _file("splunk", "macros/args.yml", "name: args\narguments: {a: 1}\ndefinition: x\n")),
    Case("splunk-lookup-no-name", "splunk", "shape",
         _file("splunk", "lookups/noname.yml", "filename: tools.csv\n")),
    Case("splunk-lookup-bad-int", "splunk", "shape",
         _file("splunk", "lookups/badint.yml", "name: badint\nmin_matches: many\n")),
    Case("chronicle-no-events", "chronicle", "shape",
         _file("chronicle", "rules/no_events.yaral", "rule x {\n meta:\n  a = 1\n condition:\n  $e\n}\n")),
    Case("chronicle-garbage", "chronicle", "shape",
         _file("chronicle", "rules/garbage.yaral", "rule { { } } rule rule }")),
    # -- encodings
    *[
        Case(f"{v}-{folder.split('/')[0]}-{kind}", v, "encoding", _file(v, f"{folder}/{kind}{ext}", data))
        for v, folder, ext in LOCATIONS
        for kind, data in (("latin1", "title: caf\xe9\n".encode("latin-1")),
                           ("utf16", "title: x\n".encode("utf-16")),
                           ("nul", b"title: a\x00b\n"))
    ],
    # -- links
    *[
        Case(f"{v}-{folder.split('/')[0]}-{kind}-link", v, "link", _link(v, f"{folder}/{kind}{ext}", target))
        for v, folder, ext in LOCATIONS
        for kind, target in (("outside", _outside(f"secret{ext}", _secret_file(v, folder))),
                             ("self", _self), ("dangling", _dangling))
    ],
    Case("splunk-lookup-csv-outside", "splunk", "link", _lookup_escape),
    Case("splunk-lookup-csv-link", "splunk", "link", _lookup_link),
    # -- macro growth and loops
    Case("splunk-macro-exponential", "splunk", "macro", _macro_chain(30, 2)),
    Case("splunk-macro-long-chain", "splunk", "macro", _macro_chain(300, 1)),
    Case("splunk-macro-cycle", "splunk", "loop", _macro_cycle),
    Case("sigma-folder-loop", "sigma", "loop", _dir_loop("sigma", "rules/loop")),
    Case("splunk-folder-loop", "splunk", "loop", _dir_loop("splunk", "detections/loop")),
]  # fmt: skip
