"""The MQTT adapter: one paho-mqtt 2.x client, reconnecting, thread-safe, bounded.

Theory of operation
-------------------
A *supervisor* thread owns the connection. Each attempt builds a fresh paho ``Client`` (will,
credentials, TLS), connects it (blocking, bounded by ``connect_timeout``) and starts paho's own
network thread with ``loop_start()``; the client is created with ``reconnect_on_failure=False``
so paho never reconnects by itself. When the connection ends the supervisor stops that thread,
drops the client and waits a capped, jittered, exponential back-off before the next attempt
(the application owns reconnecting, per ARCHITECTURE.md). A fresh client per connection also
means paho never replays a stale queued publish after a newer one: this module keeps the
"what must reach the broker" state itself.

Paho callbacks stay dumb: they only enqueue an event for the supervisor (connect, refuse,
loss), subscribe (so a reconnect never leaves the bridge deaf) or hand a message on. They may
fire twice; every handler is idempotent and ignores events of a client that is no longer current.

After each connect the supervisor, in this order: waits for the SUBACK of the command
subscriptions, publishes ``online`` on ``will_topic``, flushes the retained publishes made while
away (latest payload per topic only), waits (bounded by ``connect_timeout_s``) for their acks,
marks the publisher connected, then calls ``on_connect`` -- from the supervisor thread, not paho's, so
``on_connect`` may use `publish_and_wait` and `read_retained`. ``on_message`` is called from
paho's network thread and must not wait for acks (doing so raises RuntimeError).

While away, retained publishes are kept as the latest payload per topic; non-retained ones are
dropped and counted in `dropped`. Retained publishes that were not yet acknowledged when the
connection dropped are sent again after the reconnect unless a newer payload superseded them.
Messages that arrive with the retain flag (stored messages replayed at subscribe time, e.g. a
command someone published retained) are not passed to ``on_message`` unless
``deliver_retained`` is set: an old command must not be re-executed on every reconnect.

Locking: ``_lock`` guards this module's small state and is never held while calling into paho,
so a paho thread waiting on it can never deadlock with a caller waiting inside paho.
"""

from __future__ import annotations

import logging
import queue
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from bridge.errors import MqttError
from bridge.mqtt.topics import validate_publish_topic

log = logging.getLogger(__name__)

