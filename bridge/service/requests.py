"""Own-state commands (``self/set*``): one bounded queue, one worker, exactly one response each.

Rules (what a caller on MQTT sees):
- Commands reach CWA one at a time, in arrival order, on this module's worker thread, so a slow
  server never stalls presence (the CWA client's ``publish_self`` may wait for its deadline).
- A newer command supersedes what an older waiting one would set for the same field (status or
  note): the older one loses that field, and once it has nothing left to set it is answered
  ``superseded by a newer command``. Only the newest value of a field reaches CWA.
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
from dataclasses import dataclass
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
        self._jobs: deque[_SetJob] = deque()
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

    def _take_expired(self) -> list[_SetJob]:
        deadline = self._clock() - self._ttl_s
        expired = [job for job in self._jobs if job.arrived <= deadline]
        for job in expired:
            self._jobs.remove(job)
        return expired

    def _perform(self, job: _SetJob) -> None:
        try:
            self._self_set(job)
        except Exception as exc:  # exactly one response, even for a bug below us
            log.exception("service.command_failed_unexpectedly")
            self._respond("self/set", "error", error=f"internal error: {exc}", transaction=job.transaction)

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

    def _answer_expired(self, job: _SetJob) -> None:
        error = f"expired: not sent to CWA within {self._ttl_s:g} s (CWA slow or unreachable)"
        self._respond("self/set", "error", error=error, transaction=job.transaction)

    def _refuse_busy(self, op: str, transaction: Any) -> None:
        log.warning("service.command_refused_busy op=%s waiting=%d", op, self._max)
        error = f"busy: {self._max} commands are already waiting for CWA; try again later"
        self._respond(op, "error", error=error, transaction=transaction)
