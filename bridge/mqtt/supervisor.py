"""The MQTT supervisor thread: connection attempts, one connection's events, back-off.

Each attempt builds a fresh paho ``Client`` (`bridge.mqtt.paho_glue.new_client`), connects it
(blocking, bounded by ``connect_timeout_s``) and starts paho's own network thread with
``loop_start()``. When the connection ends the supervisor stops that thread, drops the client and
waits a capped, jittered, exponential back-off before the next attempt (the application owns
reconnecting, per docs/architecture.md).

paho's callbacks only `post` events here; what a connect or a loss means for the publisher's
state is the publisher's business (``on_established`` / ``on_lost``, called from this thread).
Events of a client that is no longer current, and duplicates, are ignored.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho

# The publisher's logger: the MQTT adapter logs under one name (the JSON format shows it).
from bridge.backoff import BackoffPolicy
from bridge.mqtt.paho_glue import TlsContext, dispose
from bridge.mqtt.settings import MqttSettings

log = logging.getLogger("bridge.mqtt.publisher")

STOP_ACK_TIMEOUT_S = 2.0
_TICK_S = 0.5  # how often the supervisor re-checks for a stop request while idle


class Supervisor:
    def __init__(
        self,
        settings: MqttSettings,
        *,
        new_client: Callable[[], tuple[paho.Client, TlsContext | None]],
        on_established: Callable[[paho.Client, int | None], None],
        on_lost: Callable[[paho.Client, bool, str], None],
        on_error: Callable[[str], None],
        progress: Callable[[float | None], None] | None = None,
    ) -> None:
        self._settings = settings
        # Liveness: called on every wake-up, and before a step that may take long with its bound.
        self._progress = progress or (lambda within_s: None)
        self._new_client = new_client
        self._on_established = on_established
        self._on_lost = on_lost
        self._on_error = on_error
        # paho's callbacks post a handful of events per connection attempt (connected, refused,
        # lost, subscribed) and the supervisor takes them at once: no bound needed beyond that.
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name="mqtt-supervisor", daemon=True)
        self._thread.start()

    def post(self, kind: str, data: Any) -> None:
        """Called from paho's callbacks: ``connected``, ``refused`` or ``lost`` with (client, detail)."""
        self._events.put((kind, data))

    def begin_stop(self) -> None:
        """No further attempts; the current connection lives on until `finish_stop`."""
        self._stopping.set()

    def finish_stop(self) -> None:
        """Disconnect (if still connected) and wait, bounded, for the thread to end."""
        self._events.put(("stop", None))
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._settings.connect_timeout_s + STOP_ACK_TIMEOUT_S)
            if thread.is_alive():
                log.warning("mqtt.stop.timeout the supervisor did not end in time")

    def _supervise(self) -> None:
        policy = BackoffPolicy(self._settings.reconnect_min_s, self._settings.reconnect_max_s)
        rng = random.Random()  # noqa: S311 - jitter, not crypto
        attempt = 0
        while not self._stopping.is_set():
            attempt += 1
            delay = policy.delay(attempt, rng)
            client, tls = self._new_client()
            self._progress(self._settings.connect_timeout_s + 10.0)
            try:
                client.connect(self._settings.host, self._settings.port, self._settings.keepalive_s)
            except (OSError, ValueError) as exc:
                if tls is not None:
                    tls.close_last()
                s = self._settings
                self._on_error(f"connect failed: {type(exc).__name__}: {exc}")
                log.warning(
                    "mqtt.connect_failed error=%s: %s host=%s port=%s retry_in=%.1fs",
                    type(exc).__name__,
                    exc,
                    s.host,
                    s.port,
                    delay,
                )
            else:
                client.loop_start()
                if self._stopping.is_set():
                    client.disconnect()
                was_up = self._serve(client)
                client.loop_stop()
                dispose(client)
                if was_up:
                    attempt, delay = 0, policy.delay(1, rng)
            if self._stopping.is_set():
                break
            self._progress(delay + 10.0)
            self._stopping.wait(delay)

    def _serve(self, client: paho.Client) -> bool:
        """Handle one connection's events until it ends; True if it was established."""
        was_up = False
        while True:
            self._progress(self._settings.connect_timeout_s + 10.0)  # `connected` handling may wait that long
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
                self._on_established(client, data[1])
            elif kind == "refused":
                self._on_error(f"broker refused the connection: {data[1]}")
                log.error("mqtt.refused reason=%s", data[1])
            elif kind == "lost":
                self._on_lost(client, was_up, data[1])
                return was_up
