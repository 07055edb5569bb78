"""What every ``detcat`` command module shares: exit codes, common options, output.

Exit codes: 0 success; 1 the work failed; 2 usage error; 3 not found (no catalog,
unknown technique, rule or file).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from detcat.errors import DetcatError, UsageProblem
from detcat.sources import registry
from detcat.store import DEFAULT_DB

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3


class RegistryChoice(click.Choice):
    """A choice among the names the vendor registry knows when the command runs
    (so an installed or registered vendor counts without a change here)."""

    def __init__(self, names: Callable[[], Iterable[str]]) -> None:
        super().__init__(())
        self._names = names

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        return tuple(self._names())

    @choices.setter
    def choices(self, _: Any) -> None:  # click.Choice.__init__ assigns it
        pass


VENDOR_CHOICE = RegistryChoice(registry.names)
LANGUAGE_CHOICE = RegistryChoice(registry.languages)

# Piped output is read by programs and pasted into commands: lay tables out this
# wide instead of the 80 columns rich assumes, so that long cells do not fold.
PIPE_WIDTH = 200

F = TypeVar("F", bound=Callable[..., Any])


def exit_code(error: DetcatError) -> int:
    """Not found (a missing catalog, technique, rule or file) is 3, a usage problem
    2, any other expected failure 1."""
    if isinstance(error, LookupError | FileNotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(error, UsageProblem):
        return EXIT_USAGE
    return EXIT_FAILED


db_option = click.option(
    "--db",
    type=click.Path(path_type=Path),
    default=DEFAULT_DB,
    show_default=True,
    envvar="DETCAT_DB",
    help="The catalog file (SQLite).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def limit_options(default: int = 50) -> Callable[[F], F]:
    """``--limit N`` (at least 1) and ``--all``; the command receives ``limit``
    as an int, or None for every row."""

    def apply(f: F) -> F:
        f = click.option("--all", "all_rows", is_flag=True, help="Every row (no limit).")(f)
        return click.option(
            "--limit",
            type=click.IntRange(min=1),
            default=default,
            show_default=True,
            help="Rows per section (at least 1).",
        )(f)

    return apply


def rows(limit: int, all_rows: bool) -> int | None:
    return None if all_rows else limit


def dump_json(data: Any, indent: int | None = 2) -> str:
    return json.dumps(data, indent=indent, ensure_ascii=False, default=str)


def print_json(data: Any) -> None:
    click.echo(dump_json(data))


def out() -> Console:
    """The console for results (made per command, so tests capturing stdout see it)."""
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=PIPE_WIDTH if piped else None, highlight=False)


def err() -> Console:
    return Console(stderr=True, highlight=False)


def open_catalog(db: Path) -> sqlite3.Connection:
    """The catalog, read-only; a missing or foreign file raises a ``DetcatError``
    that the CLI turns into one line and exit code 3."""
    from detcat.store import connect

    return connect(db)
