"""What the HTTP endpoint and `health_check` requests read: an immutable snapshot, health, board.

The loop thread builds a new `Snapshot` after changes and swaps it in whole; readers on any thread
see one consistent picture without a lock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from bridge.http import BoardEntry, HealthReport
from bridge.presence import Presence, format_timestamp
from bridge.store import SELF_ID, PresenceStore

if TYPE_CHECKING:
    from bridge.liveness import Liveness
    from bridge.service.mirror import Session
    from bridge.service.ports import MqttPort

SNAPSHOT_MAX_AGE_S = 0.5  # under a steady stream of inputs the HTTP snapshot lags at most this


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


class Reporter:
    """Keeps the snapshot fresh for readers on other threads and answers health and board.

    A rebuild costs O(users), so the loop marks the snapshot stale and rebuilds it when its queue
    is empty, at least every `SNAPSHOT_MAX_AGE_S` (once per notice made a 10,000-user start
    quadratic: 17 ms per notice, bench/RESULTS.md).
    """

    def __init__(
        self,
        *,
        store: PresenceStore,
        session: Session,
        mqtt: MqttPort,
        lights: Mapping[str, bytes],
        monotonic: Callable[[], float],
        grace_s: float,
        poll_timeout_s: float,
        poll_age: Callable[[], float] | None,
        liveness: Liveness | None,
    ) -> None:
        self._store, self._session, self._mqtt, self._lights = store, session, mqtt, lights
        self._monotonic = monotonic
        self._grace_s, self._poll_timeout_s = grace_s, poll_timeout_s
        self._poll_age, self._liveness = poll_age, liveness
        self.snapshot = Snapshot()
        self._dirty = False
        self._at = 0.0

    def mark_stale(self) -> None:
        self._dirty = True

    def refresh_if_due(self, idle: bool) -> None:
        if self._dirty and (idle or self._monotonic() - self._at >= SNAPSHOT_MAX_AGE_S):
            self.refresh()

    def refresh(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self._at = self._monotonic()
        s = self._session
        self.snapshot = take_snapshot(
            self._store,
            session=s.state,
            since=s.since,
            last_error=s.last_error,
            mqtt_connected=self._mqtt.connected,
            lights=self._lights,
        )

    def health(self) -> HealthReport:
        down_at = self._session.down_at
        return health(
            self.snapshot,
            mqtt_ok=self._mqtt.connected,
            session_down_for=0.0 if down_at is None else self._monotonic() - down_at,
            grace_s=self._grace_s,
            poll_age=self._poll_age() if self._poll_age is not None else None,
            poll_timeout_s=self._poll_timeout_s,
            stuck=self._liveness.stuck() if self._liveness is not None else (),
        )
