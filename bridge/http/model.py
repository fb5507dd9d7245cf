"""What the endpoint answers with: the health report, one board tile, and safe JSON.

No answer carries a secret: the inputs never hold one and nothing here dumps the config.
JSON answers escape ``<``, ``>`` and ``&`` so a hostile note stays inert even if a browser
were to sniff the body as HTML.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from bridge.presence import Presence, format_timestamp

# Only these keys of the health details reach the board: it may be shown on a kiosk or bound to
# a LAN, and `reasons` may carry error texts that are fine for an operator but not for a wall.
BOARD_BRIDGE_KEYS: tuple[str, ...] = ("status", "cwa", "mqtt", "session", "since")


@dataclass(frozen=True)
class HealthReport:
    """What `/healthz` answers. ``details`` becomes the JSON body, e.g.
    ``{"mqtt": "connected", "cwa": "online", "session": "online", "reasons": [], "since": "..."}``;
    ``status`` is set from ``healthy`` (``ok`` / ``unhealthy``)."""

    healthy: bool
    details: Mapping[str, object] = field(default_factory=dict)

    def body(self) -> dict[str, object]:
        return {**self.details, "status": "ok" if self.healthy else "unhealthy"}


@dataclass(frozen=True)
class BoardEntry:
    """One tile of the board; every field is a plain JSON value.

    ``is_self`` marks the signed-in account (id ``self``), shown as "you". ``unwatchable`` is
    why CWA cannot watch this user (e.g. "blocked by the user's privacy settings"); the board
    shows that reason instead of an ordinary Offline tile. ``watchable`` is False while the
    subscription is not (yet) in place, whatever the reason.
    """

    id: str
    name: str | None
    uri: str
    status: str
    idle: bool
    activity: str | None
    note: str | None
    out_of_office: bool
    last_change: str | None
    watchable: bool
    is_self: bool = False
    unwatchable: str | None = None

    @classmethod
    def from_presence(
        cls,
        id: str,
        presence: Presence,
        *,
        watchable: bool = True,
        is_self: bool | None = None,
        unwatchable: str | None = None,
    ) -> BoardEntry:
        return cls(
            id=id,
            name=presence.name,
            uri=presence.uri,
            status=presence.status.value,
            idle=presence.idle,
            activity=presence.activity,
            note=presence.note,
            out_of_office=presence.out_of_office,
            last_change=format_timestamp(presence.last_change),
            watchable=watchable and unwatchable is None,
            is_self=(id == "self") if is_self is None else is_self,
            unwatchable=unwatchable,
        )


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
    return str(value)


def dump_json(value: object) -> bytes:
    """Compact UTF-8 JSON with ``<``, ``>``, ``&`` escaped (still valid JSON, inert as HTML)."""
    text = json.dumps(value, ensure_ascii=False, default=_json_default, separators=(",", ":"))
    text = text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return text.encode("utf-8")
