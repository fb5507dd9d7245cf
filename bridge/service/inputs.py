"""The service's inbound queue: every input, typed, in arrival order.

Producers on any thread (the CWA client's poll and command threads, paho's network thread, the
HTTP pool, the app) put items here; the service's loop thread alone takes them. It exists before
the parts that feed it, so the composition root can hand it to the CWA client and the MQTT
publisher before the service itself is built.

Bound and overflow rule: at most `MAX_ITEMS` items wait. CWA notices then block their producer
(the poll thread: back-pressure onto CWA, which keeps its events) for up to `PUT_TIMEOUT_S`;
MQTT messages are dropped and counted (paho's network thread must never block). A full queue
means the loop is stuck, which the liveness registry reports.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass

from bridge.cwa.notices import Notice

log = logging.getLogger(__name__)

MAX_ITEMS = 200_000
PUT_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Received:
    """A CWA notice and when it arrived (for the event-to-publish latency)."""

    notice: Notice
    at: float


@dataclass(frozen=True, slots=True)
class MqttConnected:
    pass


@dataclass(frozen=True, slots=True)
class MqttDisconnected:
    pass


@dataclass(frozen=True, slots=True)
class MqttMessage:
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class LightResult:
    """An http light's sender tried to deliver: ``delivered`` says whether it worked."""

    light: str
    delivered: bool


@dataclass(frozen=True, slots=True)
class Call:
    """Run ``job`` on the loop thread."""

    job: Callable[[], None]


Item = Received | MqttConnected | MqttDisconnected | MqttMessage | LightResult | Call


class Inputs:
    def __init__(self, max_items: int = MAX_ITEMS, clock: Callable[[], float] = time.monotonic) -> None:
        self._queue: queue.Queue[Item] = queue.Queue(max_items)
        self._clock = clock
        self.dropped = 0

    def on_notice(self, notice: Notice) -> None:
        try:
            self._queue.put(Received(notice, self._clock()), timeout=PUT_TIMEOUT_S)
        except queue.Full:
            self.dropped += 1
            log.error("service.input_full dropped=%s kind=%s", self.dropped, type(notice).__name__)

    def on_mqtt_connect(self) -> None:
        self._put_nowait(MqttConnected())

    def on_mqtt_disconnect(self) -> None:
        self._put_nowait(MqttDisconnected())

    def on_mqtt_message(self, topic: str, payload: bytes) -> None:
        self._put_nowait(MqttMessage(topic, payload))

    def on_light_result(self, light: str, delivered: bool) -> None:
        self._put_nowait(LightResult(light, delivered))

    def call(self, job: Callable[[], None]) -> None:
        try:
            self._queue.put(Call(job), timeout=PUT_TIMEOUT_S)
        except queue.Full:  # the loop is stuck (liveness says so); a stop still ends it by its flag
            self.dropped += 1
            log.error("service.input_full dropped=%s kind=Call", self.dropped)

    def get(self, timeout: float) -> Item | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def empty(self) -> bool:
        return self._queue.empty()

    def _put_nowait(self, item: Item) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            log.error("service.input_full dropped=%s kind=%s", self.dropped, type(item).__name__)
