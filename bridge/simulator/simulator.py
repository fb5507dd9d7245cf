"""`Simulator`: a CWA 2007 server in-process, for tests, `cwa2mqtt simulate` and `cwa2mqtt demo`.

Wires the world (state), ticket store, fault board and recorder to two HTTP servers (CWA
endpoints and the JSON control API) and runs two background threads: housekeeping (idle
expiry, machine state) and the scenario driver.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Literal

from bridge.presence import Presence
from bridge.simulator import scenario, wire
from bridge.simulator.control import ControlApi
from bridge.simulator.faults import FaultBoard, Faults
from bridge.simulator.front import CwaFront
from bridge.simulator.options import SimOptions, SimUser
from bridge.simulator.recording import Recorded, Recorder, SessionSnapshot
from bridge.simulator.records import UserRec
from bridge.simulator.server import HttpService
from bridge.simulator.tickets import TicketStore
from bridge.simulator.world import World

log = logging.getLogger(__name__)

TICK_S = 0.05  # housekeeping period: idle expiry and machine states are this precise


class _Unset(enum.Enum):
    UNSET = 0


UNSET = _Unset.UNSET


class Simulator:
    """See the package docstring. Thread-safe; `start`/`stop` are idempotent."""

    def __init__(self, users: Sequence[SimUser] | None = None, options: SimOptions | None = None) -> None:
        self.options = options or SimOptions()
        opts = self.options
        if users is None:
            users = scenario.load_users(opts.load_users) if opts.scenario == "load" else scenario.demo_users()
        self._world = World(opts, time.monotonic, time.time)
        for user in users:
            self._world.add_user(user)
        self._tickets = TicketStore(
            time.monotonic, opts.ticket_rotate_s, opts.ticket_grace_s, opts.ticket_lifetime_s
        )
        self._board = FaultBoard()
        self._recorder = Recorder(opts.max_recordings)
        self._front = CwaFront(self._world, self._tickets, self._board, self._recorder, time.time)
        self.faults = Faults(
            self._board,
            {
                "expire_tickets": self._tickets.expire_all,
                "kill_sessions": self._world.kill_all,
                "drop_subscriptions": self._world.drop_subscriptions,
                "restart": self._restart,
                "throttle": self._throttle,
            },
        )
        self._cwa: HttpService | None = None
        self._control: HttpService | None = None
        self._threads: list[Any] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._started = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            opts = self.options
            tls = (opts.tls_cert, opts.tls_key) if opts.tls_cert and opts.tls_key else None
            self._cwa = HttpService(
                opts.host, opts.port, self._front, opts.max_body_bytes, "sim-cwa", tls=tls
            )
            self._cwa.start()
            if opts.control:
                api = ControlApi(self)
                self._control = HttpService(
                    opts.host, opts.control_port, api, opts.max_body_bytes, "sim-control"
                )
                self._control.start()
            housekeeping = threading.Thread(target=self._housekeeping, daemon=True, name="sim-housekeeping")
            housekeeping.start()
            self._threads.append(housekeeping)
            driver = self._scenario_driver()
            if driver is not None:
                driver.start()
                self._threads.append(driver)
            self._started = True
            log.info("sim.started url=%s control=%s", self.url, self.control_url)

    def stop(self) -> None:
        with self._lock:
            if not self._started:
                return
            self._started = False
            self._stop.set()
            self._world.release_all()
            for service in (self._cwa, self._control):
                if service is not None:
                    service.stop(timeout=1.0)
            for thread in self._threads:
                if isinstance(thread, threading.Thread):
                    thread.join(1.0)
                else:
                    thread.stop()
            self._threads.clear()
            log.info("sim.stopped")

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._cwa is None:
            raise RuntimeError("the simulator is not started")
        return self._cwa.url

    @property
    def control_url(self) -> str | None:
        return self._control.url if self._control is not None else None

    def _housekeeping(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self._world.tick()
            except Exception:  # pragma: no cover - keeps the server alive on a bug
                log.exception("sim.housekeeping.error")

    def _scenario_driver(self) -> scenario.Ticker | None:
        opts = self.options
        if opts.scenario == "demo":
            return scenario.demo_driver(self.apply_step, opts.scenario_interval_s, opts.seed)
        if opts.scenario == "load":
            return scenario.load_driver(self.apply_step, self.user_uris(), opts.load_rate, opts.seed)
        return None

    def apply_step(self, step: scenario.Step) -> None:
        self.set_presence(
            step.uri,
            availability=step.availability,
            activity=step.activity,
            note=step.note,
            note_type=step.note_type,
        )

    # ------------------------------------------------------------------ users and presence

    def set_presence(
        self,
        uri: str,
        *,
        availability: int | Literal[_Unset.UNSET] | None = UNSET,
        activity: str | Literal[_Unset.UNSET] | None = UNSET,
        note: str | Literal[_Unset.UNSET] | None = UNSET,
        name: str | Literal[_Unset.UNSET] | None = UNSET,
        note_type: str | Literal[_Unset.UNSET] = UNSET,
    ) -> None:
        """Change the controlled presence of a user; only the given fields change.

        Setting an availability also brings back a user whose last session ended (signed out).
        A manual state published by one of the user's live sessions still wins (§6.2).
        """
        user = self._user_rec(uri)
        changes = {
            key: value
            for key, value in (
                ("availability", availability),
                ("activity", activity),
                ("note", note),
                ("name", name),
                ("note_type", note_type),
            )
            if value is not UNSET
        }
        self._world.set_controlled(user, changes)

    def add_user(self, user: SimUser) -> None:
        """Add (or replace, keeping its sessions) a user."""
        self._world.add_user(user)

    def user(self, uri: str) -> SimUser:
        """The user's table entry with its current controlled availability/activity/note/name."""
        with self._world.lock:
            rec = self._user_rec(uri)
            return replace(
                rec.spec,
                availability=rec.availability,
                activity=rec.activity,
                note=rec.note.text if rec.note else None,
                note_type=rec.note.kind if rec.note else rec.spec.note_type,
                name=rec.name,
                contacts=tuple(c.uri for c in rec.contacts.values()),
            )

    def user_uris(self) -> list[str]:
        with self._world.lock:
            return [u.uri for u in self._world.users.values()]

    def truth(self, uri: str) -> Presence:
        """What every watcher sees now (normalised like the bridge does, `Presence.observe`)."""
        with self._world.lock:
            rec = self._user_rec(uri)
            view = rec.view or self._world.compute(rec)
            return wire.to_presence(rec.uri, view)

    def _user_rec(self, uri: str) -> UserRec:
        rec = self._world.find_user(uri)
        if rec is None:
            raise KeyError(f"unknown user {uri}")
        return rec

    # ------------------------------------------------------------------ observation

    @property
    def recordings(self) -> list[Recorded]:
        return self._recorder.all()

    def issued_tickets(self) -> list[str]:
        """Every CWA-Ticket value issued so far, oldest first (tests grep outputs for them)."""
        return self._tickets.issued()

    def clear_recordings(self) -> None:
        self._recorder.clear()

    def sessions(self) -> list[SessionSnapshot]:
        with self._world.lock:
            return [
                SessionSnapshot(
                    sid=s.sid,
                    user=s.user.uri,
                    subscriptions=tuple(sorted(s.subscriptions)),
                    contacts_subscribed=tuple(sorted(s.contact_subs)),
                    ack_id=s.acked,
                    next_eid=s.counter + 1,
                    queued=len(s.events),
                    ua_values=tuple(s.ua_values),
                    poll_gaps=tuple(s.poll_gaps),
                    auto_publish_machine_state=s.auto_machine,
                    machine_availability=s.machine,
                    polls=s.polls,
                )
                for s in self._world.sessions.values()
            ]

    def stats(self) -> dict[str, Any]:
        with self._world.lock:
            data: dict[str, Any] = dict(self._world.stats)
            data["sessions"] = len(self._world.sessions)
            data["users"] = len(self._world.users)
            data["queued_now"] = sum(len(s.events) for s in self._world.sessions.values())
            data["throttled"] = self._world.throttled
        data["requests"] = dict(self._front.requests)
        data["tickets"] = self._tickets.count()
        data["faults_pending"] = self._board.pending()
        return data

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Poll ``predicate`` until true; `TimeoutError` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(0.01)

    # ------------------------------------------------------------------ faults acting on state

    def _restart(self) -> None:
        self._tickets.expire_all()
        self._world.restart()
        log.info("sim.fault.restart")

    def _throttle(self, on: bool, poll_wait_ms: int) -> None:
        with self._world.lock:
            self._world.throttled = on
            self._world.throttle_poll_ms = poll_wait_ms
