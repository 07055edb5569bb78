"""Rich terminal rendering of the CLI's data (the JSON twins print the dicts as-is).

Everything printed is data from rule files. It reaches the terminal as ``Text``,
never as markup: a hostile title cannot restyle or hide the output, and a value
is shown exactly as stored (markup escaping would double a trailing backslash).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from detcat.attack import paragraphs
from detcat.catalog import BuildReport
from detcat.guide import text as guide_text
from detcat.sources.registry import display_name


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 rule``, ``2 rules``; ``many`` for irregular plurals."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def show_value(value: Any) -> str:
    """A predicate value as stored: strings in double quotes without escaping."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)


def _table(title: str, columns: tuple[str, ...], ids: tuple[str, ...] = ()) -> Table:
    """A table whose data cells fold; ``ids`` columns never wrap, so an id can be
    pasted into the next command."""
    t = Table(title=Text(title))
    for col in columns:
        if col in ids:
            t.add_column(col, no_wrap=True, overflow="ignore")
        else:
            t.add_column(col, overflow="fold")
    return t


def _row(t: Table, *cells: Any) -> None:
    t.add_row(*(Text("" if c is None else str(c)) for c in cells))


# -- build ----------------------------------------------------------------------------


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
                progress.update(tasks[vendor], completed=1, note=plural(n, "rule"))
            elif event == "vendor":
                if state["store"] is None:
                    state["store"] = progress.add_task("write catalog", total=len(tasks), note="")
                progress.advance(state["store"])  # type: ignore[arg-type]

        yield update


def build_report_json(report: BuildReport) -> dict[str, Any]:
    return {
        "db": str(report.db),
        "seconds": round(report.seconds, 2),
        "incremental": report.incremental,
        "files_read": report.files_read,
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
    how = f", updated: {plural(report.files_read or 0, 'file')} read" if report.incremental else ""
    t = Table(title=Text(f"Catalog written to {report.db} in {report.seconds:.1f} s{how}"))
    for col in ("vendor", "rules", "with query", "fully parsed", "problems"):
        t.add_column(col, justify="left" if col == "vendor" else "right")
    for v, s in report.vendors.items():
        share = f"{s['fully_parsed']} ({_pct(s['fully_parsed'], s['with_query'])})"
        _row(t, v, s["rules"], s["with_query"], share, s["problems"])
    console.print(t)
    if report.unknown_techniques:
        ids = ", ".join(sorted(report.unknown_techniques))
        console.print(
            Text.assemble(("technique ids not in the ATT&CK bundle (kept): ", "yellow"), ids)
        )
    for p in report.problems[:20]:
        console.print(Text.assemble(("problem ", "yellow"), f"{p.vendor} {p}"))
    if len(report.problems) > 20:
        console.print(Text(f"… and {len(report.problems) - 20} more: `detcat problems`"))
    if report.dropped:
        drops = ", ".join(f"{v} {b} -> {n} (-{b - n})" for v, (b, n) in report.dropped.items())
        note = ("FEWER RULES than the catalog this build replaced: ", "bold red")
        console.print(Text.assemble(note, drops))


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.2f}%" if total else "-"


# -- technique ------------------------------------------------------------------------


def technique(console: Console, g: dict[str, Any]) -> None:
    h = g["technique"]
    subs = ", ".join(f"{s['id']} {s['name']}" for s in h["subtechniques"]) or "none"
    body = Text.assemble(
        (f"{h['id']} {h['name']}", "bold"),
        f"\nTactics: {', '.join(h['tactics']) or '-'}\nSub-techniques: {subs}\n{h['url']}\n\n",
        "\n\n".join(paragraphs(h["description"])),
    )
    console.print(Panel(body, title="Technique"))
    if not g["rules"]:
        console.print(Text(f"no rules in the catalog tag {h['id']}"))
        _attack_detection(console, g["attack_detection"])  # what a first rule could watch
        return
    about = guide_text.explain(g, "short")  # the web page's prose, short form
    counts = ", ".join(f"{display_name(v)} {n}" for v, n in g["vendors"].items())
    console.print(Text.assemble((plural(len(g["rules"]), "rule"), "bold"), f" ({counts})"))
    console.print(Text.assemble(("Authoring guide", "bold"), ": ", _prose(about["guide"])))
    _events(console, g["events"])
    console.print(_prose(about["events"]))
    _attack_detection(console, g["attack_detection"])
    _fields(console, g)
    console.print(_prose(about["fields"]))
    _indicator_table(console, "Top indicator values", g["indicators"], g["indicator_count"])
    console.print(_prose(about["indicators"]))
    _indicator_table(console, "Exclusions", g["exclusions"], g["exclusion_count"])
    console.print(_prose(about["exclusions"]))
    _rules_by_vendor(console, g["rules"])


def _prose(text: str) -> Text:
    """Guide prose as plain text, its `code` spans in cyan."""
    parts = text.split("`")
    return Text.assemble(*((p, "cyan") if i % 2 else p for i, p in enumerate(parts)))


