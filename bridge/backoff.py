"""Capped exponential back-off with full jitter, and interruptible waiting (à la stamina).

The client never calls `time.sleep`: it waits through a `Sleeper`, which returns early when the
stop event is set, so `stop()` takes effect at once. Tests pass `InstantSleeper`, which records
what would have been waited and returns immediately (the "testing mode" that makes back-off instant).

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Sleeper(Protocol):
    def __call__(self, seconds: float, stop: threading.Event) -> bool:
        """Wait up to ``seconds``; return True when ``stop`` is set (the caller should give up)."""
        ...


def event_sleeper(seconds: float, stop: threading.Event) -> bool:
    """The real thing: waits on the stop event itself, so a stop interrupts it."""
    if seconds <= 0:
        return stop.is_set()
    return stop.wait(seconds)


@dataclass
class InstantSleeper:
    """Test mode: never waits. Records each requested duration; ``advance`` moves a fake clock."""

    waits: list[float] = field(default_factory=list)
    advance: Callable[[float], None] | None = None

    def __call__(self, seconds: float, stop: threading.Event) -> bool:
        self.waits.append(seconds)
        if self.advance is not None and seconds > 0:
            self.advance(seconds)
        return stop.is_set()


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Full jitter: the n-th consecutive failure waits uniformly in [0, min(max, initial·2^(n-1))].

    Full jitter spreads many bridges apart after a shared outage (§7.2.6 asks for jitter).
    ``long`` retries (credentials rejected) wait between half the cap and the cap, so a refused
    account is not hammered.
    """

    initial_s: float = 1.0
    max_s: float = 60.0

    def cap(self, attempt: int) -> float:
        exponent = min(max(attempt, 1) - 1, 32)  # 2**32 s is far beyond any cap
        return min(self.max_s, self.initial_s * (2.0**exponent))

    def delay(self, attempt: int, rng: random.Random, *, long: bool = False) -> float:
        if long:
            return self.max_s * (0.5 + rng.random() / 2)
        return rng.uniform(0.0, self.cap(attempt))
