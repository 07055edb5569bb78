"""Rich terminal rendering of the CLI's data (the JSON twins print the dicts as-is).

Everything printed is data from rule files: it is escaped so that markup in a
hostile title cannot restyle or hide the output.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from detcat.catalog import BuildReport

_E = escape


@contextmanager
def build_progress(console: Console) -> Iterator[Any]:
    """A progress display for ``catalog.build``: one line per vendor, then the store."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.fields[note]}"), TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=False) as progress:
        tasks: dict[str, Any] = {}
        state = {"store": None, "started": time.perf_counter()}

        def update(vendor: str, event: str, n: int) -> None:
            if event == "start":
                tasks[vendor] = progress.add_task(f"read {vendor}", total=1, note="")
            elif event == "done":
                progress.update(tasks[vendor], completed=1, note=f"{n} rules")
            elif event == "vendor":
                if state["store"] is None:
                    state["store"] = progress.add_task("write catalog", total=len(tasks), note="")
                progress.advance(state["store"])  # type: ignore[arg-type]

        yield update


def build_report_json(report: BuildReport) -> dict[str, Any]:
    return {
        "db": str(report.db),
        "seconds": round(report.seconds, 2),
        "vendors": report.vendors,
        "problems": [
            {"vendor": p.vendor, "path": p.path, "line": p.line, "column": p.column,
             "message": p.message, "rule_id": p.rule_id}
            for p in report.problems
        ],
        "unknown_techniques": report.unknown_techniques,
        "dropped": {v: {"before": b, "now": n} for v, (b, n) in report.dropped.items()},
    }  # fmt: skip


def build_summary(console: Console, report: BuildReport) -> None:
    t = Table(title=f"Catalog written to {_E(str(report.db))} in {report.seconds:.1f} s")
    for col in ("vendor", "rules", "with query", "fully parsed", "problems"):
        t.add_column(col, justify="left" if col == "vendor" else "right")
    for v, s in report.vendors.items():
        share = f"{s['fully_parsed']} ({_pct(s['fully_parsed'], s['with_query'])})"
        t.add_row(v, str(s["rules"]), str(s["with_query"]), share, str(s["problems"]))
    console.print(t)
    if report.unknown_techniques:
        ids = ", ".join(sorted(report.unknown_techniques))
        console.print(f"[yellow]technique ids not in the ATT&CK bundle (kept):[/yellow] {_E(ids)}")
    for p in report.problems[:20]:
        console.print(f"[yellow]problem[/yellow] {_E(p.vendor)} {_E(str(p))}")
    if len(report.problems) > 20:
        console.print(f"… and {len(report.problems) - 20} more: `detcat problems`")
    if report.dropped:
        drops = ", ".join(f"{v} {b} -> {n} (-{b - n})" for v, (b, n) in report.dropped.items())
        console.print(
            f"[bold red]FEWER RULES than the catalog this build replaced:[/bold red] {_E(drops)}"
        )


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.2f}%" if total else "-"


def technique(console: Console, g: dict[str, Any]) -> None:
    h = g["technique"]
    subs = ", ".join(f"{s['id']} {s['name']}" for s in h["subtechniques"]) or "none"
    body = (
        f"[bold]{_E(h['id'])} {_E(h['name'])}[/bold]\n"
        f"Tactics: {_E(', '.join(h['tactics']))}\nSub-techniques: {_E(subs)}\n{_E(h['url'])}\n\n"
        f"{_E(h['description'])}"
    )
    console.print(Panel(body, title="Technique"))
    counts = ", ".join(f"{v} {n}" for v, n in g["vendors"].items())
    console.print(f"[bold]{len(g['rules'])} rules[/bold] ({counts})")
    _events(console, g["events"])
    _attack_detection(console, g["attack_detection"])
    _fields(console, g)
    _indicator_table(console, "Top indicator values", g["indicators"], g["indicator_count"])
    _indicator_table(console, "Exclusions", g["exclusions"], g["exclusion_count"])
    _rules_by_vendor(console, g["rules"])


