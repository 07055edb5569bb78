"""Session fixtures of the fidelity suite: the Windows Sigma rules, each backend's
conversions (made once per target per session), and a closing summary of every
round-trip report in the terminal output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fidelity_oracle import TARGETS, Conversion, Report, SigmaDoc, convert_all, windows_rules

_REPORTS: list[Report] = []


@pytest.fixture(scope="session")
def sigma_windows(corpora: Path) -> list[SigmaDoc]:
    return windows_rules(corpora / "sigma")


@pytest.fixture(scope="session")
def conversions(sigma_windows: list[SigmaDoc]) -> Callable[[str], dict[str, Conversion]]:
    """target name -> its conversions of every rule, computed on first use."""
    cache: dict[str, dict[str, Conversion]] = {}

    def get(name: str) -> dict[str, Conversion]:
        if name not in cache:
            cache[name] = convert_all(TARGETS[name], sigma_windows)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def reports() -> list[Report]:
    return _REPORTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _REPORTS:
        terminalreporter.section("round-trip agreement (pySigma backends -> detcat)")
        for rep in _REPORTS:
            terminalreporter.write_line(rep.summary())
