"""The static export's search: a Pagefind index of every rule.

Each rule is one Pagefind record (not a crawled page: the records hold what search
needs and nothing else, and building them skips parsing HTML). A record's words
are its title, its description and one ``id:word`` token per word of each value
it checks, under the canonical and the vendor field name; ``site.js`` turns a
``field:value`` term into the same tokens, so the static search matches a value by
the start of its words where the server matches any substring. Vendor and
technique (with the parent of each sub-technique) are Pagefind filters.

A token names its field by a short id (``FIELDS_FILE`` maps lower-case names to
ids): whole names (4.8 M characters in all) cost Pagefind a sixth more time, and
their parts (``process``, ``line``) matched most rules as plain words. An id is single
letters joined by dots (``e``, ``a.k``): Pagefind indexes the parts of a dotted
word only from two characters, so an id is never a word of its own.

Pagefind keeps what a result shows in a file per record (a "fragment"); we keep
the url, title, vendor and techniques of each in 256 files instead (``RESULTS_DIR``;
7,800 fragments took 32 MB of disk blocks for 4 MB of data), and leave out
Pagefind's own search UI: site.js draws the results.

The binary comes with the ``pagefind-bin`` package. It is driven through its
service protocol (base64 JSON messages ending in a comma, the protocol the
``pagefind`` Python package speaks) directly: that package waits 0.1 s between
responses, 13 minutes for the catalog's 7,800 records.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import sqlite3
import subprocess
import threading
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from detcat.errors import DetcatError
from detcat.sources.registry import display_name
from detcat.web.urls import Links

# Characters Pagefind keeps inside a word (it drops other punctuation): a token
# such as ``process.name:anydesk.exe`` stays one word, searchable by its start.
INCLUDE_CHARACTERS = ".:-_@$"
# Words as Pagefind should see them (it only joins what whitespace separates):
# runs of letters, digits and INCLUDE_CHARACTERS but ":". site.js splits what is
# typed alike, so `<script>x</script>` finds the words script and x.
_WORD = re.compile(r"[\w.\-@$]+")
_ROOT = Links(static=True)
RESULTS_DIR = "results"  # each result's [url, title, vendor, techniques], by result id
# A language Pagefind has no stemmer for: stemming a typed word spoils it as a
# prefix (an English stemmer reads "by" as "bi"), and the server does not stem.
LANGUAGE = "unknown"
FIELDS_FILE = "fields.json"  # {lower-case field name: id in tokens}
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_FRAGMENT_SIGNATURE = b"pagefind_dcd"  # a fragment, decompressed, starts with it
_UI = re.compile(r"-ui\.|highlight")  # Pagefind's own search UI: site.js has its own


class SearchIndexError(DetcatError):
    pass


class _Ended(SearchIndexError):
    """The pagefind process closed its output: no further answer will come."""


def value_words(value: str) -> list[str]:
    """The words of a value, as site.js splits the value of a field:value term."""
    return _WORD.findall(value.casefold())


def text_words(text: str | None) -> list[str]:
    """The words of a title or description, without the dots that end sentences
    (as site.js splits plain words): Pagefind extends a word typed to longer
    ones only within the index chunk holding it, so "access" could miss "access."
    where the server's full-text search finds it."""
    return [w for w in (w.strip(".") for w in _WORD.findall(text or "")) if w]


def field_id(n: int) -> str:
    """The ``n``-th field id: ``a`` … ``z``, ``a.a`` … ``z.z``, ``a.a.a`` …"""
    letters = []
    n += 1
    while n:
        n, r = divmod(n - 1, len(_LETTERS))
        letters.append(_LETTERS[r])
    return ".".join(reversed(letters))


def records(conn: sqlite3.Connection) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """One Pagefind record per rule (AddRecord payloads without the index id), and
    the field ids their tokens use (the most used fields get the shortest)."""
    techniques: dict[int, list[str]] = defaultdict(list)
    for pk, tid in conn.execute("SELECT rule_pk, technique_id FROM rule_techniques ORDER BY 2"):
        techniques[pk].append(tid)
    checks: dict[int, dict[tuple[str, str], None]] = defaultdict(dict)  # ordered, no repeats
    for pk, field, raw, value in conn.execute(
        """SELECT rule_pk, field, field_raw, value_key FROM predicates
        WHERE negated = 0 AND stage_role = 'events' AND value_key != ''"""
    ):
        for name in dict.fromkeys((field, raw)):
            if name:
                checks[pk].update(((name.lower(), w), None) for w in value_words(value))
    uses = Counter(name for pairs in checks.values() for name, _ in pairs)
    ids = {name: field_id(i) for i, (name, _) in enumerate(
        sorted(uses.items(), key=lambda item: (-item[1], item[0])))}  # fmt: skip
    found = []
    # Results come sorted as the server sorts them (by vendor, then title).
    for order, (pk, vendor, rule_id, title, description) in enumerate(conn.execute(
        "SELECT pk, vendor, id, title, description FROM rules ORDER BY vendor, title, pk"
    )):  # fmt: skip
        tids = techniques[pk]
        tokens = [f"{ids[name]}:{word}" for name, word in checks[pk]]
        found.append({
            "url": _ROOT.rule(vendor, rule_id),
            "content": " ".join([*text_words(title), *text_words(description), *tokens]),
            "language": LANGUAGE,
            "meta": {"title": title or rule_id, "vendor": display_name(vendor),
                     "techniques": " ".join(tids)},
            "filters": {"vendor": [vendor],
                        "technique": sorted({*tids, *(t.split(".")[0] for t in tids)})},
            "sort": {"order": f"{order:06d}"},
        })  # fmt: skip
    return found, ids


