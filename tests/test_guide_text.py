"""The prose of the authoring guide (data/guide.toml, guide_text.py) and the
ranking it explains: the numbers it states are the guide's own on the real
corpora, every template and setting is used, the first screen spans fields."""

from __future__ import annotations

import re
from collections import Counter
from operator import itemgetter
from pathlib import Path

import pytest

from detcat import guide, schemas, store
from detcat.guide import sections as guide_sections
from detcat.guide import text as guide_text
from detcat.sources import registry
from detcat.tables import load

TEXT = load(guide_text.GUIDE)["text"]
RANKING = load(guide_text.GUIDE)["ranking"]


@pytest.fixture(scope="module")
def t1219(corpus_db: Path) -> dict:
    return guide.technique_guide(store.connect(corpus_db), "T1219")


def _numbers_stated(g: dict) -> dict[str, list[str]]:
    """Section -> phrases with the numbers of ``g`` its long paragraph must hold,
    computed from the guide's rows (not from guide_text)."""
    top_field = g["fields"][0]
    top_op, top_op_rules = next(iter(top_field["operators"].items()))
    plain = [i for i in g["indicators"] if not i["selector"] and not i["specific"]]
    noisy = max(plain, key=lambda i: i["corpus_reach"] - i["rules"])
    specific = sum(i["specific"] for i in g["indicators"])
    return {
        "guide": [f"the {len(g['rules'])} rules tagged T1219",
                  f"Sigma {g['vendors']['sigma']}, Elastic {g['vendors']['elastic']}, "
                  f"Splunk {g['vendors']['splunk']} and Google SecOps {g['vendors']['chronicle']}"],
        "events": [f"{len(g['events'])} catalog events are tagged with this technique",
                   f"by {g['events'][0]['rules']} rules"],
        "fields": [f"The {g['field_count']} distinct fields", f"first {len(g['fields'])} are",
                   f"`{top_field['field']}` ({top_field['rules']} rules)",
                   f"`{top_op}` in {top_op_rules} rules"],
        "indicators": [f"{g['indicator_count']} distinct combinations",
                       f"{len(g['indicators'])} are listed",
                       f"by {noisy['rules']} rules here but {noisy['corpus_reach']} overall",
                       f"({specific} of the {len(g['indicators'])} rows)",
                       f"first {RANKING['screen']} rows hold at most {RANKING['per_field']}"],
        "exclusions": [f"{g['exclusion_count']} distinct here",
                       f"{len(g['exclusions'])} are listed"],
        "rules": [f"The {len(g['rules'])} rules"],
    }  # fmt: skip


def test_t1219_prose_states_the_guides_numbers(t1219: dict) -> None:
    about = guide_text.explain(t1219)
    for section, phrases in _numbers_stated(t1219).items():
        for phrase in phrases:
            assert phrase in about[section], (section, phrase, about[section])


def test_t1219_alias_example_names_real_vendor_spellings(t1219: dict) -> None:
    about = guide_text.explain(t1219)["guide"]
    row = next(f for f in t1219["fields"] if f["field"] == "process.executable")
    assert (row["aliases"]["sigma"][0], row["aliases"]["elastic"][0]) == (
        "Image", "process.executable")  # fmt: skip
    assert "Sigma's `Image`, Elastic's `process.executable`" in about
    assert "into the one row `process.executable`" in about


def test_t1219_short_form_names_the_same_numbers(t1219: dict) -> None:
    short = guide_text.explain(t1219, "short")
    g = t1219
    assert f"{len(g['rules'])} rules of T1219" in short["guide"]
    assert f"{len(g['events'])} catalog events" in short["events"]
    assert f"{g['field_count']} distinct fields" in short["fields"]
    assert f"{g['exclusion_count']} distinct exclusions" in short["exclusions"]
    assert all(len(text) < len(guide_text.explain(g)[s]) for s, text in short.items())


def test_t1219_first_screen_spans_fields(t1219: dict) -> None:
    first = t1219["indicators"][: RANKING["screen"]]
    per_field = Counter(i["field"] for i in first)
    assert max(per_field.values()) <= RANKING["per_field"] < len(first) / 2
    # still ranked by rules: every row held back ranks at or below the screen's last row
    rules = [i["rules"] for i in t1219["indicators"]]
    assert rules[: RANKING["screen"]] == sorted(rules[: RANKING["screen"]], reverse=True)
    assert [i["field"] for i in t1219["indicators"][:2]] == ["event.type", "host.os.type"]
    assert all(i["selector"] for i in t1219["indicators"][:2])


