"""Fixtures for the HTTP endpoint: a running `HttpServer` with state the test can change.

    def test_x(board_server):
        board_server.users = [make_entry("bob", status="busy")]
        board_server.health = HealthReport(False, {"mqtt": "disconnected"})
        answer = fetch(board_server.url + "/api/presence")

`board_server` serves on 127.0.0.1 with a free port and is stopped after the test.
"""

from __future__ import annotations

import http.client
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest

from bridge.http import BoardEntry, HealthReport, HttpServer
from bridge.metrics import Metrics


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def fetch(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None
) -> Answer:
    """One request on a fresh connection; any status is returned, never raised."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def make_entry(uid: str, **overrides: object) -> BoardEntry:
    values: dict[str, object] = {
        "id": uid,
        "name": uid.capitalize(),
        "uri": f"sip:{uid}@example.org",
        "status": "available",
        "idle": False,
        "activity": None,
        "note": None,
        "out_of_office": False,
        "last_change": "2026-11-22T09:14:03Z",
        "watchable": True,
    }
    values.update(overrides)
    return BoardEntry(**values)  # type: ignore[arg-type]


@dataclass
class BoardServer:
    """A started server whose inputs are plain attributes (the callables read them each request)."""

    metrics: Metrics
    health: HealthReport = field(
        default_factory=lambda: HealthReport(
            True, {"mqtt": "connected", "cwa": "online", "session": "online", "reasons": []}
        )
    )
    users: Sequence[BoardEntry] = ()
    server: HttpServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url


@pytest.fixture
def board_server() -> Iterator[BoardServer]:
    state = BoardServer(metrics=Metrics())
    server = HttpServer(
        "127.0.0.1",
        0,
        health=lambda: state.health,
        metrics=state.metrics,
        board=lambda: state.users,
        title="Team board",
    )
    server.start()
    state.server = server
    try:
        yield state
    finally:
        server.stop()
