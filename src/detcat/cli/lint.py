"""``detcat lint``: check draft rules against the catalog (registered by cli/__init__).

Exit codes: 0 no finding at error severity; 1 some finding at error severity (or
a file that cannot be read as a rule at all); 2 usage error; 3 no catalog.
Output: compiler-style text, JSON, or SARIF 2.1.0 for code-scanning tools.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from detcat.cli.options import (
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    RegistryChoice,
    db_option,
    dump_json,
)
from detcat.drafts import formats

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://github.com/detcat/detcat"


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--language",
    type=RegistryChoice(formats),
    help="Read every file as this format (kql/eql/esql/spl: a bare query). "
    "Default: from the file (.toml Elastic, .yml Sigma or Splunk, .yaral YARA-L).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "sarif"]), default="text",
    show_default=True, help="Output format.",
)  # fmt: skip
@click.option(
    "--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
    help="Override a setting of data/lint.toml, e.g. --set noisy.reach=30.",
)  # fmt: skip
@db_option
def lint(
    files: tuple[Path, ...], language: str | None, fmt: str, overrides: tuple[str, ...], db: Path
) -> None:
    """Check draft rules against the catalog: parse errors, unknown fields, noisy
    indicators, missing common exclusions, similar rules, Opaque parts, a
    technique for an untagged draft."""
    from detcat import lint as lint_mod
    from detcat.drafts import DraftError
    from detcat.store import MissingCatalog, connect

    cfg = _settings(overrides)
    try:
        conn = connect(db)
    except MissingCatalog as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_NOT_FOUND)
    _ensure_similar(db)
    results, failed = [], False
    for path in files:
        try:
            results.append(lint_mod.lint_file(conn, path, language, cfg))
        except DraftError as e:
            click.echo(f"{path}: error: {e.message}", err=True)
            failed = True
    _emit(results, fmt)
    errors = any(f.severity == "error" for r in results for f in r.findings)
    sys.exit(EXIT_FAILED if errors or failed else 0)


def _settings(overrides: tuple[str, ...]) -> dict[str, Any]:
    from detcat.lint import LintSettingError, settings_with

    pairs = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not SECTION.KEY=VALUE", param_hint="--set")
        pairs[key.strip()] = value.strip()
    try:
        return settings_with(pairs)
    except LintSettingError as e:
        raise click.BadParameter(e.message, param_hint="--set") from None


def _ensure_similar(db: Path) -> None:
    """Similarity tables are computed once per catalog; a read-only catalog
    without them only loses the similar-rule check (said on stderr)."""
    from detcat import similar, store

    if why := store.derive_if_writable(similar.ensure, db):
        click.echo(f"warning: no similar-rule check: {why}", err=True)


def _emit(results: list[Any], fmt: str) -> None:
    if fmt == "json":
        click.echo(dump_json([r.to_json() for r in results]))
    elif fmt == "sarif":
        click.echo(dump_json(sarif(results)))
    else:
        for line in text_lines(results):
            click.echo(line)


def text_lines(results: list[Any]) -> list[str]:
    """``path:line:col: severity: message [code]`` lines, then a count."""
    out = []
    for r in results:
        for f in r.findings:
            out.append(f"{r.path}:{f.line}:{f.column}: {f.severity}: {f.message} [{f.code}]")
            if f.suggestion:
                out.append(f"    suggestion: {f.suggestion}")
            for ref in f.related[:3]:
                if "vendor" in ref:
                    out.append(f"    see {ref['vendor']} {ref['id']}: {ref.get('title', '')}")
    counts = {s: sum(f.severity == s for r in results for f in r.findings)
              for s in ("error", "warning", "note")}  # fmt: skip
    out.append(", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items()))
    return out


def sarif(results: list[Any]) -> dict[str, Any]:
    """One SARIF 2.1.0 log with one run: a reportingDescriptor per finding code,
    a result per finding (level = severity, region = line/column)."""
    from importlib.metadata import version

    from detcat.lint import default_settings

    describe = default_settings()["describe"]
    codes = list(describe)
    rules = [
        {
            "id": code,
            "name": "".join(w.capitalize() for w in code.split("-")),
            "shortDescription": {"text": describe[code]},
            "defaultConfiguration": {"level": default_settings()["severity"][code]},
        }
        for code in codes
    ]
    out = [_sarif_result(r.path, f, codes) for r in results for f in r.findings]
    driver = {"name": "detcat", "version": version("detcat"), "informationUri": INFO_URI,
              "rules": rules}  # fmt: skip
    run = {"tool": {"driver": driver}, "columnKind": "unicodeCodePoints", "results": out}
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def _uri(path: str) -> str:
    """A relative path stays relative (code scanning resolves it against the
    repository root); an absolute one becomes a file: URI."""
    p = Path(path)
    return p.as_uri() if p.is_absolute() else quote(p.as_posix())


def _sarif_result(path: str, f: Any, codes: list[str]) -> dict[str, Any]:
    extra = (("field", f.field), ("value", f.value), ("suggestion", f.suggestion),
             ("related", f.related))  # fmt: skip
    props = {k: v for k, v in extra if v}
    result: dict[str, Any] = {
        "ruleId": f.code,
        "ruleIndex": codes.index(f.code),
        "level": f.severity,
        "message": {"text": f.message + (f" Suggestion: {f.suggestion}" if f.suggestion else "")},
        "locations": [{
            "physicalLocation": {
                "artifactLocation": {"uri": _uri(path)},
                "region": {"startLine": f.line, "startColumn": f.column},
            }
        }],
    }  # fmt: skip
    if props:
        result["properties"] = props
    return result


COMMANDS = [lint]
