"""The MQTT adapter: one paho-mqtt 2.x client, reconnecting, thread-safe, bounded.

Theory of operation
-------------------
`bridge.mqtt.supervisor` owns the connection: a fresh paho client per attempt (paho never
reconnects by itself, and never replays a stale queued publish after a newer one) and a capped,
jittered back-off between attempts. `bridge.mqtt.outbox` is the backpressure window;
`bridge.mqtt.inbox` handles what arrives; `bridge.mqtt.paho_glue` knows paho's quirks.

Paho callbacks stay dumb: they only post an event for the supervisor (connect, refuse, loss),
subscribe (so a reconnect never leaves the bridge deaf) or hand a message on. They may fire
twice; every handler is idempotent and ignores events of a client that is no longer current.

After each connect the supervisor thread, in this order: waits for the SUBACK of the command
subscriptions, publishes ``online`` on ``will_topic`` and waits (bounded by ``connect_timeout_s``)
for its ack, marks the publisher connected, then calls ``on_connect`` -- from the supervisor
thread, not paho's, so ``on_connect`` may use `publish_and_wait` and `read_retained`.
``on_message`` is called from paho's network thread and must not wait for acks (doing so raises
RuntimeError).

While away, nothing is kept: the owner republishes its retained state from ``on_connect`` (the
one replay), and non-retained publishes are dropped and counted in `dropped`. Retained messages
arriving are not passed to ``on_message`` (`bridge.mqtt.inbox`).

Locking: ``_lock`` guards this module's small state and is never held while calling into paho,
so a paho thread waiting on it can never deadlock with a caller waiting inside paho.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

from bridge.errors import MqttError
from bridge.mqtt.inbox import Inbox
from bridge.mqtt.outbox import Outbox
from bridge.mqtt.paho_glue import BACKPRESSURE_AT, TlsContext, await_acks, new_client, translate
from bridge.mqtt.settings import MqttSettings
from bridge.mqtt.supervisor import STOP_ACK_TIMEOUT_S, Supervisor
from bridge.mqtt.topics import validate_publish_topic

log = logging.getLogger(__name__)


class MqttPublisher:
    def __init__(
        self,
        settings: MqttSettings,
        *,
        subscriptions: Sequence[str],
        on_message: Callable[[str, bytes], None],
        on_connect: Callable[[], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
        progress: Callable[[float | None], None] | None = None,
    ) -> None:
        self._settings = settings
        self._subscriptions = list(subscriptions)
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._lock = threading.Lock()
        self._ready_cond = threading.Condition(self._lock)
        self._inbox = Inbox(self._subscriptions, on_message, cond=self._ready_cond)
        self._supervisor = Supervisor(
            settings,
            new_client=self._new_client,
            on_established=self._established,
            on_lost=self._lost,
            on_error=self._note_error,
            progress=progress,
        )
        # --- guarded by _lock
        self._client: paho.Client | None = None
        self._ready = False
        self._outbox: Outbox[paho.MQTTMessageInfo] = Outbox(BACKPRESSURE_AT)
        self._connects = 0
        self._last_error: str | None = None
        self._paho_ident: int | None = None

    # ------------------------------------------------------------------ public state
    @property
    def connected(self) -> bool:
        with self._lock:
            return self._ready

    @property
    def reconnects(self) -> int:
        """Successful connections after the first one."""
        with self._lock:
            return max(0, self._connects - 1)

    @property
    def dropped(self) -> int:
        """Non-retained publishes dropped because the broker was away (or paho's queue was full)."""
        with self._lock:
            return self._outbox.dropped

    @property
    def last_error(self) -> str | None:
        with self._lock:
            return self._last_error

    def wait_connected(self, timeout: float) -> bool:
        with self._ready_cond:
            return self._ready_cond.wait_for(lambda: self._ready, timeout=timeout)

    # ------------------------------------------------------------------ lifecycle
    def start(self, wait_s: float | None = None) -> None:
        """Start connecting in the background; with ``wait_s``, wait that long for the first connect."""
        if self._supervisor.started:
            raise RuntimeError("MqttPublisher.start() called twice")
        s = self._settings
        log.info("mqtt.start host=%s port=%s tls=%s client_id=%s", s.host, s.port, s.tls, s.client_id)
        self._supervisor.start()
        if wait_s is not None:
            self.wait_connected(wait_s)

    def stop(self, final: Sequence[tuple[str, bytes]] = ()) -> None:
        """Publish ``final`` (retained, e.g. ``offline``), wait briefly for their acks, disconnect cleanly.

        A clean disconnect means the broker does not send the last will; ``final`` says it instead.
        """
        self._supervisor.begin_stop()
        with self._lock:
            client = self._client if self._ready else None
        if client is not None:
            infos = []
            for topic, payload in final:
                try:
                    infos.append(client.publish(topic, payload, qos=self._settings.qos, retain=True))
                except ValueError:
                    log.warning("mqtt.stop.bad_final_topic topic=%s", topic)
            deadline = time.monotonic() + STOP_ACK_TIMEOUT_S
            for info in infos:
                remaining = deadline - time.monotonic()
                if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS or remaining <= 0:
                    break
                try:
                    info.wait_for_publish(remaining)
                except (RuntimeError, ValueError):
                    break
            with self._lock:
                self._ready = False
            client.disconnect()
        self._supervisor.finish_stop()
        log.info("mqtt.stopped")

    # ------------------------------------------------------------------ publishing
    def publish(
        self, topic: str, payload: bytes | str, *, retain: bool = True, qos: int | None = None
    ) -> None:
        """Publish now; while the broker is away, skip it (see the module docstring)."""
        data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        q = self._settings.qos if qos is None else qos
        self._publish(topic, data, retain, q)

    def publish_and_wait(
        self, topic: str, payload: bytes | str, *, retain: bool = True, timeout: float = 5.0
    ) -> bool:
        """Publish and wait for the broker's acknowledgement; False if away or not acknowledged in time."""
        self._refuse_on_paho_thread("publish_and_wait")
        data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        info = self._publish(topic, data, retain, self._settings.qos)
        if info is None:
            return False
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def _publish(self, topic: str, data: bytes, retain: bool, qos: int) -> paho.MQTTMessageInfo | None:
        try:
            validate_publish_topic(topic)
        except ValueError as exc:
            raise MqttError(str(exc)) from exc
        with self._lock:
            client = self._client if self._ready else None
            if client is None:
                self._away(topic, retain)
                return None
        if qos > 0:
            self._make_room()
        try:
            info = client.publish(topic, data, qos=qos, retain=retain)
        except ValueError as exc:  # wildcard or oversized: paho refuses before sending
            raise MqttError(f"MQTT publish to {topic!r} refused: {exc}") from exc
        rc = info.rc
        with self._lock:
            if rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                self._outbox.dropped += 1
                log.warning("mqtt.dropped reason=queue_full topic=%s", topic)
                return None
            if rc == MQTTErrorCode.MQTT_ERR_NO_CONN or client is not self._client or not self._ready:
                self._away(topic, retain)  # the connection ended under us
                return None
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise translate(rc, f"publish to {topic!r}")
            self._outbox.sent(info, qos)
        return info

    def _make_room(self) -> None:
        """Backpressure: with `BACKPRESSURE_AT` publishes unacknowledged, wait (bounded) for acks.

        A burst (10,000 users at start-up publish ~100,000 messages) would otherwise overflow paho's
        bounded queue and silently drop retained state. Never waits on paho's own thread.
        """
        if threading.get_ident() == self._paho_ident:
            return
        deadline = time.monotonic() + self._settings.connect_timeout_s
        while True:
            with self._lock:
                oldest = self._outbox.in_the_way()
                if oldest is None:
                    return
                if time.monotonic() >= deadline:  # the broker stopped acking: fall back to paho's limit
                    self._outbox.forget_window()
                    return
            try:
                oldest.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                with self._lock:
                    self._outbox.skip(oldest)

    def _away(self, topic: str, retain: bool) -> None:
        """Called with ``_lock`` held."""
        self._outbox.away(retain)
        if not retain:
            log.debug("mqtt.dropped reason=disconnected topic=%s", topic)

    # ------------------------------------------------------------------ reading retained state
    def read_retained(
        self, topic_filters: Sequence[str], quiet_s: float = 0.3, timeout_s: float = 3.0
    ) -> dict[str, bytes]:
        """Subscribe, collect retained messages until none arrived for ``quiet_s``, unsubscribe.

        Raises `MqttError` when not connected, or when the connection was lost meanwhile (an empty
        or partial answer would look like "nothing (more) retained"). The subscription is QoS 0:
        retained messages come on this connection or not at all, and without a PUBACK each a
        10,000-user state (40,000 messages) is read in half the time.
        """
        self._refuse_on_paho_thread("read_retained")
        with self._lock:
            client = self._client if self._ready else None
            connects = self._connects
        if client is None:
            raise MqttError("MQTT read_retained: not connected")
        held = self._inbox.collect(client, topic_filters, 0, quiet_s, timeout_s)
        with self._lock:
            lost = self._client is not client or not self._ready or self._connects != connects
        if lost:
            raise MqttError("MQTT read_retained: the connection was lost while reading")
        return held

    def _refuse_on_paho_thread(self, what: str) -> None:
        if threading.get_ident() == self._paho_ident:
            raise RuntimeError(f"{what} would wait for the thread that delivers the acknowledgement")

    # ------------------------------------------------------------------ paho callbacks (dumb)
    def _new_client(self) -> tuple[paho.Client, TlsContext | None]:
        return new_client(
            self._settings,
            on_connect=self._cb_connect,
            on_disconnect=self._cb_disconnect,
            on_subscribe=self._cb_subscribe,
            on_message=self._cb_message,
        )

    def _cb_connect(self, client: paho.Client, _ud: object, _flags: Any, reason: Any, _props: Any) -> None:
        self._paho_ident = threading.get_ident()
        if reason.is_failure:
            self._supervisor.post("refused", (client, str(reason)))
            return
        mid = None
        if self._subscriptions:
            _rc, mid = client.subscribe([(t, self._settings.qos) for t in self._subscriptions])
        self._supervisor.post("connected", (client, mid))

    def _cb_disconnect(self, client: paho.Client, _ud: object, _flags: Any, reason: Any, _props: Any) -> None:
        self._supervisor.post("lost", (client, str(reason)))

    def _cb_subscribe(self, _c: paho.Client, _ud: object, mid: int, _codes: Any, _props: Any) -> None:
        self._inbox.suback(mid)

    def _cb_message(self, _c: paho.Client, _ud: object, msg: paho.MQTTMessage) -> None:
        self._paho_ident = threading.get_ident()
        self._inbox.deliver(msg.topic, bytes(msg.payload), bool(msg.retain))

    # ------------------------------------------------------------------ called by the supervisor
    def _established(self, client: paho.Client, sub_mid: int | None) -> None:
        s = self._settings
        with self._ready_cond:
            self._client = client
            self._connects += 1
            n = self._connects
            # "Connected" promises that commands are heard: wait for the SUBACK (bounded).
            if sub_mid is not None and not self._inbox.wait_suback(sub_mid, s.connect_timeout_s):
                log.warning("mqtt.subscribe.slow no SUBACK within %.1fs", s.connect_timeout_s)
            self._inbox.forget_subacks()
        log.info("mqtt.connected host=%s port=%s connects=%d", s.host, s.port, n)
        # `online` first and acknowledged (bounded), then "ready"; the owner's on_connect then
        # republishes its retained state.
        deadline = time.monotonic() + s.connect_timeout_s
        infos = [client.publish(s.will_topic, b"online", qos=s.qos, retain=True)] if s.will_topic else []
        await_acks(infos, deadline)
        with self._ready_cond:
            self._ready = True
            self._last_error = None
            self._ready_cond.notify_all()
        if self._on_connect is not None:
            try:
                self._on_connect()
            except Exception:
                log.exception("mqtt.on_connect.failed")

    def _lost(self, client: paho.Client, was_up: bool, reason: str) -> None:
        with self._lock:
            self._ready = False
            if self._client is client:
                self._client = None
            self._outbox.connection_lost()
        if was_up and not self._supervisor.stopping:
            self._note_error(f"connection lost: {reason}")
            log.warning("mqtt.disconnected reason=%s", reason)
            if self._on_disconnect is not None:
                try:
                    self._on_disconnect()
                except Exception:
                    log.exception("mqtt.on_disconnect.failed")

    def _note_error(self, message: str) -> None:
        with self._lock:
            self._last_error = message
