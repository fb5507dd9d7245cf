"""The endpoint as a WSGI application (served by waitress, see `bridge.http.server`).

Routes (GET and HEAD only, anything else 405; unknown paths 404):

    /healthz        200 or 503, JSON (`HealthReport.details` plus ``status``); never needs the token
    /metrics        Prometheus text (OpenMetrics when the scraper asks for it)
    /               the presence board, bridge/web/board.html
    /api/presence   JSON {"bridge": {...}, "users": [BoardEntry...], "now": ...} the board polls

Every request passes the Host guard first (421 otherwise), then, with a token configured,
the token check (401). The app owns no state: the service hands in small callables (`health`,
`board`) and a `Metrics`, and every request asks them afresh, so nothing here goes stale.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING

from bridge.http.guard import HostGuard, TokenAuth
from bridge.http.model import BOARD_BRIDGE_KEYS, BoardEntry, HealthReport, dump_json
from bridge.http.page import BoardPage
from bridge.metrics import Metrics
from bridge.presence import format_timestamp

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

Answer = tuple[HTTPStatus, bytes, str, dict[str, str]]
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
BOARD_PATHS = ("/", "/index.html")
COMMON_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)


def _text(status: HTTPStatus, message: str, **headers: str) -> Answer:
    return status, f"{message}\n".encode(), TEXT, dict(headers)


class EndpointApp:
    """The WSGI callable: guard, token, then one of four routes."""

    def __init__(
        self,
        *,
        health: Callable[[], HealthReport],
        metrics: Metrics,
        board: Callable[[], Sequence[BoardEntry]],
        title: str,
        guard: HostGuard,
        auth: TokenAuth | None,
    ) -> None:
        self.health = health
        self.metrics = metrics
        self.board = board
        self.title = title
        self.page = BoardPage(title)
        self.guard = guard
        self.auth = auth

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "") or "/"
        answer = self._gate(environ, method, path)
        if answer is None:
            answer = self._route(path, environ)
        status, body, content_type, extra = answer
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *COMMON_HEADERS]
        headers.extend(extra.items())
        start_response(f"{status.value} {status.phrase}", headers)
        # Query strings are never logged: they are where a token travels.
        log.debug("http.request method=%s path=%s status=%d", method[:16], path[:200], status.value)
        return [b""] if method == "HEAD" else [body]

    def _gate(self, environ: WSGIEnvironment, method: str, path: str) -> Answer | None:
        """The refusals every route shares, in order: Host, method, token."""
        host = environ.get("HTTP_HOST")
        if not self.guard.allows(host):
            log.debug("http.host_refused host=%r", str(host)[:100])
            return _text(
                HTTPStatus.MISDIRECTED_REQUEST,
                "misdirected request: this Host is not accepted; add it to http.allowed_hosts",
            )
        if method not in ("GET", "HEAD"):
            return _text(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed", Allow="GET, HEAD")
        if self.auth is None or path == "/healthz":
            return None
        if path in BOARD_PATHS:
            query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
            offered = query.get("token")
            if offered is not None:
                if not self.auth.matches(offered[0]):
                    return self._unauthorized()
                # Remember the browser and take the token out of its address bar and history.
                return (
                    HTTPStatus.SEE_OTHER,
                    b"",
                    TEXT,
                    {
                        "Location": "./",
                        "Set-Cookie": self.auth.set_cookie_header(),
                    },
                )
        if self.auth.allows(environ.get("HTTP_AUTHORIZATION"), environ.get("HTTP_COOKIE")):
            return None
        return self._unauthorized()

    @staticmethod
    def _unauthorized() -> Answer:
        return _text(
            HTTPStatus.UNAUTHORIZED,
            "unauthorized: send Authorization: Bearer <http.token>, or open /?token=<http.token> once",
            **{"WWW-Authenticate": 'Bearer realm="cwa2mqtt"'},
        )

    def _route(self, path: str, environ: WSGIEnvironment) -> Answer:
        try:
            if path == "/healthz":
                return self.health_answer()
            if path == "/metrics":
                # `render` reads the gauges at scrape time and speaks OpenMetrics when asked.
                body, content_type = self.metrics.render(environ.get("HTTP_ACCEPT", ""))
                return HTTPStatus.OK, body, content_type, {}
            if path in BOARD_PATHS:
                return (
                    HTTPStatus.OK,
                    self.page.body,
                    "text/html; charset=utf-8",
                    {"Content-Security-Policy": self.page.csp},
                )
            if path == "/api/presence":
                return HTTPStatus.OK, self.presence_answer(), JSON, {}
        except Exception:
            # A failing callable must not kill the server; the service logs its own details.
            log.exception("http.handler_failed path=%s", path[:200])
            return _text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
        return _text(HTTPStatus.NOT_FOUND, "not found")

    def _report(self) -> HealthReport:
        try:
            return self.health()
        except Exception:
            log.exception("http.health_failed")
            return HealthReport(False, {"reasons": ["health check failed"]})

    def health_answer(self) -> Answer:
        report = self._report()
        status = HTTPStatus.OK if report.healthy else HTTPStatus.SERVICE_UNAVAILABLE
        return status, dump_json(report.body()), JSON, {}

    def presence_answer(self) -> bytes:
        body = self._report().body()
        bridge = {key: body[key] for key in BOARD_BRIDGE_KEYS if key in body}
        return dump_json(
            {
                "title": self.title,
                "now": format_timestamp(datetime.now(UTC)),
                "bridge": bridge,
                "users": [asdict(entry) for entry in self.board()],
            }
        )
