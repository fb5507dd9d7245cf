"""The simulator's HTTP servers: the CWA endpoints (§1.2) and a tiny JSON server for the control API.

Why the stdlib `http.server.ThreadingHTTPServer`: no extra dependency; a thread per connection
(and so per held long-poll, §4.4) is fine at the scale we need (50 sessions x a few requests/s,
1,000 presence changes/s in the benchmark); and tests run it in-process, so a recorded request or
an injected fault is one function call away. Keep-alive HTTP/1.1 with ``Content-Length`` always
set, daemon threads, and a registry of open connections so `stop()` can close idle keep-alive
sockets and return within about a second.

TLS (``SimOptions.tls_cert``/``tls_key``): the listening socket is wrapped server-side with
``do_handshake_on_connect=False`` and each connection's handshake runs on its own thread, so a
client that connects and never handshakes (or rejects our certificate) cannot stall ``accept``.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Request:
    method: str
    path: str  # the raw path with query string
    headers: dict[str, str]  # lower-case names
    body: bytes
    # Scratch state of the TCP connection the request came on, shared by its keep-alive requests:
    # NTLM authenticates a connection, not a request (§2.2, ``ntlm.NtlmConnection``).
    connection: dict[str, Any] = field(default_factory=dict)


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "text/xml; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    # Headers that may repeat (IIS sends one WWW-Authenticate per scheme), written after `headers`.
    repeated: tuple[tuple[str, str], ...] = ()
    xml: bool = False  # an XML body that body faults may replace
    drop: bool = False  # close the connection without an answer
    delay_s: float = 0.0


Handler = Callable[[Request], Reply]


TLS_HANDSHAKE_TIMEOUT_S = 10.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        handler: Handler,
        max_body: int,
        stop: threading.Event,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.app = handler
        self.max_body = max_body
        self.stop_event = stop
        self.open: set[socket.socket] = set()
        self.open_lock = threading.Lock()
        self.threads: set[threading.Thread] = set()
        super().__init__(address, _RequestHandler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True, name="sim-http"
        )
        with self.open_lock:
            self.open.add(request)
            self.threads.add(thread)
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            if isinstance(request, ssl.SSLSocket):
                request.settimeout(TLS_HANDSHAKE_TIMEOUT_S)
                try:
                    request.do_handshake()
                except (OSError, ssl.SSLError) as exc:  # e.g. the client rejected our certificate
                    log.debug("sim.tls.handshake_failed peer=%s error=%s", client_address, exc)
                    self.shutdown_request(request)
                    return
            super().process_request_thread(request, client_address)
        finally:
            with self.open_lock:
                self.open.discard(request)
                self.threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("sim.http.error peer=%s", client_address, exc_info=True)

    def close_all(self, timeout: float) -> None:
        with self.open_lock:
            sockets, threads = list(self.open), list(self.threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 120  # an abandoned keep-alive connection frees its thread eventually
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid the 40 ms delayed-ACK stall

    def setup(self) -> None:
        super().setup()
        self.connection_state: dict[str, Any] = {}  # one handler instance per TCP connection

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > self.server.max_body:
            self._write(Reply(413))
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.server.app(Request(self.command, self.path, headers, body, self.connection_state))
        if reply.drop:
            self.close_connection = True
            return
        if reply.delay_s > 0:
            self.server.stop_event.wait(reply.delay_s)
        self._write(reply)

    def _write(self, reply: Reply) -> None:
        self.send_response(reply.status)
        if reply.body or reply.status not in (204, 304):
            self.send_header("Content-Type", reply.content_type)
        for name, value in (*reply.headers.items(), *reply.repeated):
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.body and self.command != "HEAD":
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sim.http.request " + format, *args)


class HttpService:
    """One listening server running `serve_forever` on a thread."""

    def __init__(
        self,
        host: str,
        port: int,
        handler: Handler,
        max_body: int,
        name: str,
        *,
        tls: tuple[str, str] | None = None,
    ) -> None:
        """``tls``: (certificate, key) PEM paths to serve https instead of http."""
        self._stop = threading.Event()
        context = None
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(tls[0], tls[1])
        self._scheme = "https" if context is not None else "http"
        self._server = _Server((host, port), handler, max_body, self._stop, context)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name=name
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"{self._scheme}://{host}:{port}"

    @property
    def stop_event(self) -> threading.Event:
        return self._stop

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._server.close_all(timeout)
        self._thread.join(timeout)
