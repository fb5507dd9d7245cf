"""The CWA client: the I/O around `CwaSession` (cwa-protocol.md §2 to §4, §7; interface.md §7).

Threads. `start()` signs in and starts the session on the caller's thread; then one daemon poll
thread owns the data channel, every recovery and every call to ``on_notice`` (so notices arrive in
eid order, from one thread). Commands (`set_watched`, `refresh`, `publish_self`) run on the
caller's thread over the command channel. State shared between the two is small and guarded by one
lock; the session machine's ``epoch`` tells a result that belongs to an older step apart, so a
command that finds the ticket expired can move the machine while the poll thread is blocked in a
long poll, and the poll's late answer is then dropped.

Translating httpx and codec failures into `bridge.errors` happens here and nowhere else.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from bridge.cwa import codec
from bridge.cwa.backoff import BackoffPolicy, Sleeper, event_sleeper
from bridge.cwa.iwa import NtlmAuth
from bridge.cwa.messages import (
    Accepted,
    Category,
    ContactGroupEvent,
    ErrorInfo,
    Event,
    InitiateSession,
    Logon,
    Method,
    PublishSelfPresence,
    QueryPresence,
    Refused,
    RequestFailedEvent,
    RequestSucceededEvent,
    ResponseBatch,
    SelfPresenceEvent,
    SubscribePresence,
    SubscriptionStateEvent,
    Succeeded,
    TerminateSession,
    UserPresenceEvent,
)
from bridge.cwa.notices import (
    CommandNotice,
    CommandOutcome,
    ContactsNotice,
    Notice,
    SelfNotice,
    SessionNotice,
    UserNotice,
    WatchabilityNotice,
)
from bridge.cwa.session import Backoff, CwaSession, Poll, SessionState, SignIn, StartSession, Stopped
from bridge.errors import (
    AuthRejected,
    CommandFailed,
    CwaError,
    CwaProtocolError,
    CwaUnavailable,
    SessionGone,
    Throttled,
    TicketExpired,
)
from bridge.presence import REPRESENTATIVE_AVAILABILITY, Status

log = logging.getLogger("bridge.cwa.client")

TICKET_HEADER = "CWA-Ticket"
LOGON_PATHS = {"forms": "/forms/logon.html", "iwa": "/iwa/logon.html"}  # §2.2
SUBSCRIBE_BATCH = 100  # interface.md §7.2
# URIs subscribed per data-channel answer: the presence of every new subscription comes back in the
# next answer (§3.6, §4.5), so subscribing 10,000 at once made one ~9.5 MB body whose parse set the
# memory high-water mark (bench/RESULTS.md). One slice per poll keeps each answer ~1 MB.
SUBSCRIBE_PER_POLL = 1000
MIN_POLL_READ_TIMEOUT_S = 90.0  # a held long poll must not look like a failure (§4.4)
SESSION_NOT_FOUND = 18100
REQUEST_THROTTLED = 18101
PROTOCOL_ERRORS_BEFORE_NEW_SESSION = 3  # a poisoned batch re-delivered at the same AckId forever
_WAIT_SLICE_S = 0.1


@dataclass(frozen=True)
class CwaClientSettings:
    base_url: str
    username: str
    password: str = field(repr=False)
    uri: str
    command_path: str = "/cwa/MainCommandHandler.ashx"
    data_path: str = "/cwa/AsyncDataChannel.ashx"
    auth: Literal["forms", "iwa"] = "forms"  # §2.2: credentials in the body, or NTLM over HTTP
    logon_path: str | None = None  # None: the path of ``auth`` (LOGON_PATHS)
    timeout_s: float = 30.0
    poll_read_timeout_s: float = 95.0  # clamped to at least 90 s (§4.4)
    republish_s: float = 300.0
    initial_availability: int | None = None
    watch_contacts: bool = False
    max_body_bytes: int = codec.DEFAULT_MAX_BYTES
    command_timeout_s: float = 15.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    subscribe_per_poll: int = SUBSCRIBE_PER_POLL


class _Waiter:
    """A caller of `publish_self` waiting for requestSucceeded/requestFailed of its rid."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False
        self.lost = False
        self.error: ErrorInfo | None = None


