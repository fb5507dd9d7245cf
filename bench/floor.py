"""The floor every publishing figure is measured against: bare paho, pipelined, best of rounds.

`paho_floor` publishes a (topic, payload) list retained at QoS 1 the fastest way paho can: one
client, no in-flight limit in paho, and the bridge's own backpressure window (a publisher waits
for the oldest ack only once `BACKPRESSURE_AT` publishes are unacknowledged), every ack awaited
at the end. Callers alternate its rounds with the bridge's and keep the best of each, so the
ratio compares two best cases measured under the same load.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import Probe, port_of
from bridge.mqtt.paho_glue import BACKPRESSURE_AT, MAX_QUEUED_MESSAGES

ACK_TIMEOUT_S = 120.0


def paho_floor(url: str, messages: Sequence[tuple[str, bytes]], window: int = BACKPRESSURE_AT) -> float:
    """Seconds from the first publish to the last PUBACK of ``messages`` (retained, QoS 1)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-floor-{time.monotonic_ns()}")
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(MAX_QUEUED_MESSAGES)
    connected = threading.Event()
    client.on_connect = lambda *_a: connected.set()
    client.connect("127.0.0.1", port_of(url))
    client.loop_start()
    try:
        if not connected.wait(10):
            raise RuntimeError("floor: paho could not connect")
        in_flight: deque[paho.MQTTMessageInfo] = deque()
        start = time.perf_counter()
        for topic, payload in messages:
            while in_flight and in_flight[0].is_published():
                in_flight.popleft()
            if len(in_flight) >= window:
                in_flight[0].wait_for_publish(ACK_TIMEOUT_S)
            in_flight.append(client.publish(topic, payload, qos=1, retain=True))
        for info in in_flight:
            info.wait_for_publish(ACK_TIMEOUT_S)
            if not info.is_published():
                raise RuntimeError("floor: a publish was not acknowledged")
        return time.perf_counter() - start
    finally:
        client.disconnect()
        client.loop_stop()


def clear(url: str, topics: Sequence[str]) -> None:
    """Remove retained ``topics`` (so a floor round publishes to the same broker state as the bridge)."""
    paho_floor(url, [(t, b"") for t in dict.fromkeys(topics)])


def paho_floor_seen(url: str, messages: Sequence[tuple[str, bytes]], probe: Probe, rounds: int) -> float:
    """Best of ``rounds``: first publish → the last of ``messages`` received by ``probe``.

    For figures whose bridge side is timed at a subscriber (a separate process's PUBACKs cannot be
    seen): both sides then include the subscriber's own lag, and a round's echoes are all in before
    the next measurement starts. ``probe`` must see nothing else meanwhile.
    """
    best = float("inf")
    keep, probe.keep = probe.keep, False  # a 10,000-user start is ~90,000 messages a round
    try:
        for _ in range(rounds):
            with probe.lock:
                mark = probe.count
            start = time.monotonic()
            paho_floor(url, messages)
            if not probe.wait(lambda m=mark: probe.count >= m + len(messages), ACK_TIMEOUT_S):  # type: ignore[misc]
                raise RuntimeError("floor: the subscriber did not receive every message")
            best = min(best, time.monotonic() - start)
    finally:
        probe.keep = keep
    return best
