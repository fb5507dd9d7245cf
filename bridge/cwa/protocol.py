"""The CWA protocol core: every decision of the client and no I/O (README: "How it behaves toward CWA").

Theory of operation
-------------------
`CwaProtocol` is the whole state of one client, in the manner of h11's ``Connection``. Two thin
I/O loops drive it, the data poll loop (`bridge.cwa.client`) and the command worker
(`bridge.cwa.commanding`); they reach it only through one lock (`Guarded`), do the HTTP, and feed
back what happened. The core never blocks, sleeps, reads a clock or touches a socket: time comes
in as the ``now`` of an input.

Inputs: the results of I/O (a sign-in, a started session, a poll answer, a command's answer) and
failures of a kind (`FAILURE_KINDS`, plus ``command_failed``), each tagged with the ``epoch`` of the
step it belongs to, so a result of an older step is dropped. Outputs: the data loop's next action
(`next_action`: `SignIn` | `StartSession` | `Poll` | `Backoff` | `Stopped`), the command worker's
due work (`due_work`: a re-publish, subscriptions, a resync batch), and notices for the owner,
queued in the order they arise (`take_notices`).

Parts, each pure and owned here alone: `CwaSession` (data channel and recovery), `WatchState`
(watch set, subscriptions, watchability), `OwnState` (commanded own presence), `ResyncPlan`
(periodic re-query). Failures are classified by `SESSION_INPUT` below.

An input the core cannot accept raises `SessionError`, the one error it raises, and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bridge.cwa.dispatch import apply_events
from bridge.cwa.events import EventBatch
from bridge.cwa.messages import ErrorInfo
from bridge.cwa.notices import Notice, SessionNotice
from bridge.cwa.ownstate import OwnState, Pending
from bridge.cwa.resync import ResyncPlan
from bridge.cwa.session import FAILURE_KINDS, Action, CwaSession, SessionError, SessionState
from bridge.cwa.watching import WatchState

log = logging.getLogger("bridge.cwa.client")  # the client's log name, whichever module logs

# A poisoned batch is re-delivered at the same AckId forever: after this many protocol errors in a
# row on a live session, a new session is started instead.
PROTOCOL_ERRORS_BEFORE_NEW_SESSION = 3

# Error classification: what a failure of each kind tells the session machine. A refused command
# says nothing about the session; the protocol kind is counted first (see `failed`).
SESSION_INPUT: dict[str, str] = {kind: kind for kind in FAILURE_KINDS} | {"command_failed": "unavailable"}


@dataclass(frozen=True, slots=True)
class Answered:
    """What a poll answer did: ``events`` newly applied, ``wake``: the worker has work now,
    ``restarted``: the server's counter went back, the session is treated as gone."""

    events: int
    wake: bool
    restarted: bool = False


@dataclass(frozen=True, slots=True)
class DueWork:
    """The command worker's work at one wake-up, in the order it is done."""

    republish: bool
    singles: list[str]  # of refused batches: one URI per subscribePresence
    batch: list[str]  # a paced slice of the backlog
    slices: int  # paced slices the batch begins (0 or 1)
    resync: tuple[str, ...] | None


