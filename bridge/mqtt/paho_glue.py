"""Everything that knows paho-mqtt's quirks: client creation, TLS, return codes, queue limits.

`translate` is the one place where paho return codes become `MqttError`. `new_client` builds the
client the supervisor uses for exactly one connection attempt (paho never reconnects by itself).
"""

from __future__ import annotations

import ssl
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bridge.errors import MqttError
from bridge.mqtt.settings import MqttSettings

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


def translate(rc: int, action: str) -> MqttError:
    """The one place where paho return codes become `MqttError`."""
    return MqttError(f"MQTT {action} failed: {paho.error_string(rc)}", rc=int(rc))


def new_client(
    s: MqttSettings,
    *,
    on_connect: paho.CallbackOnConnect_v2,
    on_disconnect: paho.CallbackOnDisconnect_v2,
    on_subscribe: paho.CallbackOnSubscribe_v2,
    on_message: paho.CallbackOnMessage,
) -> tuple[paho.Client, TlsContext | None]:
    """A fresh client for one connection attempt, and its TLS context (None without TLS).

    A fresh client per connection means paho never replays a stale queued publish after a newer
    one; ``reconnect_on_failure=False`` leaves reconnecting to the application.
    """
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
    tls = None
    if s.tls:
        tls = TlsContext.for_ca(s.ca_file)  # one per attempt, used by the supervisor only
        client.tls_set_context(tls)
    if s.will_topic:
        client.will_set(s.will_topic, b"offline", qos=s.qos, retain=True)
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    return client, tls


def await_acks(infos: list[paho.MQTTMessageInfo], deadline: float) -> None:
    """Wait until each publish is acknowledged or the ``time.monotonic()`` deadline passed."""
    for info in infos:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            info.wait_for_publish(remaining)
        except (RuntimeError, ValueError):  # not queued (no connection, queue full): nothing to wait for
            continue


def dispose(client: paho.Client) -> None:
    """Close paho's wake-up socket pair now; paho has no public close() and leaves it to the GC."""
    reset = getattr(client, "_reset_sockets", None)
    if callable(reset):
        reset()


class TlsContext(ssl.SSLContext):
    """A client TLS context that remembers its last socket.

    paho leaves the socket open when the TLS handshake fails (e.g. an unknown CA); the
    supervisor closes it through this context instead of leaking it to the garbage collector.
    """

    last_socket: ssl.SSLSocket | None = None

    @classmethod
    def for_ca(cls, ca_file: str | None) -> TlsContext:
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
