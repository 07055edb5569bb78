"""``detcat serve`` and ``detcat export-site``.

The main CLI imports this module at start-up, so it imports nothing heavy:
FastAPI, uvicorn and Jinja2 are imported inside the commands.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from detcat.cli.options import EXIT_FAILED, EXIT_NOT_FOUND, db_option


def _require(db: Path, err: Console) -> None:
    if not db.exists():
        err.print(f"[red]no catalog at {escape(str(db))}: run `detcat build` first[/red]")
        sys.exit(EXIT_NOT_FOUND)


@click.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, type=int)
def serve(db: Path, host: str, port: int) -> None:
    """Serve the catalog as a web site with a JSON API (read-only)."""
    import uvicorn

    from detcat.web.app import create_app, settle_gc

    err = Console(stderr=True)
    _require(db, err)
    err.print(f"detcat: serving {escape(str(db))} on http://{escape(host)}:{port}/ (Ctrl-C stops)")
    app = create_app(db)
    settle_gc()
    uvicorn.run(app, host=host, port=port, log_level="warning")


@click.command("export-site")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@db_option
@click.option("--workers", type=int, default=None, help="Worker processes (default: CPUs).")
@click.option(
    "--json/--no-json", "json_twins", default=True, show_default=True,
    help="Also write each page's JSON twin under api/.",
)  # fmt: skip
def export_site(directory: Path, db: Path, workers: int | None, json_twins: bool) -> None:
    """Write the whole site as static HTML (relative links, client-side search)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from detcat.web.export import ExportError
    from detcat.web.export import export_site as run

    err = Console(stderr=True)
    _require(db, err)
    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress("[progress.description]{task.description}", *columns, console=err) as bar:
        task = bar.add_task("export pages", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            report = run(db, directory, workers=workers, json_twins=json_twins, progress=advance)
        except ExportError as e:
            err.print(f"[red]{escape(str(e))}[/red]")
            sys.exit(EXIT_FAILED)
    Console().print(
        f"{report.pages} pages ({report.files} files, {report.bytes / 1e6:.1f} MB) written to "
        f"{escape(str(report.out))} in {report.seconds:.1f} s; open index.html"
    )
