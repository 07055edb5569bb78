"""The long fuzzing run of ``detcat match``'s event reader (the test suite runs a
few hundred inputs through Hypothesis; this runs as many as asked).

    python bench/fuzz_match_input.py [SOURCES_DIR] --examples 100000 [--seed 1]

Inputs are SigmaHQ's regression events laid out as JSON lines, pretty-printed
documents or arrays, then mutated (bytes deleted, inserted, duplicated, swapped,
truncated; deep nesting, long numbers, invalid UTF-8, stray brackets). The
property: ``read_events`` yields canonical events and reports every other document
as a bad event; nothing but ``EventFileError`` for an empty file ever escapes.
Prints inputs tried, documents and bad events seen, and each crash (type, place,
shortest input), exiting 1 when there was one.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

from detcat.match.reading import BadEvent, EventFileError, read_documents, read_events

NOISE = [b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"\n", b"\r\n", b"\xff", b"\xc3",
         b"\xef\xbb\xbf", b"null", b"1e9999", b"9" * 5000, b"[" * 2000, b'{"a":' * 300,
         b"NaN", b"\x00", b" " * 100]  # fmt: skip


def corpus(sources: Path) -> list[bytes]:
    """Event files in every layout, from the regression events."""
    files = sorted((sources / "sigma" / "regression_data").rglob("*.json"))
    docs = [doc for f in files for _, doc in read_documents(f)]
    out = []
    for i in range(0, len(docs), 3):
        group = docs[i : i + 3]
        out.append("".join(json.dumps(d) + "\n" for d in group).encode())
        out.append("\n".join(json.dumps(d, indent=2) for d in group).encode())
        out.append(json.dumps(group, indent=1).encode())
    return out


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        if not buf:
            buf += rng.choice(NOISE)
            continue
        at = rng.randrange(len(buf))
        match rng.randrange(6):
            case 0:
                del buf[at : at + rng.randint(1, 40)]
            case 1:
                buf[at:at] = rng.choice(NOISE)
            case 2:
                buf[at:at] = buf[at : at + rng.randint(1, 200)]
            case 3:
                buf[at] = rng.randrange(256)
            case 4:
                del buf[at:]
            case _:
                j = rng.randrange(len(buf))
                buf[at], buf[j] = buf[j], buf[at]
    return bytes(buf)


def check(path: Path) -> tuple[int, int]:
    bad: list[BadEvent] = []
    try:
        events = list(read_events(path, bad.append))
    except EventFileError as e:
        if "empty" not in str(e):
            raise
        return 0, 0
    assert all(b.label.startswith(f"{path}:") for b in bad), bad
    return len(events), len(bad)


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "corpora"
    ap = argparse.ArgumentParser()
    ap.add_argument("sources", nargs="?", default=os.environ.get("DETCAT_SOURCES", default))
    ap.add_argument("--examples", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    seeds = corpus(Path(args.sources))
    crashes: dict[str, bytes] = {}
    docs = bad = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.json"
        for _ in range(args.examples):
            data = mutate(rng.choice(seeds), rng)
            path.write_bytes(data)
            try:
                n, b = check(path)
                docs, bad = docs + n, bad + b
            except Exception as e:  # noqa: BLE001 - every other exception is a crash
                frame = traceback.extract_tb(e.__traceback__)[-1]
                key = f"{type(e).__name__} at {Path(frame.filename).name}:{frame.lineno}"
                if key not in crashes or len(data) < len(crashes[key]):
                    crashes[key] = data
    seconds = time.perf_counter() - started
    print(f"{args.examples} inputs in {seconds:.0f} s: {docs} events read, {bad} bad events, "
          f"{len(crashes)} crashes")  # fmt: skip
    for key, data in crashes.items():
        print(f"  {key}: {data[:300]!r}")
    sys.exit(1 if crashes else 0)


if __name__ == "__main__":
    main()
