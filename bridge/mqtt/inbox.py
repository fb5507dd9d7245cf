"""The inbound side of the MQTT adapter: SUBACKs, messages, and `read_retained`'s collection.

Runs on paho's network thread (`suback`, `deliver`) and on callers' threads (`collect`). It
shares the publisher's condition (and so its lock), which is never held while calling into paho.

Messages that arrive with the retain flag (stored messages replayed at subscribe time, e.g. a
command someone published retained) are not passed on: an old command must not be re-executed on
every reconnect.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

from bridge.mqtt.paho_glue import translate

# The publisher's logger: the MQTT adapter logs under one name (the JSON format shows it).
log = logging.getLogger("bridge.mqtt.publisher")


class Inbox:
    def __init__(
        self,
        subscriptions: list[str],
        on_message: Callable[[str, bytes], None],
        *,
        cond: threading.Condition,
    ) -> None:
        self._subscriptions = subscriptions
        self._on_message = on_message
        self._cond = cond
        # --- guarded by cond
        self._collectors: list[_Collector] = []
        self._subacks: set[int] = set()

    # ------------------------------------------------------------------ SUBACKs
    def suback(self, mid: int) -> None:
        with self._cond:
            self._subacks.add(mid)
            self._cond.notify_all()

    def wait_suback(self, mid: int, timeout: float) -> bool:
        """Called with the condition held."""
        return self._cond.wait_for(lambda: mid in self._subacks, timeout=timeout)

    def forget_subacks(self) -> None:
        """Called with the condition held."""
        self._subacks.clear()

    # ------------------------------------------------------------------ messages
    def deliver(self, topic: str, payload: bytes, retained: bool) -> None:
        if retained:
            with self._cond:  # no notify: `collect` looks at its count once per quiet interval
                hits = [c for c in self._collectors if c.matches(topic)]
                for c in hits:
                    c.add(topic, payload)
            if not hits:
                log.debug("mqtt.retained_ignored topic=%s", topic)
            return
        if not any(paho.topic_matches_sub(s, topic) for s in self._subscriptions):
            return
        try:
            self._on_message(topic, payload)
        except Exception:  # a handler bug must not kill paho's network thread
            log.exception("mqtt.on_message.failed topic=%s", topic)

    # ------------------------------------------------------------------ reading retained state
    def collect(
        self, client: paho.Client, topic_filters: Sequence[str], qos: int, quiet_s: float, timeout_s: float
    ) -> dict[str, bytes]:
        """Subscribe, collect retained messages until none arrived for ``quiet_s``, unsubscribe."""
        collector = _Collector(list(topic_filters))
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._collectors.append(collector)
        try:
            rc, mid = client.subscribe([(f, qos) for f in topic_filters])
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise translate(rc, "subscribe")
            with self._cond:
                self._cond.wait_for(
                    lambda: mid in self._subacks, timeout=max(0.0, deadline - time.monotonic())
                )
                self._subacks.discard(mid)
                seen = -1
                while seen != collector.count and time.monotonic() < deadline:
                    seen = collector.count
                    self._cond.wait(min(quiet_s, max(0.0, deadline - time.monotonic())))
        finally:
            with self._cond:
                self._collectors.remove(collector)
            extra = [f for f in topic_filters if f not in self._subscriptions]
            if extra:
                client.unsubscribe(extra)
        return dict(collector.messages)


class _Collector:
    """Retained messages gathered for one `collect` call (guarded by the condition)."""

    def __init__(self, filters: list[str]) -> None:
        self.filters = filters
        self.messages: dict[str, bytes] = {}
        self.count = 0

    def matches(self, topic: str) -> bool:
        return any(paho.topic_matches_sub(f, topic) for f in self.filters)

    def add(self, topic: str, payload: bytes) -> None:
        self.messages[topic] = payload
        self.count += 1
