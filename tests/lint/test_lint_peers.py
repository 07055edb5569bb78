"""When does a draft use an indicator on its own? Read from the stage's positive
conjunctions: event-kind selectors, presence checks and exclusions narrow nothing."""

from __future__ import annotations

import pytest

from detcat import lint
from detcat.lint import peers as lint_peers
from detcat.parse import parse_rules

CMD = ("process.name", "eq", "cmd.exe")
PS = ("process.name", "eq", "powershell.exe")

CASES = [
    ('process.name : "cmd.exe"', {CMD}),
    ('process.name : "cmd.exe" and process.command_line : *whoami*', set()),
    ('process.name : ("cmd.exe" or "powershell.exe")', {CMD, PS}),
    ('event.type : "start" and host.os.type : "windows" and process.name : "cmd.exe"', {CMD}),
    ('process.name : "cmd.exe" and not process.parent.name : "explorer.exe"', {CMD}),
    ('process.name : "cmd.exe" and process.args : *', {CMD}),  # presence narrows nothing
    ('(process.name : "cmd.exe" or process.name : "a.exe") and process.args : "/c"', set()),
    ('process.name : "cmd.exe" or (process.name : "powershell.exe" and process.args : "-enc")',
     {CMD}),
]  # fmt: skip


@pytest.mark.parametrize(("query", "alone"), CASES)
def test_alone_keys(query: str, alone: set[tuple[str, str, str]]) -> None:
    stage = parse_rules("kql", query)[0].stages[0]
    cfg = lint.default_settings()
    terms = lint_peers.conjunctions(stage.expr, lint_peers.selectors(cfg), 256)
    assert terms is not None and lint_peers.alone_keys(terms) == alone


def test_the_same_holds_for_a_sigma_path_and_its_implied_name() -> None:
    rule = """
title: t
logsource: {category: process_creation, product: windows}
detection:
  sel: {Image|endswith: '\\\\cmd.exe'}
  condition: sel
"""
    stage = parse_rules("sigma", rule)[0].stages[0]
    terms = lint_peers.conjunctions(stage.expr, frozenset(), 256)
    assert terms is not None and lint_peers.alone_keys(terms) == {CMD}


def test_too_many_conjunctions_is_no_answer() -> None:
    query = " and ".join(f'(f{i} : "a" or f{i} : "b")' for i in range(10))  # 1024 terms
    stage = parse_rules("kql", query)[0].stages[0]
    assert lint_peers.conjunctions(stage.expr, frozenset(), 256) is None
