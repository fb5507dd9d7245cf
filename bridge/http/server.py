"""`HttpServer`: the endpoint's WSGI app served by waitress, loopback by default.

Why waitress: it reads and buffers each whole request in one I/O thread before a worker sees
it, so a slow or idle client holds no worker; the workers are a fixed pool. On top of that:

- an idle keep-alive connection is closed after ``channel_timeout`` and a request that has not
  arrived completely after ``read_timeout`` is dropped, each with one debug line;
- at most ``connection_limit`` connections are open; beyond that waitress stops accepting and
  the kernel's backlog (``BACKLOG``) holds the rest until it refuses them;
- bodies are refused beyond ``MAX_BODY`` (413): no route takes one;
- waitress' own log records are rewritten into this project's ``area.event`` lines (client
  socket errors become debug lines without a traceback), so ``log.format: json`` holds.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from bridge.errors import ConfigError
from bridge.http.guard import WILDCARDS, HostGuard, TokenAuth
from bridge.http.model import BoardEntry, HealthReport
from bridge.http.wsgi import EndpointApp
from bridge.metrics import Metrics

log = logging.getLogger("bridge.http")

DEFAULT_HOST = "127.0.0.1"
THREADS = 4
CONNECTION_LIMIT = 100
BACKLOG = 64
MAX_BODY = 16 * 1024
MAX_HEADERS = 32 * 1024
LOOP_TICK_S = 0.2  # how soon the I/O loop notices `stop`


class _Channel(HTTPChannel):
    """Remembers when the request being read began, for the overall read deadline."""

    request_started = 0.0

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.request_started = time.monotonic()
        return bool(super().received(data))


class _Server(TcpWSGIServer):
    channel_class = _Channel
    read_timeout = 10.0

    def maintenance(self, now: float) -> None:
        """Close idle connections and requests that arrive too slowly (replaces waitress' own)."""
        idle_cutoff = now - self.adj.channel_timeout
        read_cutoff = time.monotonic() - self.read_timeout
        channels: dict[int, Any] = self.active_channels  # type: ignore[assignment]  # stubs say HTTPChannel
        for channel in list(channels.values()):
            if channel.requests or channel.will_close:
                continue  # being served, or already closing
            if channel.request is not None and channel.request_started < read_cutoff:
                reason = "request_too_slow"
            elif channel.request is None and channel.last_activity < idle_cutoff:
                reason = "idle"
            else:
                continue
            channel.will_close = True
            log.debug("http.connection_closed client=%s reason=%s", channel.addr[0], reason)


class _WaitressRecords(logging.Filter):
    """Turns waitress' records into ``http.*`` event lines; client trouble becomes debug."""

    _DEBUG = ("Socket error", "Client disconnected", "Task queue depth", "server accept()")

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text.startswith(self._DEBUG):
            error = type(record.exc_info[1]).__name__ if record.exc_info and record.exc_info[1] else ""
            record.msg, record.args = "http.client_trouble detail=%r error=%s", (text[:120], error or "-")
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return log.isEnabledFor(logging.DEBUG)
        if text.startswith("total open connections reached"):
            record.msg, record.args = (
                "http.connection_limit_reached limit=%d; new ones wait",
                (CONNECTION_LIMIT,),
            )
        elif text.startswith("total open connections dropped"):
            record.msg, record.args = "http.connection_limit_cleared limit=%d", (CONNECTION_LIMIT,)
        else:
            record.msg, record.args = "http.server_message detail=%r", (text[:300],)
        return True


def _route_waitress_logs() -> None:
    for name in ("waitress", "waitress.queue"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _WaitressRecords) for f in logger.filters):
            logger.addFilter(_WaitressRecords())


def _own_names() -> list[str]:
    names = [socket.gethostname()]
    with contextlib.suppress(OSError):  # a machine without a resolvable name still has its hostname
        names.append(socket.getfqdn())
    return names


def _bound_port(server: TcpWSGIServer) -> int:
    sock = server.socket
    assert sock is not None  # noqa: S101 - a bound server has its socket
    return int(sock.getsockname()[1])


