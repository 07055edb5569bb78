"""Splunk SPL -> stages of predicates.

``parse(text, lookup=…)`` reads one (macro-expanded) search:

* the base search, ``| search``, ``| where``, ``| regex`` and ``tstats … where``
  filters, split into top-level AND members; each member lands in the stage of
  the data it filters: raw events ("main", role EVENTS) or the output of an
  aggregation ("aggregate[n]", role AGGREGATE);
* ``rename``, ``eval``, ``rex``, ``spath``, ``lookup`` and aggregations update
  what a field name means, so predicates carry the vendor field they read
  (``field_raw``) and ``kind="derived"`` when the query computed the field;
* ``| lookup L in AS f OUTPUT out`` followed by a filter on ``out`` becomes
  predicates on ``f`` — the table's values when ``lookup`` resolves them
  (``kind="lookup:L"``), else ``f in_list L``;
* subsearches, ``join``, ``append``, ``appendpipe`` and ``map`` become stages
  "subsearch[n]"; triple-backtick comments are ignored.

Package layout: ``scan`` (pipes, subsearches, macros), ``expr`` (the search
and eval expression languages, grammar in ``spl.lark``), ``eval`` (eval/where),
``fields`` (field scope), ``pipeline`` (stage assembly, lookups), ``commands``
(one method per command).
"""

from __future__ import annotations

from detcat.languages.spl.commands import SplPipeline
from detcat.languages.spl.pipeline import IGNORED, LookupResolver
from detcat.languages.spl.scan import scan, strip_comments
from detcat.model import Stage, depth_limited

__all__ = ["IGNORED", "LookupResolver", "parse"]


@depth_limited
def parse(text: str, *, lookup: LookupResolver | None = None) -> list[Stage]:
    """The stages of one SPL search; raises ``QueryError`` for unreadable text.

    ``lookup(table, column, condition)`` returns the values of ``column`` in
    the rows of ``table`` that satisfy ``condition`` (an Expr over the table's
    own column names) and whether they match case-sensitively, or None.
    """
    src = strip_comments(text)
    return SplPipeline(src, lookup).run(scan(src))
