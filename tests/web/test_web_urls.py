"""Links, file names and the template helpers, as tables."""

from __future__ import annotations

import hashlib

import pytest

from detcat.attack import paragraphs
from detcat.web.static_search import field_id, text_words, value_words
from detcat.web.templating import heat, http_url
from detcat.web.urls import Links, event_page, field_page, indicator_key, rule_page, slug

SERVER = Links()
TOP = Links(static=True)  # a page at the export root
DEEP = Links(static=True, depth=2)  # two folders down
KEY = indicator_key("f", "eq", "abc")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("T1219.002", "T1219.002"),
        ("22c45af6-f590-4d44-bab3-b5b2d2a2b6d9", "22c45af6-f590-4d44-bab3-b5b2d2a2b6d9"),
        ("process.executable", "process.executable"),
        ("sigma:Details", "sigma_Details-#"),
        ("../../etc/passwd", "_._.._etc_passwd-#"),
        (".hidden", "_hidden-#"),
        ("", "-#"),
    ],
)
def test_slug_is_a_safe_file_name(text: str, expected: str) -> None:
    """Safe ids are kept; others are sanitized and get a hash of the original (#)."""
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    assert slug(text) == expected.replace("#", digest)


def test_slugs_of_distinct_ids_differ() -> None:
    assert slug("a:b") != slug("a_b") != slug("a/b")


@pytest.mark.parametrize(
    "links, kind, args, href",
    [
        (SERVER, "home", (), "/"),
        (SERVER, "technique", ("T1219",), "/techniques/T1219"),
        (SERVER, "rule", ("sigma", "a/b c"), "/rules/sigma/a%2Fb%20c"),
        (SERVER, "field", ("sigma:Details",), "/fields/sigma%3ADetails"),
        (SERVER, "event", ("sysmon:1",), "/events/sysmon%3A1"),
        (SERVER, "search", ("Image:any desk",), "/search?q=Image%3Aany+desk"),
        (SERVER, "indicator", ("f", "eq", "a&b"), "/indicators?field=f&op=eq&value=a%26b"),
        (SERVER, "indicator", (None, "keyword", 5), "/indicators?field=&op=keyword&value=5"),
        (SERVER, "problems", (), "/problems"),
        (TOP, "home", (), "index.html"),
        (TOP, "technique", ("T1219",), "techniques/T1219.html"),
        (TOP, "search", ("anydesk",), "search.html?q=anydesk"),
        (DEEP, "home", (), "../../index.html"),
        (DEEP, "rule", ("sigma", "r1"), f"../../{rule_page('sigma', 'r1')}#sigma:r1"),
        (DEEP, "event", ("sysmon:1",), f"../../{event_page('sysmon:1')}#{slug('sysmon:1')}"),
        (DEEP, "field", ("process.name",), f"../../{field_page('process.name')}#process.name"),
        (DEEP, "indicator", ("f", "eq", "ABC"), f"../../indicators/{KEY[:2]}.html#i{KEY}"),
        (DEEP, "problems", (), "../../problems.html"),
    ],
)  # fmt: skip
def test_links(links: Links, kind: str, args: tuple[object, ...], href: str) -> None:
    assert getattr(links, kind)(*args) == href


@pytest.mark.parametrize(
    "links, page, api",
    [
        (SERVER, "/", "/api/overview"),
        (SERVER, "/techniques/T1219", "/api/techniques/T1219"),
        (SERVER, "/search?q=x", "/api/search?q=x"),
        (TOP, "index.html", "api/overview.json"),
        (DEEP, "../../techniques/T1.html", "../../api/techniques/T1.json"),
    ],
)
def test_every_page_has_a_json_twin(links: Links, page: str, api: str) -> None:
    assert links.api(page) == api


