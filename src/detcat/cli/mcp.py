"""``detcat mcp``: serve the catalog to agents over the Model Context Protocol.

The main CLI imports this module at start-up, so the MCP SDK is imported inside
the command.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from detcat.cli.options import db_option, open_catalog


@click.command()
@db_option
@click.option("--http", is_flag=True, help="Streamable HTTP at http://HOST:PORT/mcp, not stdio.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface (with --http).")
@click.option("--port", default=8000, show_default=True, type=int, help="Port (with --http).")
@click.option(
    "--budget", default=50_000, show_default=True, type=click.IntRange(min=1_000),
    help="Characters of JSON per answer (about bytes) before lists are cut.",
)  # fmt: skip
def mcp(db: Path, http: bool, host: str, port: int, budget: int) -> None:
    """Serve the catalog as a read-only MCP server for agents (stdio by default)."""
    from detcat.mcp.server import run

    err = Console(stderr=True)
    if db.exists():
        # A file that is not a catalog is refused, as `serve` does; a missing one is
        # not, since agents' clients start the server before the first build.
        open_catalog(db).close()
    else:
        err.print(f"detcat mcp: no catalog at {escape(str(db))} yet; tools answer with an error")
    if http:
        err.print(f"detcat mcp: serving {escape(str(db))} on http://{escape(host)}:{port}/mcp")
    run(db, http=http, host=host, port=port, budget=budget)


COMMANDS = [mcp]
