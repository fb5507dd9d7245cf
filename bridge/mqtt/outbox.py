"""The backpressure window: QoS>0 publishes the broker has not acknowledged yet.

Pure bookkeeping (no paho, no threads, no clock). Publishers wait once the window is full,
instead of letting paho's bounded queue drop a message. What is *not* here, on purpose: nothing
published while the broker is away is kept for later. The owner of the retained state (the
service) republishes all of it after every connect, so one replay covers a broker that lost
everything (restarted without persistence) as well as a short outage; a second replay here
sent every topic that changed while away twice.

Not thread-safe by itself: the publisher guards it with its lock and never waits while holding it.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, Protocol, TypeVar


class Ack(Protocol):
    """The part of paho's ``MQTTMessageInfo`` this module needs."""

    def is_published(self) -> bool: ...


InfoT = TypeVar("InfoT", bound=Ack)


class Outbox(Generic[InfoT]):
    def __init__(self, backpressure_at: int) -> None:
        self._backpressure_at = backpressure_at
        self._window: deque[InfoT] = deque()  # QoS>0 publishes in flight, oldest first
        self.dropped = 0  # non-retained publishes dropped while away, or refused by a full queue

    def away(self, retain: bool) -> None:
        """A publish made while the broker is away: a retained one is the owner's to replay after
        the next connect; a non-retained one (a light command, a response) is dropped and counted."""
        if not retain:
            self.dropped += 1

    def sent(self, info: InfoT, qos: int) -> None:
        """A publish paho accepted on the current connection."""
        if qos > 0:
            self._window.append(info)

    def connection_lost(self) -> None:
        self._window.clear()

    def in_the_way(self) -> InfoT | None:
        """Forget the acknowledged head of the window; if it is still full, its oldest publish."""
        window = self._window
        while window and window[0].is_published():
            window.popleft()
        if len(window) < self._backpressure_at:
            return None
        return window[0]

    def skip(self, info: InfoT) -> None:
        """Stop waiting for ``info`` (paho could not wait for it) if it still heads the window."""
        if self._window and self._window[0] is info:
            self._window.popleft()

    def forget_window(self) -> None:
        """The broker stopped acknowledging: stop holding publishers back (paho's limit applies)."""
        self._window.clear()