def _listen_error(host: str, port: int, reason: str) -> ConfigError:
    return ConfigError(
        [
            f"http.listen: cannot listen on {host}:{port}: {reason}; "
            'pick another port or set http.listen: "" to disable'
        ]
    )


class HttpServer:
    """Serves /healthz, /metrics, / and /api/presence from one I/O thread and a worker pool."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        health: Callable[[], HealthReport],
        metrics: Metrics,
        board: Callable[[], Sequence[BoardEntry]],
        title: str = "cwa2mqtt",
        token: str | None = None,
        allowed_hosts: Sequence[str] = (),
        threads: int = THREADS,
        channel_timeout: float = 10.0,
        read_timeout: float = 10.0,
    ) -> None:
        self._host = host or DEFAULT_HOST
        self._port = port
        self._threads = threads
        self._channel_timeout = channel_timeout
        self._read_timeout = read_timeout
        guard = HostGuard(self._host, allowed_hosts, _own_names() if self._host in WILDCARDS else ())
        self.app = EndpointApp(
            health=health,
            metrics=metrics,
            board=board,
            title=title,
            guard=guard,
            auth=TokenAuth(token) if token else None,
        )
        self._map: dict[int, Any] = {}
        self._servers: list[_Server] = []
        self._dispatcher: ThreadedTaskDispatcher | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        """``http://host:port`` with the bound port (after `start`); wildcard hosts become loopback."""
        host, port = self._host, self._port
        if self._servers:
            port = _bound_port(self._servers[0])
        if host in ("0.0.0.0", ""):  # noqa: S104 - mapping a wildcard to loopback, not binding it
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    def start(self) -> None:
        """Bind and serve. Raises `ConfigError` (``http.listen: ...``) when the address cannot be bound."""
        if self._servers:
            return
        _route_waitress_logs()
        try:
            adj = Adjustments(
                host=self._host,
                port=self._port,
                threads=self._threads,
                ident="cwa2mqtt",
                connection_limit=CONNECTION_LIMIT,
                backlog=BACKLOG,
                channel_timeout=self._channel_timeout,
                cleanup_interval=max(0.1, min(self._channel_timeout, self._read_timeout) / 4),
                max_request_body_size=MAX_BODY,
                max_request_header_size=MAX_HEADERS,
                expose_tracebacks=False,
            )
        except ValueError:
            raise _listen_error(self._host, self._port, "the address does not resolve") from None
        dispatcher = ThreadedTaskDispatcher()
        try:
            self._bind(adj, dispatcher)
        except OSError as exc:
            wasyncore.close_all(self._map, ignore_all=True)
            self._map.clear()
            self._servers = []
            reason = (exc.strerror or str(exc)).lower()
            raise _listen_error(self._host, self._port, reason) from exc
        dispatcher.set_thread_count(self._threads)
        self._dispatcher = dispatcher
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="http", daemon=True)
        self._thread.start()
        log.debug("http.started url=%s threads=%d", self.url, self._threads)

    def _bind(self, adj: Adjustments, dispatcher: ThreadedTaskDispatcher) -> None:
        port = self._port
        listen: list[tuple[int, int, int, tuple[Any, ...]]] = adj.listen  # type: ignore[assignment]
        for family, socktype, proto, sockaddr in listen:
            # "localhost" may resolve to 127.0.0.1 and ::1: with port 0 both must get the same port.
            address = (sockaddr[0], port, *sockaddr[2:])
            server = _Server(
                self.app,
                map=self._map,
                dispatcher=dispatcher,
                adj=adj,
                sockinfo=(family, socktype, proto, address),
            )
            server.read_timeout = self._read_timeout
            self._servers.append(server)
            port = _bound_port(server)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            wasyncore.loop(timeout=LOOP_TICK_S, use_poll=True, map=self._map, count=1)

    def stop(self) -> None:
        """Stop serving and close every socket; returns within about a second. Idempotent."""
        if not self._servers:
            return
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * LOOP_TICK_S)
        if self._dispatcher is not None:
            self._dispatcher.shutdown(cancel_pending=True, timeout=1)
        wasyncore.close_all(self._map, ignore_all=True)
        self._map.clear()
        self._servers, self._thread, self._dispatcher = [], None, None
        log.info("http.stopped")

    def __enter__(self) -> HttpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
