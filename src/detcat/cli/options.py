"""What every ``detcat`` command module shares: exit codes and common options.

Exit codes: 0 success; 1 the work failed; 2 usage error (click); 3 not found
(no catalog, unknown technique, rule or file).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from detcat.sources import registry
from detcat.store import DEFAULT_DB

EXIT_FAILED = 1
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

db_option = click.option(
    "--db",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_DB,
    show_default=True,
    envvar="DETCAT_DB",
    help="The catalog file (SQLite).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def dump_json(data: Any, indent: int | None = 2) -> str:
    return json.dumps(data, indent=indent, ensure_ascii=False, default=str)