class CwaProtocol:
    """See the module docstring. Not thread-safe: its owner serialises every call."""

    def __init__(
        self,
        *,
        watch_contacts: bool,
        per_poll: int,
        resync_s: float,
        command_ttl_s: float,
        retry_delay: Callable[[int], float],
    ) -> None:
        self._notices: list[Notice] = []
        self._now = 0.0
        self._retry_delay = retry_delay
        self._ttl_s = command_ttl_s
        self.session = CwaSession()
        self.watch = WatchState(
            watch_contacts=watch_contacts,
            per_poll=per_poll,
            retry_at=self._retry_at,
            emit=self._notices.append,
        )
        self.own = OwnState(self._notices.append)
        self.resync = ResyncPlan(resync_s)
        self.stats: dict[str, int] = {}  # error kind -> count
        self._protocol_errors = 0
        self._was_online = False
        self._reported: str | None = None

    # ------------------------------------------------------------------ views

    @property
    def public_state(self) -> str:
        return self.session.public_state

    @property
    def online(self) -> bool:
        return self.session.state is SessionState.ONLINE

    @property
    def sid(self) -> str | None:
        return self.session.sid

    @property
    def epoch(self) -> int:
        return self.session.epoch

    def take_notices(self) -> list[Notice]:
        notices, self._notices[:] = list(self._notices), []
        return notices

    def emit(self, notice: Notice) -> None:
        self._notices.append(notice)

    def count(self, kind: str) -> None:
        self.stats[kind] = self.stats.get(kind, 0) + 1

    # ------------------------------------------------------------------ the data loop

    def next_action(self) -> tuple[Action, int]:
        """The data loop's next step and the epoch its result must carry."""
        action = self.session.next_action()
        return action, self.session.epoch

    def signed_in(self, epoch: int, ticket: str, sign_in_data: str | None) -> None:
        if self.session.epoch == epoch:
            self.session.signed_in(ticket, sign_in_data)

    def session_started(self, epoch: int, sid: str, poll_wait_ms: int | None, now: float) -> bool | None:
        """A new session: per-session bookkeeping starts afresh, everyone is subscribed again and
        commanded state re-published. Returns None for a stale result, else whether it is a restart."""
        if self.session.epoch != epoch:
            return None
        self._now = now
        self.session.session_started(sid, poll_wait_ms)
        self.watch.new_session()
        self.own.new_session(now)
        self.resync.session_started(now)
        self._protocol_errors = 0
        self.watch.enqueue(self.watch.targets())
        return self.session.sessions > 1

    def first_slice_pending(self) -> bool:
        """Whether the session's first subscription slice is still to be sent (the first GET waits
        for it, so that its answer carries that slice's presence)."""
        return self.watch.first_slice_pending()

    def poll_begin(self, epoch: int) -> tuple[bool, int | None]:
        """Before a data-channel GET: whether it is still current, and which subscription slices
        its answer is sure to complete (`WatchState.settled`)."""
        return self.session.epoch == epoch, self.watch.settled()

    def poll_answered(
        self, epoch: int, batch: EventBatch, settled: int | None, now: float
    ) -> Answered | None:
        """Apply a poll answer: notices for its new events in eid order. None for a stale one."""
        if self.session.epoch != epoch:
            return None
        self._now = now
        fresh = self.session.events_received(batch)
        self._protocol_errors = 0
        more = self.watch.answered(settled) or self.is_due(now)
        if self.session.epoch != epoch:  # the ackId went back: nothing of this batch is applied
            self.count("server_restart")
            return Answered(0, more, restarted=True)
        wake = apply_events(
            fresh,
            now=now,
            online=self.session.sid is not None,
            own=self.own,
            watch=self.watch,
            resync=self.resync,
            emit=self._notices.append,
        )
        return Answered(len(fresh), wake or more)

    def failed(self, kind: str, epoch: int) -> None:
        """A step of ``epoch`` failed with ``kind`` (already counted): plan the recovery."""
        if kind not in SESSION_INPUT:
            raise SessionError(f"unknown failure kind {kind!r}")
        if self.session.epoch != epoch or self.session.state is SessionState.STOPPED:
            return
        if kind == "protocol" and self.session.sid is not None:
            self._protocol_errors += 1
            if self._protocol_errors >= PROTOCOL_ERRORS_BEFORE_NEW_SESSION:
                self._protocol_errors = 0
                kind = "session_gone"
        try:
            self.session.failed(SESSION_INPUT[kind])
        except Exception:  # an input impossible in this state must not stop the client
            log.exception("cwa.session.bad_input kind=%s", kind)
            self.session.failed("unavailable")

    def note_state(self) -> None:
        """A `SessionNotice` when the public state changed since the last one."""
        state = self.session.public_state
        if state == self._reported:
            return
        self._reported = state
        error = self.session.last_failure if state in ("reconnecting", "auth_failed") else None
        self._notices.append(SessionNotice(state, error))
        if state == "online":
            log.info("cwa.session.online")
        elif state in ("reconnecting", "auth_failed"):
            log.warning("cwa.session.lost state=%s reason=%s", state, error)
        else:
            log.info("cwa.session.%s", state)

    def session_back(self, now: float) -> bool:
        """Called each turn of the data loop: a session back online sends a queued own state at
        once. Returns whether the worker has that to do."""
        online = self.online
        back = online and not self._was_online
        self._was_online = online
        return back and self.own.session_back(now)

    def stop(self) -> None:
        self.session.stop()
        self.own.release_waiters()

    # ------------------------------------------------------------------ the command worker

    def set_watched(self, uris: Sequence[str]) -> bool:
        """Replace the watch set; returns whether the worker has subscriptions to send now."""
        new = self.watch.set_watched(uris)
        if self.session.sid is None:
            return False  # subscribed when the session starts
        return self.watch.enqueue(new)

    def is_due(self, now: float) -> bool:
        """Whether retries, a re-publish or a resync batch are due."""
        dues = (self.watch.next_due(), self.resync.next_due())
        return self.own.is_due(now) or any(d is not None and d <= now for d in dues)

    def next_due(self) -> float | None:
        dues = [d for d in (self.watch.next_due(), self.resync.next_due()) if d is not None]
        return min(dues, default=None)

    def due_work(self, now: float) -> DueWork | None:
        """What the worker sends now; None without a session. Expired queued commands are dropped."""
        if self.session.sid is None:
            return None
        self._now = now
        online = self.online
        if online:
            self.own.expired(now, self._ttl_s)
        republish = online and self.own.is_due(now)
        self.watch.enqueue(self.watch.due(now))
        singles = self.watch.take_singles()
        batch, slices = self.watch.take()
        resync = self.resync.take(now, self.watch.targets()) if online else None
        return DueWork(republish, singles, batch, slices, resync)

    def subscribe_begin(self, uris: tuple[str, ...]) -> str:
        rid = self.session.next_rid()
        self.watch.sending(rid, uris)
        return rid

    def subscribe_failed(self, rid: str, uris: tuple[str, ...], now: float) -> None:
        """The request failed: retried after a back-off (the users are not at fault)."""
        self._now = now
        self.watch.send_failed(rid, uris)

    def subscribe_refused(
        self, rid: str, uris: tuple[str, ...], error: ErrorInfo, now: float, *, split: bool
    ) -> list[str]:
        """Refused at once; returns the URIs to re-try one each when ``split`` (a batch request)."""
        self._now = now
        self.watch.refused(rid, uris, error)
        return self.watch.take_singles() if split else []

    def resync_begin(self, uris: tuple[str, ...], now: float) -> str:
        rid = self.session.next_rid()
        self.resync.queried(uris, now)
        return rid

    def republish_begin(self) -> tuple[str, Pending]:
        """The periodic or queued publish of the whole commanded state, about to be sent."""
        rid = self.session.next_rid()
        return rid, self.own.begin_republish(rid)

    def republish_failed(self, rid: str, pending: Pending, now: float) -> None:
        self._now = now
        self.own.republish_failed(rid, pending, self._retry_at)

    def _retry_at(self, attempt: int) -> float:
        return self._now + self._retry_delay(attempt)
