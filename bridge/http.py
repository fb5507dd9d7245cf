"""The bridge's HTTP endpoint: health, Prometheus metrics and the presence board (interface.md §6).

A stdlib `ThreadingHTTPServer` in one daemon thread, loopback by default. The server owns no
state: the service hands in small callables (`health`, `board`) and a `Metrics`, and every
request asks them afresh, so nothing here can go stale or needs locking.

Routes (GET and HEAD only, anything else 405; unknown paths 404):

    /healthz        200 or 503, JSON (`HealthReport.details` plus ``status``)
    /metrics        Prometheus text (OpenMetrics when the scraper asks for it)
    /               the presence board, bridge/web/board.html
    /api/presence   JSON {"bridge": {...}, "users": [BoardEntry...], "now": ...} the board polls

No answer carries a secret: the inputs never hold one and nothing here dumps the config.
JSON answers escape ``<``, ``>`` and ``&`` so a hostile note stays inert even if a browser
were to sniff the body as HTML.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import re
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import Enum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, ClassVar

from bridge.metrics import Metrics
from bridge.presence import Presence, format_timestamp

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8099
# Only these keys of the health details reach the board: it may be shown on a kiosk or bound to
# a LAN, and `reasons` may carry error texts that are fine for an operator but not for a wall.
BOARD_BRIDGE_KEYS: tuple[str, ...] = ("status", "cwa", "mqtt", "session", "since")


@dataclass(frozen=True)
class HealthReport:
    """What `/healthz` answers. ``details`` becomes the JSON body, e.g.
    ``{"mqtt": "connected", "cwa": "online", "session": "online", "reasons": [], "since": "..."}``;
    ``status`` is set from ``healthy`` (``ok`` / ``unhealthy``)."""

    healthy: bool
    details: Mapping[str, object] = field(default_factory=dict)

    def body(self) -> dict[str, object]:
        return {**self.details, "status": "ok" if self.healthy else "unhealthy"}


@dataclass(frozen=True)
class BoardEntry:
    """One tile of the board; every field is a plain JSON value."""

    id: str
    name: str | None
    uri: str
    status: str
    idle: bool
    activity: str | None
    note: str | None
    out_of_office: bool
    last_change: str | None
    watchable: bool

    @classmethod
    def from_presence(cls, id: str, presence: Presence, *, watchable: bool = True) -> BoardEntry:
        return cls(
            id=id,
            name=presence.name,
            uri=presence.uri,
            status=presence.status.value,
            idle=presence.idle,
            activity=presence.activity,
            note=presence.note,
            out_of_office=presence.out_of_office,
            last_change=format_timestamp(presence.last_change),
            watchable=watchable,
        )


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
    return str(value)


def dump_json(value: object) -> bytes:
    """Compact UTF-8 JSON with ``<``, ``>``, ``&`` escaped (still valid JSON, inert as HTML)."""
    text = json.dumps(value, ensure_ascii=False, default=_json_default, separators=(",", ":"))
    text = text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return text.encode("utf-8")


class _Page:
    """The board HTML with the title filled in and a CSP that admits exactly its inline code."""

    _SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
    _STYLE = re.compile(r"<style>(.*?)</style>", re.S)

    def __init__(self, title: str) -> None:
        template = resources.files("bridge").joinpath("web", "board.html").read_text(encoding="utf-8")
        # The title is the only server-side substitution, escaped for HTML text.
        self.body = template.replace("{{title}}", html.escape(title)).encode("utf-8")
        scripts = " ".join(self._hash(s) for s in self._SCRIPT.findall(template))
        styles = " ".join(self._hash(s) for s in self._STYLE.findall(template))
        # Defence in depth behind textContent: even an injected <script> could not run.
        self.csp = (
            f"default-src 'none'; script-src {scripts}; style-src {styles}; connect-src 'self'; "
            "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )

    @staticmethod
    def _hash(source: str) -> str:
        digest = hashlib.sha256(source.encode("utf-8")).digest()
        return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Restarting the bridge must not fail on a socket left in TIME_WAIT.
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server_version = "cwa2mqtt"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    # A client that opens a connection and sends nothing must not hold a thread for ever.
    timeout = 10
    app: ClassVar[HttpServer]

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._dispatch(send_body=True)

    def do_HEAD(self) -> None:
        self._dispatch(send_body=False)

    def _not_allowed(self) -> None:
        # The request may carry a body we will not read; close rather than misparse it as the next request.
        self.close_connection = True
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED,
            b"method not allowed\n",
            "text/plain; charset=utf-8",
            extra={"Allow": "GET, HEAD", "Connection": "close"},
        )

    def __getattr__(self, name: str) -> Any:
        # BaseHTTPRequestHandler looks up ``do_<METHOD>`` and answers 501 when missing; every
        # method other than GET/HEAD is "not allowed" here instead, whatever its name.
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def _dispatch(self, *, send_body: bool) -> None:
        path = urllib.parse.urlsplit(self.path).path
        app = self.app
        try:
            if path == "/healthz":
                status, body, ctype = app.health_answer()
            elif path == "/metrics":
                status = HTTPStatus.OK
                body, ctype = app.metrics.render(self.headers.get("Accept", ""))
            elif path in ("/", "/index.html"):
                self._send(
                    HTTPStatus.OK,
                    app.page.body,
                    "text/html; charset=utf-8",
                    send_body=send_body,
                    extra={"Content-Security-Policy": app.page.csp},
                )
                return
            elif path == "/api/presence":
                status, body, ctype = HTTPStatus.OK, app.presence_answer(), "application/json"
            else:
                status, body, ctype = HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8"
        except Exception:
            # A failing callable must not kill the server; the service logs its own details.
            log.exception("http.handler_failed path=%s", path)
            status, body, ctype = HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n", "text/plain"
        self._send(status, body, ctype, send_body=send_body)

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        *,
        send_body: bool = True,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Query strings are not logged: nothing here takes one, and they are where tokens hide.
        log.debug("http.request client=%s line=%s", self.client_address[0], self.requestline.split("?")[0])


class HttpServer:
    """Serves /healthz, /metrics, / and /api/presence from a daemon thread."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        health: Callable[[], HealthReport],
        metrics: Metrics,
        board: Callable[[], Sequence[BoardEntry]],
        title: str = "cwa2mqtt",
    ) -> None:
        self._host = host or DEFAULT_HOST
        self._port = port
        self.health = health
        self.metrics = metrics
        self.board = board
        self.title = title
        self.page = _Page(title)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` with the bound port (after `start`); wildcard hosts become loopback."""
        host, port = self._host, self._port
        if self._server is not None:
            port = self._server.server_address[1]
        if host in ("0.0.0.0", ""):  # noqa: S104 - mapping a wildcard to loopback, not binding it
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    def start(self) -> None:
        """Bind and serve. Raises `OSError` when the address cannot be bound."""
        if self._server is not None:
            return
        handler = type("Handler", (_Handler,), {"app": self})
        server_class = _Server6 if ":" in self._host else _Server
        try:
            self._server = server_class((self._host, self._port), handler)
        except OSError as exc:
            # The bare errno text does not say which address; the operator needs that.
            raise OSError(exc.errno, f"cannot listen on {self._host}:{self._port}: {exc.strerror}") from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="http", daemon=True
        )
        self._thread.start()
        log.debug("http.started url=%s", self.url)

    def stop(self) -> None:
        """Stop serving and close the socket; returns within about a second. Idempotent."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=2)
        self._server = self._thread = None
        log.info("http.stopped")

    def health_answer(self) -> tuple[HTTPStatus, bytes, str]:
        try:
            report = self.health()
        except Exception:
            log.exception("http.health_failed")
            report = HealthReport(False, {"reasons": ["health check failed"]})
        status = HTTPStatus.OK if report.healthy else HTTPStatus.SERVICE_UNAVAILABLE
        return status, dump_json(report.body()), "application/json"

    def presence_answer(self) -> bytes:
        try:
            report = self.health()
        except Exception:
            log.exception("http.health_failed")
            report = HealthReport(False, {})
        body = report.body()
        bridge = {key: body[key] for key in BOARD_BRIDGE_KEYS if key in body}
        return dump_json(
            {
                "title": self.title,
                "now": format_timestamp(datetime.now(UTC)),
                "bridge": bridge,
                "users": [asdict(entry) for entry in self.board()],
            }
        )

    def __enter__(self) -> HttpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def probe(url: str, timeout: float = 5.0) -> tuple[bool, str]:
    """Ask a running bridge's health endpoint (for ``cwa2mqtt health``): ``(healthy, body)``.

    A bare ``http://host:port`` gets ``/healthz`` appended. Any connection problem is "not healthy".
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return False, f"unsupported URL scheme: {parts.scheme or '(none)'}"
    if parts.path in ("", "/"):
        url = urllib.parse.urlunsplit(parts._replace(path="/healthz"))
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - scheme checked above
            return answer.status == HTTPStatus.OK, answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        with exc:
            return False, exc.read().decode("utf-8", "replace")
    except (OSError, ValueError) as exc:
        return False, f"{type(exc).__name__}: {exc}"
