"""Commands that wait for CWA: one bounded queue, one worker, exactly one response each.

Rules (what a caller on MQTT sees):
- Commands are sent to CWA one at a time, in arrival order, on this module's worker thread, so a
  slow server never stalls presence.
- A newer ``self/set*`` command supersedes what an older waiting one would set for the same field
  (status or note): the older one loses that field, and once it has nothing left to set it is
  answered ``superseded by a newer command``. Only the newest value of a field reaches CWA.
- A ``refresh`` for a target (one id, or everything) that already has one waiting is answered
  together with it: one ``queryPresence``, one response per request.
- A command still waiting ``ttl_s`` after it arrived is answered ``expired`` and dropped.
- At most ``max_waiting`` commands wait; beyond that a command is answered ``busy`` at once.
- Every command gets exactly one response, whatever CWA answers (an unexpected error included).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from bridge.commands import SelfSet
from bridge.errors import CommandFailed, CwaError, CwaProtocolError
from bridge.service.ports import CwaPort

log = logging.getLogger(__name__)

MAX_WAITING = 1000
TICK_S = 1.0  # the worker wakes at least this often: expiry and liveness never wait for a command


class Respond(Protocol):
    def __call__(
        self,
        op: str,
        status: Literal["ok", "error"],
        *,
        data: object = None,
        error: str | None = None,
        transaction: object = None,
    ) -> None: ...


@dataclass(slots=True)
class _SetJob:
    status: Any  # Status | None
    note: str | None
    transaction: Any
    arrived: float


@dataclass(slots=True)
class _RefreshJob:
    target: str | None  # an id, or None for everyone
    uri: str | None
    data: dict[str, object]
    arrived: float
    transactions: list[Any] = field(default_factory=list)


class CommandWorker:
    def __init__(
        self,
        cwa: CwaPort,
        respond: Respond,
        *,
        ttl_s: float = 120.0,
        max_waiting: int = MAX_WAITING,
        clock: Callable[[], float] = time.monotonic,
        progress: Callable[[], None] | None = None,
    ) -> None:
        self._cwa = cwa
        self._respond = respond
        self._ttl_s = ttl_s
        self._max = max_waiting
        self._clock = clock
        self._progress = progress
        self._jobs: deque[_SetJob | _RefreshJob] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ any thread

    def submit_self_set(self, cmd: SelfSet) -> None:
        superseded: list[_SetJob] = []
        with self._cond:
            if len(self._jobs) >= self._max:
                busy = True
            else:
                busy = False
                for job in list(self._jobs):
                    if not isinstance(job, _SetJob):
                        continue
                    if cmd.status is not None:
                        job.status = None
                    if cmd.note is not None:
                        job.note = None
                    if job.status is None and job.note is None:
                        self._jobs.remove(job)
                        superseded.append(job)
                self._jobs.append(_SetJob(cmd.status, cmd.note, cmd.transaction, self._clock()))
                self._cond.notify()
        for job in superseded:
            self._respond(
                "self/set", "error", error="superseded by a newer command", transaction=job.transaction
            )
        if busy:
            self._refuse_busy("self/set", cmd.transaction)

    def submit_refresh(
        self, target: str | None, uri: str | None, data: dict[str, object], transaction: Any
    ) -> None:
        with self._cond:
            for job in self._jobs:
                if isinstance(job, _RefreshJob) and job.target == target:
                    job.transactions.append(transaction)
                    return
            if len(self._jobs) >= self._max:
                busy = True
            else:
                busy = False
                self._jobs.append(_RefreshJob(target, uri, data, self._clock(), [transaction]))
                self._cond.notify()
        if busy:
            self._refuse_busy("refresh", transaction)

    def waiting(self) -> int:
        with self._cond:
            return len(self._jobs)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cwa2mqtt-commands", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    # ------------------------------------------------------------------ the worker

    def _run(self) -> None:
        while True:
            with self._cond:
                expired = self._take_expired()
                job = self._jobs.popleft() if self._jobs and not self._stopping else None
                if job is None and not expired and not self._stopping:
                    self._cond.wait(TICK_S)
                stopping = self._stopping
            for old in expired:
                self._answer_expired(old)
            if job is not None:
                self._perform(job)
            if self._progress is not None:
                self._progress()
            if stopping:
                return

    def _take_expired(self) -> list[_SetJob | _RefreshJob]:
        deadline = self._clock() - self._ttl_s
        expired = [job for job in self._jobs if job.arrived <= deadline]
        for job in expired:
            self._jobs.remove(job)
        return expired

    def _perform(self, job: _SetJob | _RefreshJob) -> None:
        try:
            if isinstance(job, _SetJob):
                self._self_set(job)
            else:
                self._refresh(job)
        except Exception as exc:  # exactly one response, even for a bug below us
            log.exception("service.command_failed_unexpectedly")
            for txn in _transactions(job):
                self._respond(_op(job), "error", error=f"internal error: {exc}", transaction=txn)

    def _self_set(self, job: _SetJob) -> None:
        data: dict[str, object] = {}
        if job.status is not None:
            data["status"] = job.status.value
        if job.note is not None:
            data["note"] = job.note
        try:
            outcome = self._cwa.publish_self(job.status, job.note)
        except CommandFailed as exc:
            self._respond("self/set", "error", error=str(exc), transaction=job.transaction)
            return
        except (CwaError, CwaProtocolError) as exc:
            error = f"CWA unavailable: {exc}"
            self._respond("self/set", "error", error=error, transaction=job.transaction)
            return
        queued = bool(getattr(outcome, "queued", False))
        data["applied"] = not queued
        if queued:
            data["queued"] = True
        self._respond("self/set", "ok", data=data, transaction=job.transaction)

    def _refresh(self, job: _RefreshJob) -> None:
        try:
            self._cwa.refresh(job.uri)
        except (CwaError, CwaProtocolError) as exc:
            for txn in job.transactions:
                self._respond("refresh", "error", error=str(exc), transaction=txn)
        else:
            for txn in job.transactions:
                self._respond("refresh", "ok", data=job.data, transaction=txn)

    def _answer_expired(self, job: _SetJob | _RefreshJob) -> None:
        error = f"expired: not sent to CWA within {self._ttl_s:g} s (CWA slow or unreachable)"
        for txn in _transactions(job):
            self._respond(_op(job), "error", error=error, transaction=txn)

    def _refuse_busy(self, op: str, transaction: Any) -> None:
        log.warning("service.command_refused_busy op=%s waiting=%d", op, self._max)
        error = f"busy: {self._max} commands are already waiting for CWA; try again later"
        self._respond(op, "error", error=error, transaction=transaction)


def _op(job: _SetJob | _RefreshJob) -> str:
    return "self/set" if isinstance(job, _SetJob) else "refresh"


def _transactions(job: _SetJob | _RefreshJob) -> list[Any]:
    return [job.transaction] if isinstance(job, _SetJob) else job.transactions