class Pagefind:
    """One in-memory Pagefind index in a ``pagefind --service`` process. A reader
    thread drains the responses while records are written, so neither side can
    block on a full pipe."""

    def __init__(self, config: dict[str, Any]):
        from pagefind_bin import get_executable

        self._proc = subprocess.Popen(
            [str(get_executable()), "--service"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self._buffer = b""
        self._next_id = 0
        self.index_id = self._call({"type": "NewIndex", "config": config})["index_id"]

    def _send(self, payload: dict[str, Any]) -> None:
        self._next_id += 1
        message = {"message_id": self._next_id, "payload": payload}
        assert self._proc.stdin is not None
        self._proc.stdin.write(base64.b64encode(json.dumps(message).encode()) + b",")

    def _receive(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        # The index's files come as one message of several MB: its pieces are
        # joined once (adding each to a growing buffer copied it again and again).
        pieces = [self._buffer]
        while b"," not in pieces[-1]:
            chunk = self._proc.stdout.read1(1 << 16)
            if not chunk:
                raise _Ended("the pagefind process ended without answering")
            pieces.append(chunk)
        message, _, self._buffer = b"".join(pieces).partition(b",")
        payload: dict[str, Any] = json.loads(base64.b64decode(message))["payload"]
        if payload["type"] == "Error":
            raise SearchIndexError(f"pagefind: {payload['message']}")
        return payload

    def _call(self, payload: dict[str, Any]) -> dict[str, Any]:
        self._send(payload)
        assert self._proc.stdin is not None
        self._proc.stdin.flush()
        return self._receive()

    def add_records(self, items: list[dict[str, Any]]) -> int:
        """Add every record; returns how many were indexed."""
        answers: list[dict[str, Any] | Exception] = []
        sent = 0
        pending = [dict(r, type="AddRecord", index_id=self.index_id) for r in items]
        reader = threading.Thread(target=self._drain, args=(len(pending), answers))
        reader.start()
        try:
            for payload in pending:
                self._send(payload)
                sent += 1
            assert self._proc.stdin is not None
            self._proc.stdin.flush()
        finally:
            reader.join()
        errors = [a for a in answers if isinstance(a, Exception)]
        if errors:
            raise SearchIndexError(f"{len(errors)} of {sent} records not indexed: {errors[0]}")
        return sent

    def _drain(self, expected: int, answers: list[dict[str, Any] | Exception]) -> None:
        for _ in range(expected):
            try:
                answers.append(self._receive())
            except _Ended as e:
                answers.append(e)
                return
            except SearchIndexError as e:  # one record refused: the others go on
                answers.append(e)

    def files(self) -> list[tuple[str, bytes]]:
        """The index's files: (path under the index folder, content). Written by us:
        the service's own ``WriteFiles`` answers before its writes reach the files,
        and closing the service then cut files short (an empty
        ``pagefind-entry.json`` was seen)."""
        files = self._call({"type": "GetFiles", "index_id": self.index_id})["files"]
        return [(f["path"], base64.b64decode(f["content"])) for f in files]

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        self._proc.wait(30)


def write_index(db_conn: sqlite3.Connection, out: Path) -> int:
    """Index every rule of the catalog into ``out`` (the site's ``pagefind/``
    folder); returns the number of records."""
    index = Pagefind({"include_characters": INCLUDE_CHARACTERS, "force_language": LANGUAGE})
    found, ids = records(db_conn)
    try:
        n = index.add_records(found)
        files = index.files()
    finally:
        index.close()
    _write_file(out, FIELDS_FILE, json.dumps(ids, ensure_ascii=False).encode())
    results: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for name, content in files:
        if name.startswith("fragment/"):
            rid, entry = _result(name, content)
            results[results_bundle(rid)][rid] = entry
        elif not _UI.search(name):
            _write_file(out, name, content)
    for bundle, entries in results.items():
        _write_file(out, f"{RESULTS_DIR}/{bundle}.json", json.dumps(entries).encode())
    return n


def results_bundle(result_id: str) -> str:
    """The results file holding a Pagefind result (``en_0184ae4`` -> ``01``); site.js
    names it alike."""
    return result_id.rpartition("_")[2][:2]


def _result(name: str, content: bytes) -> tuple[str, list[str]]:
    """A Pagefind fragment's result id and what the results list shows of it:
    [url, title, vendor, techniques]."""
    raw = gzip.decompress(content)
    if not raw.startswith(_FRAGMENT_SIGNATURE):
        raise SearchIndexError(f"pagefind: {name} is not a fragment this version can read")
    data = json.loads(raw[len(_FRAGMENT_SIGNATURE) :])
    meta = data["meta"]
    entry = [data["url"], meta["title"], meta["vendor"], meta.get("techniques", "")]
    return name.removeprefix("fragment/").removesuffix(".pf_fragment"), entry


def _write_file(out: Path, name: str, content: bytes) -> None:
    path = out / name
    if not path.resolve().is_relative_to(out.resolve()):
        raise SearchIndexError(f"pagefind: a file outside the index folder: {name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
