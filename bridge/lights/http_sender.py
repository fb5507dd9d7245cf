"""Sends the ``http`` lights' requests on a worker thread of their own.

Presence and the MQTT lights never wait for an HTTP light: `submit` only swaps a slot and returns.

Bounds and rules:
- One slot per light holds the newest wanted request. Overflow rule: a newer request replaces an
  undelivered older one, which is dropped and never sent, so a stale colour never follows a newer
  one (the worker sends one request at a time, in the order the states were wanted).
- Each request has a 3 s deadline (connect, send and waiting for the answer each get what is left
  of it when the request starts; the answer's body is not read). A 2xx answer is a delivery;
  anything else is a failure, retried after a jittered back-off that doubles up to a cap. A newer
  wanted state waits for the back-off too: a device that is down is not hammered.
- Failures are counted through ``on_failure`` and logged once per failure streak, and once on
  recovery. Log lines show only the URL's scheme, host and port: user info, path (webhook ids) and
  query may be secrets, as may headers, which are never logged.
- ``on_result(light, delivered)`` runs on the worker thread after each attempt, unless a newer
  request for that light is already waiting (its own result follows); ``progress()`` runs on every
  loop pass (at least every `IDLE_WAIT_S`) as a liveness signal.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

from bridge.lights.presets import HttpRequest, url_origin
from bridge.lights.spec import LightSpec

log = logging.getLogger(__name__)

DEADLINE_S = 3.0
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0
IDLE_WAIT_S = 0.5


@dataclass
class _Slot:
    wanted: HttpRequest | None = None  # the newest request not yet taken by the worker
    not_before: float = 0.0  # monotonic time of the next attempt (back-off)
    delay: float = 0.0  # the current back-off step; 0 = no failure streak
    failures: int = 0  # failures in the current streak


class HttpLightSender:
    def __init__(
        self,
        specs: Iterable[LightSpec],
        on_result: Callable[[str, bool], None],
        *,
        progress: Callable[[], None] | None = None,
        on_failure: Callable[[str], None] | None = None,
        deadline_s: float = DEADLINE_S,
        backoff_initial_s: float = BACKOFF_INITIAL_S,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        """``specs``: the lights (non-http ones are ignored). ``on_failure(light)`` counts a failure."""
        self._specs = {s.name: s for s in specs if s.preset == "http"}
        self._on_result = on_result
        self._progress = progress
        self._on_failure = on_failure
        self._deadline_s = deadline_s
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._slots = {name: _Slot() for name in self._specs}
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        # One client per TLS setting: lights behind the same verification share connections.
        self._hide_urls = _HideLightUrls({url_origin(s.url or "") for s in self._specs.values()})
        self._clients: dict[tuple[bool, str | None], httpx.Client] = {}
        for spec in self._specs.values():
            key = (spec.verify_tls, spec.ca_file)
            if key not in self._clients:
                self._clients[key] = httpx.Client(verify=_verify(*key), follow_redirects=False)

    def lights(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def submit(self, light: str, request: HttpRequest) -> None:
        """Want ``request`` sent to ``light``: replaces any undelivered older one. Never blocks long."""
        with self._cond:
            slot = self._slots.get(light)
            if slot is None:
                log.warning("lights.http.unknown_light light=%s", light)
                return
            slot.wanted = request
            self._cond.notify()

    def start(self) -> None:
        logging.getLogger("httpx").addFilter(self._hide_urls)
        self._thread = threading.Thread(target=self._run, name="cwa2mqtt-http-lights", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop within ``timeout``: no new request starts; one in flight ends by its deadline."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            logging.getLogger("httpx").removeFilter(self._hide_urls)
            for client in self._clients.values():
                client.close()

    # ------------------------------------------------------------------ worker

    def _run(self) -> None:
        while True:
            if self._progress is not None:
                self._progress()
            with self._cond:
                if self._stopping:
                    return
                job = self._take()
                if job is None:
                    self._cond.wait(self._idle_wait())
                    continue
            light, request = job
            ok, reason = self._send(light, request)
            self._after(light, request, ok, reason)

    def _take(self) -> tuple[str, HttpRequest] | None:
        now = time.monotonic()
        for name, slot in self._slots.items():
            if slot.wanted is not None and slot.not_before <= now:
                request, slot.wanted = slot.wanted, None
                return name, request
        return None

    def _idle_wait(self) -> float:
        now = time.monotonic()
        due = [s.not_before - now for s in self._slots.values() if s.wanted is not None]
        return max(0.0, min([IDLE_WAIT_S, *due]))

    def _send(self, light: str, request: HttpRequest) -> tuple[bool, str]:
        spec = self._specs[light]
        client = self._clients[(spec.verify_tls, spec.ca_file)]
        try:
            built = client.build_request(
                request.method,
                request.url,
                headers=list(request.headers),
                content=request.body,
                timeout=httpx.Timeout(self._deadline_s),
            )
            response = client.send(built, stream=True)
            response.close()  # the status is the answer; a body is not worth waiting for
        except httpx.TimeoutException:
            return False, "timeout"
        except (httpx.HTTPError, ssl.SSLError, OSError, ValueError) as exc:
            # The exception's text may quote the URL: only its type is logged.
            return False, type(exc).__name__
        if 200 <= response.status_code < 300:
            return True, ""
        return False, f"status={response.status_code}"

    def _after(self, light: str, request: HttpRequest, ok: bool, reason: str) -> None:
        origin = url_origin(self._specs[light].url or "")
        with self._cond:
            slot = self._slots[light]
            newer = slot.wanted is not None  # wanted while this one was on its way
            if ok:
                if slot.failures:
                    log.info(
                        "lights.http.recovered light=%s url=%s failures=%d", light, origin, slot.failures
                    )
                slot.delay, slot.failures, slot.not_before = 0.0, 0, 0.0
            else:
                if not slot.failures:
                    log.warning("lights.http.failed light=%s url=%s error=%s", light, origin, reason)
                slot.failures += 1
                initial, cap = self._backoff
                slot.delay = min(cap, slot.delay * 2 if slot.delay else initial)
                jittered = random.uniform(0.5 * slot.delay, slot.delay)  # noqa: S311 - jitter
                slot.not_before = time.monotonic() + jittered
                if not newer:
                    slot.wanted = request  # retried after the back-off unless a newer one comes
        if not ok and self._on_failure is not None:
            self._on_failure(light)
        if not newer:
            self._on_result(light, ok)


def _verify(verify_tls: bool, ca_file: str | None) -> ssl.SSLContext | bool:
    if not verify_tls:
        return False
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    return True


class _HideLightUrls(logging.Filter):
    """httpx logs every request's full URL (INFO, shown at ``log.level: debug``): for the lights'
    hosts, only scheme, host and port remain, since a path or query may be a token."""

    def __init__(self, origins: set[str]) -> None:
        super().__init__()
        self._origins = origins

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._hide(arg) for arg in record.args)
        return True

    def _hide(self, arg: object) -> object:
        if isinstance(arg, httpx.URL):
            origin = url_origin(str(arg))
            if origin in self._origins:
                return origin + "/..."
        return arg