@dataclass
class _Pending:
    """An own-state publish whose result nobody waits for; ``loud`` ones always get a CommandNotice."""

    status: Status | None
    note: str | None
    loud: bool


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
        self._http = http
        self._on_notice = on_notice
        self._sleep: Sleeper = sleep or event_sleeper
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 — jitter, not security
        self._on_metric = on_metric
        self._policy = BackoffPolicy(settings.backoff_initial_s, settings.backoff_max_s)
        self._base = settings.base_url.rstrip("/")
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session = CwaSession()
        self._outbox: list[Notice] = []
        self._reported: str | None = None
        self.stats: dict[str, int] = {}
        # the watch set and what this session has subscribed
        self._watched: tuple[str, ...] = ()
        self._subscribed: set[str] = set()
        self._pending_subs: dict[str, tuple[str, ...]] = {}
        self._backlog: list[str] = []  # to subscribe, a slice per data-channel answer (`_subscribe`)
        self._sub_budget = settings.subscribe_per_poll
        # Paced slices begun / fully sent: an answer refills the budget only when its GET went out
        # after every slice was sent (else a slice's presence may still be on its way).
        self._slices_begun = 0
        self._slices_sent = 0
        self._unwatchable: set[str] = set()
        self._retry: dict[str, tuple[int, float]] = {}  # uri -> (attempt, due)
        self._contacts: dict[str, str | None] = {}
        # own state (interface.md §7.6)
        self._cmd_status: Status | None = None
        self._cmd_note: str | None = None
        self._publish_due: float | None = None
        self._publish_attempt = 0
        self._queued_loud = False
        self._waiters: dict[str, _Waiter] = {}
        self._pending_pub: dict[str, _Pending] = {}
        # the data channel
        self._last_poll_end: float | None = None
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
            return tuple(self._contacts.items())

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
                body = codec.encode_requests(sid, [TerminateSession(rid=rid)])
                short = httpx.Timeout(max(0.05, min(0.5, timeout / 2)))
                self._exchange("POST", self._s.command_path, body, short, "command")
                log.info("cwa.session.terminated sid=%s", sid)
            except (CwaError, CwaProtocolError) as exc:
                log.info("cwa.session.terminate_failed error=%s", type(exc).__name__)
        with self._lock:
            self._session.stop()
            self._release_waiters()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("cwa.client.stop_timeout the poll thread is still in a request")
                return
        self._emit_state()
        self._flush()

    def set_watched(self, uris: Sequence[str]) -> None:
        """Replace the watch set; subscribes the URIs this session has not subscribed yet."""
        with self._lock:
            self._watched = tuple(dict.fromkeys(u for u in uris if u))
            targets = set(self._targets())
            for uri in list(self._retry):
                if uri not in targets:
                    del self._retry[uri]
            self._backlog = [u for u in self._backlog if u in targets]
            if self._session.sid is None:
                return  # subscribed when the session starts
            new = [u for u in self._watched if u not in self._subscribed]
        self._subscribe(new)

    def refresh(self, uri: str | None = None) -> None:
        """queryPresence for one user or every watched user; the answers arrive as `UserNotice`s."""
        with self._lock:
            targets = [uri] if uri else list(self._targets())
            if self._session.sid is None:
                raise CwaUnavailable("the CWA session is down; presence is re-read on recovery")
        for chunk in _batches(targets):
            with self._lock:
                rid = self._session.next_rid()
            batch = self._command([QueryPresence(rid=rid, uris=chunk)])
            reply = batch.for_rid(rid)
            if isinstance(reply, Refused):
                raise _command_failed(reply.error)

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
            previous = (self._cmd_status, self._cmd_note)
            self._cmd_status = status if status is not None else self._cmd_status
            self._cmd_note = note if note is not None else self._cmd_note
            if self._session.state is not SessionState.ONLINE:
                return self._queue()
            rid = self._session.next_rid()
            waiter = self._waiters[rid] = _Waiter()
        try:
            batch = self._command([PublishSelfPresence(rid=rid, categories=_categories(status, note))])
        except (CwaError, CwaProtocolError):
            with self._lock:
                self._waiters.pop(rid, None)
                return self._queue()
        reply = batch.for_rid(rid)
        if isinstance(reply, Refused):
            with self._lock:
                self._waiters.pop(rid, None)
                self._cmd_status, self._cmd_note = previous
            raise _command_failed(reply.error)
        with self._lock:
            self._publish_due = self._clock() + self._s.republish_s
            self._publish_attempt = 0
        deadline = time.monotonic() + self._s.command_timeout_s
        while not waiter.done.wait(_WAIT_SLICE_S):
            if self._stop.is_set() or time.monotonic() >= deadline:
                break
        with self._lock:
            self._waiters.pop(rid, None)
            if waiter.lost:
                return self._queue()
            if waiter.done.is_set() and not waiter.ok:
                self._cmd_status, self._cmd_note = previous
                raise _command_failed(waiter.error or ErrorInfo())
        # Accepted without a reported result within the timeout still counts as applied (§8.21).
        return CommandOutcome(applied=True, confirmed=waiter.ok)

    # ================================================================== the poll thread

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._emit_state()
                self._flush()
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
                self._release_waiters()
            self._emit_state()
            self._flush()

    def _perform(self, action: SignIn | StartSession | Poll, epoch: int) -> None:
        if isinstance(action, SignIn):
            self._sign_in(epoch)
        elif isinstance(action, StartSession):
            self._start_session(action, epoch)
        else:
            self._poll(action, epoch)

    def _sign_in(self, epoch: int) -> None:
        """Sign-in (§2): success is a CWA-Ticket header, whatever the body says (§8.3).

        Forms sends the password in the logon body. IWA leaves it out (IIS checks it, §2.2) and
        runs the NTLM handshake on the logon POST; every sign-in repeats the whole handshake, and a
        401 after the type 3 message (no ticket) is a refusal like forms' requestFailed.
        """
        s = self._s
        iwa = s.auth == "iwa"
        password = None if iwa else s.password
        body = codec.encode_logon(Logon(user=s.username, password=password, uri=s.uri))
        auth = NtlmAuth(s.username, s.password) if iwa else None
        path = s.logon_path or LOGON_PATHS[s.auth]
        timeout = httpx.Timeout(s.timeout_s)
        response, data = self._exchange("POST", path, body, timeout, "logon", auth=auth)
        ticket = response.headers.get(TICKET_HEADER)
        reply = _decode_logon(data, s.max_body_bytes)
        if ticket:
            sign_in_data = reply.sign_in_data if isinstance(reply, Succeeded) else None
            with self._lock:
                if self._session.epoch == epoch:
                    self._session.signed_in(ticket, sign_in_data)
            log.info("cwa.sign_in.ok user=%s auth=%s", s.username, s.auth)
            return
        if response.status_code >= 500:
            raise CwaUnavailable(f"sign-in: HTTP {response.status_code}")
        if isinstance(reply, Refused) or response.status_code in (200, 401, 403):
            raise AuthRejected(f"CWA refused the credentials of {s.username} (HTTP {response.status_code})")
        raise CwaUnavailable(f"sign-in: HTTP {response.status_code} without a ticket")

    def _start_session(self, action: StartSession, epoch: int) -> None:
        """initiateSession as a quiet observer (interface.md §7.1); parse both answer forms (§8.2)."""
        method = InitiateSession(
            rid=action.rid,
            availability=self._s.initial_availability,
            auto_publish_machine_state=False,
            sign_in_data=action.sign_in_data,
        )
        batch = self._post_commands("0", [method])  # sid "0" before a session exists (§3.1)
        reply = batch.for_rid(action.rid) or next(
            (r for r in batch.responses if isinstance(r, Accepted | Refused)), None
        )
        if isinstance(reply, Refused):
            if reply.error.code == REQUEST_THROTTLED:
                raise Throttled("initiateSession throttled")
            raise SessionGone(f"initiateSession refused: {reply.error.describe()}")
        if not isinstance(reply, Accepted) or not reply.sid:
            raise CwaProtocolError("initiateSession answer without a sid")
        with self._lock:
            if self._session.epoch != epoch:
                return
            self._session.session_started(reply.sid, reply.poll_wait_time)
            self._new_session_reset()
            targets = list(self._targets())
        log.info("cwa.session.started sid=%s poll_wait_ms=%s", reply.sid, reply.poll_wait_time)
        with self._lock:
            restarted = self._session.sessions > 1
        if restarted:
            self._metric("session_restart", 1.0)
        self._subscribe(targets)

    def _poll(self, action: Poll, epoch: int) -> None:
        """One data-channel GET, paced by pollWaitTime after the previous response (§4.4)."""
        if self._last_poll_end is not None:
            remaining = self._last_poll_end + action.wait_ms / 1000 - self._clock()
            if remaining > 0 and self._sleep(remaining, self._stop):
                return
        self._maintain()
        with self._lock:
            if self._session.epoch != epoch:
                return  # a command found the session gone while we waited
        timeout = httpx.Timeout(
            self._s.timeout_s, read=max(MIN_POLL_READ_TIMEOUT_S, self._s.poll_read_timeout_s)
        )
        params = {"Sid": action.sid, "AckId": str(action.ack_id), "UA": "false"}  # UA=false: §7.1
        with self._lock:
            settled = self._slices_sent if self._slices_begun == self._slices_sent else None
        started = self._clock()
        try:
            response, data = self._exchange("GET", self._s.data_path, None, timeout, "data", params=params)
        finally:
            self._last_poll_end = self._clock()
        self._metric("poll_latency", self._last_poll_end - started)
        _raise_for_status(response, "data")
        _require_xml(response, data, "data")
        batch = codec.decode_events(data, max_bytes=self._s.max_body_bytes)
        channel_error = next(
            (e.error for e in batch.events if isinstance(e, RequestFailedEvent) and not e.rid), None
        )
        if channel_error is not None and channel_error.code == SESSION_NOT_FOUND:
            raise SessionGone("data channel: session not found (18100)")
        with self._lock:
            if self._session.epoch != epoch:
                return
            fresh = self._session.events_received(batch)
            self._protocol_errors = 0
            if settled == self._slices_begun:  # the last slice's presence is in this answer
                self._sub_budget = self._s.subscribe_per_poll
            if self._session.epoch != epoch:
                log.warning("cwa.session.lost reason=server_restart ack_id_went_back=%s", batch.ack_id)
                self._count("server_restart")
                return
        self._metric("events", float(len(fresh)))
        self._dispatch(fresh)
        if channel_error is not None and channel_error.code == REQUEST_THROTTLED:
            raise Throttled("data channel: request throttled (18101)")
        if channel_error is not None:
            raise CwaUnavailable(f"data channel: {channel_error.describe()}")

    # ------------------------------------------------------------------ events → notices

    def _dispatch(self, events: Sequence[Event]) -> None:
        singles: list[str] = []  # URIs of refused batches, retried one per request
        resubscribe: list[str] = []
        with self._lock:
            for event in events:
                if isinstance(event, RequestSucceededEvent | RequestFailedEvent):
                    singles += self._resolve(event)
                elif isinstance(event, UserPresenceEvent):
                    for user in event.users:
                        self._outbox.append(UserNotice(user.uri, user.summary()))
                        self._set_watchable(user.uri, True, "presence")
                elif isinstance(event, SelfPresenceEvent):
                    self._outbox.append(SelfNotice(event.summary()))
                elif isinstance(event, SubscriptionStateEvent):
                    for sub in event.users:
                        self._set_watchable(sub.uri, sub.state == "subscribed", sub.state)
                elif isinstance(event, ContactGroupEvent):
                    resubscribe += self._apply_contacts(event)
                # IM invitations and every other event are ignored without error (§7.1).
        self._flush()
        self._subscribe(resubscribe)  # also the next slice of the backlog
        self._subscribe(singles, batch=1, paced=False)  # counted with their batch already

    def _resolve(self, event: RequestSucceededEvent | RequestFailedEvent) -> list[str]:
        """Match an asynchronous result to its rid; returns URIs to subscribe one by one."""
        rid = event.rid or ""
        ok = isinstance(event, RequestSucceededEvent)
        error = event.error if isinstance(event, RequestFailedEvent) else None
        waiter = self._waiters.get(rid)
        if waiter is not None:
            waiter.ok, waiter.error = ok, error
            waiter.done.set()
        pending = self._pending_pub.pop(rid, None)
        if pending is not None and (pending.loud or not ok):
            message = None if error is None else error.describe()
            self._outbox.append(CommandNotice(pending.status, pending.note, ok, message))
        uris = self._pending_subs.pop(rid, None)
        if uris is not None and error is not None:
            return self._subscription_refused(uris, error)
        return []

    def _subscription_refused(self, uris: tuple[str, ...], error: ErrorInfo) -> list[str]:
        """A refused batch is retried one URI each, so an unknown user never affects the others."""
        self._subscribed.difference_update(uris)
        if len(uris) > 1:
            return list(uris)
        reason = "unknown user" if error.sip_code == 404 else error.describe()
        self._set_watchable(uris[0], False, reason)
        return []

    def _set_watchable(self, uri: str, watchable: bool, reason: str) -> None:
        if watchable:
            self._retry.pop(uri, None)
            if uri in self._unwatchable:
                self._unwatchable.discard(uri)
                self._outbox.append(WatchabilityNotice(uri, True, reason))
            return
        attempt = self._retry.get(uri, (0, 0.0))[0] + 1
        self._retry[uri] = (attempt, self._clock() + self._policy.delay(attempt, self._rng))
        self._subscribed.discard(uri)
        if uri not in self._unwatchable:
            self._unwatchable.add(uri)
            self._outbox.append(WatchabilityNotice(uri, False, reason))

    def _apply_contacts(self, event: ContactGroupEvent) -> list[str]:
        if event.full_list:
            self._contacts = {}
        for contact in event.contacts:
            if contact.action == "deleted":
                self._contacts.pop(contact.uri, None)
            else:
                self._contacts[contact.uri] = contact.name or self._contacts.get(contact.uri)
        self._outbox.append(ContactsNotice(tuple(self._contacts.items())))
        if not self._s.watch_contacts or self._session.sid is None:
            return []
        return [u for u in self._contacts if u not in self._subscribed]

    # ------------------------------------------------------------------ periodic work (poll thread)

    def _maintain(self) -> None:
        """Due re-subscriptions (with back-off) and own-state (re-)publishing (§3.7: every 5 min)."""
        now = self._clock()
        with self._lock:
            due = [u for u, (_, at) in self._retry.items() if at <= now and u not in self._subscribed]
            publish = self._cmd_status is not None or self._cmd_note is not None
            publish = publish and self._publish_due is not None and self._publish_due <= now
        self._subscribe(due)
        if publish:
            self._republish()

    def _republish(self) -> None:
        with self._lock:
            status, note, loud = self._cmd_status, self._cmd_note, self._queued_loud
            rid = self._session.next_rid()
            self._pending_pub[rid] = _Pending(status, note, loud)
            self._queued_loud = False
            self._publish_due = None
        try:
            batch = self._command([PublishSelfPresence(rid=rid, categories=_categories(status, note))])
        except (CwaError, CwaProtocolError) as exc:
            with self._lock:
                self._pending_pub.pop(rid, None)
                self._queued_loud = self._queued_loud or loud
                self._publish_attempt += 1
                delay = self._policy.delay(self._publish_attempt, self._rng)
                self._publish_due = self._clock() + delay
            log.warning("cwa.publish.retry error=%s", type(exc).__name__)
            return
        with self._lock:
            self._publish_attempt = 0
            self._publish_due = self._clock() + self._s.republish_s
            reply = batch.for_rid(rid)
            if isinstance(reply, Refused):
                self._pending_pub.pop(rid, None)
                self._outbox.append(CommandNotice(status, note, False, reply.error.describe()))
        log.info("cwa.publish.sent rid=%s status=%s note_set=%s", rid, status, note is not None)

    # ------------------------------------------------------------------ commands

    def _subscribe(self, uris: Sequence[str], batch: int = SUBSCRIBE_BATCH, *, paced: bool = True) -> None:
        """subscribePresence in batches of at most 100 (interface.md §7.2).

        Paced: at most ``subscribe_per_poll`` URIs between two data-channel answers; the rest waits
        in ``_backlog`` (oldest first) and goes out after the next answer, so no answer carries
        the presence of more than one slice.
        """
        with self._lock:
            if self._session.sid is None:
                return
            wanted = (*self._backlog, *uris) if paced else uris
            todo = [u for u in dict.fromkeys(wanted) if u not in self._subscribed]
            if paced:
                take = max(0, self._sub_budget)
                todo, self._backlog = todo[:take], todo[take:]
                self._sub_budget -= len(todo)
            slice_ = 1 if paced and todo else 0
            self._slices_begun += slice_
            self._subscribed.update(todo)
        try:
            self._send_subscriptions(todo, batch)
        finally:
            with self._lock:
                self._slices_sent += slice_
        log.debug("cwa.subscribe.sent uris=%d backlog=%d", len(todo), len(self._backlog))

    def _send_subscriptions(self, todo: list[str], batch: int) -> None:
        for chunk in _batches(todo, batch):
            with self._lock:
                rid = self._session.next_rid()
                self._pending_subs[rid] = chunk
            try:
                answer = self._command([SubscribePresence(rid=rid, uris=chunk)])
            except (CwaError, CwaProtocolError):
                with self._lock:
                    self._pending_subs.pop(rid, None)
                    self._subscribed.difference_update(chunk)
                    for uri in chunk:  # retried by `_maintain`, no notice: the user is not at fault
                        attempt = self._retry.get(uri, (0, 0.0))[0] + 1
                        self._retry[uri] = (attempt, self._clock() + self._policy.delay(attempt, self._rng))
                continue
            reply = answer.for_rid(rid)
            if isinstance(reply, Refused):
                with self._lock:
                    self._pending_subs.pop(rid, None)
                    again = self._subscription_refused(chunk, reply.error)
                self._subscribe(again, batch=1, paced=False)

    def _command(self, methods: Sequence[Method]) -> ResponseBatch:
        """POST methods on the current session. Session-level failures move the machine."""
        with self._lock:
            sid = self._session.sid
            epoch = self._session.epoch
        if sid is None:
            raise CwaUnavailable("the CWA session is down")
        try:
            batch = self._post_commands(sid, methods)
        except (TicketExpired, SessionGone) as exc:
            self._failure(exc, epoch, "command")
            raise
        except (CwaError, CwaProtocolError) as exc:
            self._count(_kind(exc))
            raise
        return batch

    def _post_commands(self, sid: str, methods: Sequence[Method]) -> ResponseBatch:
        body = codec.encode_requests(sid, list(methods))
        response, data = self._exchange(
            "POST", self._s.command_path, body, httpx.Timeout(self._s.timeout_s), "command"
        )
        _raise_for_status(response, "command")
        _require_xml(response, data, "command")
        batch = codec.decode_responses(data, max_bytes=self._s.max_body_bytes)
        codes = {r.error.code for r in batch.responses if isinstance(r, Refused)}
        if SESSION_NOT_FOUND in codes and sid != "0":
            raise SessionGone("command channel: session not found (18100)")
        if REQUEST_THROTTLED in codes:
            raise Throttled("command channel: request throttled (18101)")
        return batch

    # ------------------------------------------------------------------ HTTP (the one translation point)

    def _exchange(
        self,
        method: str,
        path: str,
        body: bytes | None,
        timeout: httpx.Timeout,
        channel: str,
        *,
        params: dict[str, str] | None = None,
        auth: httpx.Auth | None = None,
    ) -> tuple[httpx.Response, bytes]:
        headers = {"Content-Type": "text/xml; charset=utf-8"} if body is not None else {}
        extra: dict[str, Any] = {"auth": auth} if auth is not None else {}
        with self._lock:
            ticket = self._session.ticket
        if ticket and channel != "logon":
            headers[TICKET_HEADER] = ticket
        try:
            with self._http.stream(
                method,
                self._base + path,
                content=body,
                params=params,
                headers=headers,
                timeout=timeout,
                **extra,
            ) as response:
                with self._lock:  # the newest ticket of ANY response wins (§2.4, interface.md §7.4)
                    self._session.adopt_ticket(response.headers.get(TICKET_HEADER))
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self._s.max_body_bytes:
                        raise CwaProtocolError(f"{channel}: body larger than {self._s.max_body_bytes} bytes")
                    chunks.append(chunk)
        except httpx.TimeoutException as exc:
            raise CwaUnavailable(f"{channel}: timed out") from exc
        except httpx.HTTPError as exc:
            raise CwaUnavailable(f"{channel}: {_transport_reason(exc)}") from exc
        return response, b"".join(chunks)

    # ------------------------------------------------------------------ bookkeeping

    def _failure(self, exc: CwaError | CwaProtocolError, epoch: int, channel: str) -> None:
        kind = _kind(exc)
        if self._stop.is_set():  # e.g. the held poll answered by our own terminateSession
            log.debug("cwa.%s.failed_while_stopping kind=%s", channel, kind)
            return
        self._count(kind)
        log.warning("cwa.%s.failed kind=%s error=%s", channel, kind, _describe(exc))
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
        self._subscribed = set()
        self._pending_subs = {}
        self._backlog = []
        self._sub_budget = self._s.subscribe_per_poll
        self._release_waiters()
        if any(p.loud for p in self._pending_pub.values()):
            self._queued_loud = True
        self._pending_pub = {}
        self._last_poll_end = None
        self._protocol_errors = 0
        if self._cmd_status is not None or self._cmd_note is not None:
            self._publish_due = self._clock()
            self._publish_attempt = 0

    def _release_waiters(self) -> None:
        for waiter in self._waiters.values():
            waiter.lost = True
            waiter.done.set()
        self._waiters = {}

    def _queue(self) -> CommandOutcome:
        self._queued_loud = True
        self._publish_due = self._clock()
        return CommandOutcome(applied=False, queued=True)

    def _targets(self) -> tuple[str, ...]:
        if not self._s.watch_contacts:
            return self._watched
        return tuple(dict.fromkeys((*self._watched, *self._contacts)))

    def _emit_state(self) -> None:
        with self._lock:
            state = self._session.public_state
            if state == self._reported:
                return
            self._reported = state
            error = self._session.last_failure if state in ("reconnecting", "auth_failed") else None
            self._outbox.append(SessionNotice(state, error))
        if state == "online":
            log.info("cwa.session.online")
        elif state in ("reconnecting", "auth_failed"):
            log.warning("cwa.session.lost state=%s reason=%s", state, error)
        else:
            log.info("cwa.session.%s", state)

    def _flush(self) -> None:
        with self._lock:
            notices, self._outbox = self._outbox, []
        for notice in notices:
            try:
                self._on_notice(notice)
            except Exception:  # the owner's bug must not stop the bridge
                log.exception("cwa.notice.callback_failed notice=%s", type(notice).__name__)

    def _count(self, kind: str) -> None:
        with self._lock:
            self.stats[kind] = self.stats.get(kind, 0) + 1
        self._metric("error", kind)

    def _metric(self, name: str, value: float | str) -> None:
        """Observations for the metrics adapter: ``poll_latency`` (seconds of one data-channel
        request), ``events`` (events newly applied from one batch), ``session_restart`` (1.0 per
        session started after the first), ``error`` (the kind, as counted in `stats`)."""
        if self._on_metric is not None:
            try:
                self._on_metric(name, value)
            except Exception:
                log.exception("cwa.metric.callback_failed name=%s", name)


