"""What the CWA client tells its owner: notices and command outcomes.

Frozen dataclasses only; they cross the module boundary to `bridge.service` (ARCHITECTURE.md).
Notices are handed to the owner's ``on_notice`` callback from the client's poll thread, in eid order.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.cwa.messages import PresenceSummary
from bridge.presence import Status


@dataclass(frozen=True, slots=True)
class SessionNotice:
    """The client's state changed: ``connecting``, ``online``, ``reconnecting``, ``auth_failed``,
    ``stopped``. ``error`` is a short, secret-free reason (e.g. ``ticket_expired``) or ``None``."""

    state: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class UserNotice:
    """One ``user`` of a ``userPresence`` event: a full snapshot (cwa-protocol.md §5.3)."""

    uri: str
    summary: PresenceSummary


@dataclass(frozen=True, slots=True)
class SelfNotice:
    """A ``selfPresence`` event: the signed-in account (§5.4)."""

    summary: PresenceSummary


@dataclass(frozen=True, slots=True)
class WatchabilityNotice:
    """Whether a watched user can be watched right now (interface.md §7.2).

    ``False`` when the subscription is ``terminated``/``retrying`` or the user is unknown (SIP 404);
    the client then re-subscribes that user with back-off. ``True`` once it is ``subscribed`` again
    or its presence arrives again. Sent on changes only.
    """

    uri: str
    watchable: bool
    reason: str


@dataclass(frozen=True, slots=True)
class ContactsNotice:
    """The full current contact list as ``(uri, name)`` after each ``contactGroup`` event (§5.6)."""

    contacts: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True, slots=True)
class CommandNotice:
    """The later result of an own-state publish nobody was waiting for: a command queued while the
    session was down (applied after recovery), or a re-publish that CWA refused."""

    status: Status | None
    note: str | None
    ok: bool
    error: str | None = None


Notice = SessionNotice | UserNotice | SelfNotice | WatchabilityNotice | ContactsNotice | CommandNotice


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """What `CwaClient.publish_self` achieved.

    ``applied``: CWA accepted the publish (``confirmed``: and reported ``requestSucceeded`` for it).
    ``queued``: the session was down; the state is applied on recovery and reported by a `CommandNotice`.
    """

    applied: bool
    queued: bool = False
    confirmed: bool = False
