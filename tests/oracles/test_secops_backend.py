"""detcat's YARA-L parser against YARA-L written by someone else: pySigma's SecOps
backend (``pysigma-backend-secops``, pipeline ``secops_udm_pipeline``, output format
``yara_l``; a test-only dependency) converting the active Sigma rules.

1. Every rule the backend converts parses. The backend's output has known flaws
   that the Chronicle engine itself would reject, so it is read with
   ``parse_rules(text, lenient=True)``, which accepts exactly these:

   - rule names with punctuation (``rule adwind_rat_/_jrat {``, ``a.b``, ``(cve-…)``);
   - meta strings with unescaped quotes and raw newlines (Sigma descriptions);
   - a ``conditions:`` section header instead of ``condition:``;
   - regex literals with an unescaped ``/`` (``/cmd.exe /c/``) or empty (``//``);
   - values written without any delimiter (``= C:\\x\\*.bat nocase``, from Sigma
     values with inner wildcards): kept as ``Opaque`` ("unsupported syntax", "undelimited
   value").

2. What the parse states agrees with the text. The backend writes one comparison
   per field reference (``$event1.<path> = "v"``, ``!= /re/ nocase``,
   ``net.ip_in_range_cidr($event1.<path>, "cidr")``), joined by ``AND``/``OR``; an
   independent line-level scanner (regular expressions in this file, no grammar)
   lists them as ``(field, operator, value, case_sensitive)`` facts. detcat's
   predicates must state the same multiset of facts for every rule the scanner
   can read completely; the rules it cannot read are exactly those with
   undelimited values.

Rules the backend refuses (fields it cannot map to UDM, placeholders, unsupported
modifiers) are counted as not converted.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import pytest

from detcat.languages.yaral import YaraLRule, parse_rules
from detcat.model import Op, Opaque, Predicate, QueryError, leaves

pytest.importorskip("sigma.backends.secops")

from sigma.backends.secops import SecOpsBackend  # noqa: E402
from sigma.collection import SigmaCollection  # noqa: E402
from sigma.pipelines.secops import secops_udm_pipeline  # noqa: E402

Fact = tuple[str, str, str, bool]

_END = r"(?=[ \t]+(?:nocase|AND|OR)\b|[ \t]*\)|[ \t]*$)"  # what follows a value
_COMPARISON = re.compile(
    r"\$event1\.(?P<field>[\w.]+(?:\[\"[^\"]*\"\])?)\s*(?P<op>!=|=)\s*"
    r"(?:\"(?P<str>(?:[^\"\\\n]|\\.)*)\"|/(?P<re>(?:[^\n\\]|\\.)*?)/"
    + _END
    + r"|(?P<num>-?\d+(?:\.\d+)?)\b)(?P<nocase>[ \t]+nocase\b)?",
    re.MULTILINE,
)
_CIDR = re.compile(r"net\.ip_in_range_cidr\(\$event1\.(?P<field>[\w.]+), \"(?P<cidr>[^\"]*)\"\)")


class Conversion(NamedTuple):
    files: int  # active Sigma rule files
    yaral: dict[str, str]  # file -> the backend's YARA-L, for the files it converts


@pytest.fixture(scope="module")
def conversion(corpora: Path) -> Conversion:
    files = sorted(f for d in (corpora / "sigma").glob("rules*") for f in d.rglob("*.yml"))
    out: dict[str, str] = {}
    for path in files:
        backend = SecOpsBackend(processing_pipeline=secops_udm_pipeline())
        try:
            collection = SigmaCollection.from_yaml(path.read_text(encoding="utf-8"))
            result = backend.convert(collection, output_format="yara_l")
        except Exception:  # the backend refuses the rule: not converted
            continue
        out[path.relative_to(corpora).as_posix()] = "\n".join(result)
    return Conversion(len(files), out)


@pytest.fixture(scope="module")
def converted(conversion: Conversion) -> dict[str, str]:
    return conversion.yaral


@pytest.fixture(scope="module")
def parsed(converted: dict[str, str]) -> dict[str, list[YaraLRule]]:
    return {path: parse_rules(text, lenient=True) for path, text in converted.items()}


def test_every_converted_rule_parses(conversion: Conversion) -> None:
    failures = {}
    for path, text in conversion.yaral.items():
        try:
            parse_rules(text, lenient=True)
        except QueryError as e:
            failures[path] = f"{e.line}:{e.column} {e.message}"
    converted, refused = len(conversion.yaral), conversion.files - len(conversion.yaral)
    assert converted > refused, f"{converted} converted, {refused} refused by the backend"
    assert failures == {}


def text_facts(text: str) -> tuple[Counter[Fact], int]:
    """The scanner: facts in the events section, and how many field references it has."""
    events = text[text.index("events:") : text.rindex("conditions:")]
    facts: Counter[Fact] = Counter()
    for m in _COMPARISON.finditer(events):
        if m["str"] is not None:
            value = re.sub(r"\\([\\\"])", r"\1", m["str"])
        else:
            value = "/" + m["re"] if m["re"] is not None else m["num"]
        facts[(m["field"], m["op"], value, not m["nocase"])] += 1
    for m in _CIDR.finditer(events):
        facts[(m["field"], "cidr", m["cidr"], False)] += 1
    return facts, events.count("$event1.")


def our_facts(rules: list[YaraLRule]) -> tuple[Counter[Fact], int]:
    """detcat's predicates as the same facts; and how many Opaque nodes there are."""
    facts: Counter[Fact] = Counter()
    opaque = 0
    for leaf in (lf for r in rules for s in r.stages for lf in leaves(s.expr)):
        node = leaf.node
        if isinstance(node, Opaque):
            opaque += 1
            continue
        facts[_fact(node, leaf.negated)] += 1
    return facts, opaque


