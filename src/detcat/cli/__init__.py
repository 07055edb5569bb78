"""The ``detcat`` command line: one module per command group, registered here.

Exit codes: 0 success; 1 the work failed (build error, problems under
``--strict``); 2 usage error; 3 not found (no catalog, unknown technique/rule).

Every failure a user can cause raises a ``DetcatError``; ``Main.invoke`` turns it
into one line on stderr and its exit code, in this one place. Command modules
import nothing heavy at start-up (FastAPI, lark, the matcher load on use).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from typing import Any

import click

from detcat.cli import (
    backtest,
    build,
    coverage,
    diff,
    events,
    export_csv,
    guide,
    lint,
    match,
    mcp,
    parse,
    serve,
    similar,
    stats,
)
from detcat.cli.options import EXIT_FAILED, exit_code
from detcat.errors import DetcatError


class Main(click.Group):
    """The command group, with the one handler for expected failures."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DetcatError as e:
            _fail(describe(e), exit_code(e))
        except sqlite3.DatabaseError as e:  # a catalog damaged after it was opened
            _fail(f"the catalog cannot be read ({e}): run `detcat build`", EXIT_FAILED)
        except RecursionError:  # a safety net: parsers bound their depth themselves
            _fail("the input is nested too deeply to read", EXIT_FAILED)
        except BrokenPipeError:  # `detcat … | head`: the reader has seen enough
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(EXIT_FAILED)


def describe(e: DetcatError) -> str:
    """``path:line: message``, or ``message at line L, column C`` for typed text."""
    if e.path:
        return f"{e.location()}: {e.message}"
    if e.line:
        return f"{e.message} at line {e.line}" + (f", column {e.column}" if e.column else "")
    return e.message


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group(cls=Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="detcat")
def main() -> None:
    """detcat: one catalog of the public detection rules, with per-technique
    authoring guides (fields, indicators, exclusions) across Sigma, Elastic,
    Splunk and Google SecOps."""


_MODULES = (
    build,
    guide,
    stats,
    parse,
    match,
    backtest,
    events,
    lint,
    similar,
    coverage,
    diff,
    events,
    export_csv,
    serve,
    mcp,
)
for _module in _MODULES:
    for _command in _module.COMMANDS:
        main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
