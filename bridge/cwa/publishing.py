"""Own-state publishes on the command worker, and the wait of their callers.

A caller of `publish_self` waits, bounded, for three things in turn: its job's turn on the worker
plus the exchange (``timeout_s``), then CWA's asynchronous result (``command_timeout_s``). When
its turn does not come in time the command is not lost: the job is abandoned, the commanded
state is queued (`OwnState.queue`) and its result comes later as a `CommandNotice`. A job still
waiting after ``command_ttl_s`` is dropped as expired. The periodic re-publish (every
``republish_s``, at once on a new session or when the session is back) runs here too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bridge.cwa.guarded import Guarded
from bridge.cwa.messages import ErrorInfo, Method, PublishSelfPresence, Refused, ResponseBatch
from bridge.cwa.notices import CommandNotice, CommandOutcome
from bridge.cwa.ownstate import Commanded, Waiter, categories
from bridge.cwa.protocol import CwaProtocol
from bridge.cwa.settings import CwaClientSettings
from bridge.cwa.transport import command_failed, describe
from bridge.errors import CwaError, CwaProtocolError, CwaUnavailable
from bridge.presence import Status

log = logging.getLogger("bridge.cwa.client")  # the client's log name, whichever module logs


@dataclass(eq=False)
class PublishJob:
    status: Status | None
    note: str | None
    previous: Commanded
    arrived: float
    sent: threading.Event = field(default_factory=threading.Event)  # the worker is done with it
    done: threading.Event = field(default_factory=threading.Event)  # CWA's result arrived
    started: bool = False
    abandoned: bool = False  # the caller stopped waiting: the result becomes a CommandNotice
    outcome: CommandOutcome | None = None  # queued instead of sent
    error: CwaError | None = None
    rid: str | None = None
    waiter: Waiter | None = None


class OwnPublisher:
    def __init__(
        self,
        settings: CwaClientSettings,
        core: Guarded[CwaProtocol],
        *,
        clock: Callable[[], float],
        command: Callable[[Sequence[Method]], ResponseBatch],
    ) -> None:
        self._s = settings
        self._core = core
        self._clock = clock
        self._command = command

    def publish_self(
        self, status: Status | None, note: str | None, put: Callable[[PublishJob], None]
    ) -> CommandOutcome:
        """See `CwaClient.publish_self`: ``put`` hands the job to the worker; blocks the caller
        (never the poll thread) for its turn, the exchange and CWA's result, each bounded."""
        with self._core as core:
            previous = core.own.command(status, note)
            if not core.online:
                return core.own.queue(self._clock())
            job = PublishJob(status, note, previous, self._clock())
            try:
                put(job)
            except CwaUnavailable:
                core.own.restore(previous)
                raise
        if not job.sent.wait(self._s.timeout_s + 1.0) and not self._abandon(job):
            return CommandOutcome(applied=False, queued=True)
        if job.error is not None:
            raise job.error
        if job.outcome is not None:
            return job.outcome
        return self._await_result(job)

    def _abandon(self, job: PublishJob) -> bool:
        """The caller's wait is over: returns True when the worker finished just in time."""
        with self._core as core:
            if job.sent.is_set():
                return True
            job.abandoned = True
            if not job.started:
                core.own.queue(job.arrived)  # sent by the next re-publish, reported by a notice
        return False

    def _await_result(self, job: PublishJob) -> CommandOutcome:
        waiter, rid = job.waiter, job.rid or ""
        if waiter is None:  # cannot happen: an accepted publish always has a waiter
            return CommandOutcome(applied=True)
        job.done.wait(self._s.command_timeout_s)
        with self._core as core:
            core.own.forget(rid)
            if waiter.lost:
                return core.own.queue(self._clock())
            if waiter.done.is_set() and not waiter.ok:
                core.own.restore(job.previous)
                raise command_failed(waiter.error or ErrorInfo())
        # Accepted without a reported result within the timeout still counts as applied.
        return CommandOutcome(applied=True, confirmed=waiter.ok)

    # ------------------------------------------------------------------ on the command worker

    def run(self, job: PublishJob) -> None:
        try:
            self._publish(job)
        finally:
            job.sent.set()

    def _publish(self, job: PublishJob) -> None:
        with self._core as core:
            if job.abandoned:
                return  # already handed to the re-publisher by `_abandon`
            job.started = True
            if self._clock() - job.arrived > self._s.command_ttl_s:
                core.own.restore(job.previous)
                job.error = CwaUnavailable(f"expired: not sent to CWA within {self._s.command_ttl_s:g} s")
                return
            if not core.online:
                job.outcome = core.own.queue(job.arrived)
                return
            rid = job.rid = core.session.next_rid()
            job.waiter = core.own.wait_for(rid, job.done)
        try:
            batch = self._command([PublishSelfPresence(rid=rid, categories=categories(job.status, job.note))])
        except (CwaError, CwaProtocolError):
            with self._core as core:
                core.own.forget(rid)
                job.outcome = core.own.queue(job.arrived)
            return
        reply = batch.for_rid(rid)
        with self._core as core:
            if isinstance(reply, Refused):
                core.own.forget(rid)
                core.own.restore(job.previous)
                if job.abandoned:
                    core.emit(CommandNotice(job.status, job.note, False, reply.error.describe()))
                job.error = command_failed(reply.error)
                return
            core.own.accepted(self._clock() + self._s.republish_s)
            if job.abandoned:
                core.own.abandon(rid, job.status, job.note)

    def republish(self) -> None:
        """The periodic or queued publish of the whole commanded state."""
        with self._core as core:
            rid, pending = core.republish_begin()
        try:
            batch = self._command(
                [PublishSelfPresence(rid=rid, categories=categories(pending.status, pending.note))]
            )
        except (CwaError, CwaProtocolError) as exc:
            now = self._clock()
            with self._core as core:
                core.republish_failed(rid, pending, now)
            log.warning('cwa.publish.retry error="%s"', describe(exc))
            return
        reply = batch.for_rid(rid)
        refused = reply.error if isinstance(reply, Refused) else None
        with self._core as core:
            core.own.republish_answered(rid, pending, refused, self._clock() + self._s.republish_s)
        log.info(
            "cwa.publish.sent rid=%s status=%s note_set=%s", rid, pending.status, pending.note is not None
        )
