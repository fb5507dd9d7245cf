"""The simulated server's state: users, sessions, per-session event queues, aggregate presence.

Theory of operation. One lock guards everything here; each session has a `Condition` on that
lock so a held long-poll (§4.4) wakes only when *its* queue grows. A user's visible presence
(`wire.Visible`) is recomputed after anything that can change it; when it differs from the last
one, every watching session gets a full ``userPresence`` snapshot and the user's own sessions a
``selfPresence`` (§5.3, §5.4). Events carry consecutive eids from 1 per session (§4.3); the
queue keeps every event until the client acknowledges it, so a lost response is recovered by
re-polling with the old AckId. Event bodies are encoded outside the lock by the HTTP layer.

Aggregate availability (§6.2, simplified): the newest manual state published by one of the
user's live sessions, else the controlled state (scenario/control API/`set_presence`), with the
machine-state overlay of §8.10 for sessions that asked for ``autoPublishMachineState``; a user
whose last session ended is offline until the controller sets an availability again.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

import hmac
import itertools
import threading
from collections.abc import Callable, Mapping

from bridge.cwa.events import Event, SelfPresenceEvent, UserPresence, UserPresenceEvent
from bridge.presence import Note
from bridge.simulator import wire
from bridge.simulator.options import SimOptions, SimUser
from bridge.simulator.records import ACTIVE, AWAY, INACTIVE, ContactEntry, PollResult, SessionRec, UserRec


class World:
    """All mutable server state. ``clock`` is monotonic seconds, ``wall`` is epoch seconds."""

    def __init__(self, options: SimOptions, clock: Callable[[], float], wall: Callable[[], float]) -> None:
        self.options = options
        self.clock = clock
        self.wall = wall
        self.lock = threading.RLock()
        self.users: dict[str, UserRec] = {}
        self.sessions: dict[str, SessionRec] = {}
        self.watchers: dict[str, set[SessionRec]] = {}
        self.throttled = False
        self.throttle_poll_ms = 10_000
        self.stopping = False
        self._sids = itertools.count(4711)  # sids stay unique across restarts (no stale-sid aliasing)
        self._seq = itertools.count(1)
        self.stats = {"events_queued": 0, "events_delivered": 0, "sessions_started": 0, "sessions_ended": 0}

    # ------------------------------------------------------------------ users

    def add_user(self, spec: SimUser) -> UserRec:
        note = Note(spec.note_type, spec.note) if spec.note else None
        contacts = {wire.norm_uri(c): ContactEntry(c, c) for c in spec.contacts}
        with self.lock:
            key = wire.norm_uri(spec.uri)
            old = self.users.get(key)
            user = UserRec(spec, spec.availability, spec.activity, note, spec.name, contacts)
            if old is not None:  # replacing a user keeps its sessions
                user.sessions = old.sessions
                for s in old.sessions:
                    s.user = user
                user.view, user.version = old.view, old.version
            self.users[key] = user
            self.refresh(user)
            return user

    def display_name(self, contact: ContactEntry) -> str:
        """A contact from the users table shows the user's display name (lock held)."""
        if contact.name != contact.uri:
            return contact.name
        known = self.users.get(wire.norm_uri(contact.uri))
        return known.name if known is not None and known.name else contact.name

    def find_user(self, uri: str) -> UserRec | None:
        return self.users.get(wire.norm_uri(uri))

    def authenticate(self, username: str | None, password: str | None) -> UserRec | None:
        """§2.1: ``DOMAIN\\user`` or ``user@domain`` as in the table, case-insensitive."""
        if not username or password is None:
            return None
        wanted = username.strip().casefold()
        with self.lock:
            for user in self.users.values():
                spec = user.spec
                if spec.username and spec.password is not None and spec.username.casefold() == wanted:
                    return user if secrets_equal(spec.password, password) else None
        return None

    def set_controlled(self, user: UserRec, changes: Mapping[str, object]) -> None:
        with self.lock:
            if "availability" in changes:
                user.availability = changes["availability"]  # type: ignore[assignment]
                user.signed_out = False
            if "activity" in changes:
                user.activity = changes["activity"]  # type: ignore[assignment]
            if "note" in changes:
                text = changes["note"]
                kind = str(changes.get("note_type") or "personal")
                user.note = Note(kind, str(text)) if text else None
            elif "note_type" in changes and user.note is not None:
                user.note = Note(str(changes["note_type"]), user.note.text)
            if "name" in changes:
                user.name = changes["name"]  # type: ignore[assignment]
            self.refresh(user)

    # ------------------------------------------------------------------ presence

    def compute(self, user: UserRec) -> wire.Visible:
        live = user.sessions
        availability: int | None
        activity: str | None
        if user.signed_out and not live:
            availability, activity = None, None
        else:
            published = [s.published_state for s in live if s.published_state is not None]
            if published:
                _, availability, activity = max(published)
            else:
                availability, activity = user.availability, user.activity
                machines = [s.machine for s in live if s.auto_machine]
                if machines and availability is not None:
                    availability = machine_overlay(availability, min(machines))
        notes = [s.published_note for s in live if s.published_note is not None]
        note = max(notes, key=lambda n: n[0])[1] if notes else user.note
        return wire.visible(
            availability, activity, note, name=user.name, uri=user.uri, offline_form=self.options.offline_form
        )

    def refresh(self, user: UserRec, force_self: bool = False) -> None:
        """Recompute; on a change notify watchers and the user's own sessions (lock held)."""
        view = self.compute(user)
        changed = view != user.view
        if changed:
            user.view = view
            user.version += 1
            user.changed_at = self.wall()
            user.snapshot = UserPresence(user.uri, wire.categories(view, user.version, user.changed_at))
            snapshot = user.snapshot
            for session in self.watchers.get(wire.norm_uri(user.uri), ()):
                self.queue(session, lambda eid: UserPresenceEvent(eid, (snapshot,)))
        if changed or force_self:
            for session in user.sessions:
                self.queue_self(session)

    def snapshot_of(self, user: UserRec) -> UserPresence:
        if user.snapshot is None:
            self.refresh(user)
        if user.snapshot is None:  # refresh always sets it; this keeps the type checker honest
            raise RuntimeError(f"no snapshot for {user.uri}")
        return user.snapshot

    def queue_self(self, session: SessionRec) -> None:
        cats = self.snapshot_of(session.user).categories
        self.queue(session, lambda eid: SelfPresenceEvent(eid, cats))

    # ------------------------------------------------------------------ events

    def queue(self, session: SessionRec, make: Callable[[int], Event]) -> None:
        if not session.alive:
            return
        session.counter += 1
        session.events.append(make(session.counter))
        self.stats["events_queued"] += 1
        session.cond.notify_all()

    def poll(self, session: SessionRec, ack: int, ua: str | None) -> PollResult | None:
        """§4.3: prune what the AckId acknowledges, return the rest (holding first when asked to)."""
        opts = self.options
        with self.lock:
            now = self.clock()
            if session.last_response is not None:
                session.poll_gaps.append(now - session.last_response)
            session.polls += 1
            session.last_activity = now
            self._record_ua(session, ua, now)
            # ack_mode "next": the server's ackId is the next eid expected, so the echoed value
            # acknowledges the events *before* it; "last": the events up to and including it.
            acked = ack if opts.ack_mode == "last" else ack - 1
            session.acked = max(session.acked, acked)
            while session.events and session.events[0].eid is not None and session.events[0].eid <= acked:
                session.events.popleft()
            if opts.long_poll and not session.events:
                deadline = now + opts.max_hold_s
                while session.alive and not self.stopping and not session.events:
                    remaining = deadline - self.clock()
                    if remaining <= 0:
                        break
                    session.cond.wait(remaining)
            if not session.alive:
                return None
            events = tuple(session.events)
            last = events[-1].eid if events and events[-1].eid is not None else session.counter
            session.last_response = session.last_activity = self.clock()
            self.stats["events_delivered"] += len(events)
            return PollResult(session.sid, last if opts.ack_mode == "last" else last + 1, events)

    def _record_ua(self, session: SessionRec, ua: str | None, now: float) -> None:
        if ua is None:
            return
        session.ua_values.append(ua)
        if ua.strip().lower() == "true":
            session.ua_false_since = None
        elif session.ua_false_since is None:
            session.ua_false_since = now
        self._update_machine(session, now)

    def _update_machine(self, session: SessionRec, now: float) -> None:
        if not session.auto_machine:
            return
        since = session.ua_false_since
        state = ACTIVE
        if since is not None:
            idle = now - since
            if idle >= self.options.machine_idle_s + self.options.machine_away_s:
                state = AWAY
            elif idle >= self.options.machine_idle_s:
                state = INACTIVE
        if state != session.machine:
            session.machine = state
            self.refresh(session.user)

    # ------------------------------------------------------------------ sessions

    def new_session(self, user: UserRec, auto_machine: bool) -> SessionRec:
        sid = str(next(self._sids))
        session = SessionRec(sid, user, threading.Condition(self.lock), auto_machine, self.clock())
        self.sessions[sid] = session
        user.sessions.add(session)
        user.signed_out = False
        self.stats["sessions_started"] += 1
        return session

    def session(self, sid: str | None, user_uri: str) -> SessionRec | None:
        """The live session ``sid`` of ``user_uri`` (another user's sid counts as unknown, §3.12)."""
        if not sid:
            return None
        with self.lock:
            session = self.sessions.get(sid)
            if session is None or not wire.same_uri(session.user.uri, user_uri):
                return None
            session.last_activity = self.clock()
            return session

    def next_seq(self) -> int:
        return next(self._seq)

    def watch(self, session: SessionRec, key: str) -> None:
        self.watchers.setdefault(key, set()).add(session)

    def unwatch(self, session: SessionRec, key: str) -> None:
        if key in session.subscriptions or key in session.contact_subs:
            return
        watching = self.watchers.get(key)
        if watching is not None:
            watching.discard(session)
            if not watching:
                del self.watchers[key]

    def end_session(self, session: SessionRec) -> None:
        """terminateSession, idle expiry, kill: watchers see the user offline if it was the last."""
        if not session.alive:
            return
        session.alive = False
        self.sessions.pop(session.sid, None)
        keys = session.subscriptions | session.contact_subs
        session.subscriptions.clear()
        session.contact_subs.clear()
        for key in keys:
            self.unwatch(session, key)
        session.events.clear()
        session.cond.notify_all()
        user = session.user
        user.sessions.discard(session)
        if not user.sessions:
            user.signed_out = True
        self.stats["sessions_ended"] += 1
        self.refresh(user)

    def tick(self) -> None:
        """Housekeeping: idle expiry (§7.2.3) and machine states (§8.10)."""
        timeout = self.options.session_timeout_ms / 1000.0
        with self.lock:
            now = self.clock()
            for session in list(self.sessions.values()):
                if now - session.last_activity >= timeout:
                    self.end_session(session)
                else:
                    self._update_machine(session, now)

    def drop_subscriptions(self) -> None:
        """Every session silently loses its presence subscriptions (a front-end failover): no
        event says so, later changes are simply not delivered."""
        with self.lock:
            for session in self.sessions.values():
                keys = set(session.subscriptions)
                session.subscriptions.clear()
                for key in keys:
                    self.unwatch(session, key)

    def kill_all(self) -> None:
        with self.lock:
            for session in list(self.sessions.values()):
                self.end_session(session)

    def restart(self) -> None:
        """Sessions and eids are forgotten; what users published stays their presence."""
        with self.lock:
            for user in self.users.values():
                view = user.view
                if user.sessions and view is not None:
                    user.availability = view.availability if not wire.is_offline(view.availability) else None
                    user.activity = view.activity if user.availability is not None else None
                    user.note = view.note
            for session in list(self.sessions.values()):
                session.alive = False
                session.cond.notify_all()
                session.user.sessions.discard(session)
            self.sessions.clear()
            self.watchers.clear()

    def release_all(self) -> None:
        with self.lock:
            self.stopping = True
            for session in self.sessions.values():
                session.cond.notify_all()


def machine_overlay(availability: int, machine: int) -> int:
    """§8.10 simplified: an inactive machine makes available/busy idle; an away machine, away."""
    if machine >= AWAY and availability < 9000:
        return AWAY
    if machine >= INACTIVE:
        if 3000 <= availability < 4500:
            return 4500
        if 6000 <= availability < 7500:
            return 7500
    return availability


def secrets_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