# ====================================================================== helpers


def _batches(uris: Sequence[str], size: int = SUBSCRIBE_BATCH) -> list[tuple[str, ...]]:
    return [tuple(uris[i : i + size]) for i in range(0, len(uris), size)]


def _categories(status: Status | None, note: str | None) -> tuple[Category, ...]:
    """userState manual="true" with the representative availability, and/or a personal note (§3.7)."""
    categories: list[Category] = []
    if status is not None:
        categories.append(codec.state_category(REPRESENTATIVE_AVAILABILITY[status], manual=True))
    if note is not None:
        categories.append(codec.note_category(note))
    return tuple(categories)


def _command_failed(error: ErrorInfo) -> CommandFailed:
    return CommandFailed(error.describe(), code=error.code, sip_code=error.sip_code)


def _decode_logon(data: bytes, max_bytes: int) -> Succeeded | Refused | None:
    try:
        return codec.decode_logon_response(data, max_bytes=max_bytes)
    except CwaProtocolError:
        return None  # the ticket header decides (§8.3)


def _raise_for_status(response: httpx.Response, channel: str) -> None:
    status = response.status_code
    if status in (401, 403) or 300 <= status < 400:
        raise TicketExpired(f"{channel}: HTTP {status}")  # §7.2.1 (a 3xx goes to a logon page)
    if status == 404 and channel == "data":
        raise SessionGone("data channel: HTTP 404 (unknown sid)")  # §7.3
    if status == 503:
        raise Throttled(f"{channel}: HTTP 503")
    if status >= 400:
        raise CwaUnavailable(f"{channel}: HTTP {status}")


