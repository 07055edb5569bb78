"""The round-trip oracle: Sigma rules converted by pySigma's backends, read back by
detcat's own parsers, compared with detcat's reading of the Sigma rule.

Each target converts every rule once (``convert_all``). A comparison reduces both
readings to a set of ``Key`` = (canonical field, op, case-folded value, negated),
applies the equivalences of ``fidelity_equivalences`` (same meaning, other spelling),
then explains what still differs by named classes. Nothing is dropped silently:
every equivalence and every class is counted in the ``Report``.
"""

from __future__ import annotations

import copy
import functools
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from fidelity_equivalences import (
    LOGSOURCE_FIELDS,
    Key,
    logsource_added,
    match_all,
    same_meaning,
)
from fidelity_explain import explain

from detcat.model import (
    Opaque,
    Predicate,
    QueryError,
    Rule,
    Stage,
    leaves,
    map_predicates,
    or_,
    replace,
)
from detcat.normalize import (
    full_match_regex,
    indicator_key,
    normalize_predicate,
    normalize_rule,
)
from detcat.normalize.fields import canonical_field
from detcat.normalize.scopes import stage_scopes
from detcat.parse import parse_query, parse_rules
from detcat.sources.sigma import logsource_scopes

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Target:
    name: str
    language: str  # detcat's parser for the output
    make_backend: Callable[[], Any]
    output_format: str = "default"


def _splunk() -> Any:
    from sigma.backends.splunk import SplunkBackend
    from sigma.pipelines.splunk import splunk_windows_pipeline

    return SplunkBackend(splunk_windows_pipeline())


def _splunk_dm() -> Any:
    from sigma.backends.splunk import SplunkBackend
    from sigma.pipelines.splunk import splunk_cim_data_model

    return SplunkBackend(splunk_cim_data_model())


def _eql() -> Any:
    from sigma.backends.elasticsearch import EqlBackend
    from sigma.pipelines.elasticsearch import ecs_windows

    return EqlBackend(ecs_windows())


def _esql() -> Any:
    from sigma.backends.elasticsearch import ESQLBackend
    from sigma.pipelines.elasticsearch import ecs_windows

    return ESQLBackend(ecs_windows())


def _secops() -> Any:
    from sigma.backends.secops import SecOpsBackend
    from sigma.pipelines.secops import secops_udm_pipeline

    return SecOpsBackend(secops_udm_pipeline())


TARGETS = {
    t.name: t
    for t in (
        Target("splunk", "spl", _splunk),
        Target("splunk_data_model", "spl", _splunk_dm, "data_model"),
        Target("eql", "eql", _eql),
        Target("esql", "esql", _esql),
        Target("secops_yara_l", "yaral", _secops, "yara_l"),
    )
}


# -- the corpus ---------------------------------------------------------------------


@dataclass(frozen=True)
class SigmaDoc:
    path: str  # relative to the sigma folder
    text: str
    doc: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.doc.get("id") or self.path)


def windows_rules(sigma_root: Path) -> list[SigmaDoc]:
    """Every active Windows detection rule (``rules*/``, ``product: windows``)."""
    out = []
    for folder in sorted(p for p in sigma_root.glob("rules*") if p.is_dir()):
        for path in sorted(folder.rglob("*.yml")):
            text = path.read_text(encoding="utf-8")
            doc = yaml.load(text, Loader=_LOADER)
            if not isinstance(doc, dict) or "detection" not in doc:
                continue
            if (doc.get("logsource") or {}).get("product") != "windows":
                continue
            if str(doc.get("status", "")) in ("deprecated", "unsupported"):
                continue
            out.append(SigmaDoc(path.relative_to(sigma_root).as_posix(), text, doc))
    return out


@dataclass
class Conversion:
    queries: list[str] = field(default_factory=list)
    error: str = ""  # why the backend did not convert the rule
    # target field (without the backend's prefixes/suffixes) -> the Sigma fields it
    # stands for, read off the rule the pipeline processed
    aliases: dict[str, set[str]] = field(default_factory=dict)


