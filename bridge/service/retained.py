"""Publish-on-change for retained topics: the one memory of what the broker holds from us.

`retain()` publishes a payload only when it differs from what was last sent to that topic, or,
at start, from what the broker already held (`seed`: a restart republished everything, ~99 % of
its messages byte-identical to the broker's); `forget()` drops the memory so the next round
republishes everything (after a broker reconnect or a Home Assistant birth message: the broker or
HA may have lost it); `clear()` empties topics. Only the service's loop thread calls it.

An empty payload on a ``nullable`` topic (an attribute topic of a null field) is published only
when the broker may hold something there: the previous run left it (`seed`, from the read-back)
or this run published a payload there; without a complete read-back every clear goes out.
Otherwise it clears a topic that never existed: ~20,000 such messages at a 10,000-user start
(bench/NOTES.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping

from bridge.service.ports import MetricsPort, MqttPort


class RetainedPublisher:
    def __init__(
        self,
        mqtt: MqttPort,
        metrics: MetricsPort | None = None,
        nullable: Callable[[str], bool] = lambda _topic: False,
    ) -> None:
        self._mqtt = mqtt
        self._metrics = metrics
        self._nullable = nullable
        # Nullable topics the broker may hold a payload on; never shrinks (a clear made while the
        # broker was away is lost, so the topic may still hold its old payload).
        self._may_hold: set[str] = set()
        self._know_held = False  # until the read-back told, any nullable topic may hold something
        # topic -> digest of the payload last sent there: the payloads themselves (~100,000
        # topics at 10,000 users) cost ~20 MB of RSS (bench/NOTES.md).
        self._sent: dict[str, bytes] = {}

    def retain(self, topic: str, payload: bytes, kind: str | None = None) -> bool:
        """Publish retained ``payload`` on ``topic`` unless it is what was last sent there."""
        digest = _digest(payload)
        if self._sent.get(topic) == digest:
            return False
        self._sent[topic] = digest
        if self._nullable(topic):
            if not payload and self._know_held and topic not in self._may_hold:
                return False  # nothing there to clear
            self._may_hold.add(topic)
        self._mqtt.publish(topic, payload, retain=True)
        if kind is not None and self._metrics is not None:
            self._metrics.publishes(kind)
        return True

    def clear(self, topics: Iterable[str]) -> None:
        """Empty retained payloads: the broker forgets these topics."""
        for topic in topics:
            self._sent.pop(topic, None)
            self._mqtt.publish(topic, b"", retain=True)

    def seed(self, held: Mapping[str, bytes], complete: bool) -> None:
        """What the broker holds (the service's read-back at start): a payload it already holds is
        not published again. With ``complete`` (the read-back was not cut off by its deadline),
        a nullable topic missing from ``held`` holds nothing, so it needs no clear either."""
        for topic, payload in held.items():
            self._sent[topic] = _digest(payload)
            if self._nullable(topic):
                self._may_hold.add(topic)
        self._know_held = self._know_held or complete

    def forget(self) -> None:
        self._sent.clear()

    def __len__(self) -> int:
        return len(self._sent)


def _digest(payload: bytes) -> bytes:
    """16 bytes stand for a payload: a collision (2**-128) would skip a publish."""
    return hashlib.blake2b(payload, digest_size=16).digest()
