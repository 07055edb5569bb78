"""A backtest of normalized events on object storage (``s3://``) gives what the
same folder gives locally: against moto's S3 server on localhost.

DuckDB's httpfs extension is downloaded on first use, which this machine (and CI)
cannot do, so the test reads S3 the other way ``backtest.duckdb_engine`` knows:
an fsspec filesystem (s3fs). moto's server, s3fs and its pinned botocore are not
light enough to be test dependencies: without them the test is skipped (install
them with ``pip install 'moto[server]' s3fs`` to run it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detcat.backtest import backtest, duckdb_engine
from detcat.backtest.parquet import normalize_files
from detcat.sqlgen import compile_rules
from detcat.sqlgen.rules import wanted_columns
from tests.sqlgen.cases import EVENTS
from tests.sqlgen.test_equality import fixture_rules

BUCKET = "history"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch):
    """A moto S3 server; the AWS_* variables point boto and s3fs at it."""
    moto_server = pytest.importorskip("moto.server", reason="needs moto[server] (no test extra)")
    pytest.importorskip("s3fs", reason="needs s3fs (not a test extra)")
    boto3 = pytest.importorskip("boto3")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    # httpfs would go to the real AWS (it reads no AWS_ENDPOINT_URL): use fsspec.
    monkeypatch.setattr(duckdb_engine, "httpfs", lambda con: False)
    import fsspec

    fsspec.config.conf.pop("s3", None)
    fsspec.filesystem("s3").clear_instance_cache()
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=BUCKET)
    yield client
    server.stop()


def test_backtest_reads_normalized_events_on_s3(s3, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(d) + "\n" for d in EVENTS.values()), encoding="utf-8")
    plans = fixture_rules()
    columns, nonnull = wanted_columns(compile_rules(plans))
    local = tmp_path / "normalized"
    normalize_files([events], local, columns, nonnull, lambda bad: None)
    for path in local.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), BUCKET, "logs/" + path.relative_to(local).as_posix())

    here = backtest([str(local)], plans, {}, "duckdb")
    there = backtest([f"s3://{BUCKET}/logs/"], plans, {}, "duckdb")

    assert there.events == here.events == len(EVENTS)
    assert there.hits_by_rule() == here.hits_by_rule()
    assert sum(here.hits_by_rule().values()) > len(plans) // 2


def test_unreadable_scheme_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(duckdb_engine, "httpfs", lambda con: False)
    with pytest.raises(duckdb_engine.StorageMissing, match="no fsspec filesystem reads nope://"):
        duckdb_engine.DuckDBSource("nope://bucket/history")
