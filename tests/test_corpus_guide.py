"""The foundation's acceptance on the real corpora: Sigma coverage and the
T1219 authoring guide computed from SigmaHQ."""

from __future__ import annotations

from pathlib import Path

from detcat import guide, store
from detcat.model import exclusions
from detcat.normalize import normalize_rule
from detcat.sources import sigma

DNS_RULE = "rules/windows/dns_query/dns_query_win_remote_access_software_domains_non_browsers.yml"


def test_sigma_coverage(corpus_db: Path) -> None:
    s = guide.stats(store.connect(corpus_db))["vendors"]["sigma"]
    assert s["rules"] == 3780
    assert s["fully_parsed"] / s["with_query"] >= 0.995


def test_t1219_sigma_rules_and_subtechniques(corpus_db: Path) -> None:
    g = guide.technique_guide(store.connect(corpus_db), "T1219", limit=1000)
    sigma_rules = [r for r in g["rules"] if r["vendor"] == "sigma"]
    assert g["vendors"]["sigma"] == len(sigma_rules) == 52
    tagged = [t for r in sigma_rules for t in r["techniques"]]
    assert (tagged.count("T1219.002"), tagged.count("T1219")) == (46, 6)
    assert g["technique"]["name"] == "Remote Access Tools"
    assert "T1219.002" in {s["id"] for s in g["technique"]["subtechniques"]}


def test_t1219_fields_have_operator_histograms(corpus_db: Path) -> None:
    g = guide.technique_guide(store.connect(corpus_db), "T1219")
    top = {f["field"]: f for f in g["fields"][:20]}
    for raw in ("Image", "CommandLine", "EventID"):
        row = next(f for f in top.values() if raw in f["aliases"].get("sigma", []))
        assert row["operators"] and sum(row["operators"].values()) >= row["rules"] > 0
        assert len(row["samples"]) <= 5


def test_t1219_anydesk_indicator_has_corpus_reach(corpus_db: Path) -> None:
    conn = store.connect(corpus_db)
    g = guide.technique_guide(conn, "T1219", limit=1000)
    anydesk = [
        i
        for i in g["indicators"]
        if i["op"] == "ends_with" and str(i["value"]).lower() == "\\anydesk.exe"
    ]
    assert anydesk, "no ends_with \\anydesk.exe indicator"
    row = anydesk[0]
    assert row["corpus_reach"] >= row["rules"] >= 1
    assert row["corpus_reach"] == guide.corpus_reach(
        conn, row["field"], "ends_with", "\\anydesk.exe"
    )


def test_t1219_exclusions_include_the_dns_rule_browser_filters(
    corpus_db: Path, corpora: Path
) -> None:
    rule = sigma.read_file(corpora / "sigma" / DNS_RULE, corpora / "sigma")
    normalize_rule(rule)
    expected = {  # as the rule wrote them: implied restatements are not listed
        (p.field, str(p.op), str(p.value).casefold())
        for p in exclusions(rule.stages[0].expr)
        if p.kind != "implied"
    }
    g = guide.technique_guide(store.connect(corpus_db), "T1219", limit=100_000)
    listed = {
        (e["field"], e["op"], str(e["value"]).casefold())
        for e in g["exclusions"]
        if rule.id in e["rule_ids"]
    }
    assert expected and expected <= listed
    chrome = "c:\\program files\\google\\chrome\\application\\chrome.exe"
    assert any(v == chrome for _, _, v in listed)
