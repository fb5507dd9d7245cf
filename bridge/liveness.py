"""Which long-lived loops still make progress: the registry behind WATCHDOG and ``/healthz``.

A loop registers once and gets a `Beat`. It reports progress each time it wakes up, and before a
step that may legitimately take long (a held long poll, a back-off) it says how long that step may
take: ``beat.progress(within_s=deadline + margin)``. A loop is stuck when its last progress is
older than the time it announced; a loop blocked in an exchange therefore stays live while the
exchange is within its deadline, and turns stuck as soon as it overstays.

Thread-safe; the clock is injectable so tests decide what time it is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Beat:
    """One registered loop's handle. Cheap to call on every wake-up."""

    def __init__(self, registry: Liveness, name: str, stall_after_s: float) -> None:
        self._registry = registry
        self.name = name
        self.stall_after_s = stall_after_s

    def progress(self, within_s: float | None = None) -> None:
        """The loop made progress; the next report is due within ``within_s`` (default: its stall time)."""
        self._registry._report(self.name, self.stall_after_s if within_s is None else within_s)

    def retire(self) -> None:
        """The loop ended on purpose (a clean stop): it is no longer watched."""
        self._registry._forget(self.name)


class Liveness:
    """A thread-safe map of loop name -> the time by which it must report progress again."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._due: dict[str, float] = {}

    def register(self, name: str, stall_after_s: float) -> Beat:
        """Watch a loop from now on; it counts as having just made progress."""
        if stall_after_s <= 0:
            raise ValueError(f"liveness: stall_after_s of {name!r} must be > 0, got {stall_after_s}")
        self._report(name, stall_after_s)
        return Beat(self, name, stall_after_s)

    def stuck(self) -> list[str]:
        """Names of the loops whose announced progress is overdue, sorted."""
        now = self._clock()
        with self._lock:
            return sorted(name for name, due in self._due.items() if now > due)

    def all_live(self) -> bool:
        return not self.stuck()

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._due)

    def _report(self, name: str, within_s: float) -> None:
        due = self._clock() + max(0.0, within_s)
        with self._lock:
            self._due[name] = due

    def _forget(self, name: str) -> None:
        with self._lock:
            self._due.pop(name, None)
