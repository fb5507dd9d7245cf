"""One lock around one object: the only way the client's two threads reach the protocol core."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")


class Guarded(Generic[T]):
    """``with guarded as value:`` holds the lock for the block. Re-entrant: a block may call code
    that takes it again on the same thread."""

    def __init__(self, value: T) -> None:
        self._value = value
        self._lock = threading.RLock()

    def __enter__(self) -> T:
        self._lock.acquire()
        return self._value

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.release()
