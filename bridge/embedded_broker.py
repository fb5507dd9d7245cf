"""An MQTT broker inside the process, for `cwa2mqtt demo` without ``--mqtt-url``
(README, "Quick start" and "Operations").

amqtt (asyncio) runs on its own event loop in one daemon thread, so the rest of the bridge stays
synchronous and talks to it over loopback like to any broker::

    with EmbeddedBroker() as broker:        # 127.0.0.1, a free port
        run_bridge(mqtt_url=broker.url)     # "mqtt://127.0.0.1:40813"

Anonymous access, retained messages, QoS 0/1 and last wills (published by amqtt when a client
drops without DISCONNECT); everything lives in memory and is gone after `stop`. The only plugin is
anonymous authentication: amqtt's defaults add packet/event loggers and ``$SYS`` topics, which a
demo does not need. amqtt is an optional dependency (``cwa2mqtt[demo]``); it is imported on
`start`, so importing this module never fails.

One amqtt bug is worked around (`_filtered`): amqtt 0.12 sends a client that connects the
retained messages matching *every* client's subscriptions, before it has subscribed to anything
(a subscriber to ``nothing/here`` got the bridge's ``cwa2mqtt/...`` state). Here a client gets a
retained message only for a filter it subscribed to itself, matched by `topic_matches`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import threading
import warnings
from types import TracebackType
from typing import Any, Self

from bridge.errors import BridgeError

log = logging.getLogger(__name__)

MISSING_AMQTT = (
    "the embedded broker needs the optional dependency amqtt: pip install 'cwa2mqtt[demo]'"
    " — or pass --mqtt-url"
)
# amqtt logs every connection and its state machine library (`transitions`) every callback at INFO.
_CHATTY_LOGGERS = ("amqtt", "transitions")
# A free port is found by binding port 0 and closing again, so another process may take it before
# amqtt binds; with an automatic port that is simply retried.
_BIND_ATTEMPTS = 3


class EmbeddedBroker:
    """An amqtt broker on ``host`` (loopback by default); ``port=0`` picks a free port on `start`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._run: _Run | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"EmbeddedBroker({self.host!r}, port={self._port or self._requested_port}, {state})"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def port(self) -> int:
        """The port it listens on; only known once started."""
        if self._port is None:
            raise BridgeError("the embedded broker has not been started")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtt://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Bind and serve; returns once clients can connect. Raises `BridgeError` if it cannot."""
        if self.running:
            return
        broker_class = _import_amqtt()
        _quiet_amqtt_logging()
        attempts = _BIND_ATTEMPTS if self._requested_port == 0 else 1
        for attempt in range(1, attempts + 1):
            port = self._requested_port or _free_port(self.host)
            error = self._start_thread(broker_class, port, timeout)
            if error is None:
                self._port = port
                log.info("embedded_broker.started url=%s", self.url)
                return
            if not _address_in_use(error) or attempt == attempts:
                raise BridgeError(f"the embedded MQTT broker could not start on {self.host}:{port}: {error}")
            log.debug("embedded_broker.port_taken port=%d attempt=%d", port, attempt)

    def stop(self, timeout: float = 5.0) -> None:
        """Shut amqtt down (clients are disconnected, retained messages dropped), join the thread."""
        thread, run = self._thread, self._run
        self._thread = self._run = None
        if thread is None or run is None:
            return
        run.request_stop()
        thread.join(timeout)
        if thread.is_alive():
            log.warning("embedded_broker.stop_timeout timeout=%.1fs", timeout)
        else:
            log.info("embedded_broker.stopped")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _start_thread(self, broker_class: Any, port: int, timeout: float) -> BaseException | None:
        """Run the loop thread until the broker listens; the start-up error, or None."""
        run = _Run(broker_class, _config(self.host, port))
        thread = threading.Thread(target=run.main, name="embedded-broker", daemon=True)
        self._thread, self._run = thread, run
        thread.start()
        if not run.ready.wait(timeout):
            self.stop()
            return TimeoutError(f"not listening within {timeout:.0f}s")
        if run.error is not None:
            thread.join(timeout)
            self._thread = self._run = None
            return run.error
        return None


class _Run:
    """One life of the broker thread. `request_stop` may come from any thread at any moment, even
    before the loop exists (a start that timed out): the lock makes sure it is never lost."""

    def __init__(self, broker_class: Any, config: dict[str, Any]) -> None:
        self.broker_class = broker_class
        self.config = config
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._stop_requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def request_stop(self) -> None:
        with self._lock:
            self._stop_requested = True
            if self._loop is not None and self._stopping is not None:
                # RuntimeError: the loop has closed, so the broker is already down.
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self._stopping.set)

    def main(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception as exc:  # handed to `start`, which raises it as a BridgeError
            if self.ready.is_set():
                log.exception("embedded_broker.failed")
            else:
                self.error = exc
        finally:
            self.ready.set()

    async def _serve(self) -> None:
        stopping = asyncio.Event()
        with self._lock:
            self._loop, self._stopping = asyncio.get_running_loop(), stopping
            if self._stop_requested:
                stopping.set()
        broker = self.broker_class(self.config)
        await broker.start()
        self.ready.set()
        await stopping.wait()
        await broker.shutdown()


def _config(host: str, port: int) -> dict[str, Any]:
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return {
        "listeners": {"default": {"type": "tcp", "bind": bind}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


def _import_amqtt() -> Any:
    try:
        # Import-time deprecation notices from amqtt's own dependencies are not ours to act on.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(amqtt|transitions)\b")
            from amqtt.broker import Broker  # noqa: PLC0415  # optional dependency, only for the demo
    except ImportError as exc:
        raise BridgeError(MISSING_AMQTT) from exc
    return _filtered(Broker)


def topic_matches(topic: str, topic_filter: str) -> bool:
    """MQTT 3.1.1 topic matching: ``+`` one level, ``#`` the rest (the parent level included), and a
    ``$`` topic never matched by a wildcard in the first level."""
    if topic.startswith("$") and topic_filter.startswith(("+", "#")):
        return False
    levels = topic.split("/")
    parts = topic_filter.split("/")
    for index, part in enumerate(parts):
        if part == "#":
            return index == len(parts) - 1
        if index >= len(levels) or part not in ("+", levels[index]):
            return False
    return len(parts) == len(levels)


def _filtered(broker_class: Any) -> Any:
    """`broker_class` delivering retained messages only for the client's own subscriptions."""

    class FilteredBroker(broker_class):  # type: ignore[misc]
        def _matches(self, topic: str, a_filter: str) -> bool:
            return topic_matches(topic, a_filter)

        async def _publish_retained_messages_for_subscription(
            self, subscription: tuple[str, int], session: Any
        ) -> None:
            # Called with each filter of the broker-wide table when a client connects; the client
            # has subscribed to that filter itself only if it is listed under it.
            subscribers = getattr(self, "_subscriptions", {}).get(subscription[0], ())
            if any(other.client_id == session.client_id for other, _ in subscribers):
                await super()._publish_retained_messages_for_subscription(subscription, session)

    return FilteredBroker


def _quiet_amqtt_logging() -> None:
    # Only when nobody chose a level: someone debugging the broker can still turn it up first.
    for name in _CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _address_in_use(error: BaseException) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.EADDRINUSE:
            return True
        seen = seen.__cause__ or seen.__context__
    return False
