"""Typed CWA messages: requests, synchronous responses and the category content they carry.

Frozen dataclasses only; `bridge.cwa.codec` turns bytes into these and back, for both the
client (bridge) and the server (simulator) side. No lxml element ever leaves the codec.
Data-channel events are in `bridge.cwa.events`.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bridge.presence import Note

# --------------------------------------------------------------------------- category content (§6)


@dataclass(frozen=True, slots=True)
class StateContent:
    """A ``state`` category (§6.2). ``state_type`` is the ``xsi:type`` local name, e.g. ``aggregateState``."""

    state_type: str | None
    availability: int | None
    activity: str | None = None  # the activity token, as sent
    activity_custom: str | None = None  # free text of ``activity/custom`` when there is no token
    manual: bool = False


@dataclass(frozen=True, slots=True)
class NoteContent:
    """A ``note`` category (§6.6): its bodies in document order."""

    bodies: tuple[Note, ...]


@dataclass(frozen=True, slots=True)
class ContactCardContent:
    """The parts of a ``contactCard`` (§6.7) a presence bridge uses."""

    display_name: str | None = None
    email: str | None = None


CategoryContent = StateContent | NoteContent | ContactCardContent


@dataclass(frozen=True, slots=True)
class Category:
    """One ``cwaCategory``. ``content`` is ``None`` for an empty element or a category we do not read.

    ``instance`` holds the ``instance`` attribute of events, or ``instanceMask`` (either spelling,
    §8.15; in requests ``instanceMask`` is required, §3.7).
    """

    name: str
    instance: int | None = None
    version: int | None = None
    publish_time: str | None = None
    content: CategoryContent | None = None


@dataclass(frozen=True, slots=True)
class PresenceSummary:
    """What a set of categories says about one person, merged (§5.3, §6.7)."""

    availability: int | None
    activity: str | None
    notes: tuple[Note, ...]
    display_name: str | None
    email: str | None


def summarize(categories: tuple[Category, ...]) -> PresenceSummary:
    """Merge categories: the ``aggregateState`` wins, else the first state with an availability;
    every note body in order; contact-card instances merged (first non-empty value wins)."""
    # One pass with exact-type checks (the content classes are final): this runs for every user
    # in every data-channel answer, and the three passes with isinstance cost twice as much.
    aggregate: StateContent | None = None
    available: StateContent | None = None
    first: StateContent | None = None
    notes: list[Note] = []
    display_name: str | None = None
    email: str | None = None
    for category in categories:
        content = category.content
        if type(content) is StateContent:
            if first is None:
                first = content
            if available is None and content.availability is not None:
                available = content
            if aggregate is None and content.state_type == "aggregateState":
                aggregate = content
        elif type(content) is NoteContent:
            notes.extend(content.bodies)
        elif type(content) is ContactCardContent:
            display_name = display_name or content.display_name
            email = email or content.email
    chosen = aggregate if aggregate is not None else available if available is not None else first
    if chosen is None:
        return PresenceSummary(None, None, tuple(notes), display_name, email)
    activity = chosen.activity or chosen.activity_custom
    return PresenceSummary(chosen.availability, activity, tuple(notes), display_name, email)


# --------------------------------------------------------------------------- errors inside messages


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An ``error`` element (or the old ``exception`` form, §8.18) with its ``sipResponse``."""

    code: int | None = None
    sub_code: int | None = None
    reason: str | None = None
    detail: str | None = None
    sip_code: int | None = None
    sip_detail: str | None = None

    def describe(self) -> str:
        """A one-line, human-readable description for logs and MQTT error responses."""
        parts: list[str] = []
        if self.code is not None:
            parts.append(f"CWA error {self.code}")
        if self.reason:
            parts.append(self.reason)
        if self.detail and self.detail != self.reason:
            parts.append(self.detail)
        if self.sip_code is not None:
            parts.append(f"SIP {self.sip_code}" + (f" {self.sip_detail}" if self.sip_detail else ""))
        return ": ".join(parts) if parts else "unspecified CWA error"


# --------------------------------------------------------------------------- requests (§2.1, §3)


@dataclass(frozen=True, slots=True)
class Logon:
    """The sign-in request (§2.1). The password is kept out of ``repr`` so it can never be logged."""

    user: str | None
    password: str | None = field(default=None, repr=False)
    uri: str | None = None


@dataclass(frozen=True, slots=True)
class InitiateSession:
    rid: str
    availability: int | None = None  # ``userStateAvailability``; None = leave the account alone (§7.1)
    auto_publish_machine_state: bool | None = None
    auto_subscribe_contacts: bool | None = None
    sign_in_data: str | None = None
    locale_id: int | None = 1033
    security_mode: str | None = None


@dataclass(frozen=True, slots=True)
class TerminateSession:
    rid: str


@dataclass(frozen=True, slots=True)
class SubscribePresence:
    rid: str
    uris: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QueryPresence:
    rid: str
    uris: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PublishSelfPresence:
    """``publishSelfPresence``: every category is published or none (§3.7)."""

    rid: str
    categories: tuple[Category, ...]


@dataclass(frozen=True, slots=True)
class AddContact:
    rid: str
    uri: str
    name: str
    subscribed: bool = True
    tag: bool = False
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeleteContact:
    rid: str
    uri: str


@dataclass(frozen=True, slots=True)
class UnknownRequest:
    """A method the codec does not model; ``rid`` is ``None`` when the element had none."""

    rid: str | None
    name: str


Method = (
    InitiateSession
    | TerminateSession
    | SubscribePresence
    | QueryPresence
    | PublishSelfPresence
    | AddContact
    | DeleteContact
    | UnknownRequest
)


@dataclass(frozen=True, slots=True)
class RequestEnvelope:
    """A parsed ``cwaRequests`` (server side). ``logon`` is set for a sign-in body instead of methods.

    ``missing_rid`` lists the element names of methods that came without the required ``rid``.
    """

    sid: str | None
    methods: tuple[Method, ...] = ()
    logon: Logon | None = None
    missing_rid: tuple[str, ...] = ()


# --------------------------------------------------------------------------- synchronous responses (§3.2)


@dataclass(frozen=True, slots=True)
class Accepted:
    """``requestAccepted`` (children ``sid``/``uri``/``pollWaitTime`` for initiateSession) or the
    attribute-only ``initiateSessionAccepted`` (§8.2): both parse to this."""

    rid: str
    sid: str | None = None
    uri: str | None = None
    poll_wait_time: int | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """``requestInvalid`` / ``requestFailed`` / ``requestRejected`` / a bare ``error`` (§3.2, §8.17)."""

    rid: str | None
    kind: Literal["invalid", "failed", "rejected", "error"]
    error: ErrorInfo


@dataclass(frozen=True, slots=True)
class Succeeded:
    """``requestSucceeded`` as a response: the logon answer carries ``signInData`` and ``uri`` (§2.3)."""

    rid: str | None
    sign_in_data: str | None = None
    uri: str | None = None


Response = Accepted | Refused | Succeeded


@dataclass(frozen=True, slots=True)
class ResponseBatch:
    responses: tuple[Response, ...]

    def for_rid(self, rid: str) -> Response | None:
        return next((r for r in self.responses if r.rid == rid), None)