def _events(console: Console, events: list[dict[str, Any]]) -> None:
    t = Table(title=f"Events covered: {len(events)} catalog events are tagged with this "
                    "technique by at least one rule")  # fmt: skip
    for col in ("provider", "event id", "title", "rules"):
        t.add_column(col)
    for e in events:
        t.add_row(_E(e["provider"]), _E(str(e["event_id"])), _E(e["title"]), str(e["rules"]))
    console.print(t)


def _attack_detection(console: Console, d: dict[str, Any]) -> None:
    """ATT&CK's analytics for the technique, the gap first: log sources they
    recommend that no rule of the technique reads."""
    s = d["summary"]
    if not s["analytics"]:
        return
    gap = "; ".join(f"{r['name']} {r['channel']}" for r in d["gap"])
    console.print(
        f"[bold]What ATT&CK's detection strategy watches[/bold]: {s['analytics']} analytics, "
        f"{s['log_sources']} log sources ({s['mapped']} mapped to catalog events, "
        f"{s['covered']} read by these rules)."
    )
    console.print(f"No rule here reads: {_E(gap)}" if gap else "Every mapped log source is read.")
    t = Table("analytic", "platforms", "log source", "channel", "covered by")
    for a in d["analytics"]:
        for src in a["log_sources"]:
            covered = ", ".join(src["vendors"]) or ("-" if src["events"] else "(unmapped)")
            t.add_row(f"{a['id']} ({a['strategy_id']})", _E(", ".join(a["platforms"])),
                      _E(src["name"]), _E(src["channel"]), _E(covered))  # fmt: skip
    console.print(t)


def _fields(console: Console, g: dict[str, Any]) -> None:
    t = Table(title=f"Fields filtered most ({g['field_count']} distinct)")
    for col in ("field", "aliases", "rules", "how", "samples"):
        t.add_column(col, overflow="fold")
    for f in g["fields"]:
        aliases = "; ".join(f"{v}: {', '.join(a)}" for v, a in f["aliases"].items())
        how = ", ".join(f"{op} {n}" for op, n in f["operators"].items())
        samples = ", ".join(str(s) for s in f["samples"])
        t.add_row(_E(f["field"]), _E(aliases), str(f["rules"]), _E(how), _E(samples))
    console.print(t)


def _indicator_table(console: Console, title: str, rows: list[dict[str, Any]], n: int) -> None:
    t = Table(title=f"{title} ({n} distinct)")
    reach = rows and "corpus_reach" in rows[0]
    for col in ("field", "op", "value", "rules") + (("corpus reach",) if reach else ()):
        t.add_column(col, overflow="fold")
    for r in rows:
        cells = [_E(str(r["field"] or "(keyword)")), r["op"], _E(str(r["value"])), str(r["rules"])]
        if reach:
            cells.append("" if r["specific"] else str(r["corpus_reach"]))
        t.add_row(*cells)
    console.print(t)


def _rules_by_vendor(console: Console, rules: list[dict[str, Any]]) -> None:
    by_vendor: dict[str, list[dict[str, Any]]] = {}
    for r in rules:
        by_vendor.setdefault(r["vendor"], []).append(r)
    for vendor, rs in by_vendor.items():
        t = Table(title=f"{vendor} ({len(rs)} rules)")
        for col in ("title", "techniques", "language", "id"):
            t.add_column(col, overflow="fold")
        for r in rs:
            t.add_row(_E(r["title"]), " ".join(r["techniques"]), r["language"], _E(r["id"]))
        console.print(t)


def rule(console: Console, r: dict[str, Any]) -> None:
    body = (
        f"[bold]{_E(r['title'])}[/bold]  ({_E(r['vendor'])} {_E(r['id'])})\n"
        f"Techniques: {_E(' '.join(r['techniques']))}  Severity: {_E(r['severity'] or '-')}  "
        f"Language: {_E(r['language'])}\n{_E(r['upstream_url'])}\n\n{_E(r['description'])}"
    )
    console.print(Panel(body, title="Rule"))
    if r["events"]:
        console.print("Events: " + _E(", ".join(
            f"{e['provider']} / {e['event_id']} / {e['title']}" for e in r["events"])))  # fmt: skip
    for s in r["stages"]:
        console.print(f"[bold]Stage {_E(s['name'])}[/bold] ({s['role']}"
                      f"{', negated' if s['negated'] else ''})")  # fmt: skip
        for line in expr_lines(s["expr"]):
            console.print("  " + _E(line))
    rows = [dict(i, rules=1, specific=i["corpus_reach"] == 1) for i in r["indicators"]]
    _indicator_table(console, "Indicators", rows, len(rows))
    console.print(Panel(_E(r["query"] or ""), title="Source query"))


