"""The CWA session as a pure state machine (see the README, "How it behaves toward CWA").

Theory of operation
-------------------
The machine does no I/O and knows no clock. Its owner asks `next_action()` what to do — sign in,
start a session, wait out a back-off, or poll the data channel — does it, and reports the outcome
with exactly one of `signed_in`, `session_started`, `events_received` or `failed(kind)`. Between
requests the machine keeps what the protocol needs: the ticket and signInData (§2), the sid and the
rid counter (§3), the AckId, pollWaitTime and the eids already applied (§4.3), and the recovery plan
of §7.2: an expired ticket means a full sign-in; a lost session (18100) means a new session with the
same ticket, then a full sign-in if that is refused too; throttling, transport and protocol errors
keep the current step and ask for a back-off first.

Every input is either legal in the current state and moves the machine, or raises `SessionError`
and leaves it unchanged. `stopped` absorbs every input. `epoch` changes whenever the step changes,
so an owner that did I/O for an older step can tell that its result is stale and drop it.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, get_args

from bridge.cwa.events import Event, EventBatch
from bridge.errors import BridgeError


class SessionError(BridgeError):
    """An input that is not legal in the machine's current state."""


class SessionState(StrEnum):
    SIGNED_OUT = "signed_out"
    SIGNING_IN = "signing_in"
    SESSION_STARTING = "session_starting"
    ONLINE = "online"
    RECONNECTING = "reconnecting"
    AUTH_FAILED = "auth_failed"
    STOPPED = "stopped"


# The names published in `bridge/info` → `session` (README, "MQTT topics").
PUBLIC_STATE: dict[SessionState, str] = {
    SessionState.SIGNED_OUT: "connecting",
    SessionState.SIGNING_IN: "connecting",
    SessionState.SESSION_STARTING: "connecting",
    SessionState.ONLINE: "online",
    SessionState.RECONNECTING: "reconnecting",
    SessionState.AUTH_FAILED: "auth_failed",
    SessionState.STOPPED: "stopped",
}

FailureKind = Literal[
    "auth_rejected",  # sign-in refused the credentials
    "ticket_expired",  # 401/403, a redirect to a logon page, a non-XML body (§7.2.1)
    "session_gone",  # 18100, or a data-channel 404 for our sid (§7.3)
    "throttled",  # 18101 or HTTP 503 (§7.2.6)
    "unavailable",  # transport error, timeout, other 5xx (§7.2.7)
    "protocol",  # malformed, hostile or oversized body
]
FAILURE_KINDS: tuple[str, ...] = get_args(FailureKind)

# Poll failures tolerated before the session counts as down (a single timed-out long poll is normal).
ONLINE_FAILURE_TOLERANCE = 3
# How many applied eids are remembered above the floor (eids are consecutive per session, §4.3).
EID_WINDOW = 256
# The longest pause between polls we honour. A throttling server raises pollWaitTime (§7.2.6), but a
# value beyond a minute, or beyond half the server's own sessionTimeout (waiting it out would let the
# session expire), comes from a broken body: obeying 10**25 ms would stop bridging for good.
MAX_POLL_WAIT_MS = 60_000


@dataclass(frozen=True, slots=True)
class SignIn:
    """POST the logon request (§2.1)."""


@dataclass(frozen=True, slots=True)
class StartSession:
    """POST ``initiateSession`` with this rid, echoing signInData (§3.3)."""

    rid: str
    sign_in_data: str | None


@dataclass(frozen=True, slots=True)
class Poll:
    """GET the data channel ``wait_ms`` after the previous data-channel response, never sooner (§4.4)."""

    sid: str
    ack_id: int
    wait_ms: int


@dataclass(frozen=True, slots=True)
class Backoff:
    """Wait before the next step; ``attempt`` counts consecutive failures (1 = first)."""

    attempt: int
    reason: str
    long: bool = False  # credentials rejected: retry rarely


@dataclass(frozen=True, slots=True)
class Stopped:
    """Nothing more to do."""


Action = SignIn | StartSession | Poll | Backoff | Stopped

_Step = Literal["sign_in", "start_session", "poll", "stopped"]


