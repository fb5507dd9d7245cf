"""The CWA client through `httpx.MockTransport`: a scripted fake server, instant back-off, a fake clock."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bridge.backoff import BackoffPolicy, InstantSleeper
from bridge.cwa import codec
from bridge.cwa.client import CwaClient, CwaClientSettings
from bridge.cwa.events import (
    Contact,
    ContactGroupEvent,
    Event,
    EventBatch,
    RequestFailedEvent,
    RequestSucceededEvent,
    SelfPresenceEvent,
    SubscriptionState,
    SubscriptionStateEvent,
    UnknownEvent,
    UserPresence,
    UserPresenceEvent,
)
from bridge.cwa.messages import (
    Accepted,
    Category,
    ErrorInfo,
    InitiateSession,
    Method,
    NoteContent,
    PublishSelfPresence,
    QueryPresence,
    Refused,
    Response,
    ResponseBatch,
    StateContent,
    SubscribePresence,
    Succeeded,
    TerminateSession,
)
from bridge.cwa.notices import (
    CommandNotice,
    ContactsNotice,
    Notice,
    SelfNotice,
    SessionNotice,
    UserNotice,
    WatchabilityNotice,
)
from bridge.errors import AuthRejected, CommandFailed, CwaError, CwaUnavailable
from bridge.presence import Status

PASSWORD = "pw-SECRET-do-not-log"
XML = {"Content-Type": "text/xml; charset=utf-8"}


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


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
def make() -> Iterator[Callable[..., Harness]]:
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


def test_start_signs_in_and_starts_a_quiet_observer_session(make: Callable[..., Harness]) -> None:
    h = make()
    wait_for(lambda: SessionNotice("online") in h.notices)
    assert h.client.state == "online"
    logon = h.fake.requests("logon")
    assert len(logon) == 1
    assert logon[0].ticket is None
    (start,) = [
        s for s in h.fake.requests("command") if s.methods and isinstance(s.methods[0], InitiateSession)
    ]
    assert start.ticket == "T1"  # the ticket from the logon header
    assert start.sid == "0"
    initiate = start.methods[0]
    assert isinstance(initiate, InitiateSession)
    assert initiate.availability is None  # no userStateAvailability: the account is left alone (§7.1)
    assert initiate.auto_publish_machine_state is False
    assert initiate.sign_in_data == "BLOB"  # echoed (§3.3)
    wait_for(lambda: len(h.polls()) >= 3)
    for poll in h.polls()[:3]:
        assert poll.params["UA"] == "false"
        assert poll.params["Sid"] == "101"
        assert poll.ticket == "T1"
    assert h.polls()[0].params["AckId"] == "0"


def test_initial_availability_is_sent_only_when_configured(make: Callable[..., Harness]) -> None:
    h = make(initial_availability=3500)
    (initiate,) = h.fake.methods(InitiateSession)
    assert initiate.availability == 3500


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (
            200,
            codec.encode_responses(ResponseBatch((Refused("", "failed", ErrorInfo(code=1)),))),
            AuthRejected,
        ),
        (401, b"", AuthRejected),
        (403, b"<html>denied</html>", AuthRejected),
        (200, b"<html>welcome back</html>", AuthRejected),
        (500, b"oops", CwaUnavailable),
        (503, b"", CwaUnavailable),
    ],
)
def test_sign_in_without_a_ticket_fails(
    make: Callable[..., Harness],
    status: int,
    body: bytes,
    error: type[Exception],
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = make(start=False)
    h.fake.logon_script.append(lambda _r: httpx.Response(status, content=body))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(error) as info:
        h.client.start()
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in caplog.text
    assert not h.fake.requests("command")
    h.client.start()  # start() may be tried again; this time the fake accepts
    wait_for(lambda: h.client.state == "online")


def test_sign_in_succeeds_on_the_ticket_header_whatever_the_body(make: Callable[..., Harness]) -> None:
    h = make(start=False)

    def odd_logon(_r: httpx.Request) -> httpx.Response:
        h.fake.valid = {"TX"}
        return httpx.Response(200, content=b"<html>not xml at all", headers={"CWA-Ticket": "TX"})

    h.fake.logon_script.append(odd_logon)
    h.client.start()
    (initiate,) = h.fake.methods(InitiateSession)
    assert initiate.sign_in_data is None
    assert h.fake.requests("command")[0].ticket == "TX"


def test_transport_error_at_sign_in_is_unavailable(make: Callable[..., Harness]) -> None:
    h = make(start=False)

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    h.fake.logon_script.append(broken)
    with pytest.raises(CwaUnavailable):
        h.client.start()


def test_settings_repr_hides_the_password() -> None:
    settings = CwaClientSettings(base_url="http://x", username="u", password=PASSWORD, uri="sip:u@x")
    assert PASSWORD not in repr(settings)


# ============================================================================ the data channel


def test_newest_ticket_of_any_response_is_used(make: Callable[..., Harness]) -> None:
    h = make()
    wait_for(lambda: len(h.polls()) >= 2)
    h.fake.rotate_to = "T-rotated"
    wait_for(lambda: any(p.ticket == "T-rotated" for p in h.polls()))
    h.fake.valid = {"T-rotated"}  # the old ticket stops working: the client must not notice
    h.client.set_watched(["sip:bob@x"])
    wait_for(lambda: len(h.fake.methods(SubscribePresence)) == 1)
    assert h.fake.requests("command")[-1].ticket == "T-rotated"
    assert len(h.fake.requests("logon")) == 1


def test_polls_are_paced_by_poll_wait_time_after_each_response(make: Callable[..., Harness]) -> None:
    h = make()
    wait_for(lambda: len(h.polls()) >= 4)
    h.fake.poll_wait_ms = 700  # the server raises pollWaitTime (§7.2.6)
    wait_for(lambda: len(h.polls()) >= 10)
    polls = h.polls()
    gaps = [b.at - a.at for a, b in itertools.pairwise(polls)]
    assert all(gap >= 0.1 - 1e-9 for gap in gaps)  # never sooner than pollWaitTime
    assert gaps[-1] >= 0.7 - 1e-9
    assert (
        pytest.approx(0.1) in h.sleeper.waits
    )  # exactly pollWaitTime: the fake clock did not move during the GET


def test_events_are_delivered_once_even_when_redelivered(make: Callable[..., Harness]) -> None:
    h = make()
    events = (user_presence("sip:bob@x", 6500), user_presence("sip:carol@x", 9500))
    numbered = tuple(dataclasses.replace(e, eid=i + 1) for i, e in enumerate(events))
    again = EventBatch(sid="101", ack_id=2, poll_wait_time=100, events=numbered)

    def redeliver(_r: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=codec.encode_events(again), headers=XML)

    h.fake.data_script.extend([redeliver, redeliver])
    wait_for(lambda: len(h.polls()) >= 4)
    assert [n.uri for n in h.of(UserNotice)] == ["sip:bob@x", "sip:carol@x"]
    assert h.polls()[-1].params["AckId"] == "2"  # echoed verbatim


def test_notices_follow_eid_order_and_unused_events_are_ignored(make: Callable[..., Harness]) -> None:
    h = make()
    h.fake.push(
        UnknownEvent(eid=0, name="initiateImSessionAccepted"),
        SelfPresenceEvent(eid=0, categories=(state(6500),)),
        user_presence("sip:bob@x", 15500),
        UnknownEvent(eid=0, name="conference"),
        user_presence("sip:carol@x", 3500),
    )
    wait_for(lambda: len(h.of(UserNotice)) == 2)
    kinds = [type(n).__name__ for n in h.notices if not isinstance(n, SessionNotice)]
    assert kinds == ["SelfNotice", "UserNotice", "UserNotice"]
    assert h.of(SelfNotice)[0].summary.availability == 6500
    assert h.of(UserNotice)[0].summary.availability == 15500
    assert h.client.state == "online"


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(lambda r: httpx.Response(503), id="http-503"),
        pytest.param(
            lambda r: httpx.Response(
                200,
                headers=XML,
                content=codec.encode_events(
                    EventBatch(
                        "101",
                        int(r.url.params["AckId"]),
                        100,
                        events=(RequestFailedEvent(1, "", ErrorInfo(code=18101)),),
                    )
                ),
            ),
            id="18101",
        ),
        pytest.param(
            lambda r: (_ for _ in ()).throw(httpx.ReadTimeout("held", request=r)), id="read-timeout"
        ),
        pytest.param(
            lambda r: (_ for _ in ()).throw(httpx.ConnectError("down", request=r)), id="connect-error"
        ),
        pytest.param(
            lambda r: httpx.Response(200, headers=XML, content=b"<cwaEvents ackId='1'><oops"), id="malformed"
        ),
        pytest.param(
            lambda r: httpx.Response(
                200, headers=XML, content=b"<cwaEvents>" + b"x" * 5000 + b"</cwaEvents>"
            ),
            id="oversized",
        ),
    ],
)
def test_transient_data_channel_failures_back_off_and_repoll_with_the_same_ack_id(
    make: Callable[..., Harness], failure: Callable[[httpx.Request], httpx.Response]
) -> None:
    h = make(max_body_bytes=4096, backoff_initial_s=1.0, backoff_max_s=8.0)
    h.fake.push(user_presence("sip:bob@x", 6500))
    wait_for(lambda: len(h.of(UserNotice)) == 1)
    wait_for(lambda: len(h.polls()) >= 3)
    failed_at: list[int] = []

    def failing(request: httpx.Request) -> httpx.Response:
        failed_at.append(len(h.polls()) - 1)
        return failure(request)

    waits_before = len(h.sleeper.waits)
    h.fake.data_script.extend([failing, failing])
    wait_for(lambda: len(failed_at) == 2)
    h.fake.push(user_presence("sip:bob@x", 9500))
    wait_for(lambda: len(h.of(UserNotice)) == 2)
    polls = h.polls()
    for index in failed_at:
        assert polls[index + 1].params["AckId"] == polls[index].params["AckId"] == "1"
    assert h.of(UserNotice)[-1].summary.availability == 9500
    assert len(h.fake.requests("logon")) == 1  # no re-sign-in for a transient failure
    assert sum(h.client.stats.values()) >= 2
    assert any(0 <= w <= 2.0 for w in h.sleeper.waits[waits_before:])  # jittered back-off was taken
    assert h.client.state == "online"


def test_a_persistently_failing_data_channel_reports_reconnecting(make: Callable[..., Harness]) -> None:
    h = make()
    wait_for(lambda: h.client.state == "online")
    h.fake.data_script.extend([lambda r: httpx.Response(503)] * 4)
    wait_for(lambda: SessionNotice("reconnecting", "throttled") in h.notices)
    wait_for(lambda: h.of(SessionNotice)[-1] == SessionNotice("online"))


# ============================================================================ recovery


def expired_401(_r: httpx.Request) -> httpx.Response:
    return httpx.Response(401)


def expired_302(_r: httpx.Request) -> httpx.Response:
    return httpx.Response(302, headers={"Location": "/forms/logon.html"})


def expired_html(_r: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200, headers={"Content-Type": "text/html"}, content=b"<!DOCTYPE html><html>sign in</html>"
    )


@pytest.mark.parametrize("expired", [expired_401, expired_302, expired_html])
def test_expired_ticket_means_sign_in_new_session_resubscribe_and_republish(
    make: Callable[..., Harness], expired: Callable[[httpx.Request], httpx.Response]
) -> None:
    h = make()
    h.client.set_watched(["sip:bob@x", "sip:carol@x"])
    assert h.client.publish_self(Status.BUSY, "in the lab").applied
    wait_for(lambda: len(h.of(UserNotice)) == 2)
    h.fake.expire_tickets()
    h.fake.data_script.append(expired)
    wait_for(lambda: len(h.fake.requests("logon")) == 2)
    wait_for(lambda: len(h.fake.methods(PublishSelfPresence)) == 2)
    wait_for(lambda: len(h.of(UserNotice)) == 4)
    subscribed = [u for m in h.fake.methods(SubscribePresence) for u in m.uris]
    assert subscribed.count("sip:bob@x") == 2
    assert subscribed.count("sip:carol@x") == 2
    republished = h.fake.methods(PublishSelfPresence)[-1]
    assert _published(republished) == (6500, "in the lab")
    states = [n.state for n in h.of(SessionNotice)]
    assert states[:3] == ["online", "reconnecting", "online"]
    assert h.of(SessionNotice)[1].error == "ticket_expired"
    assert h.client.stats["ticket_expired"] >= 1
    new_session_polls = [p for p in h.polls() if p.params["Sid"] == "102"]
    assert new_session_polls[0].params["AckId"] == "0"  # a new session starts at AckId 0


@pytest.mark.parametrize("how", ["event", "http-404", "command"])
def test_lost_session_gets_a_new_session_with_the_same_ticket(make: Callable[..., Harness], how: str) -> None:
    h = make()
    h.client.set_watched(["sip:bob@x"])
    wait_for(lambda: len(h.of(UserNotice)) == 1)
    h.fake.kill_session()
    if how == "http-404":
        h.fake.data_script.append(lambda r: httpx.Response(404))
    if how == "command":
        answers: list[CwaError | None] = []
        h.client.refresh(on_done=answers.append)  # the command channel sees 18100 first
        wait_for(lambda: len(answers) == 1)
        assert isinstance(answers[0], CwaError)
    wait_for(lambda: len(h.fake.methods(InitiateSession)) == 2)
    wait_for(lambda: len(h.of(UserNotice)) == 2)
    assert len(h.fake.requests("logon")) == 1  # the ticket was still good
    assert h.fake.requests("command")[-1].ticket == "T1"


def test_refused_new_session_falls_back_to_full_sign_in(make: Callable[..., Harness]) -> None:
    h = make()
    wait_for(lambda: len(h.polls()) >= 1)
    refusals = deque([Refused(rid="", kind="failed", error=ErrorInfo(code=18100))])

    def hook(method: Method) -> Response | None:
        if isinstance(method, InitiateSession) and refusals:
            return dataclasses.replace(refusals.popleft(), rid=method.rid)
        return None

    h.fake.command_hook = hook
    h.fake.kill_session()
    wait_for(lambda: len(h.fake.requests("logon")) == 2)
    wait_for(lambda: h.client.state == "online" and len(h.fake.methods(InitiateSession)) == 3)


def test_server_restart_is_detected_from_ack_going_back(make: Callable[..., Harness]) -> None:
    h = make()
    h.fake.push(*[user_presence("sip:bob@x", 3500) for _ in range(5)])
    wait_for(lambda: len(h.of(UserNotice)) == 5)
    restarted = EventBatch(
        "101", 1, 100, events=(dataclasses.replace(user_presence("sip:bob@x", 6500), eid=1),)
    )
    h.fake.data_script.append(
        lambda r: httpx.Response(200, headers=XML, content=codec.encode_events(restarted))
    )
    wait_for(lambda: len(h.fake.methods(InitiateSession)) == 2)
    assert h.client.stats["server_restart"] == 1


def test_rejected_credentials_after_start_give_auth_failed_and_long_retries(
    make: Callable[..., Harness],
) -> None:
    h = make(backoff_max_s=60.0)
    wait_for(lambda: h.client.state == "online")
    h.fake.accept_credentials = False
    h.fake.expire_tickets()
    wait_for(lambda: h.client.state == "auth_failed")
    wait_for(lambda: len(h.fake.requests("logon")) >= 4)
    assert any(w >= 30.0 for w in h.sleeper.waits)  # long back-off: between half the cap and the cap
    assert SessionNotice("auth_failed", "auth_rejected") in h.notices
    h.fake.accept_credentials = True
    wait_for(lambda: h.client.state == "online")


# ============================================================================ watching


def test_subscriptions_are_batched_by_one_hundred(make: Callable[..., Harness]) -> None:
    h = make()
    uris = [f"sip:user{i}@x" for i in range(250)]
    h.client.set_watched(uris)  # returns at once: the command worker subscribes
    wait_for(lambda: len(h.fake.methods(SubscribePresence)) == 3)
    batches = h.fake.methods(SubscribePresence)
    assert [len(b.uris) for b in batches] == [100, 100, 50]
    assert [u for b in batches for u in b.uris] == uris
    h.client.set_watched([*uris, "sip:late@x"])  # only the new one is subscribed
    wait_for(lambda: len(h.fake.methods(SubscribePresence)) == 4)
    assert h.fake.methods(SubscribePresence)[-1].uris == ("sip:late@x",)
    answers: list[CwaError | None] = []
    h.client.refresh(on_done=answers.append)
    wait_for(lambda: answers == [None])
    assert [len(q.uris) for q in h.fake.methods(QueryPresence)] == [100, 100, 51]
    h.client.refresh("sip:user7@x", on_done=answers.append)
    wait_for(lambda: answers == [None, None])
    assert h.fake.methods(QueryPresence)[-1].uris == ("sip:user7@x",)


def test_watch_set_before_start_is_subscribed_when_the_session_starts(make: Callable[..., Harness]) -> None:
    h = make(start=False)
    h.client.set_watched(["sip:bob@x"])
    assert not h.fake.methods(SubscribePresence)
    h.client.start()
    wait_for(lambda: len(h.fake.methods(SubscribePresence)) == 1)
    assert h.fake.methods(SubscribePresence)[0].uris == ("sip:bob@x",)


def test_unknown_user_does_not_affect_the_others(make: Callable[..., Harness]) -> None:
    h = make()

    def hook(method: Method) -> Response | None:
        if isinstance(method, SubscribePresence) and "sip:ghost@x" in method.uris:
            return Refused(rid=method.rid, kind="failed", error=ErrorInfo(code=18201, sip_code=404))
        return None

    h.fake.command_hook = hook
    h.client.set_watched(["sip:bob@x", "sip:ghost@x", "sip:carol@x"])
    wait_for(lambda: {n.uri for n in h.of(UserNotice)} == {"sip:bob@x", "sip:carol@x"})
    wait_for(lambda: WatchabilityNotice("sip:ghost@x", False, "unknown user") in h.notices)
    attempts = len(h.fake.methods(SubscribePresence))
    wait_for(lambda: len(h.fake.methods(SubscribePresence)) >= attempts + 2)  # re-tried with back-off
    h.fake.command_hook = None
    wait_for(lambda: WatchabilityNotice("sip:ghost@x", True, None) in h.notices)
    assert len(h.of(WatchabilityNotice)) == 2  # transitions only, not one per retry


def test_terminated_subscription_is_unwatchable_then_resubscribed(make: Callable[..., Harness]) -> None:
    h = make()
    h.client.set_watched(["sip:bob@x"])
    wait_for(lambda: len(h.of(UserNotice)) == 1)
    h.fake.auto_result = False
    h.fake.presence["sip:bob@x"] = 12500
    h.fake.push(
        SubscriptionStateEvent(
            eid=0,
            users=(
                SubscriptionState("sip:bob@x", "terminated"),
                SubscriptionState("sip:carol@x", "subscribed"),
            ),
        )
    )
    wait_for(lambda: WatchabilityNotice("sip:bob@x", True, None) in h.notices)
    watch = h.of(WatchabilityNotice)
    assert watch == [
        WatchabilityNotice("sip:bob@x", False, "subscription terminated"),
        WatchabilityNotice("sip:bob@x", True, None),
    ]
    assert len(h.fake.methods(SubscribePresence)) == 2
    assert h.of(UserNotice)[-1].summary.availability == 12500


def test_contacts_are_reported_and_subscribed_with_watch_contacts(make: Callable[..., Harness]) -> None:
    h = make(watch_contacts=True)
    h.fake.push(
        ContactGroupEvent(
            eid=0,
            full_list=True,
            delta_num=1,
            contacts=(Contact("sip:bob@x", "Bob"), Contact("sip:carol@x", "Carol")),
        )
    )
    wait_for(lambda: len(h.of(ContactsNotice)) == 1)
    assert h.of(ContactsNotice)[0].contacts == (("sip:bob@x", "Bob"), ("sip:carol@x", "Carol"))
    wait_for(lambda: {n.uri for n in h.of(UserNotice)} == {"sip:bob@x", "sip:carol@x"})
    h.fake.push(
        ContactGroupEvent(
            eid=0,
            full_list=False,
            delta_num=2,
            contacts=(Contact("sip:bob@x", action="deleted"), Contact("sip:dave@x", "Dave", action="added")),
        )
    )
    wait_for(lambda: len(h.of(ContactsNotice)) == 2)
    assert h.of(ContactsNotice)[1].contacts == (("sip:carol@x", "Carol"), ("sip:dave@x", "Dave"))
    wait_for(lambda: "sip:dave@x" in {u for m in h.fake.methods(SubscribePresence) for u in m.uris})


def test_contacts_are_not_subscribed_without_watch_contacts(make: Callable[..., Harness]) -> None:
    h = make()
    h.fake.push(
        ContactGroupEvent(eid=0, full_list=True, delta_num=1, contacts=(Contact("sip:bob@x", "Bob"),))
    )
    wait_for(lambda: len(h.of(ContactsNotice)) == 1)
    assert not h.fake.methods(SubscribePresence)


# ============================================================================ own state


def _published(method: PublishSelfPresence) -> tuple[int | None, str | None]:
    availability = note = None
    for category in method.categories:
        if isinstance(category.content, StateContent):
            assert category.content.manual
            availability = category.content.availability
        if isinstance(category.content, NoteContent):
            assert [b.kind for b in category.content.bodies] == ["personal"]
            note = category.content.bodies[0].text
    return availability, note


def test_publish_self_sends_manual_state_and_note_in_one_request(make: Callable[..., Harness]) -> None:
    h = make()
    outcome = h.client.publish_self(Status.DO_NOT_DISTURB, "Focus time")
    assert outcome.applied
    assert outcome.confirmed
    (method,) = h.fake.methods(PublishSelfPresence)
    assert _published(method) == (9500, "Focus time")
    h.client.publish_self(note="")
    assert _published(h.fake.methods(PublishSelfPresence)[-1]) == (None, "")


def test_publish_self_raises_command_failed_on_refusal(make: Callable[..., Harness]) -> None:
    h = make()
    h.fake.auto_result = False

    def hook(method: Method) -> Response | None:
        if isinstance(method, PublishSelfPresence):
            h.fake.push(
                RequestFailedEvent(eid=0, rid=method.rid, error=ErrorInfo(code=18201, reason="OCS said no"))
            )
        return None

    h.fake.command_hook = hook
    with pytest.raises(CommandFailed, match="CWA error 18201: OCS said no") as info:
        h.client.publish_self(Status.AWAY)
    assert info.value.code == 18201
    h.fake.command_hook = lambda m: Refused(
        rid=getattr(m, "rid", ""), kind="invalid", error=ErrorInfo(code=18000)
    )
    with pytest.raises(CommandFailed, match="18000"):
        h.client.publish_self(Status.AWAY)


def test_publish_self_rejects_unsettable_input(make: Callable[..., Harness]) -> None:
    h = make()
    with pytest.raises(ValueError, match="cannot be set"):
        h.client.publish_self(Status.UNKNOWN)
    with pytest.raises(ValueError, match="needs"):
        h.client.publish_self()
    assert not h.fake.methods(PublishSelfPresence)


def test_publish_while_down_is_queued_and_applied_on_recovery(make: Callable[..., Harness]) -> None:
    h = make(start=False)
    outcome = h.client.publish_self(Status.BE_RIGHT_BACK, "brb")
    assert outcome.queued
    assert not outcome.applied
    h.client.start()
    wait_for(lambda: len(h.of(CommandNotice)) == 1)
    assert h.of(CommandNotice) == [CommandNotice(Status.BE_RIGHT_BACK, "brb", True, None)]
    assert _published(h.fake.methods(PublishSelfPresence)[0]) == (12500, "brb")


def test_commanded_state_is_republished_periodically(make: Callable[..., Harness]) -> None:
    h = make(republish_s=1.0)
    h.client.publish_self(Status.BUSY)
    wait_for(lambda: len(h.fake.methods(PublishSelfPresence)) >= 3)
    assert {_published(m) for m in h.fake.methods(PublishSelfPresence)} == {(6500, None)}
    assert not h.of(CommandNotice)  # successful re-publishes are silent


# ============================================================================ stop, secrets, back-off


def test_stop_terminates_the_session_and_the_thread(make: Callable[..., Harness]) -> None:
    h = make()
    wait_for(lambda: len(h.polls()) >= 2)
    began = time.monotonic()
    h.client.stop()
    assert time.monotonic() - began < 1.5
    (terminate,) = h.fake.methods(TerminateSession)
    assert terminate.rid
    assert h.client.state == "stopped"
    assert h.of(SessionNotice)[-1] == SessionNotice("stopped")
    count = len(h.polls())
    assert len(h.polls()) == count
    with pytest.raises(CwaUnavailable):
        h.client.refresh()


def test_secrets_never_reach_the_logs(make: Callable[..., Harness], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    h = make()
    h.fake.expire_tickets()
    h.fake.data_script.extend([expired_401, lambda r: httpx.Response(200, content=b"<broken")])
    wait_for(lambda: len(h.fake.requests("logon")) >= 2 and h.client.state == "online")
    h.client.stop()
    assert "cwa.session.online" in caplog.text
    assert PASSWORD not in caplog.text
    for ticket in ("T1", "T2"):
        assert f"={ticket}" not in caplog.text
        assert f" {ticket}" not in caplog.text


def test_backoff_policy_is_capped_exponential_with_full_jitter() -> None:
    import random

    policy = BackoffPolicy(initial_s=1.0, max_s=10.0)
    rng = random.Random(4)
    assert [policy.cap(n) for n in (1, 2, 3, 4, 5, 50)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    delays = [policy.delay(3, rng) for _ in range(200)]
    assert all(0 <= d <= 4.0 for d in delays)
    assert max(delays) - min(delays) > 1.0  # jittered, not fixed
    assert all(5.0 <= policy.delay(1, rng, long=True) <= 10.0 for _ in range(50))


def test_metrics_report_latency_events_restarts_and_errors(make: Callable[..., Harness]) -> None:
    h = make()
    h.fake.push(user_presence("sip:bob@x", 6500))
    h.fake.data_script.append(lambda r: httpx.Response(503))
    wait_for(lambda: ("error", "throttled") in list(h.metrics))
    wait_for(lambda: ("events", 1.0) in list(h.metrics))
    assert ("session_restart", 1.0) not in h.metrics  # the first session is no restart
    h.fake.kill_session()
    wait_for(lambda: ("session_restart", 1.0) in list(h.metrics))
    latencies = [v for n, v in list(h.metrics) if n == "poll_latency"]
    assert latencies
    assert all(isinstance(v, float) and v >= 0 for v in latencies)
    assert h.client.stats["throttled"] == 1


def test_a_failing_notice_callback_does_not_stop_the_client(make: Callable[..., Harness]) -> None:
    calls: list[Notice] = []

    def explode(notice: Notice) -> None:
        calls.append(notice)
        raise RuntimeError("owner bug")

    h = make(on_notice=explode)
    h.fake.push(user_presence("sip:bob@x", 6500), user_presence("sip:bob@x", 9500))
    wait_for(lambda: len([n for n in calls if isinstance(n, UserNotice)]) == 2)
    assert h.client.state == "online"
