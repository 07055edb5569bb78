"""``detcat diff OLD NEW`` (registered by cli/__init__.py): review a catalog
update like a changelog before adopting it.

Exit codes: 0 success; 2 usage error; 3 not found (a catalog file missing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from detcat.cli.options import dump_json, json_option, open_catalog
from detcat.cli.render import show_value

_SHOWN = 10  # items listed per change in the text output


@click.command()
@click.argument("old", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("new", type=click.Path(path_type=Path, dir_okay=False))
@json_option
def diff(old: Path, new: Path, as_json: bool) -> None:
    """What changed from catalog OLD to catalog NEW: rules added, removed and
    changed (predicates, exclusions, techniques, or metadata only), and per
    technique the rules gained or lost and the indicators added or removed."""
    from detcat.diff import diff as run_diff

    data = run_diff(open_catalog(old), open_catalog(new))  # refused: one line, exit 3
    click.echo(dump_json(data) if as_json else changelog(data))


def changelog(data: dict[str, Any]) -> str:
    """The diff as a changelog: summary, then added, removed, changed, techniques."""
    s = data["summary"]
    changed = ", ".join(f"{n} {kind}" for kind, n in sorted(s["changed"].items())) or "none"
    out = [
        f"# {s['rules_before']} -> {s['rules_after']} rules: {s['added']} added, "
        f"{s['removed']} removed, changed: {changed}; {s['techniques_changed']} techniques"
    ]
    for title, rows in (("Added", data["added"]), ("Removed", data["removed"])):
        if rows:
            out += ["", f"## {title}"] + [f"- {_rule(r)}" for r in rows]
    if data["changed"]:
        out += ["", "## Changed"]
        for c in data["changed"]:
            out.append(f"- {_rule(c)}: {c['kind']}")
            out += _changes(c)
    if data["techniques"]:
        out += ["", "## Techniques"]
        for t in data["techniques"]:
            out.append(f"- {t['id']} {t['name']}: {t['rules_before']} -> {t['rules_after']} rules")
            out += _sub("gained", [_rule(r) for r in t["rules_gained"]])
            out += _sub("lost", [_rule(r) for r in t["rules_lost"]])
            out += _sub("indicators added", [_ind(i) for i in t["indicators_added"]])
            out += _sub("indicators removed", [_ind(i) for i in t["indicators_removed"]])
    return "\n".join(out)


def _rule(r: dict[str, str]) -> str:
    return f"{r['vendor']} {r['id']} ({r['title']})"


def _ind(i: dict[str, Any]) -> str:
    return f"{i['field'] or '(keyword)'} {i['op']} {show_value(i['value'])}"


def _changes(c: dict[str, Any]) -> list[str]:
    lines = []
    for name in ("predicates", "exclusions", "techniques"):
        lines += _sub(f"+ {name}", c.get(f"{name}_added", []))
        lines += _sub(f"- {name}", c.get(f"{name}_removed", []))
    if c["metadata"]:
        lines.append(f"    metadata: {', '.join(c['metadata'])}")
    return lines


def _sub(label: str, items: list[str]) -> list[str]:
    if not items:
        return []
    more = f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
    return [f"    {label}: {'; '.join(items[:_SHOWN])}{more}"]


COMMANDS = [diff]