MAX_QUEUED_MESSAGES = 5000  # paho's queue of unacknowledged QoS>0 publishes, per connection
# Publishers wait for acks once this many QoS>0 publishes are in flight, instead of letting paho's
# full queue drop one (a dropped retained publish would leave a stale state at the broker for good).
BACKPRESSURE_AT = MAX_QUEUED_MESSAGES - 500
# paho's own in-flight limit: 0 = none, so `BACKPRESSURE_AT` is the window. With a limit, paho
# queues the excess and scans its whole queue on every PUBACK (`_update_inflight`), so a burst
# costs O(queued) per ack: the default 20 gave ~6,000 msg/s against ~11,000 with none, measured.
MAX_INFLIGHT_MESSAGES = 0
# With QoS 2 the broker holds each incoming message until PUBREL and caps how many (mosquitto's
# max_inflight_messages, default 20; beyond it the flow stalled for good, tests/test_lights_e2e.py),
# so paho's default stays. Chosen by the configured QoS: the bridge never overrides it per publish.
QOS2_INFLIGHT_MESSAGES = 20
STOP_ACK_TIMEOUT_S = 2.0
_TICK_S = 0.5  # how often the supervisor re-checks for a stop request while idle


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int = 1883
    tls: bool = False
    ca_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    client_id: str = "cwa2mqtt"
    keepalive_s: int = 60
    qos: int = 1
    will_topic: str = ""
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    connect_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("MQTT host is empty")
        if self.qos not in (0, 1, 2):
            raise ValueError(f"MQTT qos must be 0, 1 or 2, got {self.qos}")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise ValueError("need 0 < reconnect_min_s <= reconnect_max_s")

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> MqttSettings:
        """``mqtt://host[:port]`` (1883) or ``mqtts://host[:port]`` (8883, TLS); keywords override.

        User info in the URL (``mqtt://user:pass@host``) is used when ``username``/``password``
        are not given; it is never logged.
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError("invalid MQTT URL (expected mqtt://host[:port] or mqtts://host[:port])") from exc
        scheme = parts.scheme.lower()
        if scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("invalid MQTT URL (expected mqtt://host[:port] or mqtts://host[:port])")
        tls = scheme == "mqtts"
        values: dict[str, Any] = {"host": parts.hostname, "port": port or (8883 if tls else 1883), "tls": tls}
        if parts.username:
            values["username"] = unquote(parts.username)
        if parts.password:
            values["password"] = unquote(parts.password)
        values.update({k: v for k, v in kw.items() if v is not None})
        return cls(**values)


def translate(rc: int, action: str) -> MqttError:
    """The one place where paho return codes become `MqttError`."""
    return MqttError(f"MQTT {action} failed: {paho.error_string(rc)}", rc=int(rc))


class MqttPublisher:
    def __init__(
        self,
        settings: MqttSettings,
        *,
        subscriptions: Sequence[str],
        on_message: Callable[[str, bytes], None],
        on_connect: Callable[[], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
        deliver_retained: bool = False,
    ) -> None:
        self._settings = settings
        self._subscriptions = list(subscriptions)
        self._on_message = on_message
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._deliver_retained = deliver_retained
        self._lock = threading.Lock()
        self._ready_cond = threading.Condition(self._lock)
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # --- guarded by _lock
        self._client: paho.Client | None = None
        self._ready = False
        self._pending: dict[str, tuple[bytes, int]] = {}  # retained, made while away: latest per topic
        self._unacked: dict[str, tuple[paho.MQTTMessageInfo, bytes, int]] = {}  # retained in flight
        # QoS>0 publishes, oldest first, with the topic of a retained one (its `_unacked` entry goes
        # when it is acked: kept, 100,000 start-up topics held ~1.6 KB each for good, ~150 MB)
        self._window: deque[tuple[paho.MQTTMessageInfo, str | None]] = deque()
        self._collectors: list[_Collector] = []
        self._subacks: set[int] = set()
        self._connects = 0
        self._dropped = 0
        self._last_error: str | None = None
        self._paho_ident: int | None = None
        self._tls: _TlsContext | None = None

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
            return self._dropped

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
        if self._thread is not None:
            raise RuntimeError("MqttPublisher.start() called twice")
        s = self._settings
        log.info("mqtt.start host=%s port=%s tls=%s client_id=%s", s.host, s.port, s.tls, s.client_id)
        self._thread = threading.Thread(target=self._supervise, name="mqtt-supervisor", daemon=True)
        self._thread.start()
        if wait_s is not None:
            self.wait_connected(wait_s)

    def stop(self, final: Sequence[tuple[str, bytes]] = ()) -> None:
        """Publish ``final`` (retained, e.g. ``offline``), wait briefly for their acks, disconnect cleanly.

        A clean disconnect means the broker does not send the last will; ``final`` says it instead.
        """
        self._stopping.set()
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
        self._events.put(("stop", None))
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._settings.connect_timeout_s + STOP_ACK_TIMEOUT_S)
            if thread.is_alive():
                log.warning("mqtt.stop.timeout the supervisor did not end in time")
        log.info("mqtt.stopped")

    # ------------------------------------------------------------------ publishing
    def publish(
        self, topic: str, payload: bytes | str, *, retain: bool = True, qos: int | None = None
    ) -> None:
        """Publish now, or remember it (retained: latest per topic) / drop it (non-retained) while away."""
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
                self._keep_while_away(topic, data, retain, qos)
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
                self._dropped += 1
                log.warning("mqtt.dropped reason=queue_full topic=%s", topic)
                return None
            if rc == MQTTErrorCode.MQTT_ERR_NO_CONN or client is not self._client or not self._ready:
                # The connection ended under us: the supervisor may already have collected the
                # unacknowledged messages, so keep this one ourselves.
                self._keep_while_away(topic, data, retain, qos)
                return None
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise translate(rc, f"publish to {topic!r}")
            if retain and qos > 0:
                self._unacked[topic] = (info, data, qos)
            if qos > 0:
                self._window.append((info, topic if retain else None))
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
                window = self._window
                while window and window[0][0].is_published():
                    self._forget_acked(*window.popleft())
                if len(window) < BACKPRESSURE_AT:
                    return
                if time.monotonic() >= deadline:  # the broker stopped acking: fall back to paho's limit
                    window.clear()
                    return
                oldest = window[0]
            try:
                oldest[0].wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                with self._lock:
                    if window and window[0] is oldest:
                        window.popleft()

    def _forget_acked(self, info: paho.MQTTMessageInfo, topic: str | None) -> None:
        """Called with ``_lock`` held: an acknowledged retained publish needs no resending."""
        if topic is not None:
            kept = self._unacked.get(topic)
            if kept is not None and kept[0] is info:
                del self._unacked[topic]

    def _keep_while_away(self, topic: str, data: bytes, retain: bool, qos: int) -> None:
        """Called with ``_lock`` held."""
        if retain:
            self._pending[topic] = (data, qos)
        else:
            self._dropped += 1
            log.debug("mqtt.dropped reason=disconnected topic=%s", topic)

    # ------------------------------------------------------------------ reading retained state
    def read_retained(
        self, topic_filters: Sequence[str], quiet_s: float = 0.3, timeout_s: float = 3.0
    ) -> dict[str, bytes]:
        """Subscribe, collect retained messages until none arrived for ``quiet_s``, unsubscribe.

        Raises `MqttError` when not connected (an empty answer would look like "nothing retained").
        """
        self._refuse_on_paho_thread("read_retained")
        with self._lock:
            client = self._client if self._ready else None
        if client is None:
            raise MqttError("MQTT read_retained: not connected")
        collector = _Collector(list(topic_filters))
        deadline = time.monotonic() + timeout_s
        with self._lock:
            self._collectors.append(collector)
        try:
            rc, mid = client.subscribe([(f, self._settings.qos) for f in topic_filters])
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise translate(rc, "subscribe")
            with self._ready_cond:
                self._ready_cond.wait_for(
                    lambda: mid in self._subacks, timeout=max(0.0, deadline - time.monotonic())
                )
                self._subacks.discard(mid)
                seen = -1
                while seen != collector.count and time.monotonic() < deadline:
                    seen = collector.count
                    self._ready_cond.wait(min(quiet_s, max(0.0, deadline - time.monotonic())))
        finally:
            with self._lock:
                self._collectors.remove(collector)
            extra = [f for f in topic_filters if f not in self._subscriptions]
            if extra:
                client.unsubscribe(extra)
        return dict(collector.messages)

    def _refuse_on_paho_thread(self, what: str) -> None:
        if threading.get_ident() == self._paho_ident:
            raise RuntimeError(f"{what} would wait for the thread that delivers the acknowledgement")

    # ------------------------------------------------------------------ paho callbacks (dumb)
    def _cb_connect(self, client: paho.Client, _ud: object, _flags: Any, reason: Any, _props: Any) -> None:
        self._paho_ident = threading.get_ident()
        if reason.is_failure:
            self._events.put(("refused", (client, str(reason))))
            return
        mid = None
        if self._subscriptions:
            _rc, mid = client.subscribe([(t, self._settings.qos) for t in self._subscriptions])
        self._events.put(("connected", (client, mid)))

    def _cb_disconnect(self, client: paho.Client, _ud: object, _flags: Any, reason: Any, _props: Any) -> None:
        self._events.put(("lost", (client, str(reason))))

    def _cb_subscribe(self, _c: paho.Client, _ud: object, mid: int, _codes: Any, _props: Any) -> None:
        with self._ready_cond:
            self._subacks.add(mid)
            self._ready_cond.notify_all()

    def _cb_message(self, _c: paho.Client, _ud: object, msg: paho.MQTTMessage) -> None:
        self._paho_ident = threading.get_ident()
        topic, payload, retained = msg.topic, bytes(msg.payload), bool(msg.retain)
        if retained:
            with self._ready_cond:
                hits = [c for c in self._collectors if c.matches(topic)]
                for c in hits:
                    c.add(topic, payload)
                if hits:
                    self._ready_cond.notify_all()
            if not self._deliver_retained:
                if not hits:
                    log.debug("mqtt.retained_ignored topic=%s", topic)
                return
        if not any(paho.topic_matches_sub(s, topic) for s in self._subscriptions):
            return
        try:
            self._on_message(topic, payload)
        except Exception:  # a handler bug must not kill paho's network thread
            log.exception("mqtt.on_message.failed topic=%s", topic)

    # ------------------------------------------------------------------ supervisor thread
    def _new_client(self) -> paho.Client:
        s = self._settings
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            clean_session=True,
            reconnect_on_failure=False,
        )
        client.connect_timeout = s.connect_timeout_s
        client.max_queued_messages_set(MAX_QUEUED_MESSAGES)
        client.max_inflight_messages_set(MAX_INFLIGHT_MESSAGES if s.qos < 2 else QOS2_INFLIGHT_MESSAGES)
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            self._tls = _TlsContext.for_ca(s.ca_file)  # one per attempt, used by the supervisor only
            client.tls_set_context(self._tls)
        if s.will_topic:
            client.will_set(s.will_topic, b"offline", qos=s.qos, retain=True)
        client.on_connect = self._cb_connect
        client.on_disconnect = self._cb_disconnect
        client.on_subscribe = self._cb_subscribe
        client.on_message = self._cb_message
        return client

    def _supervise(self) -> None:
        delay = self._settings.reconnect_min_s
        while not self._stopping.is_set():
            client = self._new_client()
            try:
                client.connect(self._settings.host, self._settings.port, self._settings.keepalive_s)
            except (OSError, ValueError) as exc:
                if self._tls is not None:
                    self._tls.close_last()
                self._note_error(f"connect failed: {type(exc).__name__}: {exc}")
                log.warning("mqtt.connect_failed error=%s retry_in=%.1fs", type(exc).__name__, delay)
            else:
                client.loop_start()
                if self._stopping.is_set():
                    client.disconnect()
                was_up = self._serve(client)
                client.loop_stop()
                _dispose(client)
                if was_up:
                    delay = self._settings.reconnect_min_s
            if self._stopping.is_set():
                break
            # Capped exponential back-off with jitter: between half and all of the current delay.
            self._stopping.wait(random.uniform(delay / 2, delay))  # noqa: S311 - jitter, not crypto
            delay = min(delay * 2, self._settings.reconnect_max_s)

    def _serve(self, client: paho.Client) -> bool:
        """Handle one connection's events until it ends; True if it was established."""
        was_up = False
        while True:
            try:
                kind, data = self._events.get(timeout=_TICK_S)
            except queue.Empty:
                if self._stopping.is_set() and not was_up:
                    client.disconnect()
                    return was_up
                continue
            if kind == "stop":
                client.disconnect()  # idempotent: stop() may have sent DISCONNECT already
                return was_up
            subject = data[0] if isinstance(data, tuple) else data
            if subject is not client:
                continue  # an event of an earlier connection, or a duplicate
            if kind == "connected" and not was_up:
                was_up = True
                self._established(client, data[1])
            elif kind == "refused":
                self._note_error(f"broker refused the connection: {data[1]}")
                log.error("mqtt.refused reason=%s", data[1])
            elif kind == "lost":
                self._lost(client, was_up, data[1])
                return was_up

    def _established(self, client: paho.Client, sub_mid: int | None) -> None:
        s = self._settings
        with self._ready_cond:
            self._client = client
            self._connects += 1
            n = self._connects
            # "Connected" promises that commands are heard: wait for the SUBACK (bounded).
            if sub_mid is not None and not self._ready_cond.wait_for(
                lambda: sub_mid in self._subacks, timeout=s.connect_timeout_s
            ):
                log.warning("mqtt.subscribe.slow no SUBACK within %.1fs", s.connect_timeout_s)
            self._subacks.clear()
        log.info("mqtt.connected host=%s port=%s connects=%d", s.host, s.port, n)
        # `online`, then what was published while away, in batches until nothing new arrived
        # meanwhile; only then go "ready", so a concurrent publish is never overtaken by an older
        # value. Waiting (bounded) for the acks makes "connected" mean "the broker has our state".
        deadline = time.monotonic() + s.connect_timeout_s
        infos = [client.publish(s.will_topic, b"online", qos=s.qos, retain=True)] if s.will_topic else []
        while True:
            _await_acks(infos, deadline)
            infos = []
            with self._ready_cond:
                batch, self._pending = self._pending, {}
                if not batch:
                    self._ready = True
                    self._last_error = None
                    self._ready_cond.notify_all()
                    break
            for topic, (data, qos) in batch.items():
                info = client.publish(topic, data, qos=qos, retain=True)
                infos.append(info)
                if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS and qos > 0:
                    with self._lock:
                        self._unacked[topic] = (info, data, qos)
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
            for topic, (info, data, qos) in self._unacked.items():
                if not info.is_published():
                    self._pending.setdefault(topic, (data, qos))
            self._unacked.clear()
            self._window.clear()
        if was_up and not self._stopping.is_set():
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


