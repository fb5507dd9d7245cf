"""What a watcher sees of a user, as typed categories (pure; docs/protocol.md §5.3, §5.4, §6).

`Visible` is the simulator's one notion of "the presence of a user right now"; the categories of
``userPresence``/``selfPresence`` events and `Simulator.truth` are both derived from it, so the
truth a test asserts on is exactly what went over the wire.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bridge.cwa.events import UserPresence
from bridge.cwa.messages import Category, ContactCardContent, NoteContent, StateContent
from bridge.presence import Note, Presence

OFFLINE = 18000  # §6.3: what a real server showed for a signed-out user


@dataclass(frozen=True, slots=True)
class Visible:
    """The wire-level values of one user after the offline-form choice (§8.14) is applied."""

    availability: int
    activity: str | None
    note: Note | None
    name: str | None
    email: str | None


def is_offline(availability: int | None) -> bool:
    """Below the first assigned band or in the offline band (§6.3, §6.5)."""
    return availability is None or availability < 3000 or availability >= OFFLINE


def visible(
    availability: int | None,
    activity: str | None,
    note: Note | None,
    *,
    name: str | None,
    uri: str,
    offline_form: str,
) -> Visible:
    """Apply the offline representation: 18000 without activity, or ``0`` with token ``Offline``."""
    if is_offline(availability):
        shown, activity = (0, "Offline") if offline_form == "zero" else (OFFLINE, None)
    else:
        shown = availability or OFFLINE  # never 0 here: 0 is offline
    if note is not None and not note.text:
        note = None
    return Visible(shown, activity, note, name, email_of(uri))


def email_of(uri: str) -> str | None:
    local = uri[4:] if uri.lower().startswith("sip:") else uri
    return local if "@" in local else None


def publish_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def categories(view: Visible, version: int, changed_at: float) -> tuple[Category, ...]:
    """State, note, contactCard and an empty calendarData (§5.3: empty = nothing visible)."""
    stamp = publish_time(changed_at)
    state = Category(
        name="state",
        instance=0,
        version=version,
        publish_time=stamp,
        content=StateContent(
            state_type="aggregateState", availability=view.availability, activity=view.activity
        ),
    )
    if view.note is not None:
        note = Category(
            name="note", instance=0, version=version, publish_time=stamp, content=NoteContent((view.note,))
        )
    else:
        note = Category(name="note")
    card = Category(
        name="contactCard",
        instance=0,
        version=1,
        publish_time=stamp,
        content=ContactCardContent(display_name=view.name, email=view.email),
    )
    return (state, note, card, Category(name="calendarData"))


def unknown_user(uri: str, offline_form: str) -> UserPresence:
    """§7.3: an unknown presentity looks offline with empty other categories."""
    availability, activity = (0, "Offline") if offline_form == "zero" else (OFFLINE, None)
    state = Category(
        name="state",
        instance=0,
        content=StateContent(state_type="aggregateState", availability=availability, activity=activity),
    )
    return UserPresence(
        uri=uri,
        categories=(
            state,
            Category(name="note"),
            Category(name="contactCard"),
            Category(name="calendarData"),
        ),
    )


def to_presence(uri: str, view: Visible) -> Presence:
    """What a correct client normalises these categories to (README, "MQTT topics")."""
    notes = (view.note,) if view.note is not None else ()
    return Presence.observe(uri, view.name, view.availability, view.activity, notes)


def same_uri(a: str, b: str) -> bool:
    return norm_uri(a) == norm_uri(b)


def norm_uri(uri: str) -> str:
    """§8.24: compare URIs case-insensitively, with the ``sip:`` scheme added when missing."""
    text = uri.strip()
    if not text.lower().startswith("sip:"):
        text = "sip:" + text
    return text.lower()
