"""One base for every error detcat raises on purpose.

A ``DetcatError`` is an expected failure with a message a user can act on and,
when known, where it happened (``path``, 1-based ``line``/``column``). The CLI,
the web app and the MCP server catch this one type; anything else is a bug.
"""

from __future__ import annotations


class DetcatError(Exception):
    """An expected failure: a message for the user and an optional location."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.column = column

    def location(self) -> str:
        """``path:line:column`` as far as it is known ("" when nothing is)."""
        parts = [str(p) for p in (self.path, self.line, self.column) if p is not None]
        return ":".join(parts)


class UsageProblem(DetcatError, ValueError):
    """Input a user typed that cannot be used as given (the CLI's exit code 2, the
    web's 400): the message says what to write instead."""
