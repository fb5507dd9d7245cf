"""The CWA protocol core (bridge/cwa/protocol.py) as a pure state machine: no thread, no HTTP."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.cwa.events import (
    ContactGroupEvent,
    Event,
    EventBatch,
    RequestFailedEvent,
    RequestSucceededEvent,
    SubscriptionState,
    SubscriptionStateEvent,
    UserPresence,
    UserPresenceEvent,
)
from bridge.cwa.messages import ErrorInfo
from bridge.cwa.notices import SessionNotice, UserNotice, WatchabilityNotice
from bridge.cwa.protocol import PROTOCOL_ERRORS_BEFORE_NEW_SESSION, CwaProtocol
from bridge.cwa.session import FAILURE_KINDS, Backoff, Poll, SessionError, SignIn, StartSession, Stopped

USERS = ("sip:a@x", "sip:b@x", "sip:c@x")


def core() -> CwaProtocol:
    return CwaProtocol(
        watch_contacts=False, per_poll=2, resync_s=60.0, command_ttl_s=120.0, retry_delay=float
    )


def online(c: CwaProtocol, now: float = 0.0) -> int:
    """Sign in and start a session; returns the epoch of the first poll."""
    action, epoch = c.next_action()
    assert isinstance(action, SignIn)
    c.signed_in(epoch, "T1", "blob")
    action, epoch = c.next_action()
    assert isinstance(action, StartSession)
    assert c.session_started(epoch, "7", 100, now) is False
    action, epoch = c.next_action()
    assert isinstance(action, Poll)
    return epoch


def presence(eid: int, uri: str) -> UserPresenceEvent:
    return UserPresenceEvent(eid=eid, users=(UserPresence(uri=uri),))


def test_a_poll_answer_becomes_user_notices_once_each_in_eid_order() -> None:
    c = core()
    epoch = online(c)
    c.take_notices()
    batch = EventBatch("7", 2, 100, events=(presence(1, USERS[0]), presence(2, USERS[1])))
    answered = c.poll_answered(epoch, batch, None, 1.0)
    assert answered is not None
    assert answered.events == 2
    assert [n.uri for n in c.take_notices() if isinstance(n, UserNotice)] == [USERS[0], USERS[1]]
    again = c.poll_answered(epoch, batch, None, 2.0)  # the same batch re-delivered at the same AckId
    assert again is not None
    assert again.events == 0
    assert c.take_notices() == []


def test_an_answer_of_an_older_step_changes_nothing() -> None:
    c = core()
    epoch = online(c)
    c.failed("ticket_expired", epoch)  # a command found the ticket expired while the poll was held
    assert (
        c.poll_answered(epoch, EventBatch("7", 5, None, events=(presence(5, USERS[0]),)), None, 1.0) is None
    )
    assert c.session.ack_id == 0
    assert not [n for n in c.take_notices() if isinstance(n, UserNotice)]


def test_repeated_protocol_errors_on_a_live_session_start_a_new_session() -> None:
    c = core()
    online(c)
    for _ in range(PROTOCOL_ERRORS_BEFORE_NEW_SESSION):
        action, epoch = c.next_action()
        if isinstance(action, Backoff):
            action, epoch = c.next_action()
        assert isinstance(action, Poll)  # the same AckId is polled again until the limit
        c.failed("protocol", epoch)
    assert isinstance(c.next_action()[0], Backoff)
    assert isinstance(c.next_action()[0], StartSession)


def test_a_refused_command_is_a_transport_failure_not_a_lost_session() -> None:
    c = core()
    epoch = online(c)
    c.failed("command_failed", epoch)
    action, _ = c.next_action()
    assert isinstance(action, Backoff)
    assert action.reason == "unavailable"
    assert isinstance(c.next_action()[0], Poll)


def test_an_unknown_failure_kind_raises_the_protocol_error_and_changes_nothing() -> None:
    c = core()
    epoch = online(c)
    with pytest.raises(SessionError, match="unknown failure kind"):
        c.failed("gremlins", epoch)
    assert isinstance(c.next_action()[0], Poll)


def test_a_refused_user_becomes_unwatchable_once_and_watchable_when_subscribed() -> None:
    c = core()
    c.set_watched([USERS[0]])
    epoch = online(c)
    work = c.due_work(1.0)
    assert work is not None
    assert work.batch == [USERS[0]]
    rid = c.subscribe_begin((USERS[0],))
    c.take_notices()
    refused = ErrorInfo(code=404, sip_code=404)
    assert c.subscribe_refused(rid, (USERS[0],), refused, 1.0, split=False) == []
    assert c.take_notices() == [WatchabilityNotice(USERS[0], False, "unknown user")]
    state = SubscriptionStateEvent(eid=1, users=(SubscriptionState(USERS[0], "subscribed"),))
    c.poll_answered(epoch, EventBatch("7", 1, None, events=(state,)), None, 2.0)
    assert c.take_notices() == [WatchabilityNotice(USERS[0], True, None)]


# ---------------------------------------------------------------------- property: any input order

_kinds = st.sampled_from([*FAILURE_KINDS, "command_failed", "nonsense", ""])
_uri = st.sampled_from(USERS)
_error = st.builds(ErrorInfo, code=st.sampled_from([None, 404, 18100]), sip_code=st.sampled_from([None, 404]))
_sub_state = st.sampled_from(["subscribed", "retrying", "terminated"])
_event: st.SearchStrategy[Event] = st.one_of(
    st.builds(presence, st.integers(0, 40), _uri),
    st.builds(RequestSucceededEvent, eid=st.integers(0, 40), rid=st.sampled_from(["1", "2", "5", None, ""])),
    st.builds(RequestFailedEvent, eid=st.integers(0, 40), rid=st.sampled_from(["1", "3", ""]), error=_error),
    st.builds(
        SubscriptionStateEvent,
        eid=st.integers(0, 40),
        users=st.tuples(
            st.builds(SubscriptionState, _uri, st.sampled_from(["subscribed", "retrying", "terminated"]))
        ),
    ),
    st.builds(ContactGroupEvent, eid=st.integers(0, 40), full_list=st.booleans(), delta_num=st.none()),
)
_batch = st.builds(
    EventBatch,
    sid=st.just("7"),
    ack_id=st.one_of(st.none(), st.integers(-5, 60)),
    poll_wait_time=st.one_of(st.none(), st.integers(-10, 10**12)),
    session_timeout=st.one_of(st.none(), st.integers(-1, 10**6)),
    events=st.lists(_event, max_size=5).map(tuple),
)
_step = st.one_of(
    st.tuples(st.just("act"), st.booleans()),  # next action; True: it succeeds
    st.tuples(st.just("answer"), _batch, st.booleans()),  # a poll answer; True: of a stale epoch
    st.tuples(st.just("fail"), _kinds, st.booleans()),  # a failure; True: of a stale epoch
    st.tuples(st.just("watch"), st.lists(_uri, max_size=3)),
    st.tuples(st.just("work"), _error, st.sampled_from(["ok", "failed", "refused"])),
    st.tuples(st.just("tick"), st.floats(0, 500)),
    st.tuples(st.just("stop"), st.booleans()),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_step, max_size=60))
def test_any_sequence_of_inputs_keeps_the_invariants(steps: list[tuple[Any, ...]]) -> None:
    c = core()
    now = 0.0
    sessions, ack = 0, 0
    reported: list[str] = []
    for step in steps:
        now += 1.0
        with contextlib.suppress(SessionError):  # the one error the core raises, for input it refuses
            _drive(c, step, now)
        if c.session.sessions != sessions:
            sessions, ack = c.session.sessions, c.session.ack_id
        assert c.session.ack_id >= ack, "the AckId went backwards within a session"
        ack = c.session.ack_id
        for notice in c.take_notices():
            if isinstance(notice, SessionNotice):
                assert not reported or reported[-1] != notice.state  # transitions only
                reported.append(notice.state)
        assert c.public_state in ("connecting", "online", "reconnecting", "auth_failed", "stopped")
        if c.public_state == "stopped":
            assert isinstance(c.next_action()[0], Stopped)


def _drive(c: CwaProtocol, step: tuple[Any, ...], now: float) -> None:
    match step:
        case ("act", ok):
            action, epoch = c.next_action()
            if isinstance(action, SignIn) and ok:
                c.signed_in(epoch, "T", "blob")
            elif isinstance(action, StartSession) and ok:
                c.session_started(epoch, "7", 100, now)
            elif isinstance(action, SignIn | StartSession | Poll):
                c.failed("unavailable", epoch)
        case ("answer", batch, stale):
            action, epoch = c.next_action()
            if isinstance(action, Poll):
                assert action.sid
                assert action.sid == c.sid
                current, settled = c.poll_begin(epoch)
                assert current
                before = c.session.ack_id
                answered = c.poll_answered(epoch - 1 if stale else epoch, batch, settled, now)
                if stale:
                    assert answered is None
                    assert c.session.ack_id == before
        case ("fail", kind, stale):
            c.failed(kind, c.epoch - 1 if stale else c.epoch)
        case ("watch", uris):
            c.set_watched(uris)
        case ("work", error, outcome):
            work = c.due_work(now)
            if work is None:
                return
            for uris in [(u,) for u in work.singles] + ([tuple(work.batch)] if work.batch else []):
                rid = c.subscribe_begin(uris)
                if outcome == "failed":
                    c.subscribe_failed(rid, uris, now)
                elif outcome == "refused":
                    c.subscribe_refused(rid, uris, error, now, split=len(uris) > 1)
            c.watch.slice_sent(work.slices)
            if work.republish:
                rid, pending = c.republish_begin()
                c.republish_failed(rid, pending, now)
            if work.resync:
                c.resync_begin(work.resync, now)
        case ("tick", at):
            c.is_due(at)
            c.session_back(at)
            c.note_state()
        case ("stop", really):
            if really:
                c.stop()