_A30 = [("a", "eq", str(i)) for i in range(30)]
_T20 = [(f, "eq", "x") for f in "abcdefghijklmnopqrst"]  # twenty fields fill the screen


@pytest.mark.parametrize(
    ("ranked", "complete", "expected"),
    [  # (field, op, value) keys in rank order -> screen order, with screen 20 / 4 per field
        ([("a", "eq", str(i)) for i in range(6)], True, [("a", "eq", str(i)) for i in range(6)]),
        (_A30 + [("b", "eq", "x")], True, _A30[:4] + [("b", "eq", "x")] + _A30[4:]),
        ([], True, []),
        # A prefix of the ranking: settled only once the screen is full.
        (_A30 + [("b", "eq", "x")], False, None),
        (_T20 + [("a", "eq", "y")], False, _T20 + [("a", "eq", "y")]),
        (
            _A30 + [(f, "eq", "x") for f in "bcdefghijklmnopq"] + [("r", "eq", "y")],
            False,
            _A30[:4] + [(f, "eq", "x") for f in "bcdefghijklmnopq"] + _A30[4:]
            + [("r", "eq", "y")],
        ),
    ],
)  # fmt: skip
def test_screen_first(ranked: list, complete: bool, expected: list | None) -> None:
    assert guide_sections.screen_first(ranked, itemgetter(0), complete) == expected


def test_t1219_vendors_in_page_order(t1219: dict) -> None:
    order = ["sigma", "elastic", "splunk", "chronicle"]  # Sigma first, as the seed lists them
    assert list(t1219["vendors"]) == order
    seen = list(dict.fromkeys(r["vendor"] for r in t1219["rules"]))
    assert seen == order
    for f in t1219["fields"]:
        assert list(f["aliases"]) == [v for v in order if v in f["aliases"]]
    assert all(e["vendors"] == [v for v in order if v in e["vendors"]] for e in t1219["events"])


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["splunk", "chronicle", "sigma", "elastic"], ["sigma", "elastic", "splunk", "chronicle"]),
        (["zeta", "chronicle", "acme"], ["chronicle", "acme", "zeta"]),  # unknown ones last
        ([], []),
    ],
)
def test_display_order(names: list[str], expected: list[str]) -> None:
    assert registry.display_order(names) == expected


def test_values_that_differ_in_case_are_one_indicator(t1219: dict) -> None:
    keys = [(i["field"], i["op"], str(i["value"]).casefold()) for i in t1219["indicators"]]
    assert len(keys) == len(set(keys))


# -- the data file ------------------------------------------------------------------


def test_every_section_has_every_form() -> None:
    assert set(TEXT) == set(guide_text.SECTIONS)
    for section, forms in TEXT.items():
        assert set(forms) == {"long", "short", "schema"}, section
        assert forms["long"] and forms["short"] and forms["schema"], section
        assert not guide_text.placeholders(forms["schema"]), f"{section}: schema has numbers"


def test_every_placeholder_is_a_number_and_every_number_is_used(t1219: dict) -> None:
    nums = guide_text.numbers(t1219)
    used = {p for forms in TEXT.values() for form in ("long", "short")
            for t in forms[form] for p in guide_text.placeholders(t)}  # fmt: skip
    assert used == set(nums)
    assert all(v is not None for v in nums.values()), "T1219 has every example"


def test_a_technique_without_exclusions_drops_their_sentences(t1219: dict) -> None:
    bare = {**t1219, "exclusions": [], "exclusion_count": 0, "fields": []}
    about = guide_text.explain(bare)
    assert "{" not in " ".join(about.values())
    assert "is excluded by" not in about["exclusions"]
    assert "collapse into" not in about["guide"]


def test_selector_fields_are_filtered_in_the_catalog(corpus_db: Path) -> None:
    conn = store.connect(corpus_db)
    for f in RANKING["selector_fields"]:
        assert conn.execute("SELECT 1 FROM predicates WHERE field = ? LIMIT 1", (f,)).fetchone(), f
    assert 0 < RANKING["per_field"] < RANKING["screen"]


def test_schema_descriptions_come_from_the_data_file() -> None:
    doc = schemas.TechniqueGuide.model_json_schema()
    assert doc["description"] == TEXT["guide"]["schema"]
    for section in ("events", "fields", "indicators", "exclusions", "rules"):
        assert doc["properties"][section]["description"] == TEXT[section]["schema"]
    assert re.search(r"noisy on its own", doc["$defs"]["Indicator"]["properties"]
                     ["corpus_reach"]["description"])  # fmt: skip