class CwaSession:
    """See the module docstring. Not thread-safe: the owner serialises access."""

    def __init__(self) -> None:
        self._step: _Step = "sign_in"
        self._started = False
        self._ever_online = False
        self._auth_failed = False
        self._ticket: str | None = None
        self._sign_in_data: str | None = None
        self._sid: str | None = None
        self._rid = 0
        self._ack_id = 0
        self._poll_wait_ms = 0
        self._eid_floor = 0  # every eid <= floor counts as applied
        self._eids: list[int] = []  # min-heap of applied eids above the floor
        self._failures = 0
        self._backoff: Backoff | None = None
        self._epoch = 0
        self._sessions = 0
        self._last_failure: str | None = None

    def __repr__(self) -> str:  # the ticket is a secret: never in a repr
        return f"<CwaSession state={self.state} sid={self._sid} ack_id={self._ack_id}>"

    # ------------------------------------------------------------------ read-only view

    @property
    def state(self) -> SessionState:
        if self._step == "stopped":
            return SessionState.STOPPED
        if self._auth_failed:
            return SessionState.AUTH_FAILED
        if self._step == "poll":
            if self._failures < ONLINE_FAILURE_TOLERANCE:
                return SessionState.ONLINE
            return SessionState.RECONNECTING
        if self._ever_online:
            return SessionState.RECONNECTING
        if not self._started:
            return SessionState.SIGNED_OUT
        return SessionState.SIGNING_IN if self._step == "sign_in" else SessionState.SESSION_STARTING

    @property
    def public_state(self) -> str:
        return PUBLIC_STATE[self.state]

    @property
    def ticket(self) -> str | None:
        return self._ticket

    @property
    def sid(self) -> str | None:
        return self._sid if self._step == "poll" else None

    @property
    def ack_id(self) -> int:
        return self._ack_id

    @property
    def poll_wait_ms(self) -> int:
        return self._poll_wait_ms

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def sessions(self) -> int:
        """How many sessions were started so far."""
        return self._sessions

    @property
    def last_failure(self) -> str | None:
        return self._last_failure

    # ------------------------------------------------------------------ inputs

    def next_action(self) -> Action:
        """What to do now. A pending back-off is handed out once, then the step itself."""
        if self._step == "stopped":
            return Stopped()
        self._started = True
        if self._backoff is not None:
            backoff, self._backoff = self._backoff, None
            return backoff
        if self._step == "sign_in":
            return SignIn()
        if self._step == "start_session":
            return StartSession(rid=self.next_rid(), sign_in_data=self._sign_in_data)
        sid = self._sid or ""  # the poll step is only ever entered with a sid
        return Poll(sid=sid, ack_id=self._ack_id, wait_ms=self._poll_wait_ms)

    def next_rid(self) -> str:
        """A fresh request id. Increasing over the whole life of the machine (§3.1)."""
        self._rid += 1
        return str(self._rid)

    def adopt_ticket(self, ticket: str | None) -> None:
        """The newest CWA-Ticket header of any response replaces the cached one (§2.4)."""
        if ticket and self._step != "stopped":
            self._ticket = ticket

    def signed_in(self, ticket: str, sign_in_data: str | None) -> None:
        if self._step == "stopped":
            return
        self._require("sign_in", "signed_in")
        if not ticket:
            raise SessionError("a sign-in without a CWA-Ticket is not a success (§2.3)")
        self._ticket = ticket
        self._sign_in_data = sign_in_data
        self._auth_failed = False
        self._backoff = None
        self._move("start_session")

    def session_started(self, sid: str, poll_wait_ms: int | None) -> None:
        if self._step == "stopped":
            return
        self._require("start_session", "session_started")
        if not sid:
            raise SessionError("initiateSession was accepted without a sid")
        self._sid = sid
        self._ack_id = 0  # a new session numbers its events from the start again (§7.2.5)
        self._eid_floor = 0
        self._eids = []
        self._poll_wait_ms = min(max(0, poll_wait_ms or 0), MAX_POLL_WAIT_MS)
        self._failures = 0
        self._backoff = None
        self._ever_online = True
        self._sessions += 1
        self._move("poll")

    def events_received(self, batch: EventBatch) -> tuple[Event, ...]:
        """Apply one ``cwaEvents``; returns the events not applied before, in order.

        An ackId lower than the one we hold means the server's counter restarted (server restart,
        §7.2.5): the session is treated as gone and nothing from that batch is applied.
        """
        if self._step == "stopped":
            return ()
        self._require("poll", "events_received")
        if batch.ack_id is not None and batch.ack_id < self._ack_id:
            self._lose("session_gone", reason="server_restart")
            return ()
        fresh = tuple(e for e in batch.events if e.eid is None or self._apply_eid(e.eid))
        if batch.ack_id is not None:
            self._ack_id = batch.ack_id  # echoed verbatim (§8.7)
        else:
            eids = [e.eid for e in batch.events if e.eid is not None]
            self._ack_id = max([self._ack_id, *eids])
        if batch.poll_wait_time is not None:
            limit = MAX_POLL_WAIT_MS
            if batch.session_timeout is not None and batch.session_timeout > 0:
                limit = min(limit, batch.session_timeout // 2)
            self._poll_wait_ms = min(max(0, batch.poll_wait_time), limit)
        self._failures = 0
        self._last_failure = None
        return fresh

    def failed(self, kind: str) -> None:
        """The current step failed with one of `FAILURE_KINDS`; plan the recovery (§7.2)."""
        if self._step == "stopped":
            return
        if kind not in FAILURE_KINDS:
            raise SessionError(f"unknown failure kind {kind!r}")
        if not self._started:
            raise SessionError("nothing was attempted yet")
        if kind == "auth_rejected" and self._step != "sign_in":
            raise SessionError("credentials can only be rejected at sign-in")
        self._lose(kind, reason=kind)

    def stop(self) -> None:
        self._backoff = None
        self._move("stopped")

    # ------------------------------------------------------------------ internals

    def _require(self, step: _Step, what: str) -> None:
        if self._step != step:
            raise SessionError(f"{what} is not legal in state {self.state}")

    def _move(self, step: _Step) -> None:
        if step != self._step:
            self._step = step
            self._epoch += 1

    def _lose(self, kind: str, reason: str) -> None:
        if kind == "auth_rejected":
            self._auth_failed = True
        elif kind == "ticket_expired":
            self._ticket = None
            self._sid = None
            self._move("sign_in")
        elif kind == "session_gone":
            if self._step == "poll" and self._ticket:
                self._sid = None
                self._move("start_session")  # same ticket first (§7.2.3)
            elif self._step in ("poll", "start_session"):
                self._sid = None
                self._ticket = None
                self._move("sign_in")  # a new session was refused too: full sign-in
        self._failures += 1
        self._last_failure = reason
        self._backoff = Backoff(attempt=self._failures, reason=reason, long=kind == "auth_rejected")

    def _apply_eid(self, eid: int) -> bool:
        if eid <= self._eid_floor or eid in self._eids:
            return False
        heapq.heappush(self._eids, eid)
        if len(self._eids) > EID_WINDOW:
            self._eid_floor = heapq.heappop(self._eids)
        return True
