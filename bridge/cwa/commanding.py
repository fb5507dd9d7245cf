"""The command worker: every request on the command channel of the current session, on one thread.

queryPresence (`refresh`, and the periodic resync), own-state publishes (`publish_self`, and the
periodic and queued re-publishes) and subscribePresence (paced, in batches of at most 100; a refused
batch re-tried one URI each; unwatchable users re-tried with back-off) all run on the thread
``cwa-command``, in order. Nobody else waits on the command channel: `refresh` and the watch-set
changes only enqueue or mark work and return at once, the poll thread only wakes the worker, and
`publish_self` blocks its caller (never the poll thread) for at most the command deadline plus
the wait for CWA's result. A slow or trickling command channel therefore never stops presence.

Bounds. At most `QUEUE_MAX` refreshes and publishes wait; beyond that a request is refused at once
with `CwaUnavailable` ("busy"). A refresh for a target that already has one waiting shares it.
Subscriptions and re-publishes are not queued: they are state (`WatchState`, `OwnState`) that the
worker brings up to date each time it wakes (at least once a second).

The worker decides nothing itself: it asks the protocol core (`CwaProtocol`, through the
client's one lock) what is due, does the HTTP, and tells the core what came back. A
session-level failure of a command (ticket expired, session gone) is handed to the client's
``failure`` so it moves the session (the epoch keeps that from racing with the poll thread).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bridge.cwa.guarded import Guarded
from bridge.cwa.messages import Method, QueryPresence, Refused, ResponseBatch, SubscribePresence
from bridge.cwa.notices import CommandOutcome
from bridge.cwa.protocol import CwaProtocol
from bridge.cwa.publishing import OwnPublisher, PublishJob
from bridge.cwa.reporting import Reporter
from bridge.cwa.settings import CwaClientSettings
from bridge.cwa.transport import CwaTransport, command_failed, describe, error_kind
from bridge.errors import CwaError, CwaProtocolError, CwaUnavailable, SessionGone, TicketExpired
from bridge.liveness import Beat
from bridge.presence import Status

log = logging.getLogger("bridge.cwa.client")  # the client's log name, whichever module logs

SUBSCRIBE_BATCH = 100  # at most 100 URIs per subscribePresence/queryPresence
QUEUE_MAX = 1000
IDLE_WAKE_S = 1.0  # the worker looks at due work (retries, re-publishes, resync) at least this often
STALL_MARGIN_S = 10.0


RefreshDone = Callable[[CwaError | None], None]


@dataclass(eq=False)
class _Refresh:
    uri: str | None  # None: every watched user
    done: list[RefreshDone] = field(default_factory=list)  # refreshes answered together

    def finish(self, error: CwaError | None) -> None:
        for callback in self.done:
            try:
                callback(error)
            except Exception:  # the owner's bug must not stop the worker
                log.exception("cwa.refresh.callback_failed")


_Job = _Refresh | PublishJob | None  # None: wake up and look at due work


class CommandWorker:
    def __init__(
        self,
        settings: CwaClientSettings,
        core: Guarded[CwaProtocol],
        transport: CwaTransport,
        report: Reporter,
        *,
        stop: threading.Event,
        clock: Callable[[], float],
        failure: Callable[[CwaError | CwaProtocolError, int, str], None],
        beat: Beat | None = None,
    ) -> None:
        self._s = settings
        self._core = core
        self._transport = transport
        self._report = report
        self._stop = stop
        self._clock = clock
        self._failure = failure
        self._beat = beat
        self._jobs: queue.Queue[_Job] = queue.Queue(maxsize=QUEUE_MAX + 1)  # +1: room for a wake-up
        self._waiting_refresh: dict[str | None, _Refresh] = {}  # guarded by the core's lock
        self._wake_pending = False  # guarded by the core's lock
        self._publisher = OwnPublisher(settings, core, clock=clock, command=self._command)
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle (client)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="cwa-command", daemon=True)
            self._thread.start()

    def join(self, timeout: float) -> bool:
        """Wait for the worker to end (after the stop event); returns whether it did."""
        self.wake()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(max(0.0, timeout))
        return not thread.is_alive()

    def wake(self) -> None:
        """Look at due work now (new subscriptions, a session back). Never blocks."""
        with self._core:
            if self._wake_pending:
                return  # one wake-up in the queue is enough
            self._wake_pending = True
        with contextlib.suppress(queue.Full):  # a full queue: the worker is awake anyway
            self._jobs.put_nowait(None)

    # ------------------------------------------------------------------ requests (any thread)

    def refresh(self, uri: str | None, on_done: RefreshDone | None) -> None:
        """See `CwaClient.refresh`: enqueues, never waits for CWA."""
        with self._core as core:
            if core.sid is None:
                raise CwaUnavailable("the CWA session is down; presence is re-read on recovery")
            job = self._waiting_refresh.get(uri) or self._waiting_refresh.get(None)
            if job is None:
                job = _Refresh(uri)
                self._put(job)
                self._waiting_refresh[uri] = job
            # else: answered together with the one already waiting (one queryPresence)
            if on_done is not None:
                job.done.append(on_done)

    def publish_self(self, status: Status | None, note: str | None) -> CommandOutcome:
        """See `CwaClient.publish_self`."""
        return self._publisher.publish_self(status, note, self._put)

    def _put(self, job: _Job) -> None:
        if self._jobs.qsize() >= QUEUE_MAX:
            raise CwaUnavailable(f"busy: {QUEUE_MAX} CWA commands are waiting")
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            raise CwaUnavailable(f"busy: {QUEUE_MAX} CWA commands are waiting") from None

    # ------------------------------------------------------------------ the worker thread

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._beat is not None:
                self._beat.progress(IDLE_WAKE_S + STALL_MARGIN_S)
            try:
                job = self._jobs.get(timeout=self._idle_wait())
            except queue.Empty:
                job = None
            if job is None:
                with self._core:
                    self._wake_pending = False
            if self._stop.is_set():
                break
            try:
                if isinstance(job, _Refresh):
                    self._run_refresh(job)
                elif isinstance(job, PublishJob):
                    self._publisher.run(job)
                self.maintain()
            except Exception as exc:  # the worker never dies from bad input
                log.exception("cwa.command.unexpected_error")
                if isinstance(job, _Refresh):  # every refresh is answered, even after a bug
                    job.finish(CwaUnavailable(f"refresh failed unexpectedly: {exc}"))
            self._report.flush()
        self._drain()
        if self._beat is not None:
            self._beat.retire()

    def _idle_wait(self) -> float:
        now = self._clock()
        with self._core as core:
            due = core.next_due()
        return max(0.0, min(IDLE_WAKE_S, IDLE_WAKE_S if due is None else due - now))

    def _drain(self) -> None:
        """Stopped: waiting requests fail at once instead of at their callers' deadlines."""
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if isinstance(job, _Refresh):
                job.finish(CwaUnavailable("the CWA client was stopped"))
            elif isinstance(job, PublishJob):
                job.outcome = CommandOutcome(applied=False, queued=True)
                job.sent.set()

    def _exchange_beat(self) -> None:
        if self._beat is not None:
            self._beat.progress(self._s.timeout_s + STALL_MARGIN_S)

    def _run_refresh(self, job: _Refresh) -> None:
        with self._core as core:
            if self._waiting_refresh.get(job.uri) is job:
                del self._waiting_refresh[job.uri]
            targets = [job.uri] if job.uri else list(core.watch.targets())
        try:
            for chunk in _batches(targets):
                with self._core as core:
                    rid = core.session.next_rid()
                reply = self._command([QueryPresence(rid=rid, uris=chunk)]).for_rid(rid)
                if isinstance(reply, Refused):
                    raise command_failed(reply.error)
        except (CwaError, CwaProtocolError) as exc:
            job.finish(exc if isinstance(exc, CwaError) else CwaUnavailable(f"refresh: {exc}"))
            return
        job.finish(None)

    # ------------------------------------------------------------------ due work

    def maintain(self) -> None:
        """Own state (re-)publishing, subscriptions (new, single re-tries, due retries) and resync."""
        now = self._clock()
        with self._core as core:
            work = core.due_work(now)
        if work is None:
            return
        if work.republish:
            self._publisher.republish()
        self._subscribe(work.singles, batch=1)
        try:
            self._subscribe(work.batch)
        finally:
            with self._core as core:
                core.watch.slice_sent(work.slices)
        if work.batch or work.singles:
            with self._core as core:
                backlog = len(core.watch.backlog)
            log.debug(
                "cwa.subscribe.sent uris=%d singles=%d backlog=%d",
                len(work.batch),
                len(work.singles),
                backlog,
            )
        if work.resync:
            self._query_resync(work.resync)

    def _query_resync(self, uris: tuple[str, ...]) -> None:
        now = self._clock()
        with self._core as core:
            rid = core.resync_begin(uris, now)
        try:
            reply = self._command([QueryPresence(rid=rid, uris=uris)]).for_rid(rid)
        except (CwaError, CwaProtocolError) as exc:
            log.info('cwa.resync.failed uris=%d error="%s"', len(uris), describe(exc))
            return
        if isinstance(reply, Refused):
            log.info("cwa.resync.refused uris=%d error=%s", len(uris), reply.error.describe())
        else:
            log.debug("cwa.resync.queried uris=%d rid=%s", len(uris), rid)

    def _subscribe(self, todo: Sequence[str], batch: int = SUBSCRIBE_BATCH) -> None:
        for chunk in _batches(todo, batch):
            with self._core as core:
                rid = core.subscribe_begin(chunk)
            try:
                answer = self._command([SubscribePresence(rid=rid, uris=chunk)])
            except (CwaError, CwaProtocolError):
                now = self._clock()
                with self._core as core:
                    core.subscribe_failed(rid, chunk, now)  # retried by `maintain` after a back-off
                continue
            reply = answer.for_rid(rid)
            if isinstance(reply, Refused):
                now = self._clock()
                with self._core as core:
                    again = core.subscribe_refused(rid, chunk, reply.error, now, split=batch > 1)
                self._subscribe(again, batch=1)  # one URI each: an unknown user affects no other

    def _command(self, methods: Sequence[Method]) -> ResponseBatch:
        """POST methods on the current session. Session-level failures move the machine."""
        with self._core as core:
            sid, epoch = core.sid, core.epoch
        if sid is None:
            raise CwaUnavailable("the CWA session is down")
        self._exchange_beat()
        try:
            return self._transport.post_commands(sid, methods)
        except (TicketExpired, SessionGone) as exc:
            self._failure(exc, epoch, "command")
            raise
        except (CwaError, CwaProtocolError) as exc:
            self._report.count(error_kind(exc))
            raise


def _batches(uris: Sequence[str], size: int = SUBSCRIBE_BATCH) -> list[tuple[str, ...]]:
    return [tuple(uris[i : i + size]) for i in range(0, len(uris), size)]
