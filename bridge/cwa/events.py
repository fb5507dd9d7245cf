"""Typed CWA data-channel events: what one ``cwaEvents`` answer of the data channel carries.

Frozen dataclasses only, made by `bridge.cwa.codec` for both the client (bridge) and the server
(simulator) side; requests, responses and category content are in `bridge.cwa.messages`.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bridge.cwa.messages import Category, ErrorInfo, PresenceSummary, summarize


@dataclass(frozen=True, slots=True)
class RequestSucceededEvent:
    eid: int
    rid: str | None
    sign_in_data: str | None = None
    uri: str | None = None


@dataclass(frozen=True, slots=True)
class RequestFailedEvent:
    eid: int
    rid: str | None
    error: ErrorInfo


@dataclass(frozen=True, slots=True)
class UserPresence:
    """One ``user`` of a ``userPresence`` event: a full snapshot of what the watcher may see (§5.3)."""

    uri: str
    categories: tuple[Category, ...] = ()
    source_network: str | None = None

    def summary(self) -> PresenceSummary:
        return summarize(self.categories)


@dataclass(frozen=True, slots=True)
class UserPresenceEvent:
    eid: int
    users: tuple[UserPresence, ...]


@dataclass(frozen=True, slots=True)
class SelfPresenceEvent:
    eid: int
    categories: tuple[Category, ...]

    def summary(self) -> PresenceSummary:
        return summarize(self.categories)


SubscriptionToken = Literal["subscribed", "retrying", "terminated"]


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    """One ``presenceSubscriptionState/user``. ``state`` is the token, or ``subscribed`` when the
    server sent an integer (the other reading of §8.23: an availability, i.e. presence flows);
    ``raw`` keeps what was sent."""

    uri: str
    state: SubscriptionToken
    raw: str = ""


@dataclass(frozen=True, slots=True)
class SubscriptionStateEvent:
    eid: int
    users: tuple[SubscriptionState, ...]


ContactAction = Literal["added", "updated", "deleted"]


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    name: str | None = None
    action: ContactAction | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    uri: str
    name: str | None = None
    subscribed: bool = False
    tag: bool = False
    groups: tuple[str, ...] = ()
    action: ContactAction | None = None  # ``delete``/``deleted`` both become ``deleted`` (§8.16)


@dataclass(frozen=True, slots=True)
class ContactGroupEvent:
    """``contactGroup`` or the pre-release ``contactGroupChanged`` (§5.6, §8.16)."""

    eid: int
    full_list: bool
    delta_num: int | None
    groups: tuple[Group, ...] = ()
    contacts: tuple[Contact, ...] = ()


@dataclass(frozen=True, slots=True)
class Subscriber:
    uri: str
    display_name: str | None = None
    acknowledged: bool = False


@dataclass(frozen=True, slots=True)
class SubscribersEvent:
    eid: int
    subscribers: tuple[Subscriber, ...]


@dataclass(frozen=True, slots=True)
class ConfigurationEvent:
    """``configuration`` (or ``configurations``, §8.26)."""

    eid: int
    user_notice: str | None = None
    search_default_function: str | None = None


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """Any event a presence bridge does not use (IM, containers, search results…): ignore it."""

    eid: int | None
    name: str


Event = (
    RequestSucceededEvent
    | RequestFailedEvent
    | UserPresenceEvent
    | SelfPresenceEvent
    | SubscriptionStateEvent
    | ContactGroupEvent
    | SubscribersEvent
    | ConfigurationEvent
    | UnknownEvent
)


@dataclass(frozen=True, slots=True)
class EventBatch:
    """One ``cwaEvents`` response (§4.2). ``session_timeout`` accepts the ``sesionTimeout`` spelling."""

    sid: str | None
    ack_id: int | None
    poll_wait_time: int | None
    session_timeout: int | None = None
    events: tuple[Event, ...] = ()
