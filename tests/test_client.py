"""The CWA client through `httpx.MockTransport`: a scripted fake server, instant back-off, a fake clock."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable

import httpx
import pytest

from bridge.backoff import BackoffPolicy
from bridge.cwa import codec
from bridge.cwa.client import CwaClientSettings
from bridge.cwa.events import (
    Contact,
    ContactGroupEvent,
    EventBatch,
    RequestFailedEvent,
    SelfPresenceEvent,
    SubscriptionState,
    SubscriptionStateEvent,
    UnknownEvent,
)
from bridge.cwa.messages import (
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
from tests.support.cwa_client import PASSWORD, XML, Harness, state, user_presence
from tests.support.outputs import wait_until


def test_start_signs_in_and_starts_a_quiet_observer_session(make_client: Callable[..., Harness]) -> None:
    h = make_client()
    wait_until(lambda: SessionNotice("online") in h.notices)
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
    wait_until(lambda: len(h.polls()) >= 3)
    for poll in h.polls()[:3]:
        assert poll.params["UA"] == "false"
        assert poll.params["Sid"] == "101"
        assert poll.ticket == "T1"
    assert h.polls()[0].params["AckId"] == "0"


def test_initial_availability_is_sent_only_when_configured(make_client: Callable[..., Harness]) -> None:
    h = make_client(initial_availability=3500)
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
    make_client: Callable[..., Harness],
    status: int,
    body: bytes,
    error: type[Exception],
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = make_client(start=False)
    h.fake.logon_script.append(lambda _r: httpx.Response(status, content=body))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(error) as info:
        h.client.start()
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in caplog.text
    assert not h.fake.requests("command")
    h.client.start()  # start() may be tried again; this time the fake accepts
    wait_until(lambda: h.client.state == "online")


def test_sign_in_succeeds_on_the_ticket_header_whatever_the_body(make_client: Callable[..., Harness]) -> None:
    h = make_client(start=False)

    def odd_logon(_r: httpx.Request) -> httpx.Response:
        h.fake.valid = {"TX"}
        return httpx.Response(200, content=b"<html>not xml at all", headers={"CWA-Ticket": "TX"})

    h.fake.logon_script.append(odd_logon)
    h.client.start()
    (initiate,) = h.fake.methods(InitiateSession)
    assert initiate.sign_in_data is None
    assert h.fake.requests("command")[0].ticket == "TX"


def test_transport_error_at_sign_in_is_unavailable(make_client: Callable[..., Harness]) -> None:
    h = make_client(start=False)

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    h.fake.logon_script.append(broken)
    with pytest.raises(CwaUnavailable):
        h.client.start()


def test_settings_repr_hides_the_password() -> None:
    settings = CwaClientSettings(base_url="http://x", username="u", password=PASSWORD, uri="sip:u@x")
    assert PASSWORD not in repr(settings)


# ============================================================================ the data channel


def test_newest_ticket_of_any_response_is_used(make_client: Callable[..., Harness]) -> None:
    h = make_client()
    wait_until(lambda: len(h.polls()) >= 2)
    h.fake.rotate_to = "T-rotated"
    wait_until(lambda: any(p.ticket == "T-rotated" for p in h.polls()))
    h.fake.valid = {"T-rotated"}  # the old ticket stops working: the client must not notice
    h.client.set_watched(["sip:bob@x"])
    wait_until(lambda: len(h.fake.methods(SubscribePresence)) == 1)
    assert h.fake.requests("command")[-1].ticket == "T-rotated"
    assert len(h.fake.requests("logon")) == 1


def test_polls_are_paced_by_poll_wait_time_after_each_response(make_client: Callable[..., Harness]) -> None:
    h = make_client()
    wait_until(lambda: len(h.polls()) >= 4)
    h.fake.poll_wait_ms = 700  # the server raises pollWaitTime (§7.2.6)
    wait_until(lambda: len(h.polls()) >= 10)
    polls = h.polls()
    gaps = [b.at - a.at for a, b in itertools.pairwise(polls)]
    assert all(gap >= 0.1 - 1e-9 for gap in gaps)  # never sooner than pollWaitTime
    assert gaps[-1] >= 0.7 - 1e-9
    assert (
        pytest.approx(0.1) in h.sleeper.waits
    )  # exactly pollWaitTime: the fake clock did not move during the GET


def test_events_are_delivered_once_even_when_redelivered(make_client: Callable[..., Harness]) -> None:
    h = make_client()
    events = (user_presence("sip:bob@x", 6500), user_presence("sip:carol@x", 9500))
    numbered = tuple(dataclasses.replace(e, eid=i + 1) for i, e in enumerate(events))
    again = EventBatch(sid="101", ack_id=2, poll_wait_time=100, events=numbered)

    def redeliver(_r: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=codec.encode_events(again), headers=XML)

    h.fake.data_script.extend([redeliver, redeliver])
    wait_until(lambda: len(h.polls()) >= 4)
    assert [n.uri for n in h.of(UserNotice)] == ["sip:bob@x", "sip:carol@x"]
    assert h.polls()[-1].params["AckId"] == "2"  # echoed verbatim


def test_notices_follow_eid_order_and_unused_events_are_ignored(make_client: Callable[..., Harness]) -> None:
    h = make_client()
    h.fake.push(
        UnknownEvent(eid=0, name="initiateImSessionAccepted"),
        SelfPresenceEvent(eid=0, categories=(state(6500),)),
        user_presence("sip:bob@x", 15500),
        UnknownEvent(eid=0, name="conference"),
        user_presence("sip:carol@x", 3500),
    )
    wait_until(lambda: len(h.of(UserNotice)) == 2)
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
    make_client: Callable[..., Harness], failure: Callable[[httpx.Request], httpx.Response]
) -> None:
    h = make_client(max_body_bytes=4096, backoff_initial_s=1.0, backoff_max_s=8.0)
    h.fake.push(user_presence("sip:bob@x", 6500))
    wait_until(lambda: len(h.of(UserNotice)) == 1)
    wait_until(lambda: len(h.polls()) >= 3)
    failed_at: list[int] = []

    def failing(request: httpx.Request) -> httpx.Response:
        failed_at.append(len(h.polls()) - 1)
        return failure(request)

    waits_before = len(h.sleeper.waits)
    h.fake.data_script.extend([failing, failing])
    wait_until(lambda: len(failed_at) == 2)
    h.fake.push(user_presence("sip:bob@x", 9500))
    wait_until(lambda: len(h.of(UserNotice)) == 2)
    polls = h.polls()
    for index in failed_at:
        assert polls[index + 1].params["AckId"] == polls[index].params["AckId"] == "1"
    assert h.of(UserNotice)[-1].summary.availability == 9500
    assert len(h.fake.requests("logon")) == 1  # no re-sign-in for a transient failure
    assert sum(h.client.stats.values()) >= 2
    assert any(0 <= w <= 2.0 for w in h.sleeper.waits[waits_before:])  # jittered back-off was taken
    assert h.client.state == "online"


def test_a_persistently_failing_data_channel_reports_reconnecting(
    make_client: Callable[..., Harness],
) -> None:
    h = make_client()
    wait_until(lambda: h.client.state == "online")
    h.fake.data_script.extend([lambda r: httpx.Response(503)] * 4)
    wait_until(lambda: SessionNotice("reconnecting", "throttled") in h.notices)
    wait_until(lambda: h.of(SessionNotice)[-1] == SessionNotice("online"))


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
    make_client: Callable[..., Harness], expired: Callable[[httpx.Request], httpx.Response]
) -> None:
    h = make_client()
    h.client.set_watched(["sip:bob@x", "sip:carol@x"])
    assert h.client.publish_self(Status.BUSY, "in the lab").applied
    wait_until(lambda: len(h.of(UserNotice)) == 2)
    h.fake.expire_tickets()
    h.fake.data_script.append(expired)
    wait_until(lambda: len(h.fake.requests("logon")) == 2)
    wait_until(lambda: len(h.fake.methods(PublishSelfPresence)) == 2)
    wait_until(lambda: len(h.of(UserNotice)) == 4)
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
def test_lost_session_gets_a_new_session_with_the_same_ticket(
    make_client: Callable[..., Harness], how: str
) -> None:
    h = make_client()
    h.client.set_watched(["sip:bob@x"])
    wait_until(lambda: len(h.of(UserNotice)) == 1)
    h.fake.kill_session()
    if how == "http-404":
        h.fake.data_script.append(lambda r: httpx.Response(404))
    if how == "command":
        answers: list[CwaError | None] = []
        h.client.refresh(on_done=answers.append)  # the command channel sees 18100 first
        wait_until(lambda: len(answers) == 1)
        assert isinstance(answers[0], CwaError)
    wait_until(lambda: len(h.fake.methods(InitiateSession)) == 2)
    wait_until(lambda: len(h.of(UserNotice)) == 2)
    assert len(h.fake.requests("logon")) == 1  # the ticket was still good
    assert h.fake.requests("command")[-1].ticket == "T1"


def test_refused_new_session_falls_back_to_full_sign_in(make_client: Callable[..., Harness]) -> None:
    h = make_client()
    wait_until(lambda: len(h.polls()) >= 1)
    refusals = deque([Refused(rid="", kind="failed", error=ErrorInfo(code=18100))])

    def hook(method: Method) -> Response | None:
        if isinstance(method, InitiateSession) and refusals:
            return dataclasses.replace(refusals.popleft(), rid=method.rid)
        return None

    h.fake.command_hook = hook
    h.fake.kill_session()
    wait_until(lambda: len(h.fake.requests("logon")) == 2)
    wait_until(lambda: h.client.state == "online" and len(h.fake.methods(InitiateSession)) == 3)


def test_server_restart_is_detected_from_ack_going_back(make_client: Callable[..., Harness]) -> None:
    h = make_client()
    h.fake.push(*[user_presence("sip:bob@x", 3500) for _ in range(5)])
    wait_until(lambda: len(h.of(UserNotice)) == 5)
    restarted = EventBatch(
        "101", 1, 100, events=(dataclasses.replace(user_presence("sip:bob@x", 6500), eid=1),)
    )
    h.fake.data_script.append(
        lambda r: httpx.Response(200, headers=XML, content=codec.encode_events(restarted))
    )
    wait_until(lambda: len(h.fake.methods(InitiateSession)) == 2)
    assert h.client.stats["server_restart"] == 1


def test_rejected_credentials_after_start_give_auth_failed_and_long_retries(
    make_client: Callable[..., Harness],
) -> None:
    h = make_client(backoff_max_s=60.0)
    wait_until(lambda: h.client.state == "online")
    h.fake.accept_credentials = False
    h.fake.expire_tickets()
    wait_until(lambda: h.client.state == "auth_failed")
    wait_until(lambda: len(h.fake.requests("logon")) >= 4)
    assert any(w >= 30.0 for w in h.sleeper.waits)  # long back-off: between half the cap and the cap
    assert SessionNotice("auth_failed", "auth_rejected") in h.notices
    h.fake.accept_credentials = True
    wait_until(lambda: h.client.state == "online")


# ============================================================================ watching


def test_subscriptions_are_batched_by_one_hundred(make_client: Callable[..., Harness]) -> None:
    h = make_client()
    uris = [f"sip:user{i}@x" for i in range(250)]
    h.client.set_watched(uris)  # returns at once: the command worker subscribes
    wait_until(lambda: len(h.fake.methods(SubscribePresence)) == 3)
    batches = h.fake.methods(SubscribePresence)
    assert [len(b.uris) for b in batches] == [100, 100, 50]
    assert [u for b in batches for u in b.uris] == uris
    h.client.set_watched([*uris, "sip:late@x"])  # only the new one is subscribed
    wait_until(lambda: len(h.fake.methods(SubscribePresence)) == 4)
    assert h.fake.methods(SubscribePresence)[-1].uris == ("sip:late@x",)
    answers: list[CwaError | None] = []
    h.client.refresh(on_done=answers.append)
    wait_until(lambda: answers == [None])
    assert [len(q.uris) for q in h.fake.methods(QueryPresence)] == [100, 100, 51]
    h.client.refresh("sip:user7@x", on_done=answers.append)
    wait_until(lambda: answers == [None, None])
    assert h.fake.methods(QueryPresence)[-1].uris == ("sip:user7@x",)


def test_watch_set_before_start_is_subscribed_when_the_session_starts(
    make_client: Callable[..., Harness],
) -> None:
    h = make_client(start=False)
    h.client.set_watched(["sip:bob@x"])
    assert not h.fake.methods(SubscribePresence)
    h.client.start()
    wait_until(lambda: len(h.fake.methods(SubscribePresence)) == 1)
    assert h.fake.methods(SubscribePresence)[0].uris == ("sip:bob@x",)


def test_unknown_user_does_not_affect_the_others(make_client: Callable[..., Harness]) -> None:
    h = make_client()

    def hook(method: Method) -> Response | None:
        if isinstance(method, SubscribePresence) and "sip:ghost@x" in method.uris:
            return Refused(rid=method.rid, kind="failed", error=ErrorInfo(code=18201, sip_code=404))
        return None

    h.fake.command_hook = hook
    h.client.set_watched(["sip:bob@x", "sip:ghost@x", "sip:carol@x"])
    wait_until(lambda: {n.uri for n in h.of(UserNotice)} == {"sip:bob@x", "sip:carol@x"})
    wait_until(lambda: WatchabilityNotice("sip:ghost@x", False, "unknown user") in h.notices)
    attempts = len(h.fake.methods(SubscribePresence))
    wait_until(lambda: len(h.fake.methods(SubscribePresence)) >= attempts + 2)  # re-tried with back-off
    h.fake.command_hook = None
    wait_until(lambda: WatchabilityNotice("sip:ghost@x", True, None) in h.notices)
    assert len(h.of(WatchabilityNotice)) == 2  # transitions only, not one per retry


def test_terminated_subscription_is_unwatchable_then_resubscribed(
    make_client: Callable[..., Harness],
) -> None:
    h = make_client()
    h.client.set_watched(["sip:bob@x"])
    wait_until(lambda: len(h.of(UserNotice)) == 1)
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
    wait_until(lambda: WatchabilityNotice("sip:bob@x", True, None) in h.notices)
    watch = h.of(WatchabilityNotice)
    assert watch == [
        WatchabilityNotice("sip:bob@x", False, "subscription terminated"),
        WatchabilityNotice("sip:bob@x", True, None),
    ]
    assert len(h.fake.methods(SubscribePresence)) == 2
    assert h.of(UserNotice)[-1].summary.availability == 12500


def test_contacts_are_reported_and_subscribed_with_watch_contacts(
    make_client: Callable[..., Harness],
) -> None:
    h = make_client(watch_contacts=True)
    h.fake.push(
        ContactGroupEvent(
            eid=0,
            full_list=True,
            delta_num=1,
            contacts=(Contact("sip:bob@x", "Bob"), Contact("sip:carol@x", "Carol")),
        )
    )
    wait_until(lambda: len(h.of(ContactsNotice)) == 1)
    assert h.of(ContactsNotice)[0].contacts == (("sip:bob@x", "Bob"), ("sip:carol@x", "Carol"))
    wait_until(lambda: {n.uri for n in h.of(UserNotice)} == {"sip:bob@x", "sip:carol@x"})
    h.fake.push(
        ContactGroupEvent(
            eid=0,
            full_list=False,
            delta_num=2,
            contacts=(Contact("sip:bob@x", action="deleted"), Contact("sip:dave@x", "Dave", action="added")),
        )
    )
    wait_until(lambda: len(h.of(ContactsNotice)) == 2)
    assert h.of(ContactsNotice)[1].contacts == (("sip:carol@x", "Carol"), ("sip:dave@x", "Dave"))
    wait_until(lambda: "sip:dave@x" in {u for m in h.fake.methods(SubscribePresence) for u in m.uris})


def test_contacts_are_not_subscribed_without_watch_contacts(make_client: Callable[..., Harness]) -> None:
    h = make_client()
    h.fake.push(
        ContactGroupEvent(eid=0, full_list=True, delta_num=1, contacts=(Contact("sip:bob@x", "Bob"),))
    )
    wait_until(lambda: len(h.of(ContactsNotice)) == 1)
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


def test_publish_self_sends_manual_state_and_note_in_one_request(make_client: Callable[..., Harness]) -> None:
    h = make_client()
    outcome = h.client.publish_self(Status.DO_NOT_DISTURB, "Focus time")
    assert outcome.applied
    assert outcome.confirmed
    (method,) = h.fake.methods(PublishSelfPresence)
    assert _published(method) == (9500, "Focus time")
    h.client.publish_self(note="")
    assert _published(h.fake.methods(PublishSelfPresence)[-1]) == (None, "")


def test_publish_self_raises_command_failed_on_refusal(make_client: Callable[..., Harness]) -> None:
    h = make_client()
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


def test_publish_self_rejects_unsettable_input(make_client: Callable[..., Harness]) -> None:
    h = make_client()
    with pytest.raises(ValueError, match="cannot be set"):
        h.client.publish_self(Status.UNKNOWN)
    with pytest.raises(ValueError, match="needs"):
        h.client.publish_self()
    assert not h.fake.methods(PublishSelfPresence)


def test_publish_while_down_is_queued_and_applied_on_recovery(make_client: Callable[..., Harness]) -> None:
    h = make_client(start=False)
    outcome = h.client.publish_self(Status.BE_RIGHT_BACK, "brb")
    assert outcome.queued
    assert not outcome.applied
    h.client.start()
    wait_until(lambda: len(h.of(CommandNotice)) == 1)
    assert h.of(CommandNotice) == [CommandNotice(Status.BE_RIGHT_BACK, "brb", True, None)]
    assert _published(h.fake.methods(PublishSelfPresence)[0]) == (12500, "brb")


def test_commanded_state_is_republished_periodically(make_client: Callable[..., Harness]) -> None:
    h = make_client(republish_s=1.0)
    h.client.publish_self(Status.BUSY)
    wait_until(lambda: len(h.fake.methods(PublishSelfPresence)) >= 3)
    assert {_published(m) for m in h.fake.methods(PublishSelfPresence)} == {(6500, None)}
    assert not h.of(CommandNotice)  # successful re-publishes are silent


# ============================================================================ stop, secrets, back-off


def test_stop_terminates_the_session_and_the_thread(make_client: Callable[..., Harness]) -> None:
    h = make_client()
    wait_until(lambda: len(h.polls()) >= 2)
    began = time.monotonic()
    h.client.stop()
    assert time.monotonic() - began < 3.0  # stop(timeout=1.0) plus scheduling slack on a loaded machine
    (terminate,) = h.fake.methods(TerminateSession)
    assert terminate.rid
    assert h.client.state == "stopped"
    assert h.of(SessionNotice)[-1] == SessionNotice("stopped")
    count = len(h.polls())
    assert len(h.polls()) == count
    with pytest.raises(CwaUnavailable):
        h.client.refresh()


def test_secrets_never_reach_the_logs(
    make_client: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = make_client()
    h.fake.expire_tickets()
    h.fake.data_script.extend([expired_401, lambda r: httpx.Response(200, content=b"<broken")])
    wait_until(lambda: len(h.fake.requests("logon")) >= 2 and h.client.state == "online")
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


def test_metrics_report_latency_events_restarts_and_errors(make_client: Callable[..., Harness]) -> None:
    h = make_client()
    h.fake.push(user_presence("sip:bob@x", 6500))
    h.fake.data_script.append(lambda r: httpx.Response(503))
    wait_until(lambda: ("error", "throttled") in list(h.metrics))
    wait_until(lambda: ("events", 1.0) in list(h.metrics))
    assert ("session_restart", 1.0) not in h.metrics  # the first session is no restart
    h.fake.kill_session()
    wait_until(lambda: ("session_restart", 1.0) in list(h.metrics))
    latencies = [v for n, v in list(h.metrics) if n == "poll_latency"]
    assert latencies
    assert all(isinstance(v, float) and v >= 0 for v in latencies)
    assert h.client.stats["throttled"] == 1


def test_a_failing_notice_callback_does_not_stop_the_client(make_client: Callable[..., Harness]) -> None:
    calls: list[Notice] = []

    def explode(notice: Notice) -> None:
        calls.append(notice)
        raise RuntimeError("owner bug")

    h = make_client(on_notice=explode)
    h.fake.push(user_presence("sip:bob@x", 6500), user_presence("sip:bob@x", 9500))
    wait_until(lambda: len([n for n in calls if isinstance(n, UserNotice)]) == 2)
    assert h.client.state == "online"