def convert_all(target: Target, rules: Iterable[SigmaDoc]) -> dict[str, Conversion]:
    """rule id -> the backend's output; one backend instance for the whole corpus."""
    from sigma.rule import SigmaRule

    backend = target.make_backend()
    out: dict[str, Conversion] = {}
    for r in rules:
        processed = SigmaRule.from_dict(r.doc)  # the pipeline rewrites it in place
        try:
            queries = backend.convert_rule(processed, target.output_format)
        except Exception as e:  # a backend refusal is a counted reason, not a test error
            out[r.id] = Conversion(error=type(e).__name__)
            continue
        aliases = field_aliases(SigmaRule.from_dict(r.doc), processed)
        out[r.id] = Conversion([str(q) for q in queries], aliases=aliases)
    return out


def field_aliases(original: Any, processed: Any) -> dict[str, set[str]]:
    """Which target field the pipeline wrote for which Sigma field, found by walking
    the original and the processed detections side by side."""
    out: dict[str, set[str]] = {}
    for name, det in original.detection.detections.items():
        twin = processed.detection.detections.get(name)
        if twin is not None:
            _walk_pair(det, twin, out)
    return out


def _walk_pair(a: Any, b: Any, out: dict[str, set[str]]) -> None:
    from sigma.rule import SigmaDetection

    if len(a.detection_items) != len(b.detection_items):
        return  # the pipeline changed the shape here: no reliable pairing
    for x, y in zip(a.detection_items, b.detection_items, strict=True):
        if isinstance(x, SigmaDetection) and isinstance(y, SigmaDetection):
            _walk_pair(x, y, out)
        elif isinstance(x, SigmaDetection) or isinstance(y, SigmaDetection):
            continue
        elif x.field and y.field:
            out.setdefault(bare_field(y.field), set()).add(x.field)


_SUFFIX = re.compile(r"\.(?:caseless|text|keyword|wildcard)$")
_EVENT_VAR = re.compile(r"^\$\w+\.")


def bare_field(name: str) -> str:
    """A target field without the backend's spelling: ``$e.`` prefix, ``.caseless``."""
    return _SUFFIX.sub("", _EVENT_VAR.sub("", name))


# -- reading both sides ----------------------------------------------------------------


@dataclass
class Reading:
    keys: set[Key] = field(default_factory=set)
    opaque: list[str] = field(default_factory=list)  # reasons
    error: str = ""
    # (target field, the target vendor's canonical name, the Sigma field's)
    renamed: set[tuple[str, str, str]] = field(default_factory=set)
    events: tuple[str, ...] = ()  # catalog events of the reading's stages


def keys_of(stages: list[Stage]) -> Reading:
    """The written predicates (implied ones derive from them) and the Opaque parts."""
    out = Reading(events=tuple(dict.fromkeys(e for s in stages for e in s.events)))
    for stage in stages:
        for lf in leaves(stage.expr):
            if isinstance(lf.node, Opaque):
                node = lf.node  # "reason: detail", the detail naming what it was
                out.opaque.append(f"{node.reason}: {node.detail}" if node.detail else node.reason)
            elif lf.node.kind != "implied":
                f, op, value = indicator_key(lf.node)
                out.keys.add(same_meaning(Key(f, op, value, lf.negated)))
    return out


@functools.cache
def sigma_reading(text: str) -> Reading:
    try:
        return keys_of(parse_query("sigma", text))
    except QueryError as e:
        return Reading(error=f"QueryError: {e.message}")


def target_reading(
    target: Target, rule: SigmaDoc, conv: Conversion, ours: Reading | None = None
) -> Reading:
    out = Reading()
    for q in conv.queries:
        try:
            got = _read_aligned(target, q, conv.aliases, rule.doc, ours or Reading())
        except QueryError as e:
            got = Reading(error=f"QueryError: {e.message}")
        except Exception as e:  # a parser crash is a listed disagreement, not a test error
            got = Reading(error=f"parser crashed: {type(e).__name__}")
        out.keys |= got.keys
        out.opaque += got.opaque
        out.renamed |= got.renamed
        out.error = out.error or got.error
    return out


