"""When to re-query every watched user, and which presence answers those queries.

A server may drop a subscription without telling (a front-end failover, a pool recycle), and that
user would stay frozen. Every ``every_s`` the client re-queries each watched user with
queryPresence, in batches of at most 100, spread over a minute (half the period when that is
shorter) so the server sees no burst. Presence that arrives for a re-queried user within
``answer_window_s`` of its query is marked as a resync answer, so the owner can count corrections.

Pure: no I/O, no clock (callers pass the times), not thread-safe (the client holds its lock).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

BATCH = 100
SPREAD_S = 60.0
ANSWER_WINDOW_S = 30.0
MAX_EXPECTED = 100_000  # bounded: older expectations are dropped first


class ResyncPlan:
    def __init__(self, every_s: float, *, answer_window_s: float = ANSWER_WINDOW_S) -> None:
        self._every_s = every_s
        self._window_s = answer_window_s
        self._next_round: float | None = None
        self._round: deque[tuple[float, tuple[str, ...]]] = deque()
        self._expected: dict[str, float] = {}  # uri -> until when an answer counts as a resync

    @property
    def enabled(self) -> bool:
        return self._every_s > 0

    def session_started(self, now: float) -> None:
        """A new session subscribed everyone afresh: the first round is one period away."""
        self._round.clear()
        self._next_round = now + self._every_s if self.enabled else None

    def session_lost(self) -> None:
        self._round.clear()
        self._next_round = None

    def next_due(self) -> float | None:
        if self._round:
            return self._round[0][0]
        return self._next_round

    def take(self, now: float, targets: Sequence[str]) -> tuple[str, ...] | None:
        """The batch to query now, if one is due (planning the next round when one begins)."""
        if self._next_round is not None and not self._round and now >= self._next_round:
            self._next_round = now + self._every_s
            batches = [tuple(targets[i : i + BATCH]) for i in range(0, len(targets), BATCH)]
            if batches:
                step = min(SPREAD_S, self._every_s / 2) / len(batches)
                self._round.extend((now + i * step, b) for i, b in enumerate(batches))
        if self._round and self._round[0][0] <= now:
            return self._round.popleft()[1]
        return None

    def queried(self, uris: Sequence[str], now: float) -> None:
        until = now + self._window_s
        for uri in uris:
            self._expected.pop(uri, None)  # re-inserted last: the oldest stay first in line
            self._expected[uri] = until
        while len(self._expected) > MAX_EXPECTED:
            del self._expected[next(iter(self._expected))]

    def is_answer(self, uri: str, now: float) -> bool:
        """Whether presence for ``uri`` answers a resync query (counted once)."""
        until = self._expected.pop(uri, None)
        return until is not None and now <= until