def _shown(rows: list[Any], total: int) -> str:
    """ "12 distinct", or "50 of 58 distinct: --all shows every row"."""
    if len(rows) < total:
        return f"{len(rows)} of {total} distinct; --all shows every row"
    return f"{total} distinct"


def _events(console: Console, events: list[dict[str, Any]]) -> None:
    n = plural(len(events), "catalog event")
    t = _table(f"Events covered: {n} tagged with this technique by at least one rule",
               ("provider", "event id", "title", "rules", "vendors"))  # fmt: skip
    for e in events:
        vendors = ", ".join(map(display_name, e["vendors"]))
        _row(t, e["provider"], e["event_id"], e["title"], e["rules"], vendors)
    console.print(t)


def _attack_detection(console: Console, d: dict[str, Any]) -> None:
    """ATT&CK's analytics for the technique, the gap first: log sources they
    recommend that no rule of the technique reads."""
    s = d["summary"]
    if not s["analytics"]:
        return
    gap = "; ".join(f"{r['name']} {r['channel']}" for r in d["gap"])
    console.print(Text.assemble(
        ("What ATT&CK's detection strategy watches", "bold"),
        f": {plural(s['analytics'], 'analytic')}, {plural(s['log_sources'], 'log source')} "
        f"({s['mapped']} mapped to catalog events, {s['covered']} read by these rules).",
    ))  # fmt: skip
    console.print(Text(f"No rule here reads: {gap}" if gap else "Every mapped log source is read."))
    t = _table("", ("analytic", "platforms", "log source", "channel", "covered by"))
    for a in d["analytics"]:
        for src in a["log_sources"]:
            covered = ", ".join(map(display_name, src["vendors"]))
            covered = covered or ("-" if src["events"] else "(unmapped)")
            _row(t, f"{a['id']} ({a['strategy_id']})", ", ".join(a["platforms"]),
                 src["name"], src["channel"], covered)  # fmt: skip
    console.print(t)


def _fields(console: Console, g: dict[str, Any]) -> None:
    t = _table(f"Fields filtered most ({_shown(g['fields'], g['field_count'])})",
               ("field", "aliases", "rules", "how", "samples"))  # fmt: skip
    for f in g["fields"]:
        aliases = "; ".join(f"{display_name(v)}: {', '.join(map(str, a))}"
                            for v, a in f["aliases"].items())  # fmt: skip
        how = ", ".join(f"{op} {n}" for op, n in f["operators"].items())
        samples = ", ".join(show_value(s) for s in f["samples"])
        _row(t, f["field"], aliases, f["rules"], how, samples)
    console.print(t)


def _indicator_table(console: Console, title: str, rows: list[dict[str, Any]], n: int) -> None:
    reach = bool(rows) and "corpus_reach" in rows[0]
    columns = ("field", "op", "value", "rules") + (("corpus reach",) if reach else ())
    t = _table(f"{title} ({_shown(rows, n)})", columns)
    for r in rows:
        op = r["op"] + (" (selector)" if r.get("selector") else "")
        cells = [r["field"] or "(keyword)", op, show_value(r["value"]), r["rules"]]
        if reach:
            cells.append("" if r["specific"] else r["corpus_reach"])
        _row(t, *cells)
    console.print(t)


def _rules_by_vendor(console: Console, rules: list[dict[str, Any]]) -> None:
    by_vendor: dict[str, list[dict[str, Any]]] = {}
    for r in rules:
        by_vendor.setdefault(r["vendor"], []).append(r)
    for vendor, rs in by_vendor.items():
        t = _table(f"{display_name(vendor)} ({plural(len(rs), 'rule')})",
                   ("title", "techniques", "language", "id"), ids=("id",))  # fmt: skip
        for r in rs:
            _row(t, r["title"], " ".join(r["techniques"]), r["language"], r["id"])
        console.print(t)


# -- rule -----------------------------------------------------------------------------


def rule(console: Console, r: dict[str, Any]) -> None:
    body = Text.assemble(
        (r["title"], "bold"),
        f"  ({r['vendor']} {r['id']})\nTechniques: {' '.join(r['techniques']) or '-'}  "
        f"Severity: {r['severity'] or '-'}  Language: {r['language']}\n{r['upstream_url'] or ''}"
        "\n\n",
        "\n\n".join(paragraphs(r["description"])),
    )
    console.print(Panel(body, title="Rule"))
    if r["events"]:
        events = ", ".join(f"{e['provider']} / {e['event_id']} / {e['title']}" for e in r["events"])
        console.print(Text(f"Events: {events}"))
    for s in r["stages"]:
        role = f"{s['role']}{', negated' if s['negated'] else ''}"
        console.print(Text.assemble((f"Stage {s['name']}", "bold"), f" ({role})"))
        for line in tree_lines(s["expr"], 1):
            console.print(Text(line))
    if r["exclusions"]:
        t = _table(f"Exclusions ({len(r['exclusions'])})", ("field", "op", "value"))
        for x in r["exclusions"]:
            _row(t, x["field"] or "(keyword)", x["op"], show_value(x["value"]))
        console.print(t)
    else:
        console.print(Text("Exclusions: none"))
    rows = [dict(i, rules=1, specific=i["corpus_reach"] == 1) for i in r["indicators"]]
    if rows:
        _indicator_table(console, "Indicators", rows, len(rows))
    else:
        console.print(Text("Indicators: none"))
    for p in r.get("problems", []):
        where = p["path"] + (f":{p['line']}" if p["line"] else "")
        console.print(Text.assemble(("problem ", "yellow"), f"{where}: {p['message']}"))
    console.print(Panel(Text(r["query"] or ""), title="Source query"))


