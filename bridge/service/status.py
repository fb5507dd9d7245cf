"""What the HTTP endpoint and `health_check` requests read: an immutable snapshot, health, board.

The loop thread builds a new `Snapshot` after changes and swaps it in whole; readers on any thread
see one consistent picture without a lock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bridge.http import BoardEntry, HealthReport
from bridge.presence import Presence, format_timestamp
from bridge.store import SELF_ID, PresenceStore


@dataclass(frozen=True, slots=True)
class Row:
    """One bridged id as the board and the gauges see it."""

    id: str
    presence: Presence | None
    watchable: bool
    uri: str
    unwatchable: str | None = None  # why CWA cannot watch this user, while it cannot


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Replaced as a whole after each change."""

    rows: tuple[Row, ...] = ()
    session: str = "connecting"
    session_since: datetime | None = None
    last_error: str | None = None
    mqtt_connected: bool = False
    lights: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def watched(self) -> int:
        return sum(1 for r in self.rows if r.id != SELF_ID)


def take_snapshot(
    store: PresenceStore,
    *,
    session: str,
    since: datetime | None,
    last_error: str | None,
    mqtt_connected: bool,
    lights: Mapping[str, bytes],
) -> Snapshot:
    rows = tuple(
        Row(
            e.id,
            e.presence.with_name(e.display_name()) if e.presence else None,
            e.watchable,
            e.uri,
            e.unwatchable_reason if not e.watchable else None,
        )
        for e in store
    )
    return Snapshot(rows, session, since, last_error, mqtt_connected, dict(lights))


def health(
    snap: Snapshot,
    *,
    mqtt_ok: bool,
    session_down_for: float,
    grace_s: float,
    poll_age: float | None = None,
    poll_timeout_s: float = 95.0,
    stuck: Sequence[str] = (),
) -> HealthReport:
    """Healthy unless MQTT is down, the CWA session has been down longer than ``grace_s``, the
    data channel has had no complete answer for longer than ``poll_timeout_s`` + ``grace_s``
    (``poll_age``: seconds since the last one), or a loop is stuck."""
    reasons: list[str] = []
    if not mqtt_ok:
        reasons.append("MQTT broker not connected")
    if snap.session != "online" and session_down_for > grace_s:
        reasons.append(f"CWA session {snap.session} for {int(session_down_for)} s")
    elif snap.session == "online" and poll_age is not None and poll_age > poll_timeout_s + grace_s:
        reasons.append(f"CWA data channel stalled: no poll answer for {int(poll_age)} s")
    reasons += [f"{name} loop stuck" for name in stuck]
    details: dict[str, object] = {
        "mqtt": "connected" if mqtt_ok else "disconnected",
        "cwa": "online" if snap.session == "online" else "offline",
        "session": snap.session,
        "since": format_timestamp(snap.session_since),
        "watched": snap.watched,
        "reasons": reasons,
    }
    if snap.last_error:
        details["last_error"] = snap.last_error
    return HealthReport(healthy=not reasons, details=details)


def board(snap: Snapshot) -> list[BoardEntry]:
    entries = []
    for row in snap.rows:
        shown = row.presence if row.presence is not None else Presence.unknown(row.uri)
        entries.append(
            BoardEntry.from_presence(row.id, shown, watchable=row.watchable, unwatchable=row.unwatchable)
        )
    return entries
