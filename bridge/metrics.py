"""Prometheus metrics of the bridge (README, "Operations", ``/metrics``).

Each `Metrics` owns a private `CollectorRegistry`, so several bridges (or tests) in one process
never collide on metric names. prometheus-client is thread-safe, so the CWA poll thread, paho's
network thread and the HTTP server may all touch one instance.

No per-user labels anywhere: the watch list can be long and changes with the config, and a
presence dashboard belongs on MQTT, not in a time-series database. Every label value is also
capped in length and in number of distinct values (`_LabelGuard`), because a label fed from a
server-side string must not be able to grow the exposition without bound.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder

from bridge import __version__

PREFIX = "cwa2mqtt"

# Known label values are pre-created so their series exist (at 0) from the start: a rate() or an
# alert on a series that appears only after the first error misses that first error.
KNOWN_EVENT_KINDS: tuple[str, ...] = (
    "user_presence",
    "self_presence",
    "subscription_state",
    "session",
    "contact_group",
    "command",
)
KNOWN_PUBLISH_KINDS: tuple[str, ...] = ("presence",)
KNOWN_COMMAND_OPS: tuple[str, ...] = ("self/set", "refresh", "health_check", "lights")
COMMAND_STATUSES: tuple[str, ...] = ("ok", "error")
KNOWN_CWA_ERROR_KINDS: tuple[str, ...] = (
    "auth_rejected",
    "ticket_expired",
    "session_gone",
    "throttled",
    "unavailable",
    "command_failed",
    "protocol",
)

# Data-channel answers come at once or after the server's hold time (up to ~90 s, docs/protocol.md
# §4.4; the bridge's deadline is cwa.poll_timeout_s), so the poll buckets reach past that; publishes
# are sub-second.
POLL_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 90, 120, float("inf"))
PUBLISH_BUCKETS: tuple[float, ...] = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    float("inf"),
)

MAX_LABEL_LENGTH = 64
MAX_LABEL_VALUES = 32
OTHER = "other"


class _LabelGuard:
    """Bounds the distinct values one label may take; the overflow is counted under ``other``."""

    def __init__(self, known: tuple[str, ...]) -> None:
        self._seen: set[str] = set(known)
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        value = (value or "").strip()[:MAX_LABEL_LENGTH] or "unknown"
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) >= MAX_LABEL_VALUES:
                return OTHER
            self._seen.add(value)
            return value


class Metrics:
    """All metrics of one bridge. Method names say what happened; they never raise."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._gauge_source: Callable[[], tuple[int, bool, bool]] | None = None
        registry = self.registry
        # CPU, memory, open fds and start time of this process: the usual first look when a
        # long-running bridge misbehaves. Registered on the private registry (no global state).
        ProcessCollector(registry=registry)

        self._build = Info(f"{PREFIX}_build", "Version of the running bridge.", registry=registry)
        self._build.info({"version": __version__})

        self._events = Counter(
            f"{PREFIX}_events_received",
            "CWA data-channel events received, by event type.",
            ["kind"],
            registry=registry,
        )
        self._publishes = Counter(
            f"{PREFIX}_presence_published",
            "Presence changes published to MQTT (user or self).",
            ["kind"],
            registry=registry,
        )
        self._commands = Counter(
            f"{PREFIX}_command_results",
            "Results of MQTT commands and requests, by operation and outcome.",
            ["op", "status"],
            registry=registry,
        )
        self._cwa_errors = Counter(
            f"{PREFIX}_cwa_errors",
            "Errors talking to CWA, by kind (errors.CwaError.kind, 'protocol' for malformed XML).",
            ["kind"],
            registry=registry,
        )
        self._poll_latency = Histogram(
            f"{PREFIX}_poll_latency_seconds",
            "Data-channel request to response time, including the server's hold time.",
            buckets=POLL_BUCKETS,
            registry=registry,
        )
        self._event_to_publish = Histogram(
            f"{PREFIX}_event_to_publish_seconds",
            "Data-channel response received to MQTT publish acknowledged.",
            buckets=PUBLISH_BUCKETS,
            registry=registry,
        )
        self._session_restarts = Counter(
            f"{PREFIX}_session_restarts", "CWA sessions started again after a failure.", registry=registry
        )
        self._resync_corrections = Counter(
            f"{PREFIX}_resync_corrections",
            "Users whose presence a periodic resync found different from what CWA had pushed.",
            registry=registry,
        )
        self._mqtt_reconnects = Counter(
            f"{PREFIX}_mqtt_reconnects",
            "Reconnects to the MQTT broker after a lost connection.",
            registry=registry,
        )
        self._light_failures = Counter(
            f"{PREFIX}_light_delivery_failures",
            "Failed requests to http lights (each attempt, retries included), by light.",
            ["light"],
            registry=registry,
        )
        self._watched = Gauge(
            f"{PREFIX}_watched_users", "Users whose presence is bridged.", registry=registry
        )
        self._cwa_online = Gauge(
            f"{PREFIX}_cwa_online", "1 while a CWA session is established.", registry=registry
        )
        self._mqtt_connected = Gauge(
            f"{PREFIX}_mqtt_connected", "1 while connected to the MQTT broker.", registry=registry
        )

        self._event_kind = _LabelGuard(KNOWN_EVENT_KINDS)
        self._publish_kind = _LabelGuard(KNOWN_PUBLISH_KINDS)
        self._op = _LabelGuard(KNOWN_COMMAND_OPS)
        self._error_kind = _LabelGuard(KNOWN_CWA_ERROR_KINDS)
        for kind in KNOWN_EVENT_KINDS:
            self._events.labels(kind=kind)
        for kind in KNOWN_PUBLISH_KINDS:
            self._publishes.labels(kind=kind)
        for op in KNOWN_COMMAND_OPS:
            for status in COMMAND_STATUSES:
                self._commands.labels(op=op, status=status)
        for kind in KNOWN_CWA_ERROR_KINDS:
            self._cwa_errors.labels(kind=kind)

    def events_received(self, kind: str, count: int = 1) -> None:
        """``kind`` is the event type, e.g. ``user_presence``, ``self_presence``, ``subscription_state``."""
        if count > 0:
            self._events.labels(kind=self._event_kind(kind)).inc(count)

    def publishes(self, kind: str = "presence") -> None:
        """One presence change published; ``kind`` is a payload kind (``presence``), never a user id."""
        self._publishes.labels(kind=self._publish_kind(kind)).inc()

    def command_result(self, op: str, status: str) -> None:
        """``op``: ``self/set``, ``refresh``, ``health_check``, ``lights``; ``status``: ``ok``/``error``."""
        outcome = status if status in COMMAND_STATUSES else "error"
        self._commands.labels(op=self._op(op), status=outcome).inc()

    def cwa_error(self, kind: str) -> None:
        """``kind`` is `errors.CwaError.kind`, or ``protocol`` for a malformed body
        (README, "How it behaves toward CWA")."""
        self._cwa_errors.labels(kind=self._error_kind(kind)).inc()

    def observe_poll_latency(self, seconds: float) -> None:
        self._poll_latency.observe(max(0.0, seconds))

    def observe_event_to_publish(self, seconds: float) -> None:
        self._event_to_publish.observe(max(0.0, seconds))

    def resync_correction(self) -> None:
        self._resync_corrections.inc()

    def session_restart(self) -> None:
        self._session_restarts.inc()

    def mqtt_reconnect(self) -> None:
        self._mqtt_reconnects.inc()

    def light_failure(self, light: str) -> None:
        """One failed attempt to reach an http light (the label set is bounded by the config)."""
        self._light_failures.labels(light=light).inc()

    def set_gauges(self, watched: int, cwa_online: bool, mqtt_connected: bool) -> None:
        self._watched.set(watched)
        self._cwa_online.set(1 if cwa_online else 0)
        self._mqtt_connected.set(1 if mqtt_connected else 0)

    def gauges_from(self, source: Callable[[], tuple[int, bool, bool]]) -> None:
        """Read the gauges from ``source`` at every scrape, so they are never stale."""
        self._gauge_source = source

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition and its content type; OpenMetrics when ``accept`` asks for it."""
        if self._gauge_source is not None:
            self.set_gauges(*self._gauge_source())
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
