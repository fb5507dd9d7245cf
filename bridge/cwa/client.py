"""The CWA client: the I/O around the protocol core `CwaProtocol` (README: "How it behaves toward CWA").

Threads. `start()` signs in and starts the session on the caller's thread; then the poll thread
(``cwa-poll``: data channel, sign-in, session start, recovery, presence notices in eid order) and
the command worker (``cwa-command``, `commanding`: every other command-channel request) run. The
poll thread never waits for the command channel, it only wakes the worker; of the public methods
only `publish_self` waits, bounded, for its own result. Both loops are thin: every decision is the
core's (`protocol`), which they reach through one lock (`Guarded`); its ``epoch`` tells a result
of an older step apart (a command that finds the ticket expired moves the session while a long
poll is held; that poll's answer is dropped). Both loops report to an optional `Liveness`
registry how long their next step may take.

Next to it: `transport` (HTTP; the one place foreign errors are translated), `commanding` (the
worker), `publishing` (the wait of a `publish_self` caller), `reporting` (notice delivery).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence

import httpx

from bridge.backoff import BackoffPolicy, Sleeper, event_sleeper
from bridge.cwa.commanding import STALL_MARGIN_S, SUBSCRIBE_BATCH, CommandWorker, RefreshDone
from bridge.cwa.datachannel import DataChannel
from bridge.cwa.guarded import Guarded
from bridge.cwa.notices import CommandOutcome, Notice
from bridge.cwa.protocol import CwaProtocol
from bridge.cwa.reporting import Reporter
from bridge.cwa.session import Backoff, Poll, SessionError, SignIn, StartSession, Stopped
from bridge.cwa.settings import SUBSCRIBE_PER_POLL, CwaClientSettings
from bridge.cwa.transport import CwaTransport, describe, error_kind
from bridge.errors import AuthRejected, CwaError, CwaProtocolError, CwaUnavailable
from bridge.liveness import Beat, Liveness
from bridge.presence import REPRESENTATIVE_AVAILABILITY, Status

__all__ = [
    "SUBSCRIBE_BATCH",
    "SUBSCRIBE_PER_POLL",
    "CwaClient",
    "CwaClientSettings",
]

log = logging.getLogger("bridge.cwa.client")

_CHANNEL: dict[type, str] = {SignIn: "logon", StartSession: "command", Poll: "data"}  # for logs
POLL_LOOP = "cwa-poll"
COMMAND_LOOP = "cwa-command"


class CwaClient:
    """See the module docstring. Public state names: those of ``bridge/info.session``."""

    def __init__(
        self,
        settings: CwaClientSettings,
        http: httpx.Client,
        on_notice: Callable[[Notice], None],
        *,
        sleep: Sleeper | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        on_metric: Callable[[str, float | str], None] | None = None,
        liveness: Liveness | None = None,
    ) -> None:
        self._s = settings
        self._sleep: Sleeper = sleep or event_sleeper
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 — jitter, not security
        self._policy = BackoffPolicy(settings.backoff_initial_s, settings.backoff_max_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._core = Guarded(
            CwaProtocol(
                watch_contacts=settings.watch_contacts,
                per_poll=settings.subscribe_per_poll,
                resync_s=settings.resync_s,
                command_ttl_s=settings.command_ttl_s,
                retry_delay=lambda attempt: self._policy.delay(attempt, self._rng),
            )
        )
        with self._core as core:
            self.stats = core.stats  # error kind -> count
        self._transport = CwaTransport(settings, http, ticket=self._ticket, adopt_ticket=self._adopt_ticket)
        self._report = Reporter(self._core, on_notice, on_metric)
        self._liveness = liveness
        self._beat: Beat | None = None
        self._worker = CommandWorker(
            settings,
            self._core,
            self._transport,
            self._report,
            stop=self._stop,
            clock=clock,
            failure=self._failure,
            beat=liveness.register(COMMAND_LOOP, 1.0 + STALL_MARGIN_S) if liveness else None,
        )
        self._data = DataChannel(
            settings,
            self._core,
            self._transport,
            self._report,
            clock=clock,
            sleep=self._sleep,
            stop=self._stop,
            wake=self._worker.wake,
        )
        self._host = httpx.URL(settings.base_url).host  # for log lines: never the URL (it may hold a user)
        self._unreachable: str | None = None  # why the last attempt before the first session failed

    # ================================================================== public API

    @property
    def state(self) -> str:
        """``connecting`` | ``online`` | ``reconnecting`` | ``auth_failed`` | ``stopped``."""
        with self._core as core:
            return core.public_state

    @property
    def refused_before_online(self) -> bool:
        """CWA refused the credentials before any session was started: the same verdict as a
        refusal at `start` (exit 77), not a later expiry to wait out."""
        with self._core as core:
            return core.public_state == "auth_failed" and core.session.sessions == 0

    @property
    def unwatchable(self) -> dict[str, str]:
        """URI -> reason for every watched user CWA refuses to watch right now."""
        with self._core as core:
            return core.watch.unwatchable

    def start(self, *, keep_trying: bool = False) -> None:
        """Sign in and start the session on this thread, then start the poll thread and the worker.

        Raises `AuthRejected` when the credentials are refused. Another `CwaError` or
        `CwaProtocolError` is raised too (`start` may then be called again), unless
        ``keep_trying``: then the poll thread goes on signing in with back-off, one
        ``cwa.unreachable`` warning per attempt, until CWA answers (a service must not depend on
        CWA being up when it boots); `refused_before_online` tells when CWA then refuses.
        """
        if self._thread is not None:
            raise RuntimeError("the CWA client was already started")
        while True:
            with self._core as core:
                action, epoch = core.next_action()
            if isinstance(action, Backoff):
                continue  # a retried start(): the caller chose when to try again
            if isinstance(action, Poll):
                break
            if isinstance(action, Stopped):
                raise CwaUnavailable("the CWA client was stopped")
            try:
                self._perform(action, epoch)
            except AuthRejected as exc:
                self._failure(exc, epoch, "start")
                raise
            except (CwaError, CwaProtocolError) as exc:
                self._failure(exc, epoch, "start")
                if not keep_trying:
                    raise
                break
        if self._liveness is not None:
            self._beat = self._liveness.register(POLL_LOOP, self._s.poll_timeout_s)
        self._worker.start()
        self._thread = threading.Thread(target=self._run, name=POLL_LOOP, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """terminateSession (best effort, short timeout), stop both threads; within ``timeout``."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._worker.wake()
        with self._core as core:
            sid = core.sid
            rid = core.session.next_rid()
        if sid is not None:
            try:
                self._transport.terminate_session(sid, rid, max(0.05, min(0.5, timeout / 2)))
                log.info("cwa.session.terminated sid=%s", sid)
            except (CwaError, CwaProtocolError) as exc:
                log.info('cwa.session.terminate_failed error="%s"', describe(exc))
        with self._core as core:
            core.stop()
        if not self._worker.join(deadline - time.monotonic()):
            log.warning("cwa.client.stop_timeout thread=%s still in a request", COMMAND_LOOP)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("cwa.client.stop_timeout thread=%s still in a request", POLL_LOOP)
                return
        with self._core as core:
            core.note_state()
        self._report.flush()

    def set_watched(self, uris: Sequence[str]) -> None:
        """Replace the watch set; the worker subscribes what this session lacks. Never blocks."""
        with self._core as core:
            queued = core.set_watched(uris)
        if queued:
            self._worker.wake()

    def refresh(self, uri: str | None = None, *, on_done: RefreshDone | None = None) -> None:
        """queryPresence for one user or everyone, on the worker; answers come as `UserNotice`s.

        ``on_done`` gets ``None`` or the `CwaError` once, on the worker; a refresh for a target that
        already has one waiting shares it. Raises `CwaUnavailable` at once when the session is down
        or the queue is full."""
        self._worker.refresh(uri, on_done)

    def publish_self(self, status: Status | None = None, note: str | None = None) -> CommandOutcome:
        """Publish own state and/or note on the worker; see `CommandOutcome` and `publishing`.

        Raises `CommandFailed` when CWA refuses it, `CwaUnavailable` when too many commands wait,
        `ValueError` for a status that cannot be set or when neither argument is given."""
        if status is None and note is None:
            raise ValueError("publish_self needs a status, a note or both")
        if status is not None and status not in REPRESENTATIVE_AVAILABILITY:
            raise ValueError(f"status {status.value!r} cannot be set")
        return self._worker.publish_self(status, note)

    # ================================================================== the poll thread

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._state_changed()
                with self._core as core:
                    action, epoch = core.next_action()
                if isinstance(action, Stopped):
                    break
                if isinstance(action, Backoff):
                    if self._back_off(action):
                        break
                    continue
                try:
                    self._perform(action, epoch)
                except (CwaError, CwaProtocolError) as exc:
                    self._failure(exc, epoch, _CHANNEL[type(action)])
                except Exception:  # the client never dies from bad input
                    log.exception("cwa.client.unexpected_error")
                    self._failure(CwaUnavailable("unexpected error"), epoch, _CHANNEL[type(action)])
        finally:
            with self._core as core:
                core.stop()
                core.note_state()
            self._report.flush()
            if self._beat is not None:
                self._beat.retire()

    def _back_off(self, action: Backoff) -> bool:
        """Wait before the next attempt (True: stopped meanwhile). Before the first session each
        attempt is one warning with the reason; later back-offs are routine (debug)."""
        delay = self._policy.delay(action.attempt, self._rng, long=action.long)
        first, reason = self._unreachable is not None, self._unreachable or action.reason
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "cwa.%s host=%s attempt=%d retry_in_s=%.1f reason=%s",
            "unreachable" if first else "backoff",
            self._host,
            action.attempt,
            delay,
            reason,
        )
        self._progress(delay)
        return self._sleep(delay, self._stop)

    def _state_changed(self) -> None:
        """Notices out; a session back online sends a queued own state at once."""
        now = self._clock()
        with self._core as core:
            core.note_state()
            due = core.session_back(now)
        self._report.flush()
        if due:
            self._worker.wake()

    def _progress(self, within_s: float) -> None:
        if self._beat is not None:
            self._beat.progress(within_s + STALL_MARGIN_S)

    def _perform(self, action: SignIn | StartSession | Poll, epoch: int) -> None:
        if isinstance(action, SignIn):
            self._progress(self._s.timeout_s * 2)  # NTLM: up to two round trips
            self._data.sign_in(epoch)
        elif isinstance(action, StartSession):
            self._progress(self._s.timeout_s)
            if self._data.start_session(action, epoch):
                self._unreachable = None
        else:
            self._data.poll(action, epoch, self._progress)

    @property
    def last_poll_completed(self) -> float:
        """Monotonic time of the last poll answer applied (construction until the first one): the
        data channel is stalled when this is older than ``poll_timeout_s`` plus a grace period."""
        return self._data.last_poll_completed

    # ------------------------------------------------------------------ bookkeeping

    def _failure(self, exc: CwaError | CwaProtocolError, epoch: int, channel: str) -> None:
        kind = error_kind(exc)
        if self._stop.is_set():  # e.g. the held poll answered by our own terminateSession
            log.debug("cwa.%s.failed_while_stopping kind=%s", channel, kind)
            return
        self._report.count(kind)
        with self._core as core:
            never_online = core.session.sessions == 0 and not isinstance(exc, AuthRejected)
        self._unreachable = describe(exc) if never_online else None  # logged at its back-off
        level = logging.DEBUG if never_online else logging.WARNING
        log.log(level, 'cwa.%s.failed kind=%s error="%s"', channel, kind, describe(exc))
        with self._core as core:
            try:
                core.failed(kind, epoch)
            except SessionError:  # a kind the core does not know: the client must not die of it
                log.exception("cwa.session.bad_input kind=%s", kind)
                core.failed("unavailable", epoch)

    def _ticket(self) -> str | None:
        with self._core as core:
            return core.session.ticket

    def _adopt_ticket(self, ticket: str | None) -> None:
        with self._core as core:  # the newest ticket of ANY response wins
            core.session.adopt_ticket(ticket)
