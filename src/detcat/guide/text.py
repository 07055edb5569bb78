"""The prose of a technique's authoring guide: what each section shows and how
to read it, with the guide's own numbers filled in.

The sentences live in ``data/guide.toml``; the web page (long form), ``detcat
technique`` (short form) and the JSON schemas (``schema``, no numbers) all take
them from there, so the three cannot drift apart. A sentence whose numbers do
not exist for a technique (no exclusions, no shared alias) is left out.
"""

from __future__ import annotations

import string
from typing import Any, Literal

from detcat.sources import registry
from detcat.tables import load

GUIDE = "guide.toml"
SECTIONS = ("guide", "events", "fields", "indicators", "exclusions", "rules")

Form = Literal["long", "short"]


def explain(g: dict[str, Any], form: Form = "long") -> dict[str, str]:
    """Section -> its paragraph for the guide ``g`` (``guide.technique_guide``)."""
    nums = numbers(g)
    text = load(GUIDE)["text"]
    return {s: " ".join(_fill(t, nums) for t in text[s][form] if _fits(t, nums)) for s in SECTIONS}


def schema(section: str) -> str:
    """The number-free description of a section, for the JSON schemas."""
    return str(load(GUIDE)["text"][section]["schema"])


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _fits(template: str, nums: dict[str, Any]) -> bool:
    return all(nums.get(n) is not None for n in placeholders(template))


class _Prose(string.Formatter):
    """``{n:rule}`` writes "1 rule" or "2 rules": a count with its noun."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec and isinstance(value, int):
            return f"{value} {format_spec}{'' if value == 1 else 's'}"
        return super().format_field(value, format_spec)


def _fill(template: str, nums: dict[str, Any]) -> str:
    return _Prose().vformat(template, (), nums)


def numbers(g: dict[str, Any]) -> dict[str, Any]:
    """Every number and example the sentences may name (None: does not exist)."""
    ranking = load(GUIDE)["ranking"]
    return {
        "tid": g["technique"]["id"],
        "rules": len(g["rules"]),
        "vendor_counts": _vendor_counts(g["vendors"]),
        "events": len(g["events"]),
        "top_event": _event_name(g["events"][0]) if g["events"] else None,
        "top_event_rules": g["events"][0]["rules"] if g["events"] else None,
        **_alias_example(g["fields"]),
        "field_count": g["field_count"],
        "fields_shown": len(g["fields"]),
        **_top_field(g["fields"]),
        "indicator_count": g["indicator_count"],
        "indicators_shown": len(g["indicators"]),
        "screen": ranking["screen"],
        "per_field": ranking["per_field"],
        **_reach_examples(g["indicators"]),
        "exclusion_count": g["exclusion_count"],
        "exclusions_shown": len(g["exclusions"]),
        **_top_exclusion(g["exclusions"]),
    }


def _vendor_counts(vendors: dict[str, int]) -> str | None:
    parts = [f"{registry.display_name(v)} {n}" for v, n in vendors.items() if n]
    return _and(parts) if parts else None


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _possessive(name: str) -> str:
    return name + ("'" if name.endswith("s") else "'s")


def _event_name(e: dict[str, Any]) -> str:
    return f"`{e['id']}` {e['title'] or ''}".strip()


def _condition(row: dict[str, Any]) -> str:
    return f"{row['field'] or '(keyword)'} {row['op']} {row['value']}"


def _alias_example(fields: list[dict[str, Any]]) -> dict[str, Any]:
    """The top field written differently by the most vendors: its vendor spellings."""

    def spellings(f: dict[str, Any]) -> list[tuple[str, str]]:
        return [(v, names[0]) for v, names in f["aliases"].items() if names and names[0]]

    shared = [f for f in fields if len({n for _, n in spellings(f)}) > 1]
    if not shared:
        return {"alias_example": None, "alias_field": None}
    best = max(shared, key=lambda f: len(spellings(f)))  # first of the most vendors
    named = [f"{_possessive(registry.display_name(v))} `{n}`" for v, n in spellings(best)]
    return {"alias_example": _and(named), "alias_field": best["field"]}


def _top_exclusion(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The most used exclusion, preferring a canonical field (one all vendors share)."""
    mapped = [r for r in rows if r["field"] and ":" not in r["field"]]
    top = (mapped or rows or [None])[0]
    return {"top_exclusion": _condition(top) if top else None,
            "top_exclusion_rules": top["rules"] if top else None}  # fmt: skip


def _top_field(fields: list[dict[str, Any]]) -> dict[str, Any]:
    if not fields:
        return {"top_field": None, "top_field_rules": None, "top_field_ops": None, "samples": None}
    f = fields[0]
    top_ops = list(f["operators"].items())[:3]
    ops = [f"`{op}` in {n} rule{'s' if n != 1 else ''}" for op, n in top_ops]
    return {"top_field": f["field"], "top_field_rules": f["rules"],
            "top_field_ops": _and(ops), "samples": len(f["samples"])}  # fmt: skip


def _reach_examples(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The noisiest listed indicator that is not a selector, the first specific
    one, the first selector, and how many of each the list holds."""
    plain = [r for r in rows if not r["selector"] and not r["specific"]]
    noisy = max(plain, key=lambda r: r["corpus_reach"] - r["rules"], default=None)
    specific = [r for r in rows if r["specific"]]
    selectors = [r for r in rows if r["selector"]]
    return {
        "noisy": _condition(noisy) if noisy else None,
        "noisy_rules": noisy["rules"] if noisy else None,
        "noisy_reach": noisy["corpus_reach"] if noisy else None,
        "specific_shown": len(specific),
        "specific": _condition(specific[0]) if specific else None,
        "selectors_shown": len(selectors),
        "selector": _condition(selectors[0]) if selectors else None,
    }
