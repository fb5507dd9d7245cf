"""Composition: builds the bridge from `Settings` and runs it (`cwa2mqtt run`, and the demo).

Start order is CWA → MQTT → ready (issue 6): a rejected password stops start-up with exit 77
before anything is published. Stop order is the mirror image of §7.8: `offline` retained on
`bridge/cwa` and `bridge/state`, `terminateSession`, disconnect — all within 5 seconds.
"""

from __future__ import annotations

import gc
import logging
import random
import signal
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import httpx

from bridge import __version__
from bridge.config import Settings
from bridge.cwa.client import CwaClient, CwaClientSettings
from bridge.cwa.codec import DEFAULT_MAX_BYTES
from bridge.cwa.iwa import IWA_MISSING, iwa_available
from bridge.errors import AuthRejected, ConfigError, CwaError, CwaProtocolError
from bridge.http import HttpServer
from bridge.lights.controller import LightController
from bridge.lights.http_sender import HttpLightSender
from bridge.lights.spec import LightSpec
from bridge.metrics import Metrics
from bridge.mqtt.publisher import MqttPublisher, MqttSettings
from bridge.sdnotify import Notifier
from bridge.service import Service, ServiceOptions, WatchSpec

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_AUTH = 77
EXIT_CONFIG = 78
BODY_BYTES_PER_USER = 4096  # data-channel body allowance per watched user, on top of the 4 MiB


def _verify(settings: Settings) -> ssl.SSLContext | bool:
    cwa = settings.cwa
    if not cwa.verify_tls:
        log.warning(
            "cwa.tls_verification_disabled the CWA server's certificate is NOT checked: "
            "anyone on the network path can read the password; use only for testing"
        )
        return False
    if cwa.ca_file:
        return ssl.create_default_context(cafile=str(cwa.ca_file))
    return True


