"""What the CWA client tells its owner: notices and command outcomes.

Frozen dataclasses only; they cross the module boundary to `bridge.service`.
Notices are handed to the owner's ``on_notice`` callback from the client's poll thread or its command
worker, one delivery at a time, in the order they arose (user presence in eid order).
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
    """One ``user`` of a ``userPresence`` event: a full snapshot.

    ``resync``: the answer to a periodic re-query (README: "How it behaves toward CWA"), so an
    owner can count the users whose state the resync corrected.
    """

    uri: str
    summary: PresenceSummary
    resync: bool = False


@dataclass(frozen=True, slots=True)
class SelfNotice:
    """A ``selfPresence`` event: the signed-in account."""

    summary: PresenceSummary


@dataclass(frozen=True, slots=True)
class WatchabilityNotice:
    """Whether a watched user can be watched right now.

    ``False`` from the first refusal (``reason``: "unknown user", "subscription terminated",
    "subscription retrying" or CWA's error text); the client then re-subscribes that user with
    back-off. ``True`` (``reason`` ``None``) once CWA accepts a subscription again: a presence
    snapshot sent along with a refusal does not count. Sent on transitions only, never per retry.
    """

    uri: str
    watchable: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ContactsNotice:
    """The full current contact list as ``(uri, name)`` after each ``contactGroup`` event."""

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
