"""One lock around one object: the only way the client's two threads reach the protocol core."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")


class Guarded(Generic[T]):
    """``with guarded as value:`` holds the lock for the block. Re-entrant: a block may call code
    that takes it again on the same thread. `wait_for` waits until a block leaves the value as a
    predicate wants it (every block's end wakes the waiters)."""

    def __init__(self, value: T) -> None:
        self._value = value
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)

    def wait_for(self, predicate: Callable[[T], bool], timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until ``predicate(value)``; whether it holds."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self._value), max(0.0, timeout))

    def __enter__(self) -> T:
        self._lock.acquire()
        return self._value

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._changed.notify_all()
        self._lock.release()
