"""``detcat backtest``: per-rule hits of the catalog on a history of events;
``detcat sql-report``: which rules compile to SQL exactly."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from detcat.cli.options import (
    EXIT_FAILED,
    VENDOR_CHOICE,
    db_option,
    json_option,
    open_catalog,
    out,
    print_json,
)
from detcat.cli.render import _row, _table, plural

if TYPE_CHECKING:
    from detcat.backtest.results import Backtest
    from detcat.match.reading import BadEvent

SHOWN = 50  # rules listed in the text output


@click.command()
@click.argument("events", nargs=-1, required=True)
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "spark", "python"]),
    default="duckdb",
    show_default=True,
    help="Where the rules run.",
)
@click.option("--technique", help="Only rules for this ATT&CK technique (and its sub-techniques).")
@click.option("--vendor", type=VENDOR_CHOICE, help="Only these rules.")
@click.option(
    "--rules",
    "rules_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Only these rules: a draft rule file (any vendor), or ids (vendor:id, one a line).",
)
@click.option(
    "--spark-master",
    metavar="URL",
    help="Spark master (spark://host:7077, yarn, local[4]); default local[2].",
)
@click.option("--threads", type=click.IntRange(min=1), help="DuckDB threads (default: all).")
@db_option
@json_option
def backtest(
    events: tuple[str, ...],
    engine: str,
    technique: str | None,
    vendor: str | None,
    rules_file: Path | None,
    spark_master: str | None,
    threads: int | None,
    db: Path,
    as_json: bool,
) -> None:
    """How often the catalog's rules fire on EVENTS: per rule its hits, first and
    last seen, hits per day and sample events; per technique the rules that fired.

    EVENTS are JSON event files (as `detcat match` reads them), or one folder or
    URL (s3://bucket/prefix) written by `detcat events normalize`. The duckdb and
    spark engines run the rules compiled to SQL, one query per event kind;
    multi-event rules (sequences, thresholds, correlations) run only on the
    python engine and are listed as not compiled on the others.
    """
    from detcat.backtest import backtest as run
    from detcat.backtest import is_normalized, select_rules
    from detcat.match.reading import check_event_file

    if not is_normalized(list(events)):
        for path in events:
            check_event_file(path)
    plans, techniques = select_rules(open_catalog(db), vendor, technique, rules_file)
    bad: list[BadEvent] = []
    result = run(list(events), plans, techniques, engine, bad.append, spark_master, threads)
    for b in bad[:20]:
        click.echo(f"error: bad event {b}", err=True)
    if as_json:
        print_json(result.to_json())
    else:
        _text(result, len(plans))
    if bad:
        sys.exit(EXIT_FAILED)


def _text(result: Backtest, rules: int) -> None:
    console = out()
    fired = result.fired()
    rate = result.events / result.seconds if result.seconds else 0
    console.print(
        f"{plural(result.events, 'event')}, {plural(rules, 'rule')} "
        f"({result.engine}, {rate:,.0f} events/s): {plural(len(fired), 'rule')} fired"
    )
    t = _table(
        "Rules that fired",
        ("hits", "vendor", "id", "title", "first seen", "last seen", "days", "sample"),
        ids=("id",),
    )
    for r in fired[:SHOWN]:
        sample = r.samples[0] if r.samples else ""
        _row(t, r.hits, r.vendor, r.id, r.title, r.first, r.last, len(r.per_day), sample)
    console.print(t)
    if len(fired) > SHOWN:
        console.print(f"… and {plural(len(fired) - SHOWN, 'rule')} more (--json lists all)")
    techniques = result.techniques()
    if techniques:
        console.print("Techniques: " + ", ".join(f"{k} ({len(v)})" for k, v in techniques.items()))
    if result.not_compiled:
        console.print(
            f"{plural(len(result.not_compiled), 'multi-event rule')} not run (use --engine python)"
        )


@click.command("sql-report")
@db_option
@click.option("--vendor", type=VENDOR_CHOICE, help="Only these rules.")
@click.option("--rules-detail", is_flag=True, help="List every rule not compiled exactly.")
@json_option
def sql_report(db: Path, vendor: str | None, rules_detail: bool, as_json: bool) -> None:
    """Which rules compile to SQL exactly, per vendor; the others with the reason
    (run on the Python matcher after a SQL prefilter, or not compiled)."""
    from detcat.match import load_rules
    from detcat.sqlgen import Status, as_backtested, compile_rules, report

    compiled = compile_rules(as_backtested(load_rules(open_catalog(db), vendor)))
    shares, reasons = report(compiled)
    others = [
        {"rule": c.key, "title": c.plan.title, "status": str(c.status), "reasons": c.reasons}
        for c in compiled
        if c.status not in (Status.EXACT, Status.STATEFUL)
    ]
    if as_json:
        data: dict[str, Any] = {
            "vendors": [
                {
                    **vars(s),
                    "exact_share": round(s.exact_share, 4),
                    "stateful_share": round(s.stateful_share, 4),
                }
                for s in shares
            ],
            "reasons": dict(reasons.most_common()),
            "rules": others,
        }
        print_json(data)
        return
    console = out()
    t = _table(
        "Rules compiled to SQL",
        (
            "vendor",
            "rules",
            "single-event",
            "exact",
            "share",
            "python fallback",
            "not compiled",
            "multi-event",
            "evaluated by match",
            "stateful exact",
            "share",
            "Java regex on Spark",
        ),
    )
    for s in shares:
        _row(
            t,
            s.vendor,
            s.rules,
            s.single_event,
            s.exact,
            f"{s.exact_share:.1%}",
            s.fallback,
            s.not_compiled,
            s.multi_event,
            s.evaluated,
            s.stateful,
            f"{s.stateful_share:.1%}",
            s.java_regex,
        )
    console.print(t)
    r = _table("Reasons", ("rules", "reason"))
    for why, n in reasons.most_common():
        _row(r, n, why)
    console.print(r)
    if rules_detail:
        for o in others:
            console.print(f"{o['status']:<16} {o['rule']}  {'; '.join(o['reasons'])}")


COMMANDS = [backtest, sql_report]