def _fact(p: Predicate, negated: bool) -> Fact:
    eq_ne = ("!=", "=") if negated else ("=", "!=")
    match p.op:
        case Op.EQ:
            return (str(p.field_raw), eq_ne[0], str(p.value), p.case_sensitive)
        case Op.IS_NULL | Op.EXISTS:  # `= ""` / `!= ""`
            op = eq_ne[0] if p.op is Op.IS_NULL else eq_ne[1]
            return (str(p.field_raw), op, "", p.case_sensitive)
        case Op.REGEX_MATCH:
            return (str(p.field_raw), eq_ne[0], f"/{p.value}", p.case_sensitive)
        case Op.CIDR:
            return (str(p.field_raw), "cidr", str(p.value), False)
    return (str(p.field_raw), str(p.op), str(p.value), p.case_sensitive)


def test_predicates_state_what_the_backend_wrote(
    converted: dict[str, str], parsed: dict[str, list[YaraLRule]]
) -> None:
    readable, disagree, unreadable = 0, {}, set()
    for path, text in converted.items():
        expected, references = text_facts(text)
        if sum(expected.values()) != references:
            unreadable.add(path)
            continue
        readable += 1
        got, opaque = our_facts(parsed[path])
        if got != expected or opaque:
            disagree[path] = (dict(expected - got), dict(got - expected))
    assert disagree == {}
    # the scanner fails exactly where the parser keeps undelimited values opaque
    with_opaque = {p for p, rules in parsed.items() if our_facts(rules)[1]}
    assert unreadable == with_opaque
    assert readable / len(converted) > 0.99, f"{readable}/{len(converted)}"
    reasons = Counter(
        o.why()
        for rules in parsed.values()
        for r in rules
        for s in r.stages
        for o in _opaques(s.expr)
    )
    assert set(reasons) <= {"unsupported syntax: undelimited value"}


def _opaques(expr: object) -> list[Opaque]:
    return [lf.node for lf in leaves(expr) if isinstance(lf.node, Opaque)]  # type: ignore[arg-type]


def test_meta_survives_the_flaws(parsed: dict[str, list[YaraLRule]]) -> None:
    """Titles with quotes and descriptions over several lines come back whole."""
    rules = [r for rs in parsed.values() for r in rs]
    assert all(isinstance(r.meta.get("title"), str) and r.meta["title"] for r in rules)
    multiline = [r for r in rules if "\n" in str(r.meta.get("description", ""))]
    quoted = [r for r in rules if '"' in str(r.meta.get("description", ""))]
    assert multiline and quoted  # both flaws occur, and are read through
    assert all(r.meta.get("id") for r in rules)  # the key after a flawed value is intact
