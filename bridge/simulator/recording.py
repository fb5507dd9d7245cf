"""What the simulator saw, for tests: one `Recorded` per HTTP request, and session snapshots.

Secret-free by construction: a recording holds whether a ticket was present, never its value,
and never a password.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Recorded:
    """One request. ``time`` is wall-clock seconds (``time.time()``); ``channel`` is ``logon``,
    ``command``, ``data`` or ``other``; ``methods``/``rids`` are parallel tuples for a command
    batch; ``fault`` names the fault applied to this request, if any; ``ntlm`` is the NTLM message
    type (1 or 3) of the request's ``Authorization`` header on ``/iwa/logon.html`` (never the token)."""

    time: float
    channel: str
    http_method: str
    path: str
    status: int
    ticket_present: bool
    sid: str | None = None
    methods: tuple[str, ...] = ()
    rids: tuple[str | None, ...] = ()
    ack_id: str | None = None
    ua: str | None = None
    fault: str | None = None
    user: str | None = None
    ntlm: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["methods"] = list(self.methods)
        data["rids"] = list(self.rids)
        return data


@dataclass(frozen=True)
class SessionSnapshot:
    """A session as the server sees it. ``poll_gaps`` are seconds between a data-channel response
    and the next GET of the session; ``ua_values`` are the UA parameters received, oldest first."""

    sid: str
    user: str
    subscriptions: tuple[str, ...]
    contacts_subscribed: tuple[str, ...]
    ack_id: int
    next_eid: int
    queued: int
    ua_values: tuple[str, ...]
    poll_gaps: tuple[float, ...]
    auto_publish_machine_state: bool
    machine_availability: int
    polls: int

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("subscriptions", "contacts_subscribed", "ua_values", "poll_gaps"):
            data[key] = list(data[key])
        return data


class Recorder:
    def __init__(self, limit: int) -> None:
        self._lock = threading.Lock()
        self._items: deque[Recorded] = deque(maxlen=max(1, limit))

    def add(self, item: Recorded) -> None:
        with self._lock:
            self._items.append(item)

    def all(self) -> list[Recorded]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