@pytest.mark.parametrize(
    "links, kind, key, twin",
    [
        (DEEP, "rule", ("sigma", "r1"), "../../api/rules/sigma/r1.json"),
        (DEEP, "field", ("sigma:Details",), f"../../api/fields/{slug('sigma:Details')}.json"),
        (TOP, "event", ("sysmon:1",), f"api/events/{slug('sysmon:1')}.json"),
        (SERVER, "rule", ("sigma", "a/b"), "/api/rules/sigma/a%2Fb"),
        (SERVER, "field", ("process.name",), "/api/fields/process.name"),
        (SERVER, "event", ("sysmon:1",), "/api/events/sysmon%3A1"),
    ],
)  # fmt: skip
def test_rules_fields_and_events_have_a_twin_each(
    links: Links, kind: str, key: tuple[str, ...], twin: str
) -> None:
    """A static page holds several of them: each has a twin of its own."""
    assert links.twin(kind, *key) == twin


def test_indicator_identity_ignores_case() -> None:
    assert indicator_key("f", "eq", "AnyDesk.EXE") == indicator_key("f", "eq", "anydesk.exe")
    assert indicator_key(None, "keyword", "x") != indicator_key("x", "keyword", "x")


@pytest.mark.parametrize(
    "url, link",
    [
        ("https://github.com/SigmaHQ/sigma", True),
        ("http://example.com/a?b=1", True),
        ("  https://example.com/padded  ", True),
        ("javascript:alert(1)", False),
        ("JaVaScRiPt:alert(1)", False),
        (" javascript:alert(1)", False),
        ("java\tscript:alert(1)", False),
        ("data:text/html,<script>alert(1)</script>", False),
        ("vbscript:msgbox(1)", False),
        ("//evil.example/x", False),
        ("https:javascript:alert(1)", False),
        ("/relative/path", False),
        ("http://[::1", False),
        ("", False),
        (None, False),
    ],
)
def test_only_http_urls_become_links(url: str | None, link: bool) -> None:
    assert (http_url(url) is not None) is link


@pytest.mark.parametrize(
    "text, expected",
    [
        ("One.\n\nTwo (Citation: Someone 2020).", ["One.", "Two."]),
        ("See [the docs](https://x.example) now", ["See the docs now"]),
        ("Run <code>net use</code>.(Citation: X)", ["Run net use."]),
        ("", []),
        (None, []),
    ],
)
def test_paragraphs(text: str | None, expected: list[str]) -> None:
    assert paragraphs(text) == expected


@pytest.mark.parametrize("n, level", [(0, 0), (1, 1), (2, 1), (3, 2), (10, 3), (11, 4), (424, 7)])
def test_heat_buckets(n: int, level: int) -> None:
    assert heat(n) == level


@pytest.mark.parametrize(
    "value, expected",
    [
        ("C:\\Program Files\\AnyDesk.exe", ["c", "program", "files", "anydesk.exe"]),
        ("-enc  /c whoami", ["-enc", "c", "whoami"]),
        ("Jaśniewicz_ü$x@y", ["jaśniewicz_ü$x@y"]),
        ('"><script>', ["script"]),
        ("", []),
    ],
)
def test_static_search_value_words(value: str, expected: list[str]) -> None:
    """The words a field:value token is made of (site.js splits what is typed alike)."""
    assert value_words(value) == expected


@pytest.mark.parametrize(
    "n, expected",
    [
        (0, "a"),
        (25, "z"),
        (26, "a.a"),
        (27, "a.b"),
        (26 + 26 * 26 - 1, "z.z"),
        (26 + 26 * 26, "a.a.a"),
    ],
)
def test_static_search_field_ids(n: int, expected: str) -> None:
    """Field ids in search tokens: single letters joined by dots (Pagefind indexes no
    one-letter part of a word, so an id is never a plain word), shortest first."""
    assert field_id(n) == expected


def test_static_search_field_ids_are_distinct() -> None:
    ids = [field_id(n) for n in range(20_000)]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("used to gain remote access.", ["used", "to", "gain", "remote", "access"]),
        ("Runs QuickAssist.exe ... or -enc", ["Runs", "QuickAssist.exe", "or", "-enc"]),
        ("", []),
        (None, []),
    ],
)
def test_static_search_text_words(text: str | None, expected: list[str]) -> None:
    """Plain words of titles and descriptions: sentence dots are not part of a word."""
    assert text_words(text) == expected