def _read_aligned(
    target: Target, text: str, aliases: dict[str, set[str]], doc: dict[str, Any], ours: Reading
) -> Reading:
    """Normalize the target's predicates, each under the Sigma field the pipeline
    wrote it for when detcat's tables canonicalize the two differently.

    pySigma's pipeline is the authority on which target field stands for which Sigma
    field (its ``file.path`` for Sigma ``ImageLoaded`` in image_load, where detcat
    says ``dll.path``); such a difference of field tables is recorded in
    ``renamed`` and reported, not counted as a parse disagreement. When the
    pipeline maps several Sigma fields onto one target field, the Sigma fields whose
    readings have the predicate's value are the ones it stands for (the SecOps
    pipeline writes both ``TargetObject`` and ``NewName`` as ``registry_key``, and
    merges their value lists into one alternation); and a
    condition on a logsource field (the SecOps pipeline's
    ``metadata.event_type = "REGISTRY_DELETION"``, where it also writes Sigma
    ``EventType`` as ``metadata.event_type``) stays what it is unless the Sigma
    reading has its value.
    """
    logsource = LOGSOURCE_FIELDS.get(target.name, frozenset())
    log = doc.get("logsource") or {}
    align = _Align(aliases, logsource_scopes(log), ours.keys, logsource, ours.events)
    stages: list[Stage] = []
    for rule in parse_rules(target.language, text, normalize=False):
        full = full_match_regex(rule.language)
        done = copy.deepcopy(rule)  # normalized whole: the stages' catalog events
        normalize_rule(done)
        for stage, after in zip(rule.stages, done.stages, strict=True):
            scopes, events = stage_scopes(rule, stage), tuple(after.events)
            stage.expr = map_predicates(
                stage.expr,
                lambda p, r=rule, s=scopes, f=full, e=events: align.one(p, r, s, f, e),
            )
            stages.append(stage)
    out = keys_of(stages)
    out.renamed = align.renamed
    return out


Events = tuple[str, ...]