def expr_lines(e: Any, depth: int = 0) -> list[str]:
    """A JSON predicate tree as indented text lines."""
    pad = "  " * depth
    if e is None:
        return [pad + "(no query)"]
    for key in ("and", "or"):
        if key in e:
            return [pad + key.upper()] + [ln for c in e[key] for ln in expr_lines(c, depth + 1)]
    if "not" in e:
        return [pad + "NOT"] + expr_lines(e["not"], depth + 1)
    if "opaque" in e:
        why = f"{e['reason']}: {e['detail']}" if e.get("detail") else e["reason"]
        return [f"{pad}OPAQUE ({why}): {e['opaque']}"]
    field = e["field"] or "(keyword)"
    raw = f" [{e['field_raw']}]" if e["field_raw"] and e["field_raw"] != e["field"] else ""
    case = " (case-sensitive)" if e.get("case_sensitive") else ""
    return [f"{pad}{field}{raw} {e['op']} {e['value']!r}{case}  {e.get('syntax', '')}".rstrip()]


def stats(console: Console, data: dict[str, Any]) -> None:
    t = Table(title=f"Catalog coverage ({data['techniques']} techniques with rules)")
    cols = ("vendor", "rules", "with query", "fully parsed", "with opaque", "problems",
            "predicates", "mapped")  # fmt: skip
    for col in cols:
        t.add_column(col, justify="left" if col == "vendor" else "right")
    for v, s in data["vendors"].items():
        t.add_row(
            v, str(s["rules"]), str(s["with_query"]),
            f"{s['fully_parsed']} ({_pct(s['fully_parsed'], s['with_query'])})",
            str(s["with_opaque"]), str(s["problems"]), str(s["predicates"]),
            f"{s['mapped_predicates']} ({_pct(s['mapped_predicates'], s['predicates'])})",
        )  # fmt: skip
    console.print(t)
    for v, s in data["vendors"].items():
        for reason, n in list(s["opaque"].items())[:10]:
            console.print(f"  {v}: {n} rules with Opaque: {_E(reason)}")
    ls = data["attack_log_sources"]
    console.print(
        f"ATT&CK analytics' log-source references mapped to catalog events: {ls['mapped']} of "
        f"{ls['references']} ({_pct(ls['mapped'], ls['references'])})"
    )
    if dup := data.get("near_duplicates"):
        console.print(
            f"  near-duplicate clusters: {dup['clusters']} ({dup['cross_vendor']} cross-vendor,"
            f" biggest {dup['biggest']} rules)"
        )


def unmapped(console: Console, rows: list[dict[str, Any]]) -> None:
    t = Table(title="Fields without a canonical name")
    for col in ("vendor", "field", "rules", "predicates", "vendor-specific because"):
        t.add_column(col)
    for r in rows:
        reason = _E(r.get("reason") or "")
        t.add_row(r["vendor"], _E(r["field_raw"]), str(r["rules"]), str(r["predicates"]), reason)
    console.print(t)


def problems(console: Console, rows: list[dict[str, Any]]) -> None:
    t = Table(title=f"{len(rows)} problems")
    for col in ("vendor", "where", "message"):
        t.add_column(col, overflow="fold")
    for p in rows:
        where = p["path"] + (f":{p['line']}" if p["line"] else "")
        t.add_row(_E(p["vendor"] or ""), _E(where), _E(p["message"]))
    console.print(t)


def search(console: Console, data: dict[str, Any]) -> None:
    t = Table(title=f"{data['total']} rules match {data['query']!r}")
    for col in ("vendor", "title", "techniques", "id"):
        t.add_column(col, overflow="fold")
    for r in data["rules"]:
        t.add_row(r["vendor"], _E(r["title"]), " ".join(r["techniques"]), _E(r["id"]))
    console.print(t)
