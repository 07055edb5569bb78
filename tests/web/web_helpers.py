"""Shared by the web tests: the hostile catalog's sources, a live uvicorn
server, artifact saving and what a browser should find on a page."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import socket
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from detcat.sources.registry import display_name

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip

# Every hostile string sets window.__pwned (or opens a dialog) if it ever runs.
SCRIPT = "<script>window.__pwned=1</script>"
BREAKOUT = '"><img src=x onerror=window.__pwned=2>'
JS_URL = "javascript:window.__pwned=3"
HOSTILE_TITLE = f"Hostile {SCRIPT} {BREAKOUT} {JS_URL}"
HOSTILE_FIELD = "x'\"><svg onload=window.__pwned=4>"
HOSTILE_ID = "00000000-0000-4000-8000-0000000000e1"
PEER_ID = "00000000-0000-4000-8000-0000000000e2"
BROKEN_ID = "00000000-0000-4000-8000-0000000000e3"

BUNDLE = {
    "type": "bundle",
    "objects": [
        {
            "type": "x-mitre-tactic",
            "id": "x-mitre-tactic--1",
            "name": "Command and Control",
            "x_mitre_shortname": "command-and-control",
            "external_references": [{"source_name": "mitre-attack", "external_id": "TA0011"}],
        },
        {
            "type": "attack-pattern",
            "id": "attack-pattern--1",
            "name": f"Remote Access Tools {SCRIPT}",
            "description": f"Adversaries use remote access tools. {BREAKOUT}\n\n{JS_URL}",
            "kill_chain_phases": [
                {"kill_chain_name": "mitre-attack", "phase_name": "command-and-control"}
            ],
            "external_references": [{"source_name": "mitre-attack", "external_id": "T1219"}],
        },
    ],
}


def _q(text: str) -> str:
    """A YAML single-quoted scalar."""
    return "'" + text.replace("'", "''") + "'"


HOSTILE_RULE = f"""title: {_q(HOSTILE_TITLE)}
id: {HOSTILE_ID}
status: test
description: {_q(f"{BREAKOUT} described {SCRIPT}")}
author: {_q(SCRIPT)}
references:
    - {_q(JS_URL)}
    - ' JaVaScRiPt:window.__pwned=5'
    - {_q('https://example.com/ok"><script>window.__pwned=6</script>')}
tags:
    - attack.t1219
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        CommandLine|contains: {_q(SCRIPT)}
        Image|endswith: {_q(BREAKOUT)}
        {_q(HOSTILE_FIELD)}: {_q(JS_URL)}
    filter:
        ParentImage|endswith: {_q(BREAKOUT)}
    condition: selection and not filter
level: high
"""

PEER_RULE = f"""title: AnyDesk peer rule
id: {PEER_ID}
status: test
description: shares the hostile indicators
tags:
    - attack.t1219
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        CommandLine|contains: {_q(SCRIPT)}
        Image|endswith: '\\AnyDesk.exe'
    condition: selection
