"""The server over the hostile catalog: JSON twins equal the CLI, documented
shapes, security headers, escaping, no broken links, rebuilds picked up."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from pydantic import BaseModel, TypeAdapter
from web_helpers import (
    BROKEN_ID,
    HOSTILE_FIELD,
    HOSTILE_ID,
    PEER_ID,
    SCRIPT,
    hostile_markup,
    page_urls,
    write_sources,
)

from detcat import catalog, schemas
from detcat.cli import main
from detcat.web.app import create_app
from detcat.web.urls import Links

S = Links()


@pytest.fixture(scope="module")
def client(hostile_db: Path) -> Iterator[TestClient]:
    with TestClient(create_app(hostile_db)) as c:
        yield c


def cli_json(db: Path, *args: str) -> object:
    out = CliRunner().invoke(main, [*args, "--db", str(db), "--json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


@pytest.mark.parametrize(
    "api, cli",
    [
        ("/api/techniques/T1219", ["technique", "T1219"]),
        ("/api/techniques/t1219?limit=1", ["technique", "t1219", "--limit", "1"]),
        (f"/api/rules/sigma/{HOSTILE_ID}", ["rule", HOSTILE_ID, "--vendor", "sigma"]),
        (f"/api/rules/sigma/{BROKEN_ID}", ["rule", BROKEN_ID, "--vendor", "sigma"]),
        ("/api/search?q=anydesk", ["search", "anydesk"]),
        ("/api/search?q=Image%3Aanydesk", ["search", "Image:anydesk"]),
        ("/api/search?q=%3Cscript%3E", ["search", "<script>"]),
        ("/api/problems", ["problems"]),
        ("/api/clusters", ["clusters", "--limit", "0"]),
    ],
)
def test_json_twin_is_the_cli_json(
    client: TestClient, hostile_db: Path, api: str, cli: list[str]
) -> None:
    r = client.get(api)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == cli_json(hostile_db, *cli)


def test_every_html_page_names_its_json_twin(client: TestClient) -> None:
    for page in ("/", "/techniques/T1219", f"/rules/sigma/{PEER_ID}", "/problems", "/clusters"):
        urls = page_urls(client.get(page).text)
        twin = S.api(page)
        assert twin in urls and client.get(twin).status_code == 200


SHAPES: list[tuple[str, object]] = [
    ("/api/overview", schemas.Overview),
    ("/api/techniques/T1219", schemas.TechniqueGuide),
    (f"/api/rules/sigma/{HOSTILE_ID}", schemas.RuleDetail),
    (f"/api/rules/sigma/{BROKEN_ID}", schemas.RuleDetail),
    (S.api(S.field("process.executable")), schemas.FieldPage),
    (S.api(S.field("winlog.event_data." + HOSTILE_FIELD)), schemas.FieldPage),
    (S.api(S.event("sysmon:1")), schemas.EventPage),
    (S.api(S.indicator("process.command_line", "contains", SCRIPT)), schemas.IndicatorPage),
    ("/api/search?q=anydesk", schemas.SearchResult),
    ("/api/problems", list[schemas.ProblemRow]),
    ("/api/clusters", schemas.Clusters),
    ("/api/coverage?events=sysmon:1", schemas.Coverage),
    ("/api/layer?events=sysmon:1&score=vendors", schemas.NavigatorLayer),
]


@pytest.mark.parametrize("url, shape", SHAPES)
def test_responses_match_the_documented_schema(
    client: TestClient, url: str, shape: type[BaseModel]
) -> None:
    r = client.get(url)
    assert r.status_code == 200, url
    TypeAdapter(shape).validate_python(r.json())  # unknown keys are errors


def test_openapi_documents_every_json_twin_and_no_html(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert all(p.startswith("/api/") for p in spec["paths"])
    assert set(spec["paths"]) == {
        "/api/overview", "/api/techniques/{tid}", "/api/rules/{vendor}/{rule_id}",
        "/api/fields/{name}", "/api/events/{event_id}", "/api/indicators", "/api/search",
        "/api/problems", "/api/coverage", "/api/layer", "/api/clusters",
    }  # fmt: skip
    ok = spec["paths"]["/api/techniques/{tid}"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TechniqueGuide"
    }
    assert {"TechniqueGuide", "RuleDetail", "Overview"} <= set(spec["components"]["schemas"])
    assert client.get("/docs").status_code == 404  # the Swagger UI would load a CDN


@pytest.mark.parametrize(
    "url", ["/", "/techniques/T1219", "/api/techniques/T1219", "/static/site.js", "/nope"]
)
def test_security_headers(client: TestClient, url: str) -> None:
    h = client.get(url).headers
    csp = dict(part.strip().split(" ", 1) for part in h["content-security-policy"].split(";"))
    assert csp["default-src"] == "'none'" and csp["script-src"] == "'self'"
    assert "unsafe-inline" not in h["content-security-policy"]
    assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
    assert h["server-timing"].startswith("app;dur=")


@pytest.mark.parametrize(
    "url",
    [
        "/techniques/T9999",
        "/rules/sigma/no-such-rule",
        "/fields/no.such.field",
        "/events/nope:1",
        "/indicators?field=x&op=eq&value=y",
        "/techniques/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    ],
)
def test_unknown_things_are_404_in_html_and_json(client: TestClient, url: str) -> None:
    page = client.get(url)
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert not hostile_markup(page.text)
    api = client.get("/api" + url)
    assert api.status_code == 404 and "detail" in api.json()


def crawl(client: TestClient, start: str = "/") -> dict[str, str]:
    """Every page reachable from ``start`` on this server, by URL."""
    seen: dict[str, str] = {}
    todo = [start]
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        r = client.get(url)
        assert r.status_code == 200, f"{url}: {r.status_code}"
        seen[url] = r.text
        if "text/html" not in r.headers["content-type"]:
            continue
        for link in page_urls(r.text):
            target = urljoin(url, link)
            if not urlsplit(target).scheme and target.split("#")[0] not in seen:
                todo.append(target.split("#")[0])
    return seen


def test_hostile_catalog_has_no_broken_links_and_stays_escaped(client: TestClient) -> None:
    pages = crawl(client)
    html = {u: t for u, t in pages.items() if t.lstrip().startswith("<!doctype html>")}
    # Every kind of page was reached, hostile rule and hostile field included.
    assert {"/", "/problems", "/techniques/T1219", f"/rules/sigma/{HOSTILE_ID}",
            S.field("winlog.event_data." + HOSTILE_FIELD), S.event("sysmon:1"),
            S.indicator("process.command_line", "contains", SCRIPT)} <= set(html)  # fmt: skip
    assert {u: hostile_markup(t) for u, t in html.items() if hostile_markup(t)} == {}
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html[f"/rules/sigma/{HOSTILE_ID}"]


def test_reflected_search_query_is_escaped(client: TestClient) -> None:
    r = client.get("/search", params={"q": f'{SCRIPT} "><img src=x onerror=alert(1)>'})
    assert r.status_code == 200 and not hostile_markup(r.text)
    assert 'value="&lt;script&gt;window.__pwned=1&lt;/script&gt; &#34;&gt;&lt;img' in r.text


def test_rebuilt_catalog_is_served_without_restart(tmp_path: Path) -> None:
    sources = write_sources(tmp_path / "sources")
    db = tmp_path / "c.sqlite"
    catalog.build(sources, db, workers=1, vendors=("sigma",))
    with TestClient(create_app(db)) as c:
        assert c.get("/api/overview").json()["rules"] == 3
        assert "AnyDesk peer rule" in c.get("/techniques/T1219").text  # now cached
        (sources / "sigma" / "rules" / "peer.yml").unlink()
        catalog.build(sources, db, workers=1, vendors=("sigma",))
        assert c.get("/api/overview").json()["rules"] == 2
        assert "AnyDesk peer rule" not in c.get("/techniques/T1219").text


def test_missing_catalog_fails_at_start(tmp_path: Path) -> None:
    from detcat.store import MissingCatalog

    with pytest.raises(MissingCatalog):
        create_app(tmp_path / "absent.sqlite")


def test_cache_can_be_disabled(hostile_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "copy.sqlite"
    shutil.copyfile(hostile_db, db)
    with TestClient(create_app(db, cache_bytes=0)) as c:
        first, second = c.get("/techniques/T1219").text, c.get("/techniques/T1219").text
    assert first == second and "Top indicator values" in first


def test_page_cache_keeps_within_its_byte_budget(hostile_db: Path) -> None:
    from detcat.web.app import Catalog

    cat = Catalog(hostile_db, cache_bytes=10)
    made: list[str] = []

    def make(name: str) -> bytes:
        made.append(name)
        return name.encode() * 4  # 8 bytes

    for name in ("ab", "ab", "cd", "ab"):
        assert cat.cached((name,), lambda conn, n=name: make(n)) == name.encode() * 4
    assert made == ["ab", "cd", "ab"]  # "cd" pushed "ab" out of the 10-byte budget


# -- no request can make a 5xx; every error page carries the security headers --------

HOSTILE_VALUES = ["%00", "anydesk%00", "%ED%A0%80", "%FF", "%22", "%5C", "NEAR(a%20b)", "a*",
                  "*", "%5Ea", "x:%25", "process.name:", "process.name:%22", "-1", "0",
                  "99999999999999999999", "1e999", "..%2F..%2Fetc", "%0A", "x" * 4000]  # fmt: skip
HOSTILE_URLS = ["/search?q={}", "/api/search?q={}", "/search?q=a&limit={}",
                "/techniques/{}", "/api/techniques/T1219?limit={}", "/fields/{}",
                "/api/fields/{}", "/rules/{}/{}", "/events/{}", "/api/events/{}",
                "/indicators?op={}&value={}&field={}",
                "/api/indicators?op=eq&value={}", "/coverage?events={}&vendor={}&collection={}",
                "/api/coverage?events={}&vendor={}",
                "/api/layer?events={}&vendor={}&score={}"]  # fmt: skip


@pytest.mark.parametrize("template", HOSTILE_URLS)
def test_no_query_string_makes_a_server_error(client: TestClient, template: str) -> None:
    for value in HOSTILE_VALUES:
        r = client.get(template.replace("{}", value))
        assert r.status_code < 500, (template, value, r.text[:200])
        assert r.headers["x-frame-options"] == "DENY", (template, value)


@pytest.mark.parametrize(
    ("url", "status"), [("/search?q=process.name:", 400), ("/api/search?q=Image:", 400)]
)
def test_a_search_term_without_value_is_a_400_that_says_why(
    client: TestClient, url: str, status: int
) -> None:
    r = client.get(url)
    assert r.status_code == status and "has no value" in r.text
    assert r.headers["content-security-policy"].startswith("default-src 'none'")


@pytest.mark.parametrize("url", ["/techniques/T1219", "/api/techniques/T1219"])
def test_an_internal_error_page_carries_the_security_headers(
    hostile_db: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    from detcat.web import pages

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(pages, "technique", broken)
    with TestClient(create_app(hostile_db, cache_bytes=0), raise_server_exceptions=False) as c:
        r = c.get(url)
    assert r.status_code == 500 and "a bug" not in r.text
    assert (
        r.headers["x-frame-options"] == "DENY"
        and "default-src 'none'" in r.headers["content-security-policy"]
    )


def test_a_shortened_section_links_to_all_rows(client: TestClient) -> None:
    full = client.get("/api/techniques/T1219?limit=10000").json()
    page = client.get("/techniques/T1219?limit=1").text
    links = set(re.findall(r'<a class="show-all" href="([^"]+)">show all (\d+)</a>', page))
    assert links and {int(n) for _, n in links} <= {
        full["field_count"],
        full["indicator_count"],
        full["exclusion_count"],
    }
    (href,) = {h for h, _ in links}
    shown = client.get(href.replace("&amp;", "&")).text
    assert "show-all" not in shown


def test_rule_page_leaves_match_programs_to_the_json(corpus_db: Path) -> None:
    """The programs ``detcat match`` computes SPL's eval'd values and conditions with
    are in the rule's JSON, not in the page's stage parameters (the query says them)."""
    rule_id = "9c53c446-757e-11ec-871d-acde48001122"  # Potentially malicious code on commandline
    with TestClient(create_app(corpus_db)) as c:
        data = c.get(f"/api/rules/splunk/{rule_id}").json()
        html = c.get(f"/rules/splunk/{rule_id}").text
    params = [s["params"] for s in data["stages"]]
    assert any(p.get("conditions") for p in params)
    shown = re.findall(r"parameters: <code>(.*?)</code>", html)
    assert shown and not any("conditions" in p or "computed" in p for p in shown)
