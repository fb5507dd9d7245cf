"""The CWA client test harness: a scripted fake CWA server behind `httpx.MockTransport`, instant
back-off and a fake clock (`make_client`), shared by the client tests."""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bridge.backoff import InstantSleeper
from bridge.cwa import codec
from bridge.cwa.client import CwaClient, CwaClientSettings
from bridge.cwa.events import (
    Event,
    EventBatch,
    RequestFailedEvent,
    RequestSucceededEvent,
    UserPresence,
    UserPresenceEvent,
)
from bridge.cwa.messages import (
    Accepted,
    Category,
    ErrorInfo,
    InitiateSession,
    Method,
    PublishSelfPresence,
    QueryPresence,
    Refused,
    Response,
    ResponseBatch,
    StateContent,
    SubscribePresence,
    Succeeded,
)
from bridge.cwa.notices import (
    Notice,
)

PASSWORD = "pw-SECRET-do-not-log"
XML = {"Content-Type": "text/xml; charset=utf-8"}


class FakeClock:
    def __init__(self) -> None:
        self._now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@dataclasses.dataclass
class Seen:
    """One request as the fake server saw it."""

    at: float
    channel: str
    ticket: str | None
    params: dict[str, str]
    sid: str | None = None
    methods: tuple[Method, ...] = ()


def state(availability: int) -> Category:
    return Category("state", content=StateContent("aggregateState", availability))


def user_presence(uri: str, availability: int) -> UserPresenceEvent:
    return UserPresenceEvent(eid=0, users=(UserPresence(uri=uri, categories=(state(availability),)),))


