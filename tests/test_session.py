"""The pure CWA session state machine (bridge/cwa/session.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.cwa.events import ConfigurationEvent, EventBatch, UnknownEvent
from bridge.cwa.session import (
    EID_WINDOW,
    FAILURE_KINDS,
    ONLINE_FAILURE_TOLERANCE,
    PUBLIC_STATE,
    Backoff,
    CwaSession,
    Poll,
    SessionError,
    SessionState,
    SignIn,
    StartSession,
    Stopped,
)
from bridge.presence import SESSION_STATES


def batch(ack: int | None, *eids: int, wait: int | None = None) -> EventBatch:
    return EventBatch(
        sid="7", ack_id=ack, poll_wait_time=wait, events=tuple(ConfigurationEvent(eid=e) for e in eids)
    )


def state_of(s: CwaSession) -> SessionState:
    """Read through a call, so mypy does not narrow the property between two inputs."""
    return s.state


def online(poll_wait_ms: int = 200) -> CwaSession:
    s = CwaSession()
    assert isinstance(s.next_action(), SignIn)
    s.signed_in("T1", "blob")
    action = s.next_action()
    assert isinstance(action, StartSession)
    s.session_started("7", poll_wait_ms)
    return s


def test_happy_path_goes_from_signed_out_to_online_and_polls_with_ack_zero() -> None:
    s = CwaSession()
    assert state_of(s) is SessionState.SIGNED_OUT
    assert s.public_state == "connecting"
    assert isinstance(s.next_action(), SignIn)
    assert state_of(s) is SessionState.SIGNING_IN
    s.signed_in("T1", "blob")
    assert state_of(s) is SessionState.SESSION_STARTING
    start = s.next_action()
    assert start == StartSession(rid="1", sign_in_data="blob")  # signInData echoed (§3.3)
    s.session_started("7", 2000)
    assert state_of(s) is SessionState.ONLINE
    assert s.next_action() == Poll(sid="7", ack_id=0, wait_ms=2000)


def test_events_are_applied_once_and_ack_id_echoed_verbatim() -> None:
    s = online()
    first = s.events_received(batch(3, 1, 2, 3, wait=500))
    assert [e.eid for e in first] == [1, 2, 3]
    assert s.next_action() == Poll(sid="7", ack_id=3, wait_ms=500)
    again = s.events_received(batch(4, 2, 3, 4))  # a lost response re-delivered (§4.3)
    assert [e.eid for e in again] == [4]
    s.events_received(batch(11, 10))  # the "ackId one higher" variant (§8.7)
    assert s.ack_id == 11


def test_batch_without_ack_id_advances_to_the_highest_eid() -> None:
    s = online()
    s.events_received(batch(None, 5, 6))
    assert s.ack_id == 6


def test_eids_stay_deduplicated_beyond_the_window() -> None:
    s = online()
    total = EID_WINDOW * 3
    s.events_received(batch(total, *range(1, total + 1)))
    assert s.events_received(batch(total, *range(1, total + 1))) == ()


def test_events_without_eid_pass_through() -> None:
    s = online()
    b = EventBatch(sid="7", ack_id=0, poll_wait_time=None, events=(UnknownEvent(eid=None, name="x"),))
    assert len(s.events_received(b)) == 1


def test_ack_going_backwards_means_server_restart_and_a_new_session() -> None:
    s = online()
    s.events_received(batch(40, 40))
    assert s.events_received(batch(2, 1, 2)) == ()
    assert state_of(s) is SessionState.RECONNECTING
    assert s.last_failure == "server_restart"
    assert isinstance(s.next_action(), Backoff)
    start = s.next_action()
    assert isinstance(start, StartSession)  # same ticket first
    s.session_started("8", 100)
    assert s.next_action() == Poll(sid="8", ack_id=0, wait_ms=100)
    assert [e.eid for e in s.events_received(batch(2, 1, 2))] == [1, 2]  # new numbering applies


def test_session_gone_tries_same_ticket_then_full_sign_in() -> None:
    s = online()
    s.failed("session_gone")
    assert s.ticket == "T1"
    assert state_of(s) is SessionState.RECONNECTING
    assert isinstance(s.next_action(), Backoff)
    assert isinstance(s.next_action(), StartSession)
    s.failed("session_gone")  # the new session was refused as well
    assert s.ticket is None
    assert isinstance(s.next_action(), Backoff)
    assert isinstance(s.next_action(), SignIn)


def test_ticket_expired_means_full_sign_in() -> None:
    s = online()
    s.failed("ticket_expired")
    assert s.ticket is None
    assert s.sid is None
    backoff = s.next_action()
    assert backoff == Backoff(attempt=1, reason="ticket_expired")
    assert isinstance(s.next_action(), SignIn)


def test_transient_poll_failures_keep_ack_and_back_off_growing() -> None:
    s = online()
    s.events_received(batch(9, 9))
    for attempt in range(1, ONLINE_FAILURE_TOLERANCE + 2):
        s.failed("unavailable")
        assert s.next_action() == Backoff(attempt=attempt, reason="unavailable")
        assert s.next_action() == Poll(sid="7", ack_id=9, wait_ms=200)
    assert state_of(s) is SessionState.RECONNECTING  # persistent failure: the session counts as down
    s.events_received(batch(9))
    assert state_of(s) is SessionState.ONLINE


def test_auth_rejected_gives_auth_failed_and_long_back_off() -> None:
    s = CwaSession()
    s.next_action()
    s.failed("auth_rejected")
    assert s.public_state == "auth_failed"
    assert s.next_action() == Backoff(attempt=1, reason="auth_rejected", long=True)
    assert isinstance(s.next_action(), SignIn)
    s.signed_in("T2", None)
    assert state_of(s) is SessionState.SESSION_STARTING


def test_illegal_inputs_raise_session_error_and_change_nothing() -> None:
    s = CwaSession()
    with pytest.raises(SessionError):
        s.session_started("7", 100)
    with pytest.raises(SessionError):
        s.events_received(batch(1, 1))
    with pytest.raises(SessionError):
        s.failed("unavailable")  # nothing attempted yet
    s.next_action()
    with pytest.raises(SessionError):
        s.failed("bogus")
    with pytest.raises(SessionError):
        s.signed_in("", None)
    assert state_of(s) is SessionState.SIGNING_IN
    o = online()
    with pytest.raises(SessionError):
        o.failed("auth_rejected")
    assert state_of(o) is SessionState.ONLINE


def test_stopped_absorbs_everything() -> None:
    s = online()
    s.stop()
    s.failed("unavailable")
    assert s.events_received(batch(5, 5)) == ()
    s.signed_in("T", None)
    assert s.next_action() == Stopped()
    assert s.public_state == "stopped"


def test_repr_never_shows_the_ticket() -> None:
    s = online()
    s.adopt_ticket("SECRET-TICKET")
    assert s.ticket == "SECRET-TICKET"
    assert "SECRET" not in repr(s)


def test_session_module_is_pure() -> None:
    source = Path(__file__).parents[1] / "bridge" / "cwa" / "session.py"
    tree = ast.parse(source.read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"httpx", "paho", "socket", "threading", "time", "asyncio"}


# ---------------------------------------------------------------------------- properties

inputs = st.one_of(
    st.just(("next",)),
    st.tuples(st.just("signed_in"), st.sampled_from(["", "T1", "T2"])),
    st.tuples(st.just("started"), st.sampled_from(["", "7", "8"]), st.integers(-5, 5000) | st.none()),
    st.tuples(
        st.just("events"),
        st.integers(0, 60) | st.none(),
        st.lists(st.integers(1, 60), max_size=8),
    ),
    st.tuples(st.just("failed"), st.sampled_from([*FAILURE_KINDS, "nonsense"])),
    st.tuples(st.just("ticket"), st.sampled_from([None, "", "T9"])),
    st.just(("stop",)),
)


@given(st.lists(inputs, max_size=60))
def test_any_input_in_any_state_is_legal_or_a_session_error(steps: list[tuple[object, ...]]) -> None:
    s = CwaSession()
    applied: set[int] = set()
    sessions = 0
    last_ack = 0
    for step in steps:
        before_sessions = s.sessions
        try:
            match step:
                case ("next",):
                    action = s.next_action()
                    assert isinstance(action, SignIn | StartSession | Poll | Backoff | Stopped)
                    if isinstance(action, Poll):
                        assert action.ack_id == s.ack_id
                        assert action.wait_ms >= 0
                case ("signed_in", ticket):
                    s.signed_in(str(ticket), None)
                case ("started", sid, wait):
                    s.session_started(str(sid), wait if isinstance(wait, int) else None)
                case ("events", ack, eids):
                    assert isinstance(eids, list)
                    fresh = s.events_received(batch(ack if isinstance(ack, int) else None, *eids))
                    for event in fresh:
                        assert event.eid is not None
                        assert event.eid not in applied, "an eid is applied once per session"
                        applied.add(event.eid)
                case ("failed", kind):
                    s.failed(str(kind))
                case ("ticket", ticket):
                    s.adopt_ticket(ticket if isinstance(ticket, str) else None)
                case ("stop",):
                    s.stop()
        except SessionError:
            pass
        assert PUBLIC_STATE[s.state] in SESSION_STATES  # every state has a published name
        if s.sessions != before_sessions:
            sessions = s.sessions
            applied = set()
            assert s.ack_id == 0, "a new session starts at AckId 0 (§7.2.5)"
            last_ack = 0
        elif s.sessions == sessions:
            assert s.ack_id >= last_ack, "AckId never goes backwards within a session"
        last_ack = s.ack_id
        if s.state is SessionState.ONLINE:
            assert s.sid is not None
            assert s.ticket


def test_the_published_session_names_are_the_documented_ones() -> None:
    assert set(PUBLIC_STATE) == set(SessionState)
    assert set(PUBLIC_STATE.values()) == set(SESSION_STATES)
