"""The web catalog: HTML pages and their JSON twins over the SQLite catalog,
served by ``detcat serve`` or written as a static site by ``detcat export-site``.

Importing this package does nothing: FastAPI, uvicorn and Jinja2 are imported by
the modules that need them, which the CLI imports only inside its commands.
"""
