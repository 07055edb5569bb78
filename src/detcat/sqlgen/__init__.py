"""The catalog's single-event rules compiled to SQL, for backtests at scale.

``sqlgen.lower`` turns a rule's predicate tree into a small intermediate form
(``sqlgen.ir``) with the semantics of the Python matcher (``match.evaluate``);
``sqlgen.rules`` adds what routes an event to a rule (``match.Matcher``'s
candidates step) and reports per vendor how many rules compiled exactly;
``sqlgen.rows`` defines the event rows the SQL reads; one module per dialect
(``duckdb``, ``spark``) spells the intermediate form as SQL (``sqlgen.emit``).
"""

from __future__ import annotations

from detcat.sqlgen.emit import SqlDialect
from detcat.sqlgen.rules import (
    CompiledRule,
    Status,
    as_backtested,
    compile_rule,
    compile_rules,
    report,
)


def dialect(name: str) -> SqlDialect:
    """The emitter of ``name`` (``duckdb`` or ``spark``)."""
    if name == "spark":
        from detcat.sqlgen.spark import Spark

        return Spark()
    from detcat.sqlgen.duckdb import DuckDB

    return DuckDB()


__all__ = [
    "CompiledRule",
    "SqlDialect",
    "Status",
    "as_backtested",
    "compile_rule",
    "compile_rules",
    "dialect",
    "report",
]
