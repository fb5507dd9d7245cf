"""What must still reach the broker: retained publishes kept while away, and those in flight.

Pure bookkeeping (no paho, no threads, no clock) so the rules can be read in one place:

- While away, a retained publish is kept as the latest payload per topic; a non-retained one is
  dropped and counted.
- A retained QoS>0 publish stays remembered until the broker acknowledged it; when the
  connection drops first, it is sent again after the reconnect unless a newer payload for its
  topic superseded it.
- QoS>0 publishes in flight form the backpressure *window*: publishers wait once it is full,
  instead of letting paho's bounded queue drop one.

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
        self._pending: dict[str, tuple[bytes, int]] = {}  # retained, made while away: latest per topic
        self._unacked: dict[str, tuple[InfoT, bytes, int]] = {}  # retained in flight
        # QoS>0 publishes, oldest first, with the topic of a retained one (its `_unacked` entry goes
        # when it is acked: kept, 100,000 start-up topics held ~1.6 KB each for good, ~150 MB)
        self._window: deque[tuple[InfoT, str | None]] = deque()
        self.dropped = 0  # non-retained publishes dropped while away, or refused by a full queue

    # ------------------------------------------------------------------ while away
    def keep_while_away(self, topic: str, data: bytes, retain: bool, qos: int) -> bool:
        """Remember a retained publish (True) or count a non-retained one as dropped (False)."""
        if retain:
            self._pending[topic] = (data, qos)
            return True
        self.dropped += 1
        return False

    def take_pending(self) -> dict[str, tuple[bytes, int]]:
        """Everything kept while away (and not yet taken), to be sent now."""
        batch, self._pending = self._pending, {}
        return batch

    # ------------------------------------------------------------------ in flight
    def sent(self, info: InfoT, topic: str, data: bytes, retain: bool, qos: int) -> None:
        """A publish paho accepted on the current connection."""
        if retain and qos > 0:
            self._unacked[topic] = (info, data, qos)
        if qos > 0:
            self._window.append((info, topic if retain else None))

    def resent(self, info: InfoT, topic: str, data: bytes, qos: int) -> None:
        """A retained publish kept while away, sent again after a reconnect (not in the window)."""
        self._unacked[topic] = (info, data, qos)

    def connection_lost(self) -> None:
        """Keep each retained publish the broker has not acknowledged, unless a newer one waits."""
        for topic, (info, data, qos) in self._unacked.items():
            if not info.is_published():
                self._pending.setdefault(topic, (data, qos))
        self._unacked.clear()
        self._window.clear()

    # ------------------------------------------------------------------ backpressure
    def in_the_way(self) -> InfoT | None:
        """Forget the acknowledged head of the window; if it is still full, its oldest publish."""
        window = self._window
        while window and window[0][0].is_published():
            info, topic = window.popleft()
            if topic is not None:  # an acknowledged retained publish needs no resending
                kept = self._unacked.get(topic)
                if kept is not None and kept[0] is info:
                    del self._unacked[topic]
        if len(window) < self._backpressure_at:
            return None
        return window[0][0]

    def skip(self, info: InfoT) -> None:
        """Stop waiting for ``info`` (paho could not wait for it) if it still heads the window."""
        if self._window and self._window[0][0] is info:
            self._window.popleft()

    def forget_window(self) -> None:
        """The broker stopped acknowledging: stop holding publishers back (paho's limit applies)."""
        self._window.clear()
