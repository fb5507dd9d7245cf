"""CWA-Ticket issuing, rotation, grace and expiry (docs/protocol.md §2.4, §2.5, §8.30).

A *family* is what one sign-in created: its newest ticket, the ticket it replaced (valid for the
grace period after the rotation) and the sign-in time the lifetime counts from. Every
authenticated response carries the family's newest ticket (§2.4: "returns the currently valid
ticket with every response"); rotation happens lazily on the first response after the period.
Ticket values are never logged or put in a repr.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_ISSUED_KEPT = 10_000  # bounded: a long demo or load run rotates many tickets


@dataclass
class _Family:
    user_uri: str
    signed_in: float
    current: str = field(repr=False)
    current_since: float
    previous: str | None = field(default=None, repr=False)
    previous_until: float = 0.0


class TicketStore:
    """Thread-safe; ``clock`` is a monotonic time source in seconds."""

    def __init__(
        self,
        clock: Callable[[], float],
        rotate_s: float | None,
        grace_s: float,
        lifetime_s: float | None,
    ) -> None:
        self._clock = clock
        self._rotate_s = rotate_s
        self._grace_s = grace_s
        self._lifetime_s = lifetime_s
        self._lock = threading.Lock()
        self._by_ticket: dict[str, _Family] = {}
        self._issued: deque[str] = deque(maxlen=MAX_ISSUED_KEPT)

    def issue(self, user_uri: str) -> str:
        now = self._clock()
        ticket = _new_ticket()
        with self._lock:
            self._by_ticket[ticket] = _Family(user_uri, now, ticket, now)
            self._issued.append(ticket)
        return ticket

    def check(self, ticket: str | None) -> tuple[str, str] | None:
        """``(user uri, ticket to return in the response header)`` or None when unknown/expired.

        Rotates the family when its newest ticket is older than the rotation period.
        """
        if not ticket:
            return None
        now = self._clock()
        with self._lock:
            family = self._by_ticket.get(ticket)
            if family is None:
                return None
            if self._lifetime_s is not None and now - family.signed_in >= self._lifetime_s:
                self._forget(family)
                return None
            if ticket != family.current and (ticket != family.previous or now >= family.previous_until):
                self._by_ticket.pop(ticket, None)
                return None
            if self._rotate_s is not None and now - family.current_since >= self._rotate_s:
                if family.previous is not None:
                    self._by_ticket.pop(family.previous, None)
                family.previous, family.previous_until = family.current, now + self._grace_s
                family.current, family.current_since = _new_ticket(), now
                self._by_ticket[family.current] = family
                self._issued.append(family.current)
            return family.user_uri, family.current

    def issued(self) -> list[str]:
        """Every ticket value issued (the newest `MAX_ISSUED_KEPT`), for tests that grep for leaks."""
        with self._lock:
            return list(self._issued)

    def expire_all(self) -> None:
        with self._lock:
            self._by_ticket.clear()

    def count(self) -> int:
        with self._lock:
            return len({id(f) for f in self._by_ticket.values()})

    def _forget(self, family: _Family) -> None:
        for value in (family.current, family.previous):
            if value is not None:
                self._by_ticket.pop(value, None)


def _new_ticket() -> str:
    return "T-" + secrets.token_urlsafe(24)
