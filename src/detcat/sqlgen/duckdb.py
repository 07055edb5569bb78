"""DuckDB's spelling of the IR (embedded, the default engine).

Literals are standard SQL (a quote doubled; a backslash is an ordinary
character). Substring tests use ``contains``, never ``LIKE``: ``%``, ``_`` and
``\\`` in a value are plain characters with nothing to escape (DuckDB's LIKE has
no default escape character). Regular expressions run on RE2, the Python
matcher's engine: the same syntax and the same case folding.
"""

from __future__ import annotations

from detcat.sqlgen.emit import SqlDialect
from detcat.sqlgen.ir import Regex
from detcat.sqlgen.lower import rx_literal
from detcat.sqlgen.rows import LABEL, TIME

ALTERNATION_MIN = 4  # needles from which one regex beats a contains() each
ALTERNATION_MAX = 1000  # needles per regex (RE2's lazy DFA stays fast up to about this)


class DuckDB(SqlDialect):
    name = "duckdb"

    def literal(self, text: str) -> str:
        if "\x00" in text:  # a NUL cannot be written inside a literal
            return "(" + " || chr(0) || ".join(self.literal(p) for p in text.split("\x00")) + ")"
        return "'" + text.replace("'", "''") + "'"

    def ident(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def contains(self, col: str, needle: str) -> str:
        return f"contains({col}, {self.literal(needle)})"

    def contains_any(self, col: str, needles: list[str]) -> str:
        """Many needles as one RE2 alternation of literals: one pass over the value
        instead of one per needle (RE2 matches bytes, so a literal matches exactly
        itself). Chunks keep each pattern far below RE2's memory limit."""
        if len(needles) < ALTERNATION_MIN:
            return super().contains_any(col, needles)
        parts = []
        for i in range(0, len(needles), ALTERNATION_MAX):
            pattern = "|".join(rx_literal(n) for n in needles[i : i + ALTERNATION_MAX])
            parts.append(f"regexp_matches({col}, {self.literal(pattern)})")
        return "(" + " OR ".join(parts) + ")"

    def hits_query(self, route_sql: str, samples: int) -> str:
        """Counted where the rows are: per (rule code, day) the hits, the first and
        last time and the ``samples`` earliest labels (memory: one group per rule
        and day, whatever the number of rows), earliest days first."""
        label, time = self.ident(LABEL), self.ident(TIME)
        return (
            f"SELECT code, count(*), min({time}), max({time}),\n"
            f"  min_by({label}, coalesce({time}, '') || {label}, {int(samples)})\n"
            f"FROM (SELECT unnest(codes) AS code, {label}, {time} FROM ({route_sql})) AS hits\n"
            f"GROUP BY code, left({time}, 10) ORDER BY code, left({time}, 10) NULLS LAST"
        )

    def regex(self, col: str, r: Regex) -> str:
        pattern = self.literal((f"(?{r.flags})" if r.flags else "") + r.pattern)
        fn = "regexp_full_match" if r.full else "regexp_matches"
        if r.each:
            return self.any_value(col, "x", f"{fn}(x, {pattern})")
        return f"{fn}({col}, {pattern})"

    def any_value(self, col: str, var: str, test: str) -> str:
        return f"(len(list_filter({col}, lambda {var}: {test})) > 0)"

    def same_value(self, col: str, others: list[str]) -> str:
        theirs = " || ".join(self._values(o) for o in others)
        return f"list_has_any({self._values(col)}, {theirs})"

    def _values(self, col: str) -> str:
        """A joined column's values as a list (between the first and last SEP)."""
        return f"list_slice(string_split({col}, chr(31)), 2, -2)"

    def list_has(self, col: str, item: str) -> str:
        return f"list_contains({col}, {item})"

    def list_max(self, col: str) -> str:
        return f"list_max({col})"

    def list_min(self, col: str) -> str:
        return f"list_min({col})"

    def array(self, items: list[str]) -> str:
        return f"[{', '.join(items)}]"

    def compact(self, expr: str) -> str:
        return f"list_filter({expr}, lambda c: c IS NOT NULL)"

    def empty(self) -> str:
        return "CAST([] AS INTEGER[])"

    def size(self, expr: str) -> str:
        return f"len({expr})"