class _Collector:
    """Retained messages gathered for one `read_retained` call (guarded by the publisher's lock)."""

    def __init__(self, filters: list[str]) -> None:
        self.filters = filters
        self.messages: dict[str, bytes] = {}
        self.count = 0

    def matches(self, topic: str) -> bool:
        return any(paho.topic_matches_sub(f, topic) for f in self.filters)

    def add(self, topic: str, payload: bytes) -> None:
        self.messages[topic] = payload
        self.count += 1


def _await_acks(infos: list[paho.MQTTMessageInfo], deadline: float) -> None:
    for info in infos:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            info.wait_for_publish(remaining)
        except (RuntimeError, ValueError):  # not queued (no connection, queue full): nothing to wait for
            continue


def _dispose(client: paho.Client) -> None:
    """Close paho's wake-up socket pair now; paho has no public close() and leaves it to the GC."""
    reset = getattr(client, "_reset_sockets", None)
    if callable(reset):
        reset()


class _TlsContext(ssl.SSLContext):
    """A client TLS context that remembers its last socket.

    paho leaves the socket open when the TLS handshake fails (e.g. an unknown CA); the
    supervisor closes it through this context instead of leaking it to the garbage collector.
    """

    last_socket: ssl.SSLSocket | None = None

    @classmethod
    def for_ca(cls, ca_file: str | None) -> _TlsContext:
        ctx = cls(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and the host name
        if ca_file:
            ctx.load_verify_locations(cafile=ca_file)
        else:
            ctx.load_default_certs()
        return ctx

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self.last_socket = super().wrap_socket(*args, **kwargs)
        return self.last_socket

    def close_last(self) -> None:
        if self.last_socket is not None:
            self.last_socket.close()
            self.last_socket = None
