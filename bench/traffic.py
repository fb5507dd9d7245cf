"""What a start published, read from a subscriber on ``#``: which messages carried nothing new.

A message carries nothing new when it repeats the payload its topic already holds (a duplicate),
or clears (empty payload) a topic that holds nothing. A discovery config published more than once
in one start (first named by URI, again by display name) is counted too: Home Assistant re-creates
the entity for it. Pure: works on the recorded (topic, payload) list.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bench.common import Probe


@dataclass
class Traffic:
    total: int = 0
    duplicates: int = 0
    phantom_clears: int = 0
    rediscovered: int = 0  # discovery configs published again in the same start
    info_sends: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    @property
    def noop(self) -> int:
        return self.duplicates + self.phantom_clears + self.rediscovered

    @classmethod
    def of(
        cls,
        messages: Sequence[tuple[str, bytes]],
        base: str,
        prefix: str,
        held_before: Mapping[str, bytes] | None = None,
    ) -> Traffic:
        """``held_before``: what the broker held when the messages began (a restart)."""
        t = cls(total=len(messages))
        held: dict[str, bytes] = dict(held_before or {})
        discovered: Counter[str] = Counter()
        for topic, payload in messages:
            kind = _kind(topic, base, prefix)
            t.by_kind[kind] += 1
            if kind == "bridge/info":
                t.info_sends += 1
            if not payload:
                if topic not in held:
                    t.phantom_clears += 1
                    t._example(f"clear of a topic never held: {topic}")
                held.pop(topic, None)
                continue
            if held.get(topic) == payload:
                t.duplicates += 1
                t._example(f"duplicate: {topic}")
            elif kind == "discovery":
                discovered[topic] += 1
                if discovered[topic] > 1:
                    t.rediscovered += 1
                    t._example(f"discovery again: {topic}")
            held[topic] = payload
        return t

    def _example(self, text: str) -> None:
        if len(self.examples) < 3:
            self.examples.append(text)

    def describe(self) -> str:
        kinds = ", ".join(f"{k} {n:,}" for k, n in self.by_kind.most_common())
        return (
            f"duplicates {self.duplicates:,}, clears of topics never held {self.phantom_clears:,}, "
            f"discovery configs sent again {self.rediscovered:,}, bridge/info sent {self.info_sends}x; "
            f"by kind: {kinds}" + (f"; e.g. {'; '.join(self.examples)}" if self.examples else "")
        )


def _kind(topic: str, base: str, prefix: str) -> str:
    if topic.startswith(prefix + "/"):
        return "discovery"
    if not topic.startswith(base + "/"):
        return "other"
    rest = topic[len(base) + 1 :]
    if rest.startswith("bridge/"):
        return rest if rest.count("/") == 1 else "bridge/*"
    return "presence json" if "/" not in rest else "attribute"


def burst_end(probe: Probe, quiet_s: float, timeout: float) -> float:
    """The arrival time of the last message before ``quiet_s`` without any (monotonic)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = probe.messages[-1][0] if probe.messages else 0.0
        if time.monotonic() - last >= quiet_s:
            return last
        time.sleep(min(quiet_s, 0.2))
    raise RuntimeError(f"the start's burst did not end within {timeout:.0f} s")
