"""The presence domain: statuses, the availability table, and the `Presence` value.

Pure: no I/O, no clocks (callers pass ``now``). The normalisation follows docs/protocol.md §6.5
and the presence JSON of the README's "MQTT topics". Both the bridge and the simulator use it, so a table
fix lands on both sides at once.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum


class Status(StrEnum):
    """The seven normalised statuses of the README's "MQTT topics"."""

    AVAILABLE = "available"
    BUSY = "busy"
    DO_NOT_DISTURB = "do_not_disturb"
    BE_RIGHT_BACK = "be_right_back"
    AWAY = "away"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


ALL_STATUSES: tuple[Status, ...] = tuple(Status)
SETTABLE_STATUSES: tuple[Status, ...] = (
    Status.AVAILABLE,
    Status.BUSY,
    Status.DO_NOT_DISTURB,
    Status.BE_RIGHT_BACK,
    Status.AWAY,
    Status.OFFLINE,
)

# What `<base>/bridge/info.session` says (the CWA client's states, as users see them).
SESSION_STATES: tuple[str, ...] = ("connecting", "online", "reconnecting", "auth_failed", "stopped")

# Busiest first: which of several users' statuses a status light shows (``priority`` in the config).
DEFAULT_PRIORITY: tuple[Status, ...] = (
    Status.DO_NOT_DISTURB,
    Status.BUSY,
    Status.BE_RIGHT_BACK,
    Status.AWAY,
    Status.AVAILABLE,
    Status.OFFLINE,
    Status.UNKNOWN,
)

# The representative availability CWA expects for a manual user state (docs/protocol.md §3.3, §6.3).
REPRESENTATIVE_AVAILABILITY: dict[Status, int] = {
    Status.AVAILABLE: 3500,
    Status.BUSY: 6500,
    Status.DO_NOT_DISTURB: 9500,
    Status.BE_RIGHT_BACK: 12500,
    Status.AWAY: 15500,
    Status.OFFLINE: 18500,
}

# Lower bounds of the bands of docs/protocol.md §6.5, highest first: (lower bound, status, idle).
_BANDS: tuple[tuple[int, Status, bool], ...] = (
    (18000, Status.OFFLINE, False),
    (15000, Status.AWAY, False),
    (12000, Status.BE_RIGHT_BACK, False),
    (9000, Status.DO_NOT_DISTURB, False),
    (7500, Status.BUSY, True),
    (6000, Status.BUSY, False),
    (4500, Status.AVAILABLE, True),
    (3000, Status.AVAILABLE, False),
)

OOF_ACTIVITY = "out_of_office"


def status_for(availability: int | None) -> tuple[Status, bool]:
    """Map a CWA availability number to ``(status, idle)``.

    ``None`` (no state ever received) is ``unknown``. ``0`` and the unassigned 1-2999 are
    offline: a real server shows ``0`` with token ``Offline`` for a signed-out user, and SIPE
    treats everything below 3000 as offline (docs/protocol.md §6.3, §8.14, §8.31).
    """
    if availability is None:
        return Status.UNKNOWN, False
    # One C-level binary search instead of a Python loop over the bands (codec hot path, issue 8).
    return _BAND_RESULTS[bisect_right(_BAND_LOWERS, availability)]


# `_BANDS` lowest first, for `bisect_right`: index i = "i bounds are <= availability".
_BAND_LOWERS: tuple[int, ...] = tuple(lower for lower, _, _ in reversed(_BANDS))
_BAND_RESULTS: tuple[tuple[Status, bool], ...] = (
    (Status.OFFLINE, False),  # below the lowest bound
    *((status, idle) for _, status, idle in reversed(_BANDS)),
)


_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalize_activity(token: str | None) -> str | None:
    """``in-a-meeting``, ``InAMeeting`` and ``IN-A-MEETING`` all become ``in_a_meeting``.

    Tokens are compared case-insensitively (docs/protocol.md §6.4); anything that is not a
    letter or digit separates words. Blank gives ``None``.
    """
    if token is None:
        return None
    # Memoised: every presence update normalises its token, and two regex passes cost ~5 µs while
    # the set of tokens a server sends is small. Bounded (and long tokens skipped) so that a hostile
    # server cannot grow it without limit.
    try:
        return _ACTIVITY_MEMO[token]
    except KeyError:
        pass
    words = _CAMEL_BOUNDARY.sub("_", token.strip()).lower()
    snake = _NON_WORD.sub("_", words).strip("_") or None
    if len(token) <= _ACTIVITY_MEMO_CHARS:
        if len(_ACTIVITY_MEMO) >= _ACTIVITY_MEMO_MAX:
            _ACTIVITY_MEMO.clear()
        _ACTIVITY_MEMO[token] = snake
    return snake


_ACTIVITY_MEMO: dict[str, str | None] = {}
_ACTIVITY_MEMO_MAX = 1024
_ACTIVITY_MEMO_CHARS = 100


@dataclass(frozen=True, slots=True)
class Note:
    """One ``note/body`` as CWA sends it: ``kind`` is the body's ``type`` (``personal`` or ``OOF``)."""

    kind: str
    text: str


