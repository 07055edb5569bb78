"""Spark SQL's spelling of the IR (``--engine spark``).

String literals take backslash escapes in Spark (``spark.sql.parser.
escapedStringLiterals`` off, the default): a backslash is doubled, a quote is
``\\'``, control characters are ``\\uXXXX``. Substring tests use ``instr``, never
``LIKE``, so ``%`` and ``_`` are plain characters. Numbers are compared as
doubles (``'10' > '9'`` is false on strings). Regular expressions run on Java's
engine, not RE2: patterns the catalog writes (``regex_match``) may differ there
(POSIX classes, Unicode classes); the compile report names them per rule. The
wildcards detcat lowers itself use only syntax both engines read alike;
case-insensitive Java patterns get ``u`` (Unicode case folding, as RE2).
"""

from __future__ import annotations

from detcat.sqlgen.emit import SqlDialect
from detcat.sqlgen.ir import SEP, Regex


class Spark(SqlDialect):
    name = "spark"

    def literal(self, text: str) -> str:
        out = []
        for c in text:
            if c in "\\'":
                out.append("\\" + c)
            elif ord(c) < 0x20 or c == "\x7f":
                out.append(f"\\u{ord(c):04X}")
            else:
                out.append(c)
        return "'" + "".join(out) + "'"

    def ident(self, name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    def contains(self, col: str, needle: str) -> str:
        return f"(instr({col}, {self.literal(needle)}) > 0)"

    def regex(self, col: str, r: Regex) -> str:
        flags = r.flags + ("u" if "i" in r.flags else "")
        body = (f"(?{flags})" if flags else "") + r.pattern
        # RLIKE searches; a whole match is anchored at the very start and end
        # (Java's $ would also match before a final newline).
        pattern = self.literal(f"\\A(?:{body})\\z" if r.full else body)
        if r.each:
            return self.any_value(col, "x", f"x RLIKE {pattern}")
        return f"({col} RLIKE {pattern})"

    def any_value(self, col: str, var: str, test: str) -> str:
        return f"exists({col}, {var} -> {test})"

    def same_value(self, col: str, others: list[str]) -> str:
        theirs = (
            self._values(others[0])
            if len(others) == 1
            else (f"concat({', '.join(self._values(o) for o in others)})")
        )
        return f"arrays_overlap({self._values(col)}, {theirs})"

    def _values(self, col: str) -> str:
        """A joined column's values as an array (between the first and last SEP;
        ``split`` takes a regex, the separator a plain character in it)."""
        parts = f"split({col}, {self.literal(SEP)})"
        return f"CASE WHEN {col} = '' THEN array() ELSE slice({parts}, 2, size({parts}) - 2) END"

    def list_has(self, col: str, item: str) -> str:
        return f"array_contains({col}, {item})"

    def list_max(self, col: str) -> str:
        return f"array_max({col})"

    def list_min(self, col: str) -> str:
        return f"array_min({col})"

    def array(self, items: list[str]) -> str:
        return f"array({', '.join(items)})"

    def compact(self, expr: str) -> str:
        return f"filter({expr}, c -> c IS NOT NULL)"

    def empty(self) -> str:
        return "CAST(array() AS ARRAY<INT>)"

    def size(self, expr: str) -> str:
        return f"size({expr})"