def _require_xml(response: httpx.Response, data: bytes, channel: str) -> None:
    """A logon page instead of XML means the ticket expired (§7.2.1); broken XML is a protocol error."""
    head = data.lstrip()[:32].lower()
    html = "html" in response.headers.get("content-type", "").lower()
    if html or not head.startswith(b"<") or head.startswith((b"<!doctype html", b"<html")):
        raise TicketExpired(f"{channel}: non-XML body")


def _transport_reason(exc: httpx.HTTPError) -> str:
    """The exception type, plus why TLS failed: "wrong CA" must be visible without a traceback.

    OpenSSL's verify message ("unable to get local issuer certificate", "certificate has expired",
    "IP address mismatch"…) names no secret; other messages are left out as they may echo a URL.
    """
    seen: BaseException | None = exc
    for _ in range(8):  # httpx.ConnectError <- httpcore.ConnectError <- ssl.SSLCertVerificationError
        if seen is None:
            break
        if isinstance(seen, ssl.SSLCertVerificationError):
            why = seen.verify_message or seen.reason or "verification failed"
            return f"{type(exc).__name__}: TLS certificate of the CWA server not trusted ({why})"
        if isinstance(seen, ssl.SSLError):
            return f"{type(exc).__name__}: TLS handshake failed ({seen.reason or 'unknown reason'})"
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__


def _kind(exc: CwaError | CwaProtocolError) -> str:
    return "protocol" if isinstance(exc, CwaProtocolError) else exc.kind


def _describe(exc: BaseException) -> str:
    """Our own messages are secret-free by construction; keep them short for one log line."""
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _channel(action: SignIn | StartSession | Poll) -> str:
    if isinstance(action, SignIn):
        return "logon"
    return "command" if isinstance(action, StartSession) else "data"
