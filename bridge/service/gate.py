"""The start gate: holds back what must not happen before the first picture is complete.

Until it opens, lights get no commands (a restart must not blink a busy light off while the first
presence is on its way) and a user whose display name CWA has not told yet gets no discovery (no
device named by its URI and renamed seconds later). It opens once the previous run's retained
state was read back and either CWA has reported every watched user, or no user was reported for
the first time in ``grace_s`` (the rest may never come), or `MAX_WAIT_S` have passed since the start,
or when something forces it (a light override evaluates every light). It never closes again.

The grace counts from the last report, not from the start: at 10,000 users the first picture
takes longer than 5 s to arrive, and a gate opened by the clock published discovery for ~6,000
users under their URI and again under their name moments later (bench/NOTES.md).
"""

from __future__ import annotations

from collections.abc import Callable

CHECK_EVERY_S = 0.1  # checking costs O(users): not once per notice
MAX_WAIT_S = 120.0  # a server that keeps trickling first reports holds the gate at most this long


class StartGate:
    def __init__(self, grace_s: float, clock: Callable[[], float]) -> None:
        self._grace_s = grace_s
        self._clock = clock
        self._started_at = clock()
        self._reported_at = self._started_at  # the last time a user was reported for the first time
        self._checked_at = float("-inf")
        self.read_back = False  # the previous run's retained state is known
        self.open = False

    def restart(self) -> None:
        self._started_at = self._reported_at = self._clock()

    def reported(self) -> None:
        """CWA reported a user for the first time: the first picture is still arriving."""
        if not self.open:
            self._reported_at = self._clock()

    def check(self, all_reported: Callable[[], bool]) -> bool:
        """Open the gate if it is due; True exactly once, when it opens."""
        if self.open or not self.read_back:
            return False
        now = self._clock()
        if now - self._checked_at < CHECK_EVERY_S:
            return False
        self._checked_at = now
        quiet = now - max(self._started_at, self._reported_at) >= self._grace_s
        if quiet or now - self._started_at >= MAX_WAIT_S or all_reported():
            self.open = True
            return True
        return False

    def force(self) -> None:
        self.open = True
