"""Everything the CWA client sends on the command channel of the current session (§3, §7).

queryPresence (`refresh`), own-state publishes (`publish_self` on the caller's thread, periodic and
queued re-publishes by `maintain` on the poll thread) and subscribePresence (`subscribe`, paced and
in batches of at most 100, refused batches retried one URI each). The bookkeeping lives in
`WatchState` and `OwnState`; this class does the requests around it. It shares the client's lock
and session machine: a session-level failure of a command (ticket expired, session gone) is
handed to the client's ``failure`` so it moves the machine (the epoch keeps that from racing).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from bridge.cwa.messages import (
    ErrorInfo,
    Method,
    PublishSelfPresence,
    QueryPresence,
    Refused,
    ResponseBatch,
    SubscribePresence,
)
from bridge.cwa.notices import CommandOutcome
from bridge.cwa.ownstate import OwnState, categories
from bridge.cwa.reporting import Reporter
from bridge.cwa.session import CwaSession, SessionState
from bridge.cwa.settings import CwaClientSettings
from bridge.cwa.transport import CwaTransport, command_failed, error_kind
from bridge.cwa.watching import WatchState
from bridge.errors import CwaError, CwaProtocolError, CwaUnavailable, SessionGone, TicketExpired
from bridge.presence import REPRESENTATIVE_AVAILABILITY, Status

log = logging.getLogger("bridge.cwa.client")  # the client's log name, whichever module logs

SUBSCRIBE_BATCH = 100  # interface.md §7.2
_WAIT_SLICE_S = 0.1


class CommandChannel:
    def __init__(
        self,
        settings: CwaClientSettings,
        lock: threading.RLock,
        session: CwaSession,
        transport: CwaTransport,
        *,
        watch: WatchState,
        own: OwnState,
        report: Reporter,
        stop: threading.Event,
        clock: Callable[[], float],
        retry_at: Callable[[int], float],
        failure: Callable[[CwaError | CwaProtocolError, int, str], None],
    ) -> None:
        self._s = settings
        self._lock = lock
        self._session = session
        self._transport = transport
        self._watch = watch
        self._own = own
        self._report = report
        self._stop = stop
        self._clock = clock
        self._retry_at = retry_at
        self._failure = failure

    def refresh(self, uri: str | None = None) -> None:
        """queryPresence for one user or every watched user; the answers arrive as `UserNotice`s."""
        with self._lock:
            targets = [uri] if uri else list(self._watch.targets())
            if self._session.sid is None:
                raise CwaUnavailable("the CWA session is down; presence is re-read on recovery")
        for chunk in _batches(targets):
            with self._lock:
                rid = self._session.next_rid()
            batch = self._command([QueryPresence(rid=rid, uris=chunk)])
            reply = batch.for_rid(rid)
            if isinstance(reply, Refused):
                raise command_failed(reply.error)

    def publish_self(self, status: Status | None = None, note: str | None = None) -> CommandOutcome:
        """Publish own state and/or note (interface.md §7.6); see `CommandOutcome`.

        Raises `CommandFailed` (with `ErrorInfo.describe()` text) when CWA refuses it, and
        `ValueError` for a status that cannot be set or when neither argument is given.
        """
        if status is None and note is None:
            raise ValueError("publish_self needs a status, a note or both")
        if status is not None and status not in REPRESENTATIVE_AVAILABILITY:
            raise ValueError(f"status {status.value!r} cannot be set")
        with self._lock:
            previous = self._own.command(status, note)
            if self._session.state is not SessionState.ONLINE:
                return self._own.queue(self._clock())
            rid = self._session.next_rid()
            waiter = self._own.wait_for(rid)
        try:
            batch = self._command([PublishSelfPresence(rid=rid, categories=categories(status, note))])
        except (CwaError, CwaProtocolError):
            with self._lock:
                self._own.forget(rid)
                return self._own.queue(self._clock())
        reply = batch.for_rid(rid)
        if isinstance(reply, Refused):
            with self._lock:
                self._own.forget(rid)
                self._own.restore(previous)
            raise command_failed(reply.error)
        with self._lock:
            self._own.accepted(self._clock() + self._s.republish_s)
        deadline = time.monotonic() + self._s.command_timeout_s
        while not waiter.done.wait(_WAIT_SLICE_S):
            if self._stop.is_set() or time.monotonic() >= deadline:
                break
        with self._lock:
            self._own.forget(rid)
            if waiter.lost:
                return self._own.queue(self._clock())
            if waiter.done.is_set() and not waiter.ok:
                self._own.restore(previous)
                raise command_failed(waiter.error or ErrorInfo())
        # Accepted without a reported result within the timeout still counts as applied (§8.21).
        return CommandOutcome(applied=True, confirmed=waiter.ok)

    # ------------------------------------------------------------------ periodic work (poll thread)

    def maintain(self) -> None:
        """Due re-subscriptions (with back-off) and own-state (re-)publishing (§3.7: every 5 min)."""
        now = self._clock()
        with self._lock:
            due = self._watch.due(now)
            publish = self._own.is_due(now)
        self.subscribe(due)
        if publish:
            self._republish()

    def _republish(self) -> None:
        with self._lock:
            rid = self._session.next_rid()
            pending = self._own.begin_republish(rid)
        try:
            batch = self._command(
                [PublishSelfPresence(rid=rid, categories=categories(pending.status, pending.note))]
            )
        except (CwaError, CwaProtocolError) as exc:
            with self._lock:
                self._own.republish_failed(rid, pending, self._retry_at)
            log.warning("cwa.publish.retry error=%s", type(exc).__name__)
            return
        with self._lock:
            reply = batch.for_rid(rid)
            refused = reply.error if isinstance(reply, Refused) else None
            self._own.republish_answered(rid, pending, refused, self._clock() + self._s.republish_s)
        log.info(
            "cwa.publish.sent rid=%s status=%s note_set=%s", rid, pending.status, pending.note is not None
        )

    # ------------------------------------------------------------------ commands

    def subscribe(self, uris: Sequence[str], batch: int = SUBSCRIBE_BATCH, *, paced: bool = True) -> None:
        """subscribePresence in batches of at most 100 (interface.md §7.2).

        Paced: at most ``subscribe_per_poll`` URIs between two data-channel answers; the rest waits
        in the backlog (oldest first) and goes out after the next answer, so no answer carries
        the presence of more than one slice.
        """
        with self._lock:
            if self._session.sid is None:
                return
            todo, slices = self._watch.take(uris, paced=paced)
        try:
            self._send_subscriptions(todo, batch)
        finally:
            with self._lock:
                self._watch.slice_sent(slices)
        log.debug("cwa.subscribe.sent uris=%d backlog=%d", len(todo), len(self._watch.backlog))

    def _send_subscriptions(self, todo: list[str], batch: int) -> None:
        for chunk in _batches(todo, batch):
            with self._lock:
                rid = self._session.next_rid()
                self._watch.sending(rid, chunk)
            try:
                answer = self._command([SubscribePresence(rid=rid, uris=chunk)])
            except (CwaError, CwaProtocolError):
                with self._lock:
                    self._watch.send_failed(rid, chunk)  # retried by `maintain`
                continue
            reply = answer.for_rid(rid)
            if isinstance(reply, Refused):
                with self._lock:
                    again = self._watch.refused(rid, chunk, reply.error)
                self.subscribe(again, batch=1, paced=False)

    def _command(self, methods: Sequence[Method]) -> ResponseBatch:
        """POST methods on the current session. Session-level failures move the machine."""
        with self._lock:
            sid = self._session.sid
            epoch = self._session.epoch
        if sid is None:
            raise CwaUnavailable("the CWA session is down")
        try:
            batch = self._transport.post_commands(sid, methods)
        except (TicketExpired, SessionGone) as exc:
            self._failure(exc, epoch, "command")
            raise
        except (CwaError, CwaProtocolError) as exc:
            self._report.count(error_kind(exc))
            raise
        return batch


def _batches(uris: Sequence[str], size: int = SUBSCRIBE_BATCH) -> list[tuple[str, ...]]:
    return [tuple(uris[i : i + size]) for i in range(0, len(uris), size)]
