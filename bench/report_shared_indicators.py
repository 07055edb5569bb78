"""How much of the catalog's indicators do vendors share, and where one check is spelled twice.

    python bench/report_shared_indicators.py CATALOG.sqlite [--top N] [--json]

Reads the events-stage predicates of a built catalog (``detcat build``) and prints:

1. indicator keys ``(canonical field, op, case-folded value)`` and how many of
   them are shared by two or more vendors (the share corpus reach rests on),
   next to the share of distinct values shared when field and op are ignored;
2. values shared by two or more vendors under *different* keys, broken down by
   the pair of keys: ``(sigma winlog.event_data.TargetImage ends_with,
   elastic Target.process.executable ends_with)`` with how many values the two
   keys share that neither vendor also writes under the other's key. A pair at
   the top of this list is either two meanings that happen to share values
   (logon type 3 and destination port 3) or one check spelled twice (a mapping
   to fix in normalize/).

Run it on a catalog built before and after a mapping change to compare.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections import Counter, defaultdict
from itertools import combinations
from typing import Any

Key = tuple[str, str]  # (canonical field, op)

QUERY = """
SELECT DISTINCT r.vendor, COALESCE(p.field, p.field_raw, ''), p.op, p.value_key
FROM predicates p JOIN rules r ON r.pk = p.rule_pk
WHERE p.stage_role = 'events' AND p.op != 'field_ref'
"""


def load(conn: sqlite3.Connection) -> dict[str, dict[str, set[Key]]]:
    """value -> vendor -> the (field, op) keys the vendor tests it with."""
    by_value: dict[str, dict[str, set[Key]]] = defaultdict(lambda: defaultdict(set))
    for vendor, field, op, value in conn.execute(QUERY):
        by_value[value][vendor].add((field, op))
    return by_value


def shared_shares(by_value: dict[str, dict[str, set[Key]]]) -> dict[str, Any]:
    """Distinct keys and values, and how many of each two or more vendors use."""
    key_vendors: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for value, vendors in by_value.items():
        for vendor, keys in vendors.items():
            for field, op in keys:
                key_vendors[(field, op, value)].add(vendor)
    keys_shared = sum(len(v) >= 2 for v in key_vendors.values())
    values_shared = sum(len(v) >= 2 for v in by_value.values())
    return {
        "keys": len(key_vendors),
        "keys_shared": keys_shared,
        "key_share": keys_shared / max(len(key_vendors), 1),
        "values": len(by_value),
        "values_shared": values_shared,
        "value_share": values_shared / max(len(by_value), 1),
    }


def split_pairs(
    by_value: dict[str, dict[str, set[Key]]],
) -> dict[tuple[str, str, str, str], list[str]]:
    """(vendor A, key A, vendor B, key B) -> values A tests only under key A and B
    only under key B (neither vendor also uses the other's key for the value)."""
    out: dict[tuple[str, str, str, str], list[str]] = defaultdict(list)
    for value, vendors in by_value.items():
        if len(vendors) < 2:
            continue
        for (va, ka), (vb, kb) in combinations(sorted(vendors.items()), 2):
            for a in ka - kb:
                for b in kb - ka:
                    out[(va, _spell(a), vb, _spell(b))].append(value)
    return out


def _spell(key: Key) -> str:
    return f"{key[0]} {key[1]}"


def report(conn: sqlite3.Connection, top: int) -> dict[str, Any]:
    by_value = load(conn)
    pairs = split_pairs(by_value)
    ranked = sorted(pairs.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:top]
    by_field: Counter[str] = Counter()
    for (_va, ka, _vb, kb), values in pairs.items():
        by_field[ka.split(" ")[0]] += len(values)
        by_field[kb.split(" ")[0]] += len(values)
    return {
        "shares": shared_shares(by_value),
        "split_pairs": [
            {"a": f"{va} {ka}", "b": f"{vb} {kb}", "values": len(vs), "examples": sorted(vs)[:4]}
            for (va, ka, vb, kb), vs in ranked
        ],
        "split_by_field": by_field.most_common(top),
    }


def print_text(data: dict[str, Any]) -> None:
    s = data["shares"]
    print(
        f"indicator keys shared by >=2 vendors: {s['keys_shared']} of {s['keys']}"
        f" ({s['key_share']:.1%})"
    )
    print(
        f"values shared by >=2 vendors (field and op ignored): {s['values_shared']} of"
        f" {s['values']} ({s['value_share']:.1%})"
    )
    print("\nvalues shared under different keys, by key pair:")
    for row in data["split_pairs"]:
        examples = ", ".join(repr(v)[:40] for v in row["examples"])
        print(f"{row['values']:6d}  {row['a']}  <>  {row['b']}   e.g. {examples}")
    print("\nby field (values split, summed over pairs):")
    for field, n in data["split_by_field"]:
        print(f"{n:6d}  {field}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("catalog")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    conn = sqlite3.connect(f"file:{args.catalog}?mode=ro", uri=True)
    data = report(conn, args.top)
    if args.json:
        json.dump(data, sys.stdout, indent=1)
    else:
        print_text(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
