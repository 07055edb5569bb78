"""``detcat serve`` and ``detcat export-site``: the catalog as a web site.

The CLI imports this module at start-up, so it imports nothing heavy: FastAPI,
uvicorn and Jinja2 are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import click

from detcat.cli.options import db_option, err, open_catalog, out


@click.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
def serve(db: Path, host: str, port: int) -> None:
    """Serve the catalog as a web site with a JSON API (read-only)."""
    import uvicorn

    from detcat.web.app import create_app, settle_gc

    app = create_app(db)  # refuses, with the reason, anything but a catalog
    err().print(f"detcat: serving {db} on http://{host}:{port}/ (Ctrl-C stops)", markup=False)
    settle_gc()
    uvicorn.run(app, host=host, port=port, log_level="warning")


@click.command("export-site")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@db_option
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: CPUs).")  # fmt: skip
@click.option(
    "--json/--no-json", "json_twins", default=False, show_default=True,
    help="Also write each page's JSON twin under api/ (the pages' data again).",
)  # fmt: skip
def export_site(directory: Path, db: Path, workers: int | None, json_twins: bool) -> None:
    """Write the whole site as static HTML (relative links; search runs in the
    browser with Pagefind when the folder is served over HTTP)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from detcat.web.export import export_site as run

    open_catalog(db).close()  # a missing or foreign catalog: one clear line
    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress("[progress.description]{task.description}", *columns, console=err()) as bar:
        task = bar.add_task("export pages", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = run(db, directory, workers=workers, json_twins=json_twins, progress=advance)
    out().print(
        f"{report.pages} pages ({report.files} files, {report.bytes / 1e6:.1f} MB) written to "
        f"{report.out} in {report.seconds:.1f} s; open index.html (search needs the folder "
        f"served over HTTP: python3 -m http.server -d {report.out})",
        markup=False,
    )


COMMANDS = [serve, export_site]
