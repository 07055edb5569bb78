"""MITRE ATT&CK techniques, tactics and detection strategies (with their
analytics and log-source references, ATT&CK v18+) from an Enterprise STIX bundle.

Plain ``json`` is enough: the bundle is one file and we read a handful of
object types from it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TECHNIQUE_ID = re.compile(r"^T\d{4}(\.\d{3})?$")
ATTACK_URL = "https://attack.mitre.org/techniques/{}/"
# Where a sources directory holds the ATT&CK Enterprise STIX bundle.
BUNDLE_FILE = Path("attack") / "enterprise-attack.json"

# ATT&CK prose is markdown with citations and a few HTML tags: the faces show it plain.
_CITATION = re.compile(r"\s*\(Citation: [^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_CODE_TAG = re.compile(r"</?code>", re.IGNORECASE)


def paragraphs(text: str | None) -> list[str]:
    """ATT&CK (or rule) prose as plain paragraphs: citations, markdown links and
    ``<code>`` tags dropped, the text they wrap kept."""
    text = _CODE_TAG.sub("", _MD_LINK.sub(r"\1", _CITATION.sub("", text or "")))
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


@dataclass(slots=True)
class Tactic:
    id: str  # TA0011
    shortname: str  # command-and-control
    name: str  # Command and Control


@dataclass(slots=True)
class Technique:
    id: str  # T1219 or T1219.002
    name: str
    description: str = ""
    tactics: list[str] = field(default_factory=list)  # tactic shortnames
    parent: str | None = None  # T1219 for T1219.002
    revoked: bool = False
    deprecated: bool = False
    known: bool = True  # False: used by rules but absent from the bundle

    @property
    def url(self) -> str:
        return ATTACK_URL.format(self.id.replace(".", "/"))


@dataclass(frozen=True, slots=True)
class LogSource:
    name: str  # "WinEventLog:Sysmon", "auditd:SYSCALL"
    channel: str  # "EventCode=1", "execve", or prose


@dataclass(slots=True)
class Analytic:
    """One analytic of a detection strategy, for the techniques the strategy detects."""

    id: str  # AN0110
    strategy_id: str  # DET0039
    strategy: str  # the strategy's name
    techniques: list[str]
    platforms: list[str]
    description: str
    log_sources: list[LogSource]


@dataclass(slots=True)
class Attack:
    techniques: dict[str, Technique]
    tactics: list[Tactic]  # in matrix order
    version: str = ""
    analytics: list[Analytic] = field(default_factory=list)

    def get(self, technique_id: str) -> Technique | None:
        return self.techniques.get(technique_id.upper())

    def subtechniques(self, technique_id: str) -> list[Technique]:
        return sorted(
            (t for t in self.techniques.values() if t.parent == technique_id),
            key=lambda t: t.id,
        )

    def ids_by_name(self) -> dict[str, str]:
        """Lower-cased names -> ids, with sub-techniques also as "Parent: Child"."""
        out: dict[str, str] = {}
        for t in self.techniques.values():
            if t.revoked or t.deprecated:
                continue
            out.setdefault(t.name.lower(), t.id)
            if t.parent and (p := self.techniques.get(t.parent)):
                out[f"{p.name}: {t.name}".lower()] = t.id
        return out

    def add_unknown(self, technique_id: str) -> Technique:
        """Keep an id a rule uses but the bundle lacks, flagged, rather than drop it."""
        tid = technique_id.upper()
        parent = tid.split(".")[0] if "." in tid else None
        t = Technique(id=tid, name="(not in ATT&CK bundle)", parent=parent, known=False)
        self.techniques[tid] = t
        return t


def load(path: Path) -> Attack:
    bundle = json.loads(path.read_text(encoding="utf-8"))
    objects: list[dict[str, Any]] = bundle.get("objects", [])
    techniques: dict[str, Technique] = {}
    tactics: dict[str, Tactic] = {}
    order: list[str] = []
    version = ""
    by_stix: dict[str, str] = {}  # attack-pattern STIX id -> technique id
    for o in objects:
        kind = o.get("type")
        if kind == "attack-pattern":
            t = _technique(o)
            if t and (t.id not in techniques or techniques[t.id].revoked):
                techniques[t.id] = t
            if t:
                by_stix[o["id"]] = t.id
        elif kind == "x-mitre-tactic":
            tac = Tactic(_external_id(o) or "", o.get("x_mitre_shortname", ""), o.get("name", ""))
            tactics[o["id"]] = tac
        elif kind == "x-mitre-matrix":
            order = o.get("tactic_refs", [])
        elif kind == "x-mitre-collection":
            version = o.get("x_mitre_version", "")
    ordered = [tactics[r] for r in order if r in tactics]
    ordered += [t for t in tactics.values() if t not in ordered]
    analytics = _analytics(objects, by_stix)
    return Attack(techniques=techniques, tactics=ordered, version=version, analytics=analytics)


def _live(o: dict[str, Any]) -> bool:
    return not (o.get("revoked") or o.get("x_mitre_deprecated"))


def _analytics(objects: list[dict[str, Any]], by_stix: dict[str, str]) -> list[Analytic]:
    """Every analytic of every live detection strategy, with the techniques the
    strategy ``detects`` (one relationship per technique)."""
    strategies = {o["id"]: o for o in objects
                  if o.get("type") == "x-mitre-detection-strategy" and _live(o)}  # fmt: skip
    found = {o["id"]: o for o in objects if o.get("type") == "x-mitre-analytic" and _live(o)}
    detects: dict[str, list[str]] = {}
    for o in objects:
        if o.get("type") == "relationship" and o.get("relationship_type") == "detects":
            tid = by_stix.get(o.get("target_ref", ""))
            if tid and o.get("source_ref") in strategies:
                detects.setdefault(o["source_ref"], []).append(tid)
    out = []
    for sid, strategy in strategies.items():
        for ref in strategy.get("x_mitre_analytic_refs", []):
            a = found.get(ref)
            if a is None:
                continue
            sources = [LogSource(str(r.get("name", "")), str(r.get("channel", "")))
                       for r in a.get("x_mitre_log_source_references", [])]  # fmt: skip
            out.append(Analytic(
                _external_id(a) or a["id"], _external_id(strategy) or sid,
                strategy.get("name", ""), sorted(set(detects.get(sid, []))),
                list(a.get("x_mitre_platforms", [])), a.get("description", ""), sources,
            ))  # fmt: skip
    return out


def _external_id(o: dict[str, Any]) -> str | None:
    for ref in o.get("external_references", []):
        if ref.get("source_name") == "mitre-attack" and ref.get("external_id"):
            return str(ref["external_id"])
    return None


def _technique(o: dict[str, Any]) -> Technique | None:
    tid = _external_id(o)
    if not tid or not TECHNIQUE_ID.match(tid):
        return None
    return Technique(
        id=tid,
        name=o.get("name", ""),
        description=o.get("description", ""),
        tactics=[
            p["phase_name"]
            for p in o.get("kill_chain_phases", [])
            if p.get("kill_chain_name") == "mitre-attack"
        ],
        parent=tid.split(".")[0] if "." in tid else None,
        revoked=bool(o.get("revoked")),
        deprecated=bool(o.get("x_mitre_deprecated")),
    )
