"""The running bridge: start and stop its parts in a symmetric order (`cwa2mqtt run`, the demo).

Parts are built by `bridge.wiring`. Start order is CWA → service → MQTT → ready: a rejected
password stops start-up with exit 77 before anything is published. Stop order mirrors it: the
service stops taking inputs, `offline` is published retained on `bridge/cwa` and `bridge/state`
(once each), the CWA session is terminated, MQTT disconnects; all within 5 seconds.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from types import FrameType

from bridge import __version__
from bridge.config import Settings
from bridge.errors import (
    EXIT_AUTH,
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_UNEXPECTED,
    AuthRejected,
    ConfigError,
    CwaError,
)
from bridge.wiring import Knobs, build

log = logging.getLogger(__name__)


class Bridge:
    """All parts of one running bridge, started and stopped in a symmetric order."""

    def __init__(
        self,
        settings: Settings,
        *,
        backoff_scale: float = 1.0,
        health_grace_s: float | None = None,
        clock: Callable[[], datetime] | None = None,
        ha_node: str = "cwa2mqtt",
    ) -> None:
        self.settings = settings  # kept for the benches; only `bridge.wiring` reads it
        parts = build(settings, Knobs(backoff_scale, health_grace_s, clock, ha_node))
        self.parts = parts
        self.metrics = parts.metrics
        self.notifier = parts.notifier
        self.http_client = parts.http_client
        self.client = parts.client
        self.publisher = parts.publisher
        self.service = parts.service
        self.http = parts.http
        self.light_sender = parts.light_sender
        self._watchdog_every = (self.notifier.watchdog_interval() or 0.0) / 2
        self._last_watchdog = 0.0
        self._stuck: list[str] = []
        self.service.set_heartbeat(self._heartbeat)

    def _heartbeat(self) -> None:
        """Called by the service loop after every pass: systemd's WATCHDOG=1 goes out only while
        every registered loop (CWA poll and commands, service, MQTT, lights) makes progress, so
        any of them hanging gets the service restarted."""
        now = time.monotonic()
        if not self._watchdog_every or now - self._last_watchdog < self._watchdog_every:
            return
        stuck = self.parts.liveness.stuck()
        if stuck != self._stuck:
            if stuck:
                log.error("bridge.loop_stuck loops=%s watchdog=withheld", ",".join(stuck))
            else:
                log.info("bridge.loops_live watchdog=resumed")
            self._stuck = stuck
        if not stuck:
            self._last_watchdog = now
            self.notifier.watchdog()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start everything; raises `AuthRejected` when CWA refuses the credentials."""
        if self.http is not None:
            self.http.start()
            log.info("http.listening url=%s", self.http.url)
        # Raises AuthRejected when CWA refuses the credentials; a CWA that cannot be reached does
        # not stop the start: MQTT is bridged (bridge/cwa offline) while the client keeps trying.
        self.client.start(keep_trying=True)
        if self.light_sender is not None:
            self.light_sender.start()
        self.service.start()
        self.publisher.start()

    @property
    def fatal_exit(self) -> int | None:
        """Set when the bridge must end on its own: EXIT_AUTH when CWA, once reached, refuses the
        credentials before any session (the same verdict as at start-up)."""
        return EXIT_AUTH if self.client.refused_before_online else None

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.publisher.connected and self.client.state == "online":
                return self.service.drain(max(0.1, deadline - time.monotonic()))
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """The clean stop: offline retained (once each), terminateSession, disconnect."""
        self.notifier.stopping()
        self.service.stop()
        if self.light_sender is not None:
            self.light_sender.stop(timeout=1.0)
        final = self.service.final_messages()
        for topic, payload in final:
            self.publisher.publish_and_wait(topic, payload, retain=True, timeout=1.0)
        self.client.stop(timeout=1.5)
        self.publisher.stop()  # `final` went out above, once: a clean disconnect sends no will
        if self.http is not None:
            self.http.stop()
        self.http_client.close()


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
        except ConfigError as exc:  # e.g. http.listen on a busy port
            log.error("config.invalid %s", "; ".join(exc.problems))
            bridge.stop()
            return EXIT_CONFIG
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
        ready, fatal = False, None
        while not stop.wait(0.2) and (fatal := bridge.fatal_exit) is None:
            if not ready and bridge.publisher.connected and bridge.client.state == "online":
                ready = True
                bridge.notifier.ready("bridging")
                log.info("bridge.ready")
        if fatal == EXIT_AUTH:
            log.error("cwa.credentials_rejected CWA refused the credentials before any session")
        log.info("bridge.stopping")
        bridge.stop()
        log.info("bridge.stopped")
        return fatal if fatal is not None else EXIT_OK
    finally:
        restore()