level: high
"""

BROKEN_RULE = f"""title: {_q("Broken condition " + BREAKOUT)}
id: {BROKEN_ID}
status: test
tags:
    - attack.t1219
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        CommandLine|contains: 'x'
    condition: selection and (
level: high
"""


def write_sources(root: Path) -> Path:
    (root / "attack").mkdir(parents=True)
    (root / "attack" / "enterprise-attack.json").write_text(json.dumps(BUNDLE))
    rules = root / "sigma" / "rules"
    rules.mkdir(parents=True)
    (rules / "hostile.yml").write_text(HOSTILE_RULE)
    (rules / "peer.yml").write_text(PEER_RULE)
    (rules / "broken_condition.yml").write_text(BROKEN_RULE)
    (rules / f"{BREAKOUT}.yml").write_text("title: [unclosed\n")  # a file that fails to load
    return root


class LiveServer:
    """uvicorn serving an app on a loopback port, in a daemon thread."""

    def __init__(self, app: Any):
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


class StaticServer:
    """A plain static file server over an exported site (Pagefind's search runs
    over HTTP only), on a loopback port, in a daemon thread."""

    def __init__(self, root: Path):
        import functools
        import http.server

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        handler = functools.partial(Quiet, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StaticServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.thread.join(10)
        self.httpd.server_close()


def save_artifact(src: Path) -> Path:
    """Copy a test artifact where CI (or a person) can find it; print the path."""
    dest_dir = Path(os.environ.get("DETCAT_ARTIFACTS", "/tmp/detcat-artifacts"))
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / src.name
    shutil.copyfile(src, dest)
    print(f"artifact: {dest}")
    return dest


class _Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src", "action") and value is not None:
                self.urls.append(value)


def page_urls(html: str) -> list[str]:
    """Every href/src/action in a page, unescaped as the browser sees them."""
    parser = _Hrefs()
    parser.feed(html)
    return parser.urls


def hostile_markup(html: str) -> list[str]:
    """Hostile strings that reached the markup unescaped (should be none)."""
    found = [s for s in (SCRIPT, BREAKOUT, "<svg onload", "<img src=x") if s in html]
    found += [u for u in page_urls(html) if u.strip().lower().startswith("javascript:")]
    return found


# Our templates quote every attribute with double quotes (autoescape turns a
# quote inside a value into &#34;), so a regex finds every link of a page fast.
_LINK = re.compile(r'\s(?:href|src|action)="([^"]*)"')


def broken_links(root: Path) -> dict[str, list[str]]:
    """Relative links of an exported site that point at no file (or at no element
    of it, for a ``#fragment``), by page."""
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    broken: dict[str, list[str]] = {}
    for name in sorted(f for f in files if f.endswith(".html")):
        for raw in _LINK.findall((root / name).read_text()):
            url = html.unescape(raw)
            if url.startswith(("http://", "https://")):
                continue  # upstream and reference links leave the site on purpose
            path, _, fragment = url.split("?")[0].partition("#")
            target = os.path.normpath(os.path.join(os.path.dirname(name), path))
            missing = url.startswith("/") or target not in files
            if missing or (fragment and f'id="{fragment}"' not in (root / target).read_text()):
                broken.setdefault(name, []).append(url)
    return broken


class Site:
    """One way of browsing the catalog: served over HTTP, or exported to files."""

    def __init__(self, name: str, prefix: str, static: bool):
        from detcat.web.urls import Links

        self.name = name
        self.prefix = prefix
        self.links = Links(static=static)

    def url(self, kind: str, *args: Any) -> str:
        return self.prefix + getattr(self.links, kind)(*args)


def served(url: str) -> Site:
    return Site("served", url, static=False)


def exported(root: Path) -> Site:
    return Site("exported", root.resolve().as_uri() + "/", static=True)


def exported_over_http(url: str) -> Site:
    """An exported site served by a static file server (where its search runs)."""
    return Site("exported", url + "/", static=True)


def squash(text: Any) -> str:
    """Text as a browser's textContent reads after whitespace is collapsed."""
    return " ".join(str(text).split())


# Facts a reader sees on a technique page, gathered in the browser.
TECHNIQUE_FACTS_JS = """() => {
  const t = el => el ? el.textContent.replace(/\\s+/g, ' ').trim() : '';
  const rows = (id, pick) => [...document.querySelectorAll(`#${id} tbody tr`)].map(pick);
  const cells = tr => [...tr.children].map(t);
  return {
    h1: t(document.querySelector('h1')),
    headings: [...document.querySelectorAll('main h2')].map(h => t(h.firstChild)),
    counts: [...document.querySelectorAll('main h2 .count')].map(t),
    lead: t(document.querySelector('#events .explain')).split(';')[0],
    events: rows('events', cells),
    fields: rows('fields', tr => [t(tr.children[0]), t(tr.children[2]),
      [...tr.querySelectorAll('.bars li')].map(li => [t(li.querySelector('.op')),
        Number(li.querySelector('meter').value)])]),
    indicators: rows('indicators', tr => [t(tr.children[0]), t(tr.children[1]),
      t(tr.querySelector('summary')), t(tr.children[3]), t(tr.children[4])]),
    exclusions: rows('exclusions', tr => [t(tr.children[0]), t(tr.children[1]),
      t(tr.querySelector('summary')), t(tr.children[3])]),
    vendors: [...document.querySelectorAll('#rules h3')].map(t),
    rules: [...document.querySelectorAll('#rules li > a')].map(t),
  };
}"""


# The order pages show vendors in (issue 17: Sigma first, as the seed lists them).
VENDOR_ORDER = ["sigma", "elastic", "splunk", "chronicle"]


def expected_technique_facts(g: dict[str, Any]) -> dict[str, Any]:
    """The same facts computed from ``detcat technique ID --json``."""
    h = g["technique"]
    show = lambda v: "(none)" if v is None else squash(v)  # noqa: E731
    field = lambda f: "(keyword)" if f is None else squash(f)  # noqa: E731
    flags = lambda i: [k for k in ("implied", "selector") if i.get(k)]  # noqa: E731
    op = lambda i: " ".join([i["op"], *flags(i)])  # noqa: E731
    by_vendor: dict[str, list[str]] = {}
    for r in sorted(g["rules"], key=lambda r: VENDOR_ORDER.index(r["vendor"])):
        by_vendor.setdefault(r["vendor"], []).append(squash(r["title"]))
    n = len(g["events"])
    analytics = g["attack_detection"]["summary"]["analytics"]  # the section shows when > 0
    return {
        "h1": squash(f"{h['id']} {h['name']}"),
        "headings": ["Authoring guide", "Events covered",
                     *(["What ATT&CK's detection strategy watches"] if analytics else []),
                     "Fields filtered most", "Top indicator values",
                     "Exclusions", "Rules under this technique"],
        "counts": [f"({n})", *([f"({analytics} analytics)"] if analytics else []),
                   f"({len(g['fields'])} of {g['field_count']} distinct)",
                   f"({len(g['indicators'])} of {g['indicator_count']} distinct)",
                   f"({len(g['exclusions'])} of {g['exclusion_count']} distinct)",
                   f"({len(g['rules'])})"],
        "lead": f"{n} catalog events are tagged with this technique by at least one rule",
        "events": [[squash(e["provider"]), squash(e["event_id"]), squash(e["title"]),
                    str(e["rules"]), ", ".join(map(display_name, e["vendors"]))]
                   for e in g["events"]],
        "fields": [[field(f["field"]), str(f["rules"]), [list(kv) for kv in f["operators"].items()]]
                   for f in g["fields"]],
        "indicators": [[field(i["field"]), op(i), show(i["value"]), str(i["rules"]),
                        "" if i["specific"] else str(i["corpus_reach"])] for i in g["indicators"]],
        "exclusions": [[field(i["field"]), op(i), show(i["value"]), str(i["rules"])]
                       for i in g["exclusions"]],
        "vendors": [f"{display_name(v)} ({len(ts)})" for v, ts in by_vendor.items()],
        "rules": [t for ts in by_vendor.values() for t in ts],
    }  # fmt: skip


def tree_counts(e: Any) -> dict[str, int]:
    """Node kinds in a JSON predicate tree, and predicate values (not None)."""
    counts = {"and": 0, "or": 0, "not": 0, "opaque": 0, "pred": 0, "values": 0}
    stack = [e]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        kind = next((k for k in ("and", "or", "not", "opaque") if k in node), "pred")
        counts[kind] += 1
        counts["values"] += kind == "pred" and node.get("value") is not None
        if kind in ("and", "or"):
            stack.extend(node[kind])
        elif kind == "not":
            stack.append(node["not"])
    return counts
