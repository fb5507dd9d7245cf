"""The CWA client: the I/O around `CwaSession` (cwa-protocol.md §2 to §4, §7; interface.md §7).

Threads. `start()` signs in and starts the session on the caller's thread; then one daemon poll
thread owns the data channel, every recovery and every call to ``on_notice`` (so notices arrive in
eid order, from one thread). Commands (`set_watched`, `refresh`, `publish_self`) run on the
caller's thread over the command channel. State shared between the two is small and guarded by one
lock; the session machine's ``epoch`` tells a result that belongs to an older step apart, so a
command that finds the ticket expired can move the machine while the poll thread is blocked in a
long poll, and the poll's late answer is then dropped.

This module drives the session machine; the other jobs live next to it: `transport` (the HTTP
exchanges, and the one place httpx and codec failures become `bridge.errors`), `commanding` (the
requests on the command channel), `watching` (watch set, subscriptions, contacts), `ownstate`
(commanded own presence, pending publishes), `reporting` (notices, error counts, metrics). All of
them share the client's lock and session machine; notices go out from `reporting` outside it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence

import httpx

from bridge.backoff import BackoffPolicy, Sleeper, event_sleeper
from bridge.cwa.commanding import SUBSCRIBE_BATCH, CommandChannel
from bridge.cwa.messages import (
    ContactGroupEvent,
    Event,
    InitiateSession,
    RequestFailedEvent,
    RequestSucceededEvent,
    SelfPresenceEvent,
    SubscriptionStateEvent,
    UserPresenceEvent,
)
from bridge.cwa.notices import CommandOutcome, Notice, SelfNotice, UserNotice
from bridge.cwa.ownstate import OwnState
from bridge.cwa.reporting import Reporter
from bridge.cwa.session import Backoff, CwaSession, Poll, SessionState, SignIn, StartSession, Stopped
from bridge.cwa.settings import SUBSCRIBE_PER_POLL, CwaClientSettings
from bridge.cwa.transport import REQUEST_THROTTLED, CwaTransport, describe, error_kind
from bridge.cwa.watching import WatchState
from bridge.errors import CwaError, CwaProtocolError, CwaUnavailable, Throttled
from bridge.presence import Status

__all__ = [
    "SUBSCRIBE_BATCH",
    "SUBSCRIBE_PER_POLL",
    "CwaClient",
    "CwaClientSettings",
]

log = logging.getLogger("bridge.cwa.client")

PROTOCOL_ERRORS_BEFORE_NEW_SESSION = 3  # a poisoned batch re-delivered at the same AckId forever


class CwaClient:
    """See the module docstring. Public state names: interface.md §4 ``bridge/info.session``."""

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
    ) -> None:
        self._s = settings
        self._sleep: Sleeper = sleep or event_sleeper
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 — jitter, not security
        self._policy = BackoffPolicy(settings.backoff_initial_s, settings.backoff_max_s)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session = CwaSession()
        self._transport = CwaTransport(settings, http, ticket=self._ticket, adopt_ticket=self._adopt_ticket)
        self._report = Reporter(on_notice, on_metric, self._lock)
        self.stats = self._report.stats  # error kind -> count
        self._watch = WatchState(
            watch_contacts=settings.watch_contacts,
            per_poll=settings.subscribe_per_poll,
            retry_at=self._retry_at,
            emit=self._report.emit,
        )
        self._own = OwnState(self._report.emit)
        self._commands = CommandChannel(
            settings,
            self._lock,
            self._session,
            self._transport,
            watch=self._watch,
            own=self._own,
            report=self._report,
            stop=self._stop,
            clock=clock,
            retry_at=self._retry_at,
            failure=self._failure,
        )
        self._last_poll_end: float | None = None  # the data channel
        # Monotonic time of the last poll answer applied (construction until the first one): the
        # data channel is stalled when this is older than poll_timeout_s plus a grace period.
        self.last_poll_completed: float = clock()
        self._protocol_errors = 0

    # ================================================================== public API

    @property
    def state(self) -> str:
        """``connecting`` | ``online`` | ``reconnecting`` | ``auth_failed`` | ``stopped``."""
        with self._lock:
            return self._session.public_state

    @property
    def contacts(self) -> tuple[tuple[str, str | None], ...]:
        with self._lock:
            return self._watch.contacts

    def start(self) -> None:
        """Sign in and start the session on this thread, then start the poll thread.

        Raises `AuthRejected` when the credentials are refused, another `CwaError` or
        `CwaProtocolError` for other failures; `start` may then be called again.
        """
        if self._thread is not None:
            raise RuntimeError("the CWA client was already started")
        while True:
            with self._lock:
                action = self._session.next_action()
                epoch = self._session.epoch
            if isinstance(action, Backoff):
                continue  # a retried start(): the caller chose when to try again
            if isinstance(action, Poll):
                break
            if isinstance(action, Stopped):
                raise CwaUnavailable("the CWA client was stopped")
            try:
                self._perform(action, epoch)
            except (CwaError, CwaProtocolError) as exc:
                self._failure(exc, epoch, "start")
                raise
        self._thread = threading.Thread(target=self._run, name="cwa-poll", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """terminateSession (best effort, short timeout), stop the poll thread; within ``timeout``."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        with self._lock:
            sid = self._session.sid
            rid = self._session.next_rid()
        if sid is not None:
            try:
                self._transport.terminate_session(sid, rid, max(0.05, min(0.5, timeout / 2)))
                log.info("cwa.session.terminated sid=%s", sid)
            except (CwaError, CwaProtocolError) as exc:
                log.info("cwa.session.terminate_failed error=%s", type(exc).__name__)
        with self._lock:
            self._session.stop()
            self._own.release_waiters()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("cwa.client.stop_timeout the poll thread is still in a request")
                return
        self._report.emit_state(self._session)
        self._report.flush()

    def set_watched(self, uris: Sequence[str]) -> None:
        """Replace the watch set; subscribes the URIs this session has not subscribed yet."""
        with self._lock:
            self._watch.set_watched(uris)
            if self._session.sid is None:
                return  # subscribed when the session starts
            new = self._watch.unsubscribed_watched()
        self._commands.subscribe(new)

    def refresh(self, uri: str | None = None) -> None:
        """queryPresence for one user or every watched user; the answers arrive as `UserNotice`s."""
        self._commands.refresh(uri)

    def publish_self(self, status: Status | None = None, note: str | None = None) -> CommandOutcome:
        """Publish own state and/or note (interface.md §7.6); see `CommandOutcome`.

        Raises `CommandFailed` (with `ErrorInfo.describe()` text) when CWA refuses it, and
        `ValueError` for a status that cannot be set or when neither argument is given.
        """
        return self._commands.publish_self(status, note)

    # ================================================================== the poll thread

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._report.emit_state(self._session)
                self._report.flush()
                with self._lock:
                    action = self._session.next_action()
                    epoch = self._session.epoch
                if isinstance(action, Stopped):
                    break
                if isinstance(action, Backoff):
                    delay = self._policy.delay(action.attempt, self._rng, long=action.long)
                    log.debug(
                        "cwa.backoff attempt=%d reason=%s delay_s=%.3f", action.attempt, action.reason, delay
                    )
                    if self._sleep(delay, self._stop):
                        break
                    continue
                try:
                    self._perform(action, epoch)
                except (CwaError, CwaProtocolError) as exc:
                    self._failure(exc, epoch, _channel(action))
                except Exception:  # the client never dies from bad input (interface.md §7.7)
                    log.exception("cwa.client.unexpected_error")
                    self._failure(CwaUnavailable("unexpected error"), epoch, _channel(action))
        finally:
            with self._lock:
                self._session.stop()
                self._own.release_waiters()
            self._report.emit_state(self._session)
            self._report.flush()

    def _perform(self, action: SignIn | StartSession | Poll, epoch: int) -> None:
        if isinstance(action, SignIn):
            self._sign_in(epoch)
        elif isinstance(action, StartSession):
            self._start_session(action, epoch)
        else:
            self._poll(action, epoch)

    def _sign_in(self, epoch: int) -> None:
        signed_in = self._transport.sign_in()
        with self._lock:
            if self._session.epoch == epoch:
                self._session.signed_in(signed_in.ticket, signed_in.sign_in_data)
        log.info("cwa.sign_in.ok user=%s auth=%s", self._s.username, self._s.auth)

    def _start_session(self, action: StartSession, epoch: int) -> None:
        """initiateSession as a quiet observer (interface.md §7.1)."""
        method = InitiateSession(
            rid=action.rid,
            availability=self._s.initial_availability,
            auto_publish_machine_state=False,
            sign_in_data=action.sign_in_data,
        )
        reply = self._transport.initiate_session(method)
        sid = reply.sid or ""  # never empty: the transport raises for an answer without a sid
        with self._lock:
            if self._session.epoch != epoch:
                return
            self._session.session_started(sid, reply.poll_wait_time)
            self._new_session_reset()
            targets = list(self._watch.targets())
        log.info("cwa.session.started sid=%s poll_wait_ms=%s", sid, reply.poll_wait_time)
        with self._lock:
            restarted = self._session.sessions > 1
        if restarted:
            self._report.metric("session_restart", 1.0)
        self._commands.subscribe(targets)

    def _poll(self, action: Poll, epoch: int) -> None:
        """One data-channel GET, paced by pollWaitTime after the previous response (§4.4)."""
        if self._last_poll_end is not None:
            remaining = self._last_poll_end + action.wait_ms / 1000 - self._clock()
            if remaining > 0 and self._sleep(remaining, self._stop):
                return
        self._commands.maintain()
        with self._lock:
            if self._session.epoch != epoch:
                return  # a command found the session gone while we waited
            settled = self._watch.settled()
        started = self._clock()
        try:
            answer = self._transport.fetch_events(action.sid, action.ack_id)
        finally:
            self._last_poll_end = self._clock()
        self._report.metric("poll_latency", self._last_poll_end - started)
        batch, channel_error = self._transport.read_events(answer)
        with self._lock:
            if self._session.epoch != epoch:
                return
            fresh = self._session.events_received(batch)
            self.last_poll_completed = self._clock()
            self._protocol_errors = 0
            self._watch.answered(settled)
            if self._session.epoch != epoch:
                log.warning("cwa.session.lost reason=server_restart ack_id_went_back=%s", batch.ack_id)
                self._report.count("server_restart")
                return
        self._report.metric("events", float(len(fresh)))
        self._dispatch(fresh)
        if channel_error is not None and channel_error.code == REQUEST_THROTTLED:
            raise Throttled("data channel: request throttled (18101)")
        if channel_error is not None:
            raise CwaUnavailable(f"data channel: {channel_error.describe()}")

    def _dispatch(self, events: Sequence[Event]) -> None:
        """Events → notices and bookkeeping; subscriptions they call for go out afterwards."""
        singles: list[str] = []  # URIs of refused batches, retried one per request
        resubscribe: list[str] = []
        with self._lock:
            online = self._session.sid is not None
            for event in events:
                if isinstance(event, RequestSucceededEvent | RequestFailedEvent):
                    error = event.error if isinstance(event, RequestFailedEvent) else None
                    self._own.resolve(event.rid or "", error is None, error)
                    singles += self._watch.resolve(event.rid or "", error)
                elif isinstance(event, UserPresenceEvent):
                    for user in event.users:
                        self._report.emit(UserNotice(user.uri, user.summary()))
                        self._watch.set_watchable(user.uri, True, "presence")
                elif isinstance(event, SelfPresenceEvent):
                    self._report.emit(SelfNotice(event.summary()))
                elif isinstance(event, SubscriptionStateEvent):
                    for sub in event.users:
                        self._watch.set_watchable(sub.uri, sub.state == "subscribed", sub.state)
                elif isinstance(event, ContactGroupEvent):
                    resubscribe += self._watch.apply_contacts(event, online=online)
                # IM invitations and every other event are ignored without error (§7.1).
        self._report.flush()
        self._commands.subscribe(resubscribe)  # also the next slice of the backlog
        self._commands.subscribe(singles, batch=1, paced=False)  # counted with their batch already

    # ------------------------------------------------------------------ bookkeeping

    def _failure(self, exc: CwaError | CwaProtocolError, epoch: int, channel: str) -> None:
        kind = error_kind(exc)
        if self._stop.is_set():  # e.g. the held poll answered by our own terminateSession
            log.debug("cwa.%s.failed_while_stopping kind=%s", channel, kind)
            return
        self._report.count(kind)
        log.warning("cwa.%s.failed kind=%s error=%s", channel, kind, describe(exc))
        with self._lock:
            if self._session.epoch != epoch or self._session.state is SessionState.STOPPED:
                return
            if kind == "protocol" and self._session.sid is not None:
                self._protocol_errors += 1
                if self._protocol_errors >= PROTOCOL_ERRORS_BEFORE_NEW_SESSION:
                    self._protocol_errors = 0
                    kind = "session_gone"
            if kind == "command_failed":
                kind = "unavailable"
            try:
                self._session.failed(kind)
            except Exception:  # an impossible input must not kill the poll thread
                log.exception("cwa.session.bad_input kind=%s", kind)
                self._session.failed("unavailable")

    def _new_session_reset(self) -> None:
        """Per-session bookkeeping starts afresh; commanded state is re-published (§7.2.1)."""
        self._watch.new_session()
        self._own.new_session(self._clock())
        self._last_poll_end = None
        self._protocol_errors = 0

    def _ticket(self) -> str | None:
        with self._lock:
            return self._session.ticket

    def _adopt_ticket(self, ticket: str | None) -> None:
        with self._lock:  # the newest ticket of ANY response wins (§2.4, interface.md §7.4)
            self._session.adopt_ticket(ticket)

    def _retry_at(self, attempt: int) -> float:
        return self._clock() + self._policy.delay(attempt, self._rng)


def _channel(action: SignIn | StartSession | Poll) -> str:
    if isinstance(action, SignIn):
        return "logon"
    return "command" if isinstance(action, StartSession) else "data"