def select_note(notes: Iterable[Note]) -> tuple[str | None, str | None]:
    """Pick the note to show and its ``note_type`` (``personal`` wins over OOF, §6.6).

    A body without text means "no note". Unknown body types count as personal: a person typed them.
    """
    note, note_type, _ = _read_notes(notes)
    return note, note_type


def _read_notes(notes: Iterable[Note]) -> tuple[str | None, str | None, bool]:
    """`select_note` plus "is there an OOF note with text", in one pass (the `observe` hot path)."""
    personal: str | None = None
    oof: str | None = None
    for note in notes:
        text = note.text
        if not text.strip():
            continue
        if note.kind.strip().lower() == "oof":
            if oof is None:
                oof = text
        elif personal is None:
            personal = text
    if personal is not None:
        return personal, "personal", oof is not None
    if oof is not None:
        return oof, "out_of_office", True
    return None, None, False


# The fields whose change moves `last_change` (README, "MQTT topics": "status/activity/note").
CHANGE_FIELDS: tuple[str, ...] = ("status", "activity", "note")


@dataclass(frozen=True, slots=True)
class Presence:
    """Every key of the presence JSON of the README's "MQTT topics"."""

    uri: str
    name: str | None
    status: Status
    idle: bool
    activity: str | None
    availability: int | None
    note: str | None
    note_type: str | None
    out_of_office: bool
    last_change: datetime | None

    @classmethod
    def unknown(cls, uri: str, name: str | None = None) -> Presence:
        """The presence of a user the bridge has heard nothing about yet."""
        return cls(
            uri=uri,
            name=name,
            status=Status.UNKNOWN,
            idle=False,
            activity=None,
            availability=None,
            note=None,
            note_type=None,
            out_of_office=False,
            last_change=None,
        )

    @classmethod
    def observe(
        cls,
        uri: str,
        name: str | None,
        availability: int | None,
        activity: str | None,
        notes: Iterable[Note] = (),
    ) -> Presence:
        """Normalise raw CWA values into a `Presence` without `last_change` (see `advance`)."""
        status, idle = status_for(availability)
        token = normalize_activity(activity)
        note, note_type, oof_note = _read_notes(notes)
        # Positional: a frozen dataclass's keyword call is measurably slower (codec hot path, issue 8).
        return cls(
            uri,
            name,
            status,
            idle,
            token,
            availability,
            note,
            note_type,
            token == OOF_ACTIVITY or oof_note,
            None,
        )

    def differs_from(self, other: Presence | None) -> bool:
        """True when a field that counts for `last_change` differs (`CHANGE_FIELDS`)."""
        if other is None:
            return True
        return any(getattr(self, f) != getattr(other, f) for f in CHANGE_FIELDS)

    def advance(self, previous: Presence | None, now: datetime) -> Presence:
        """Carry `last_change` over from ``previous`` unless a change field moved (then ``now``)."""
        if previous is not None and not self.differs_from(previous) and previous.last_change is not None:
            return replace(self, last_change=previous.last_change)
        return replace(self, last_change=now.astimezone(UTC).replace(microsecond=0))

    def with_name(self, name: str | None) -> Presence:
        return self if name == self.name else replace(self, name=name)


def format_timestamp(moment: datetime | None) -> str | None:
    """``2026-11-22T09:14:03Z`` (UTC, whole seconds), the `last_change` format."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: object) -> datetime | None:
    """Inverse of `format_timestamp`; anything unreadable is ``None`` (retained data may be foreign)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


_ID_INVALID = re.compile(r"[^a-z0-9_-]")
MAX_ID_LENGTH = 64
# The one id rule, for configured ids, derived ids, light names and ids read back from the broker.
ID_PATTERN = re.compile(rf"[a-z0-9_-]{{1,{MAX_ID_LENGTH}}}")
# Ids that name a topic subtree of the bridge itself; "lights" would collide with <base>/lights/<name>.
RESERVED_IDS = frozenset({"bridge", "self", "lights"})


def valid_id(value: object) -> bool:
    """``value`` can be a topic id: ``[a-z0-9_-]``, 1 to 64 characters (reserved names aside)."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def entity_key(ident: str) -> str:
    """What Home Assistant makes of an id in an entity id: ``a-b`` and ``a_b`` collide there."""
    return ident.replace("-", "_")


def uri_hash(uri: str) -> str:
    """6 hex characters standing for a URI (case and ``sip:`` prefix ignored): stable across runs."""
    key = uri.strip().lower()
    key = key if key.startswith("sip:") else f"sip:{key}"
    return hashlib.blake2b(key.encode("utf-8"), digest_size=3).hexdigest()


def with_hash(ident: str, uri: str) -> str:
    """``ident`` cut to 57 characters plus ``-`` and the URI's hash: unique, and at most 64 long."""
    return f"{ident[: MAX_ID_LENGTH - 7]}-{uri_hash(uri)}"


def derive_id(uri: str) -> str:
    """The topic id of a watched URI: its local part, lower case, other characters as ``_``; a
    longer one than 64 characters is cut and given a hash suffix (`with_hash`).

    ``sip:carol.nguyen@example.org`` → ``carol_nguyen`` (README, "Ids").
    """
    local = uri.split(":", 1)[-1].split("@", 1)[0].strip().lower()
    ident = _ID_INVALID.sub("_", local) or "_"
    return ident if len(ident) <= MAX_ID_LENGTH else with_hash(ident, uri)
