"""The bridge's own presence as commanded over MQTT (README: "How it behaves toward CWA").

The commanded status and note, when they are (re-)published next (every ``republish_s``, at once
on a new session or when the session is back, after a back-off when a publish failed), commands
queued while CWA is down (coalesced: the newest value of each field wins; dropped as expired when
not sent within the command TTL), and
publishes waiting for their asynchronous requestSucceeded/requestFailed: a caller of
`CwaClient.publish_self` blocked on its `Waiter`, or a `Pending` re-publish whose refusal, or
confirmation when it carries a queued command, becomes a `CommandNotice`.

Bookkeeping only: no I/O, no clock (callers pass the times), not thread-safe (the protocol core
owns it). A `Waiter` is the one thing shared with another thread, through the `Signal` its caller
gives it (a ``threading.Event``).

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bridge.cwa import codec
from bridge.cwa.messages import Category, ErrorInfo
from bridge.cwa.notices import CommandNotice, CommandOutcome, Notice
from bridge.presence import REPRESENTATIVE_AVAILABILITY, Status

Commanded = tuple[Status | None, str | None]


class Signal(Protocol):
    """What a waiting caller blocks on (a ``threading.Event``)."""

    def set(self) -> None: ...

    def is_set(self) -> bool: ...


class Waiter:
    """A caller of `publish_self` waiting for requestSucceeded/requestFailed of its rid."""

    def __init__(self, done: Signal) -> None:
        self.done = done
        self.ok = False
        self.lost = False
        self.error: ErrorInfo | None = None


@dataclass
class Pending:
    """An own-state publish whose result nobody waits for; ``loud`` ones always get a CommandNotice."""

    status: Status | None
    note: str | None
    loud: bool
    queued_at: float | None = None  # a loud one: when its command arrived (for the TTL)


class OwnState:
    def __init__(self, emit: Callable[[Notice], None]) -> None:
        self._emit = emit
        self.status: Status | None = None
        self.note: str | None = None
        self._due: float | None = None
        self._attempt = 0
        self._queued_loud = False
        self._queued_at: float | None = None  # when the oldest unsent queued command arrived
        self._applied: Commanded = (None, None)  # what CWA last accepted
        self._waiters: dict[str, Waiter] = {}
        self._pending: dict[str, Pending] = {}

    def command(self, status: Status | None, note: str | None) -> Commanded:
        """Take a command (``None`` keeps that part); returns what was commanded before."""
        previous = (self.status, self.note)
        self.status = status if status is not None else self.status
        self.note = note if note is not None else self.note
        return previous

    def restore(self, previous: Commanded) -> None:
        """CWA refused the command: the commanded state is what it was."""
        self.status, self.note = previous

    def queue(self, now: float) -> CommandOutcome:
        """Published on the next chance, and its result reported by a `CommandNotice`."""
        if not self._queued_loud or self._queued_at is None:
            self._queued_at = now
        self._queued_loud = True
        self._due = now
        return CommandOutcome(applied=False, queued=True)

    def wait_for(self, rid: str, done: Signal) -> Waiter:
        waiter = self._waiters[rid] = Waiter(done)
        return waiter

    def forget(self, rid: str) -> None:
        self._waiters.pop(rid, None)

    def accepted(self, republish_at: float) -> None:
        """A publish was accepted: the next one is the periodic re-publish."""
        self._due = republish_at
        self._attempt = 0
        self._applied = (self.status, self.note)

    def session_back(self, now: float) -> bool:
        """The session is online again: a queued or failed publish goes out now, not after its
        back-off. Returns whether one is due."""
        if self._queued_loud or self._attempt > 0:
            self._due = now
            self._attempt = 0
        return self.is_due(now)

    def expired(self, now: float, ttl_s: float) -> bool:
        """A queued command not sent within ``ttl_s`` of its arrival is dropped and reported as
        expired; the commanded state goes back to what CWA last accepted."""
        if not self._queued_loud or self._queued_at is None or now - self._queued_at <= ttl_s:
            return False
        self._emit(
            CommandNotice(self.status, self.note, False, f"expired: not sent to CWA within {ttl_s:g} s")
        )
        self._queued_loud = False
        self._queued_at = None
        self.status, self.note = self._applied
        self._attempt = 0
        commanded = self.status is not None or self.note is not None
        self._due = now if commanded else None
        return True

    def abandon(self, rid: str, status: Status | None, note: str | None) -> None:
        """Its caller stopped waiting for accepted publish ``rid``: the result becomes a notice."""
        waiter = self._waiters.pop(rid, None)
        if waiter is not None and waiter.done.is_set():
            message = None if waiter.error is None else waiter.error.describe()
            self._emit(CommandNotice(status, note, waiter.ok, message))
        else:
            self._pending[rid] = Pending(status, note, loud=True)

    def is_due(self, now: float) -> bool:
        commanded = self.status is not None or self.note is not None
        return commanded and self._due is not None and self._due <= now

    def begin_republish(self, rid: str) -> Pending:
        """The publish about to be sent as ``rid``; it carries any queued command (``loud``)."""
        pending = Pending(self.status, self.note, self._queued_loud, self._queued_at)
        self._pending[rid] = pending
        self._queued_loud = False
        self._queued_at = None
        self._due = None
        return pending

    def republish_failed(self, rid: str, pending: Pending, retry_at: Callable[[int], float]) -> None:
        """The request failed: tried again after a back-off, still loud when it was."""
        self._pending.pop(rid, None)
        if pending.loud and not self._queued_loud:
            self._queued_loud = True
            self._queued_at = pending.queued_at
        self._attempt += 1
        self._due = retry_at(self._attempt)

    def republish_answered(
        self, rid: str, pending: Pending, refused: ErrorInfo | None, republish_at: float
    ) -> None:
        """The request was answered; a refusal is reported at once (no asynchronous result comes)."""
        if refused is None:
            self.accepted(republish_at)
        else:
            self._due, self._attempt = republish_at, 0
            self._pending.pop(rid, None)
            self._emit(CommandNotice(pending.status, pending.note, False, refused.describe()))

    def resolve(self, rid: str, ok: bool, error: ErrorInfo | None) -> None:
        """The asynchronous result of ``rid``, if it was a publish."""
        waiter = self._waiters.get(rid)
        if waiter is not None:
            waiter.ok, waiter.error = ok, error
            waiter.done.set()
        pending = self._pending.pop(rid, None)
        if pending is not None and (pending.loud or not ok):
            message = None if error is None else error.describe()
            self._emit(CommandNotice(pending.status, pending.note, ok, message))

    def release_waiters(self) -> None:
        """The session ended (or the client stopped): every waiting caller is told it was lost."""
        for waiter in self._waiters.values():
            waiter.lost = True
            waiter.done.set()
        self._waiters = {}

    def new_session(self, now: float) -> None:
        """Results of the old session never come; commanded state is re-published at once (§7.2.1)."""
        self.release_waiters()
        loud = [p.queued_at or now for p in self._pending.values() if p.loud]
        if loud and not self._queued_loud:
            self._queued_loud, self._queued_at = True, min(loud)
        self._pending = {}
        if self.status is not None or self.note is not None:
            self._due = now
            self._attempt = 0


def categories(status: Status | None, note: str | None) -> tuple[Category, ...]:
    """userState manual="true" with the representative availability, and/or a personal note (§3.7)."""
    result: list[Category] = []
    if status is not None:
        result.append(codec.state_category(REPRESENTATIVE_AVAILABILITY[status], manual=True))
    if note is not None:
        result.append(codec.note_category(note))
    return tuple(result)