@dataclass
class _Align:
    aliases: dict[str, set[str]]
    sigma: tuple[str, ...]
    ours: set[Key]
    logsource: frozenset[str] = frozenset()
    sigma_events: Events = ()  # the Sigma reading's catalog events
    renamed: set[tuple[str, str, str]] = field(default_factory=set)

    def one(
        self, p: Predicate, rule: Rule, scopes: tuple[str, ...], full: bool, events: Events = ()
    ) -> Any:
        """``events``: the target stage's catalog events (Windows event data reads by
        event); the Sigma field is read with the Sigma rule's."""
        native = normalize_predicate(
            p, rule.vendor, scopes, full, events=events, language=rule.language
        )
        target_field = bare_field(p.field_raw or "")
        mine = canonical_field(rule.vendor, scopes, p.field_raw, events)
        candidates = []
        for sigma_field in sorted(self.aliases.get(target_field, ())):
            theirs = canonical_field("sigma", self.sigma, sigma_field, self.sigma_events)
            q = replace(p, field_raw=sigma_field)
            sigma_reading = normalize_predicate(
                q, "sigma", self.sigma, full, events=self.sigma_events
            )
            candidates.append((theirs, sigma_reading))
        single = len(candidates) == 1 and mine not in self.logsource
        chosen = candidates if single else self._by_value(candidates)
        if not chosen or [f for f, _ in chosen] == [mine]:
            return native
        self.renamed.update((target_field, mine, f) for f, _ in chosen if f != mine)
        return or_(*(expr for _, expr in chosen))

    def _by_value(self, candidates: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        known = {(k.field, k.value) for k in self.ours}
        out = []
        for theirs, expr in candidates:
            preds = [lf.node for lf in leaves(expr) if isinstance(lf.node, Predicate)]
            keys = (same_meaning(Key(*indicator_key(p), False)) for p in preds)
            if any((k.field, k.value) in known for k in keys):
                out.append((theirs, expr))
        return out


# -- comparing ------------------------------------------------------------------------


@dataclass
class Comparison:
    rule: SigmaDoc
    query: str
    missing: set[Key]  # in the Sigma reading only
    extra: set[Key]  # in the target reading only
    opaque: list[str]
    error: str
    equivalences: list[str]  # same-meaning rewrites applied (counted, not hidden)
    renamed: set[tuple[str, str, str]]
    classes: list[str] = field(default_factory=list)  # explanations of what differs
    ours: set[Key] = field(default_factory=set)  # the whole Sigma reading
    theirs: set[Key] = field(default_factory=set)  # the whole target reading

    @property
    def strict(self) -> bool:
        """Agreement before any explanation class."""
        return not self.classes and self.settled

    @property
    def settled(self) -> bool:
        return not (self.missing or self.extra or self.opaque or self.error)

    def diff(self) -> str:
        lines = [f"{self.rule.id} {self.rule.path}  classes: {', '.join(self.classes) or '-'}"]
        lines += [f"  - {k}" for k in sorted(self.missing)]
        lines += [f"  + {k}" for k in sorted(self.extra)]
        lines += [f"  ? opaque: {r}" for r in self.opaque]
        if self.error:
            lines.append(f"  ! {self.error}")
        lines.append("  query: " + " ".join(self.query.split())[:600])
        return "\n".join(lines)


def compare(target: Target, rule: SigmaDoc, conv: Conversion) -> Comparison:
    ours = sigma_reading(rule.text)
    theirs = target_reading(target, rule, conv, ours)
    missing, extra = ours.keys - theirs.keys, theirs.keys - ours.keys
    equivalences = []
    added = logsource_added(target.name, extra, ours.keys)
    if added:
        extra -= added
        equivalences.append("logsource condition added by the pipeline")
    everything = match_all(target.name, extra)
    if everything:
        extra -= everything
        equivalences.append("bare '*' search term (every event)")
    if theirs.renamed:
        equivalences.append("target field read as the Sigma field the pipeline mapped")
    c = Comparison(
        rule=rule,
        query="\n".join(conv.queries),
        missing=missing,
        extra=extra,
        opaque=theirs.opaque,
        error=theirs.error or ours.error,
        equivalences=equivalences,
        renamed=theirs.renamed,
        ours=ours.keys,
        theirs=theirs.keys,
    )
    if not c.settled:
        explain(target.name, c)
    return c


@dataclass
class Report:
    target: str
    rules: int
    converted: int
    strict: int  # agreeing before explanation classes
    agreeing: int  # agreeing, or every difference explained by a backend-defect class
    backend_errors: Counter[str]
    classes: Counter[str]  # rules per explanation class
    equivalences: Counter[str]
    renamed: Counter[tuple[str, str, str]]  # rules per field-table difference
    unexplained: list[Comparison]
    explained: list[Comparison]

    @property
    def agreement(self) -> float:
        return self.agreeing / self.converted if self.converted else 0.0

    @property
    def strict_agreement(self) -> float:
        return self.strict / self.converted if self.converted else 0.0

    def summary(self) -> str:
        lines = [
            f"{self.target}: {self.converted}/{self.rules} converted; strict agreement "
            f"{self.strict}/{self.converted} = {self.strict_agreement:.2%}; agreement "
            f"(differences explained by backend defects) {self.agreeing}/{self.converted} "
            f"= {self.agreement:.2%}; unexplained {len(self.unexplained)}",
            "  backend refused: " + _counts(self.backend_errors),
            "  equivalences applied (rules): " + _counts(self.equivalences),
            "  explanation classes (rules): " + _counts(self.classes),
            "  field tables differ from the pipeline (rules): "
            + _counts(Counter({f"{t}: {a} vs {b}": n for (t, a, b), n in self.renamed.items()})),
        ]
        return "\n".join(lines)


def _counts(c: Counter[Any], top: int = 12) -> str:
    items = c.most_common(top)
    more = f" (+{len(c) - top} more)" if len(c) > top else ""
    return ", ".join(f"{k} {n}" for k, n in items) + more if items else "-"


def run(target: Target, rules: list[SigmaDoc], conversions: dict[str, Conversion]) -> Report:
    rep = Report(target.name, len(rules), 0, 0, 0, Counter(), Counter(), Counter(), Counter(),
                 [], [])  # fmt: skip
    for rule in rules:
        conv = conversions[rule.id]
        if conv.error:
            rep.backend_errors[conv.error] += 1
            continue
        rep.converted += 1
        c = compare(target, rule, conv)
        rep.equivalences.update(set(c.equivalences))
        rep.renamed.update(c.renamed)
        rep.classes.update(set(c.classes))
        if c.strict:
            rep.strict += 1
        if c.settled:
            rep.agreeing += 1
            if c.classes:
                rep.explained.append(c)
        else:
            rep.unexplained.append(c)
    return rep
