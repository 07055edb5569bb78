"""What a backtest reports: per rule its hits, first and last seen, hits per day
and a few sample events; per technique the rules that fired."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

SAMPLES = 3  # sample events kept per rule


@dataclass
class RuleHits:
    vendor: str
    id: str
    title: str
    techniques: list[str] = field(default_factory=list)
    hits: int = 0
    unknown: int = 0  # events the rule may fire on: it depends on what detcat cannot evaluate
    first: str | None = None
    last: str | None = None
    per_day: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    def hit(self, label: str, time: str | None) -> None:
        self.hits += 1
        if len(self.samples) < SAMPLES:
            self.samples.append(label)
        if time:
            self.first = time if self.first is None or time < self.first else self.first
            self.last = time if self.last is None or time > self.last else self.last
            self.per_day[time[:10]] += 1

    def add(self, hits: int, first: str | None, last: str | None, samples: list[str]) -> None:
        """``hits`` events of one day (``first``..``last``; no time: None) counted by
        the engine, with some of their labels; added in time order, the samples are
        the earliest."""
        self.hits += hits
        self.samples.extend(samples[: max(0, SAMPLES - len(self.samples))])
        if first and last:
            self.first = first if self.first is None or first < self.first else self.first
            self.last = last if self.last is None or last > self.last else self.last
            self.per_day[first[:10]] += hits

    def to_json(self) -> dict[str, Any]:
        return {
            "vendor": self.vendor,
            "id": self.id,
            "title": self.title,
            "techniques": self.techniques,
            "hits": self.hits,
            "unknown": self.unknown,
            "first_seen": self.first,
            "last_seen": self.last,
            "per_day": dict(sorted(self.per_day.items())),
            "samples": self.samples,
        }


@dataclass
class Backtest:
    engine: str
    events: int = 0
    rules: dict[str, RuleHits] = field(default_factory=dict)  # "vendor:id" -> hits
    not_compiled: list[dict[str, str]] = field(default_factory=list)  # rule, reason
    fallback: list[dict[str, str]] = field(default_factory=list)  # ran on Python, why
    seconds: float = 0.0

    def fired(self) -> list[RuleHits]:
        return sorted(
            (r for r in self.rules.values() if r.hits),
            key=lambda r: (-r.hits, r.vendor, r.id),
        )

    def techniques(self) -> dict[str, list[str]]:
        """Technique -> the rules (``vendor:id``) that fired on its behalf."""
        out: dict[str, list[str]] = {}
        for r in self.fired():
            for t in r.techniques:
                out.setdefault(t, []).append(f"{r.vendor}:{r.id}")
        return dict(sorted(out.items()))

    def hits_by_rule(self) -> dict[str, int]:
        return {k: r.hits for k, r in self.rules.items() if r.hits}

    def to_json(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "rules": [r.to_json() for r in self.fired()],
            "techniques": self.techniques(),
            "fallback": self.fallback,
            "not_compiled": self.not_compiled,
        }
