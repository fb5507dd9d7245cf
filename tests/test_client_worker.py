"""The command worker: a slow command channel never stops presence, queued commands go out as soon
as CWA is back, users CWA cannot watch stay unwatchable across retries, loops report liveness.

Through `httpx.MockTransport` and the scripted server of test_client.py (fake clock, instant back-off).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bridge.backoff import InstantSleeper
from bridge.cwa.client import CwaClient, CwaClientSettings
from bridge.cwa.commanding import QUEUE_MAX
from bridge.cwa.events import SubscriptionState, SubscriptionStateEvent
from bridge.cwa.messages import (
    Accepted,
    Method,
    PublishSelfPresence,
    QueryPresence,
    Response,
    SubscribePresence,
)
from bridge.cwa.notices import CommandNotice, Notice, SessionNotice, UserNotice, WatchabilityNotice
from bridge.errors import CwaError, CwaUnavailable
from bridge.liveness import Liveness
from bridge.presence import Status
from tests.support.convergence import eventually
from tests.support.cwa_client import PASSWORD, FakeClock, FakeCwa, Harness, user_presence

GHOST = "sip:ghost@x"
BOB = "sip:bob@x"


def subscribed(h: Harness, uri: str) -> int:
    return sum(uri in m.uris for m in h.fake.methods(SubscribePresence))


class HeldCommands:
    """A command hook that holds every request of ``kind`` until released (a hung command channel)."""

    def __init__(self, kind: type[Any]) -> None:
        self.kind = kind
        self.release = threading.Event()
        self.held = threading.Event()

    def __call__(self, method: Method) -> Response | None:
        if isinstance(method, self.kind):
            self.held.set()
            self.release.wait(20)
        return None


def test_a_hung_command_channel_never_stops_presence_nor_blocks_callers(
    make_client: Callable[..., Harness],
) -> None:
    h = make_client()
    hold = HeldCommands(SubscribePresence)
    h.fake.command_hook = hold
    try:
        h.client.set_watched([BOB])  # the worker's subscribePresence hangs
        assert eventually(hold.held.is_set, 5)
        returned = threading.Event()

        def callers() -> None:  # on 0.1 these POSTed on the caller's thread and hung with it
            h.client.set_watched([BOB, "sip:carol@x"])
            h.client.refresh(BOB)
            returned.set()

        threading.Thread(target=callers, daemon=True).start()
        assert eventually(returned.is_set, 5)
        polls = len(h.polls())
        h.fake.push(user_presence("sip:dave@x", 6500))  # presence keeps flowing meanwhile
        assert eventually(lambda: any(n.uri == "sip:dave@x" for n in h.of(UserNotice)), 5)
        assert eventually(lambda: len(h.polls()) >= polls + 5, 5)
    finally:
        hold.release.set()
    assert eventually(lambda: {n.uri for n in h.of(UserNotice)} >= {BOB, "sip:carol@x"}, 5)
    assert h.fake.methods(QueryPresence)[-1].uris == (BOB,)


def test_refused_subscriptions_are_retried_without_the_poll_thread_waiting(
    make_client: Callable[..., Harness],
) -> None:
    h = make_client()
    hold = HeldCommands(SubscribePresence)

    def refuse_ghost_then_hang(method: Method) -> Response | None:
        if isinstance(method, SubscribePresence) and method.uris == (GHOST,):
            h.fake.push(SubscriptionStateEvent(eid=0, users=(SubscriptionState(GHOST, "terminated"),)))
            h.fake.command_hook = hold  # its retry hangs on the command channel
            return Accepted(rid=method.rid)
        return None

    h.fake.command_hook = refuse_ghost_then_hang
    try:
        h.client.set_watched([GHOST])
        assert eventually(hold.held.is_set, 5)  # the retry is in flight, stuck
        polls = len(h.polls())
        h.fake.push(user_presence("sip:dave@x", 6500))
        assert eventually(lambda: any(n.uri == "sip:dave@x" for n in h.of(UserNotice)), 5)
        assert eventually(lambda: len(h.polls()) >= polls + 5, 5)
    finally:
        hold.release.set()


class DownCwa(FakeCwa):
    """The scripted server, plus a switch that makes every request fail with HTTP 503."""

    down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(503)
        return super().__call__(request)


def test_a_command_queued_while_cwa_is_down_goes_out_as_soon_as_the_session_is_back(
    make_client: Callable[..., Harness],
) -> None:
    clock = FakeClock()
    fake = DownCwa(clock)
    # The clock never moves by itself: a publish left to its retry back-off would never go out.
    h = make_client(fake=fake, backoff_initial_s=30.0, backoff_max_s=30.0)
    h.sleeper.advance = None
    assert eventually(lambda: h.client.state == "online", 5)
    fake.down = True
    outcome = h.client.publish_self(Status.BUSY, "back soon")
    assert outcome.queued
    assert eventually(lambda: h.client.state == "reconnecting", 5)
    fake.down = False
    assert eventually(lambda: h.of(CommandNotice) == [CommandNotice(Status.BUSY, "back soon", True, None)], 5)
    assert h.of(SessionNotice)[-1] == SessionNotice("online")
    assert len(h.fake.methods(PublishSelfPresence)) == 1


def test_an_unknown_user_stays_unwatchable_across_retries_until_cwa_accepts_it(
    make_client: Callable[..., Harness],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge.cwa.client")
    h = make_client()
    accept = threading.Event()

    def server(method: Method) -> Response | None:
        if isinstance(method, SubscribePresence) and GHOST in method.uris and not accept.is_set():
            # What servers do for a user they cannot watch: the refusal and an offline snapshot.
            refusal = SubscriptionStateEvent(eid=0, users=(SubscriptionState(GHOST, "terminated"),))
            others = [user_presence(u, 3500) for u in method.uris if u != GHOST]
            h.fake.push(refusal, user_presence(GHOST, 18500), *others)
            return Accepted(rid=method.rid)
        return None

    h.fake.command_hook = server
    h.client.set_watched([BOB, GHOST])
    assert eventually(lambda: subscribed(h, GHOST) >= 4, 10)  # re-tried with back-off
    assert eventually(lambda: len([n for n in h.of(UserNotice) if n.uri == GHOST]) >= 3, 5)
    assert h.of(WatchabilityNotice) == [WatchabilityNotice(GHOST, False, "subscription terminated")]
    assert h.client.unwatchable == {GHOST: "subscription terminated"}
    accept.set()
    assert eventually(lambda: WatchabilityNotice(GHOST, True, None) in h.notices, 10)
    assert h.of(WatchabilityNotice) == [
        WatchabilityNotice(GHOST, False, "subscription terminated"),
        WatchabilityNotice(GHOST, True, None),
    ]
    assert h.client.unwatchable == {}
    refusals = [r for r in caplog.records if "cwa.user.unwatchable" in r.message]
    assert [r.levelname for r in refusals] == ["WARNING"]  # once, however many retries
    assert GHOST in refusals[0].message
    assert "cwa.subscribe.retry uri=sip:ghost@x" in caplog.text


def test_subscriptions_are_logged_only_when_something_is_sent(
    make_client: Callable[..., Harness],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge.cwa.client")
    h = make_client()
    assert eventually(lambda: len(h.polls()) >= 20, 5)
    assert "cwa.subscribe.sent" not in caplog.text
    h.client.set_watched([BOB])
    assert eventually(lambda: "cwa.subscribe.sent uris=1" in caplog.text, 5)
    polls = len(h.polls())
    assert eventually(lambda: len(h.polls()) >= polls + 20, 5)
    assert caplog.text.count("cwa.subscribe.sent") == 1


def test_resync_requeries_every_watched_user_in_batches_and_marks_the_answers(
    make_client: Callable[..., Harness],
) -> None:
    uris = [f"sip:user{i}@x" for i in range(250)]
    h = make_client(resync_s=5.0)
    h.client.set_watched(uris)
    assert eventually(lambda: {n.uri for n in h.of(UserNotice)} >= set(uris), 5)
    assert not any(n.resync for n in h.of(UserNotice))  # subscription answers are no resync
    assert not h.fake.methods(QueryPresence)
    assert eventually(lambda: len(h.fake.methods(QueryPresence)) >= 3, 10)  # the fake clock: 0.1 s a poll
    first_round = h.fake.methods(QueryPresence)[:3]
    assert [len(q.uris) for q in first_round] == [100, 100, 50]
    assert [u for q in first_round for u in q.uris] == uris
    assert eventually(lambda: {n.uri for n in h.of(UserNotice) if n.resync} == set(uris), 5)


def test_resync_zero_never_requeries(make_client: Callable[..., Harness]) -> None:
    h = make_client(resync_s=0.0)
    h.client.set_watched([BOB])
    polls = len(h.polls())
    assert eventually(lambda: len(h.polls()) >= polls + 100, 10)  # 10 s on the fake clock
    assert not h.fake.methods(QueryPresence)


# ============================================================================ liveness


@pytest.fixture
def live_client() -> Iterator[Callable[[FakeCwa], tuple[CwaClient, Liveness, FakeClock]]]:
    made: list[tuple[CwaClient, httpx.Client]] = []

    def factory(fake: FakeCwa) -> tuple[CwaClient, Liveness, FakeClock]:
        live_clock = FakeClock()
        liveness = Liveness(clock=live_clock)
        http = httpx.Client(transport=httpx.MockTransport(fake))
        settings = CwaClientSettings(
            base_url="http://cwa.test/", username="u", password=PASSWORD, uri="sip:a@x", timeout_s=5.0
        )
        notices: list[Notice] = []
        client = CwaClient(
            settings,
            http,
            notices.append,
            sleep=InstantSleeper(advance=fake.clock.advance),
            clock=fake.clock,
            liveness=liveness,
        )
        made.append((client, http))
        client.start()
        return client, liveness, live_clock

    yield factory
    for client, http in made:
        client.stop()
        http.close()


def test_a_poll_blocked_past_its_deadline_is_reported_stuck_and_live_again_after(
    live_client: Callable[[FakeCwa], tuple[CwaClient, Liveness, FakeClock]],
) -> None:
    fake = FakeCwa(FakeClock())
    release, held = threading.Event(), threading.Event()

    def hang(request: httpx.Request) -> httpx.Response:
        held.set()
        release.wait(20)
        return fake._poll(request)

    _client, liveness, clock = live_client(fake)
    assert liveness.names() == ["cwa-command", "cwa-poll"]
    try:
        fake.data_script.append(hang)
        assert eventually(held.is_set, 5)
        clock.advance(90.0)  # a held long poll within its deadline is no stall
        assert "cwa-poll" not in liveness.stuck()
        clock.advance(60.0)  # past the poll deadline (95 s + connect 5 s + margin)
        # the command worker wakes at least once a second: live again at once
        assert eventually(lambda: liveness.stuck() == ["cwa-poll"], 5)
    finally:
        release.set()
    assert eventually(liveness.all_live, 5)


def test_a_command_worker_blocked_past_its_deadline_is_reported_stuck(
    live_client: Callable[[FakeCwa], tuple[CwaClient, Liveness, FakeClock]],
) -> None:
    fake = FakeCwa(FakeClock())
    hold = HeldCommands(QueryPresence)
    fake.command_hook = hold
    client, liveness, clock = live_client(fake)
    try:
        errors: list[CwaError | None] = []
        client.refresh("sip:bob@x", on_done=errors.append)
        assert eventually(hold.held.is_set, 5)
        clock.advance(20.0)  # past the command deadline (5 s) plus margin
        assert eventually(lambda: liveness.stuck() == ["cwa-command"], 5)
    finally:
        hold.release.set()
    assert eventually(liveness.all_live, 5)
    assert eventually(lambda: errors == [None], 5)


# ============================================================================ commands under load


def test_publish_self_waits_at_most_its_deadline_then_the_command_is_queued_and_reported(
    make_client: Callable[..., Harness],
) -> None:
    h = make_client(timeout_s=0.3)
    hold = HeldCommands(QueryPresence)
    h.fake.command_hook = hold
    try:
        h.client.refresh(BOB)  # occupies the worker
        assert eventually(hold.held.is_set, 5)
        outcome = h.client.publish_self(Status.AWAY, "lunch")  # its turn does not come in time
        assert outcome.queued
        assert not outcome.applied
        assert not h.fake.methods(PublishSelfPresence)
    finally:
        hold.release.set()
    assert eventually(lambda: h.of(CommandNotice) == [CommandNotice(Status.AWAY, "lunch", True, None)], 5)
    assert len(h.fake.methods(PublishSelfPresence)) == 1  # sent once, not once per caller


def test_requests_beyond_the_bound_are_refused_at_once(make_client: Callable[..., Harness]) -> None:
    h = make_client()
    hold = HeldCommands(QueryPresence)
    h.fake.command_hook = hold
    answers: list[CwaError | None] = []
    try:
        h.client.refresh(BOB, on_done=answers.append)
        assert eventually(hold.held.is_set, 5)
        for i in range(QUEUE_MAX):
            h.client.refresh(f"sip:user{i}@x", on_done=answers.append)
        h.client.refresh("sip:user0@x", on_done=answers.append)  # shares the waiting one: no slot
        with pytest.raises(CwaUnavailable, match=f"busy: {QUEUE_MAX} CWA commands are waiting"):
            h.client.refresh("sip:one-too-many@x")
    finally:
        hold.release.set()
    assert eventually(lambda: len(answers) == QUEUE_MAX + 2, 10)
    assert answers == [None] * (QUEUE_MAX + 2)  # every accepted request answered exactly once
    queried = [q.uris for q in h.fake.methods(QueryPresence)]
    assert queried.count(("sip:user0@x",)) == 1


def test_a_command_queued_while_down_expires_after_its_ttl(make_client: Callable[..., Harness]) -> None:
    h = make_client(start=False, command_ttl_s=120.0)
    assert h.client.publish_self(Status.BUSY).queued
    h.clock.advance(121.0)
    h.client.start()
    assert eventually(lambda: len(h.of(CommandNotice)) == 1, 5)
    (notice,) = h.of(CommandNotice)
    assert (notice.status, notice.ok, notice.error) == (
        Status.BUSY,
        False,
        "expired: not sent to CWA within 120 s",
    )
    polls = len(h.polls())
    assert eventually(lambda: len(h.polls()) >= polls + 10, 5)
    assert not h.fake.methods(PublishSelfPresence)  # dropped, not sent late
