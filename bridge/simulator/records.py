"""The simulated server's records: users, their contacts, sessions and poll results (no logic).

`bridge.simulator.world.World` owns them under its one lock. Section numbers (§) refer to
docs/protocol.md.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from bridge.cwa.events import Event, UserPresence
from bridge.presence import Note
from bridge.simulator import wire
from bridge.simulator.options import SimUser

ACTIVE, INACTIVE, AWAY = 3500, 5000, 15500  # machine states, §6.2 / §8.10


@dataclass(eq=False)
class ContactEntry:
    uri: str
    name: str
    subscribed: bool = True
    tag: bool = False
    groups: tuple[str, ...] = ("1",)


@dataclass(eq=False)
class UserRec:
    spec: SimUser
    availability: int | None
    activity: str | None
    note: Note | None
    name: str | None
    contacts: dict[str, ContactEntry]
    delta_num: int = 1
    signed_out: bool = False
    sessions: set[SessionRec] = field(default_factory=set)
    view: wire.Visible | None = None
    snapshot: UserPresence | None = None
    version: int = 0
    changed_at: float = 0.0

    @property
    def uri(self) -> str:
        return self.spec.uri


@dataclass(eq=False)
class SessionRec:
    sid: str
    user: UserRec
    cond: threading.Condition
    auto_machine: bool
    last_activity: float
    events: deque[Event] = field(default_factory=deque)
    counter: int = 0  # the last eid assigned
    acked: int = 0
    subscriptions: set[str] = field(default_factory=set)  # normalised URIs (subscribePresence)
    contact_subs: set[str] = field(default_factory=set)  # normalised URIs (contacts, subscribed=true)
    ua_values: deque[str] = field(default_factory=lambda: deque(maxlen=1000))
    poll_gaps: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    ua_false_since: float | None = None
    machine: int = ACTIVE
    last_response: float | None = None
    polls: int = 0
    published_state: tuple[int, int, str | None] | None = None  # (seq, availability, activity)
    published_note: tuple[int, Note | None] | None = None  # (seq, note or None = cleared)
    alive: bool = True


@dataclass(frozen=True)
class PollResult:
    sid: str
    ack_id: int
    events: tuple[Event, ...]
