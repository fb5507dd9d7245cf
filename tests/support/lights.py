"""Helpers for the status-light tests: presences, specs, a settable clock and a fake HTTP light."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from bridge.app import Bridge
from bridge.lights.spec import LightSpec
from bridge.presence import Presence, Status
from bridge.simulator import Simulator

if TYPE_CHECKING:  # a runtime import would load the mqtt plugin before pytest can rewrite it
    from tests.support.mqtt import MqttProbe


def presence(status: Status | str, activity: str | None = None, uri: str = "sip:x@example.org") -> Presence:
    """A presence with just the fields the lights look at."""
    return replace(Presence.unknown(uri), status=Status(status), activity=activity)


def light(name: str = "door", watch: tuple[str, ...] = ("bob", "carol"), **kwargs: Any) -> LightSpec:
    """A wled light by default; pass preset/device/topic/... to change it."""
    kwargs.setdefault("preset", "wled")
    if kwargs["preset"] not in ("raw", "http"):
        kwargs.setdefault("device", "door")
    return LightSpec(name=name, watch=watch, **kwargs)


@dataclass
class FakeClock:
    """A clock the test moves by hand; call it to read it."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def light_clock() -> FakeClock:
    """A FakeClock at Monday 2026-11-23 10:00 UTC."""
    return FakeClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))


@dataclass(frozen=True)
class Seen:
    """One request a `FakeHttpLight` received, and the status it answered (None: held, never answered)."""

    method: str
    target: str  # path and query, as sent (URL-encoded)
    body: bytes
    headers: dict[str, str]
    status: int | None


class FakeHttpLight:
    """A busy-light behind an HTTP API on 127.0.0.1: records every request.

    ``mode`` "ok" answers 200; "down" answers 503; "slow" holds each request until `release` (or
    at most ``HOLD_MAX_S``) without answering, like a hung device.
    """

    HOLD_MAX_S = 10.0

    def __init__(self) -> None:
        self.mode = "ok"
        self.held = 0  # requests that arrived in "slow" mode (counted on arrival)
        self._seen: list[Seen] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                mode = owner.mode
                status = {"ok": 200, "down": 503}.get(mode)
                if status is None:
                    with owner._lock:
                        owner.held += 1
                    owner._release.wait(owner.HOLD_MAX_S)
                seen = Seen(self.command, self.path, body, dict(self.headers.items()), status)
                with owner._lock:
                    owner._seen.append(seen)
                if status is not None:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")

            do_GET = do_POST = do_PUT = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def delivered(self) -> list[Seen]:
        """The requests answered with 200: what the light actually showed, in order."""
        return [s for s in self.seen() if s.status == 200]

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_light() -> Iterator[FakeHttpLight]:
    light = FakeHttpLight()
    yield light
    light.close()


# ---------------------------------------------------------------- end to end, with a real broker


def settle(probe: MqttProbe, base: str) -> None:
    """Return once everything the bridge published before this call has reached ``probe``."""
    token = secrets.token_hex(4)
    probe.publish(f"{base}/bridge/request/health_check", json.dumps({"transaction": token}))
    probe.wait_for(
        f"{base}/bridge/response/health_check",
        lambda p: json.loads(p).get("transaction") == token,
        timeout=10,
    )


def light_state(probe: MqttProbe, base: str, name: str) -> dict[str, Any]:
    raw = probe.retained(f"{base}/lights/{name}")
    assert raw is not None, f"no retained state for light {name}"
    state: dict[str, Any] = json.loads(raw)
    return state


def status_in_bridge(bridge: Bridge, ident: str) -> str | None:
    """The status the bridge holds for ``ident`` now (read from its HTTP snapshot)."""
    for row in bridge.service.snapshot.rows:
        if row.id == ident and row.presence is not None:
            return row.presence.status.value
    return None


def set_and_wait(
    sim: Simulator, probe: MqttProbe, base: str, ident: str, uri: str, status: str, **presence: Any
) -> None:
    """Change a user's presence in CWA and wait until the bridge has published it."""
    probe.clear()
    sim.set_presence(uri, **presence)
    probe.wait_for(f"{base}/{ident}", lambda p: json.loads(p)["status"] == status, timeout=10)
    settle(probe, base)