class Bridge:
    """All parts of one running bridge, started and stopped in a symmetric order."""

    def __init__(
        self,
        settings: Settings,
        *,
        backoff_scale: float = 1.0,
        health_grace_s: float | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        # The keyword knobs are for tests: `None` keeps the service's own health grace (120 s) and clock.
        self.settings = settings
        self.metrics = Metrics()
        self.notifier = Notifier()
        self._watchdog_every = (self.notifier.watchdog_interval() or 0.0) / 2
        self._last_watchdog = 0.0
        cwa = settings.cwa
        if cwa.auth == "iwa" and not iwa_available():  # fail at start-up, not at the first sign-in
            raise ConfigError([IWA_MISSING])
        self.http_client = httpx.Client(verify=_verify(settings), follow_redirects=False)
        self.client = CwaClient(
            CwaClientSettings(
                base_url=str(cwa.url),
                username=cwa.username,
                password=cwa.password.get_secret_value(),
                auth=cwa.auth,
                uri=cwa.uri,
                command_path=cwa.command_path,
                data_path=cwa.data_path,
                timeout_s=cwa.timeout_s,
                republish_s=cwa.republish_s,
                initial_availability=cwa.initial_availability,
                watch_contacts=settings.watch_contacts,
                backoff_initial_s=1.0 * backoff_scale,
                backoff_max_s=60.0 * backoff_scale,
                # One data-channel answer carries every queued event (cwa-protocol §4.5): the initial
                # burst of N watched users is ~1 KB each, so a fixed 4 MiB cap made a 10,000-user
                # start fail and restart forever (bench/RESULTS.md). The cap grows with the list.
                max_body_bytes=DEFAULT_MAX_BYTES + BODY_BYTES_PER_USER * len(settings.watch),
            ),
            self.http_client,
            self._on_notice,
            on_metric=self._on_cwa_metric,
        )
        lights = None
        self.light_sender: HttpLightSender | None = None
        if settings.lights:
            specs = [LightSpec.from_config(light) for light in settings.lights]
            lights = LightController(
                specs, settings.priority, clock=clock, base_topic=settings.mqtt.base_topic
            )
            if any(spec.preset == "http" for spec in specs):
                self.light_sender = HttpLightSender(
                    specs,
                    self._on_light_result,
                    on_failure=self.metrics.light_failure,
                    backoff_initial_s=0.5 * backoff_scale,
                    backoff_max_s=30.0 * backoff_scale,
                )
        mqtt = settings.mqtt
        self.service = Service(
            cwa=self.client,
            mqtt=_LatePublisher(self),
            watch=[WatchSpec(w.id, w.uri, w.name) for w in settings.watch],
            options=ServiceOptions(
                base_topic=mqtt.base_topic,
                self_uri=cwa.uri,
                cwa_url=str(cwa.url),
                output=mqtt.output,
                discovery=settings.homeassistant.discovery,
                discovery_prefix=settings.homeassistant.prefix,
                ha_status_topic=settings.homeassistant.status_topic,
                note_max_length=cwa.note_max_length,
                watch_contacts=settings.watch_contacts,
                color_topics=settings.color_topics,
                health_grace_s=(
                    ServiceOptions().health_grace_s if health_grace_s is None else health_grace_s
                ),
            ),
            lights=lights,
            light_sender=self.light_sender,
            metrics=self.metrics,
            # `clock` (tests): one timezone-aware "now" for schedules, override expiry and timestamps.
            clock=clock if clock is not None else _utc_now,
            heartbeat=self._heartbeat,
        )
        self.metrics.gauges_from(self._gauges)  # read at scrape time: never stale
        self.publisher = MqttPublisher(
            MqttSettings.from_url(
                mqtt.url,
                username=mqtt.username,
                password=mqtt.password.get_secret_value() if mqtt.password else None,
                ca_file=str(mqtt.ca_file) if mqtt.ca_file else None,
                client_id=mqtt.client_id,
                keepalive_s=mqtt.keepalive_s,
                qos=mqtt.qos,
                will_topic=f"{mqtt.base_topic}/bridge/state",
            ),
            subscriptions=self.service.subscriptions(),
            on_message=self.service.on_mqtt_message,
            on_connect=self._on_mqtt_connect,
            on_disconnect=self.service.on_mqtt_disconnect,
        )
        self.http: HttpServer | None = None
        if settings.http.port is not None:
            self.http = HttpServer(
                settings.http.host or "127.0.0.1",
                settings.http.port,
                health=self.service.health,
                metrics=self.metrics,
                board=self.service.board,
            )
        self._connected_once = False
        self._backoff_scale = backoff_scale
        self._stopping = threading.Event()
        self._starter: threading.Thread | None = None
        # Set when the bridge must end on its own: EXIT_AUTH when a first sign-in retried in the
        # background is refused (the same verdict as at start-up, §2).
        self.fatal_exit: int | None = None

    # -- callbacks ---------------------------------------------------------------------------

    def _on_notice(self, notice: object) -> None:
        self.service.on_notice(notice)

    def _on_light_result(self, light: str, delivered: bool) -> None:
        self.service.on_light_result(light, delivered)  # the service exists by the time it runs

    def _on_cwa_metric(self, name: str, value: float | str) -> None:
        if name == "poll_latency" and isinstance(value, float):
            self.metrics.observe_poll_latency(value)
        elif name == "error" and isinstance(value, str):
            self.metrics.cwa_error(value)
        elif name == "session_restart":
            self.metrics.session_restart()

    def _on_mqtt_connect(self) -> None:
        if self._connected_once:
            self.metrics.mqtt_reconnect()
        self._connected_once = True
        self.service.on_mqtt_connect()

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if self._watchdog_every and now - self._last_watchdog >= self._watchdog_every:
            self._last_watchdog = now
            self.notifier.watchdog()

    def _gauges(self) -> tuple[int, bool, bool]:
        snap = self.service.snapshot
        watched = sum(1 for e in snap.entries if e[0] != "self")
        return watched, snap.session == "online", self.publisher.connected

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start everything; raises `AuthRejected` when CWA refuses the credentials."""
        if self.http is not None:
            self.http.start()
            log.info("http.listening url=%s", self.http.url)
        try:
            self.client.start()
        except AuthRejected:
            raise
        except (CwaError, CwaProtocolError) as exc:
            # A service that runs for years must not depend on CWA being up when it boots:
            # bridge MQTT now (bridge/cwa stays offline) and keep signing in with back-off.
            log.warning("cwa.unreachable_at_start error=%s; retrying in the background", exc)
            self._starter = threading.Thread(target=self._start_cwa_later, name="cwa-start", daemon=True)
            self._starter.start()
        if self.light_sender is not None:
            self.light_sender.start()
        self.service.start()
        self.publisher.start()

    def _start_cwa_later(self) -> None:
        """Retry the first sign-in with capped, jittered back-off until it works or is refused."""
        delay, cap = 1.0 * self._backoff_scale, 60.0 * self._backoff_scale
        while not self._stopping.wait(random.uniform(0.5 * delay, delay)):  # noqa: S311 - jitter
            try:
                self.client.start()
            except AuthRejected as exc:
                log.error("cwa.credentials_rejected %s", exc)
                self.fatal_exit = EXIT_AUTH
                return
            except (CwaError, CwaProtocolError) as exc:
                log.warning("cwa.start_retry_failed error=%s", exc)
                delay = min(cap, delay * 2)
            else:
                log.info("cwa.started_after_retry")
                return

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.publisher.connected and self.client.state == "online":
                return self.service.drain(max(0.1, deadline - time.monotonic()))
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """The clean stop of §7.8: offline retained, terminateSession, disconnect."""
        self.notifier.stopping()
        self._stopping.set()
        self.service.stop()
        if self.light_sender is not None:
            self.light_sender.stop(timeout=1.0)
        final = self.service.final_messages()
        for topic, payload in final:
            self.publisher.publish_and_wait(topic, payload, retain=True, timeout=1.0)
        self.client.stop(timeout=1.5)
        self.publisher.stop(final=final)
        if self.http is not None:
            self.http.stop()
        self.http_client.close()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _LatePublisher:
    """Lets the service be built before the publisher that needs the service's callbacks."""

    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    @property
    def connected(self) -> bool:
        return bool(self._bridge.publisher.connected)

    def publish(
        self, topic: str, payload: bytes | str, *, retain: bool = True, qos: int | None = None
    ) -> None:
        self._bridge.publisher.publish(topic, payload, retain=retain, qos=qos)

    def read_retained(
        self, topic_filters: Any, quiet_s: float = 0.3, timeout_s: float = 3.0
    ) -> dict[str, bytes]:
        result: dict[str, bytes] = self._bridge.publisher.read_retained(
            topic_filters, quiet_s=quiet_s, timeout_s=timeout_s
        )
        return result


def install_stop_handlers(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM and SIGINT set ``stop``; returns a function restoring the previous handlers."""

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("bridge.stop_requested signal=%s", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def run(settings: Settings) -> int:
    """`cwa2mqtt run`: 0 on a clean stop, 77 when CWA rejects the credentials, 78 when the
    configuration cannot work on this installation (``cwa.auth: iwa`` without pyspnego), 1 on
    anything unexpected."""
    stop = threading.Event()
    restore = install_stop_handlers(stop)
    log.info("bridge.starting version=%s", __version__)
    try:
        bridge = Bridge(settings)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("config.invalid %s", problem)
        restore()
        return EXIT_CONFIG
    except CwaError as exc:
        log.error("bridge.start_failed error=%s", exc)
        restore()
        return EXIT_UNEXPECTED
    try:
        try:
            bridge.start()
        except AuthRejected as exc:
            log.error("cwa.credentials_rejected %s", exc)
            bridge.stop()
            return EXIT_AUTH
        # What exists now (modules, settings, the watch list) lives as long as the process: keep
        # it out of the cyclic GC, whose full passes would otherwise walk it again and again
        # while the start-up burst grows the heap; and collect the young generation every 10,000
        # net allocations, not 700: the burst allocates millions of short-lived objects, nearly
        # none in cycles (bench/NOTES.md, finding 6: GC 2.2-2.9 s -> 0.9-1.4 s of a 10,000-user
        # sync). Here and not in `Bridge.start`: a process hosting many bridges (the tests) keeps
        # Python's defaults.
        gc.collect()
        gc.freeze()
        gc.set_threshold(10_000, 10, 10)
        ready = False
        while not stop.wait(0.2) and bridge.fatal_exit is None:
            if not ready and bridge.publisher.connected and bridge.client.state == "online":
                ready = True
                bridge.notifier.ready("bridging")
                log.info("bridge.ready")
        log.info("bridge.stopping")
        bridge.stop()
        log.info("bridge.stopped")
        return bridge.fatal_exit if bridge.fatal_exit is not None else EXIT_OK
    finally:
        restore()