class FakeCwa:
    """A small scripted CWA server. Tickets, sids and eids behave like §2-§4 describe."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.cond = threading.Condition()
        self.seen: list[Seen] = []
        self.accept_credentials = True
        self.tickets = 0
        self.valid: set[str] = set()
        self.rotate_to: str | None = None
        self.sid = ""
        self.sessions = 0
        self.events: list[Event] = []
        self.poll_wait_ms = 100
        self.auto_result = True
        self.presence: dict[str, int] = {}
        self.data_script: deque[Callable[[httpx.Request], httpx.Response]] = deque()
        self.command_hook: Callable[[Method], Response | None] | None = None
        self.logon_script: deque[Callable[[httpx.Request], httpx.Response]] = deque()

    # ------------------------------------------------------------------ scripting helpers

    def push(self, *events: Event) -> None:
        with self.cond:
            for event in events:
                self.events.append(dataclasses.replace(event, eid=len(self.events) + 1))
            self.cond.notify_all()

    def expire_tickets(self) -> None:
        with self.cond:
            self.valid.clear()

    def kill_session(self) -> None:
        with self.cond:
            self.sid = "dead"

    def requests(self, channel: str) -> list[Seen]:
        with self.cond:
            return [s for s in self.seen if s.channel == channel]

    def methods(self, kind: type[Any]) -> list[Any]:
        with self.cond:
            return [m for s in self.seen for m in s.methods if isinstance(m, kind)]

    # ------------------------------------------------------------------ the handler

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        channel = {"/forms/logon.html": "logon", "/cwa/MainCommandHandler.ashx": "command"}.get(path, "data")
        seen = Seen(self.clock(), channel, request.headers.get("CWA-Ticket"), dict(request.url.params))
        if channel == "command":
            envelope = codec.decode_requests(request.content)
            seen.sid, seen.methods = envelope.sid, envelope.methods
        with self.cond:
            self.seen.append(seen)
        if channel == "logon":
            if self.logon_script:
                return self.logon_script.popleft()(request)
            return self._logon()
        if channel == "data" and self.data_script:
            return self._with_ticket(self.data_script.popleft()(request))
        if seen.ticket not in self.valid:
            return httpx.Response(401)
        if channel == "command":
            return self._with_ticket(self._command(seen))
        return self._with_ticket(self._poll(request))

    def _with_ticket(self, response: httpx.Response) -> httpx.Response:
        if self.rotate_to is not None:
            self.valid.add(self.rotate_to)
            response.headers["CWA-Ticket"] = self.rotate_to
        return response

    def _logon(self) -> httpx.Response:
        if not self.accept_credentials:
            body = codec.encode_responses(
                ResponseBatch((Refused(rid="", kind="failed", error=ErrorInfo(code=18201)),))
            )
            return httpx.Response(200, content=body, headers=XML)
        with self.cond:
            self.tickets += 1
            ticket = f"T{self.tickets}"
            self.valid = {ticket}
            self.rotate_to = None
        body = codec.encode_responses(ResponseBatch((Succeeded(rid="", sign_in_data="BLOB", uri="sip:a@x"),)))
        return httpx.Response(200, content=body, headers={**XML, "CWA-Ticket": ticket})

    def _command(self, seen: Seen) -> httpx.Response:
        answers: list[Response] = []
        for method in seen.methods:
            rid = getattr(method, "rid", None) or ""
            hooked = self.command_hook(method) if self.command_hook else None
            if hooked is not None:
                answers.append(hooked)
            elif isinstance(method, InitiateSession):
                with self.cond:
                    self.sessions += 1
                    self.sid = str(100 + self.sessions)
                    self.events = []
                answers.append(Accepted(rid=rid, sid=self.sid, poll_wait_time=self.poll_wait_ms))
            elif seen.sid != self.sid:
                answers.append(Refused(rid=rid, kind="failed", error=ErrorInfo(code=18100)))
            else:
                answers.append(Accepted(rid=rid))
                self._after(method, rid)
        return httpx.Response(200, content=codec.encode_responses(ResponseBatch(tuple(answers))), headers=XML)

    def _after(self, method: Method, rid: str) -> None:
        if isinstance(method, PublishSelfPresence) and self.auto_result:
            self.push(RequestSucceededEvent(eid=0, rid=rid))
        if isinstance(method, SubscribePresence | QueryPresence):
            for uri in method.uris:
                self.push(user_presence(uri, self.presence.get(uri, 3500)))

    def _poll(self, request: httpx.Request) -> httpx.Response:
        params = {k.lower(): v for k, v in request.url.params.items()}
        ack = int(params.get("ackid", "0"))
        with self.cond:
            if params.get("sid") != self.sid:
                body = EventBatch(
                    sid=None,
                    ack_id=None,
                    poll_wait_time=None,
                    events=(RequestFailedEvent(eid=1, rid="", error=ErrorInfo(code=18100)),),
                )
                return httpx.Response(200, content=codec.encode_events(body), headers=XML)
            if not [e for e in self.events if (e.eid or 0) > ack]:
                self.cond.wait(0.02)  # a short long-poll keeps the loop from spinning
            fresh = tuple(e for e in self.events if (e.eid or 0) > ack)
            top = max([ack, *(e.eid or 0 for e in fresh)])
        batch = EventBatch(sid=self.sid, ack_id=top, poll_wait_time=self.poll_wait_ms, events=fresh)
        return httpx.Response(200, content=codec.encode_events(batch), headers=XML)


@dataclasses.dataclass
class Harness:
    fake: FakeCwa
    client: CwaClient
    notices: list[Notice]
    sleeper: InstantSleeper
    clock: FakeClock
    metrics: list[tuple[str, float | str]]

    def of(self, kind: type[Any]) -> list[Any]:
        return [n for n in list(self.notices) if isinstance(n, kind)]

    def polls(self) -> list[Seen]:
        return self.fake.requests("data")


@pytest.fixture
def make_client() -> Iterator[Callable[..., Harness]]:
    made: list[tuple[CwaClient, httpx.Client]] = []

    def factory(
        start: bool = True,
        fake: FakeCwa | None = None,
        on_notice: Callable[[Notice], None] | None = None,
        **settings: Any,
    ) -> Harness:
        clock = FakeClock()
        fake = fake or FakeCwa(clock)
        fake.clock = clock
        notices: list[Notice] = []
        sleeper = InstantSleeper(advance=clock.advance)
        http = httpx.Client(transport=httpx.MockTransport(fake))
        options: dict[str, Any] = {
            "base_url": "http://cwa.test/",
            "username": "EXAMPLE\\alice",
            "password": PASSWORD,
            "uri": "sip:alice@example.org",
            "command_timeout_s": 2.0,
        }
        options.update(settings)
        metrics: list[tuple[str, float | str]] = []
        client = CwaClient(
            CwaClientSettings(**options),
            http,
            on_notice or notices.append,
            sleep=sleeper,
            clock=clock,
            on_metric=lambda name, value: metrics.append((name, value)),
        )
        made.append((client, http))
        if start:
            client.start()
        return Harness(fake, client, notices, sleeper, clock, metrics)

    yield factory
    for client, http in made:
        client.stop()
        http.close()


# ============================================================================ sign-in and session start