def tree_lines(e: Any, depth: int = 0, top: bool = True) -> list[str]:
    """A JSON predicate tree as indented lines. ``EXCL`` is a NOT at the top of a
    stage (the root, or a child of the root AND): what it holds is an exclusion."""
    pad = "  " * depth
    if e is None:
        return [pad + "(no filter)"]
    for key in ("and", "or"):
        if key in e:
            below = top and key == "and"
            return [pad + key.upper()] + [
                ln for c in e[key] for ln in tree_lines(c, depth + 1, below)
            ]
    if "not" in e:
        return [pad + ("EXCL" if top else "NOT")] + tree_lines(e["not"], depth + 1, False)
    if "opaque" in e:
        why = f"{e['reason']}: {e['detail']}" if e.get("detail") else e["reason"]
        return [f"{pad}? opaque ({why}): {' '.join(str(e['opaque']).split())[:200]}"]
    return [pad + predicate_line(e)]


def predicate_line(p: dict[str, Any]) -> str:
    field = p["field"] or "(keyword)"
    raw = f" [{p['field_raw']}]" if p["field_raw"] and p["field_raw"] != p["field"] else ""
    value = "" if p["value"] is None else f" {show_value(p['value'])}"
    notes = [n for n in (p.get("kind"), "case-sensitive" if p.get("case_sensitive") else "") if n]
    tail = f"  ({', '.join(notes)})" if notes else ""
    syntax = f"  {p['syntax']}" if p.get("syntax") else ""
    return f"{field}{raw} {p['op']}{value}{tail}{syntax}"


# -- stats, problems, search ----------------------------------------------------------


def stats(console: Console, data: dict[str, Any]) -> None:
    title = f"Catalog coverage ({plural(data['techniques'], 'technique')} with rules)"
    t = Table(title=Text(title))
    cols = ("vendor", "rules", "with query", "fully parsed", "with opaque", "problems",
            "predicates", "mapped")  # fmt: skip
    for col in cols:
        t.add_column(col, justify="left" if col == "vendor" else "right")
    for v, s in data["vendors"].items():
        _row(
            t, v, s["rules"], s["with_query"],
            f"{s['fully_parsed']} ({_pct(s['fully_parsed'], s['with_query'])})",
            s["with_opaque"], s["problems"], s["predicates"],
            f"{s['mapped_predicates']} ({_pct(s['mapped_predicates'], s['predicates'])})",
        )  # fmt: skip
    console.print(t)
    for v, s in data["vendors"].items():
        for reason, n in list(s["opaque"].items())[:10]:
            console.print(Text(f"  {v}: {plural(n, 'rule')} with Opaque: {reason}"))
    ls = data["attack_log_sources"]
    console.print(Text(
        f"ATT&CK analytics' log-source references mapped to catalog events: {ls['mapped']} of "
        f"{ls['references']} ({_pct(ls['mapped'], ls['references'])})"
    ))  # fmt: skip
    if dup := data.get("near_duplicates"):
        clusters = plural(dup["clusters"], "near-duplicate cluster")
        console.print(Text(f"  {clusters} ({dup['cross_vendor']} cross-vendor, "
                           f"biggest {plural(dup['biggest'], 'rule')})"))  # fmt: skip


def unmapped(console: Console, rows: list[dict[str, Any]]) -> None:
    columns = ("vendor", "field", "rules", "predicates", "vendor-specific because")
    t = _table("Fields without a canonical name", columns)
    for r in rows:
        _row(t, r["vendor"], r["field_raw"], r["rules"], r["predicates"], r.get("reason") or "")
    console.print(t)


def problems(console: Console, rows: list[dict[str, Any]]) -> None:
    t = _table(plural(len(rows), "problem"), ("vendor", "where", "message"))
    for p in rows:
        where = p["path"] + (f":{p['line']}" if p["line"] else "")
        _row(t, p["vendor"] or "", where, p["message"])
    console.print(t)


def search(console: Console, data: dict[str, Any]) -> None:
    shown = len(data["rules"])
    more = f" (showing {shown}; --all shows every one)" if shown < data["total"] else ""
    title = f"{plural(data['total'], 'rule')} match {data['query']}{more}"
    t = _table(title, ("vendor", "title", "techniques", "id"), ids=("id",))
    for r in data["rules"]:
        _row(t, r["vendor"], r["title"], " ".join(r["techniques"]), r["id"])
    console.print(t)
