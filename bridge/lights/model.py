"""What a light should show and why (docs/lights.md). Pure: no I/O, no clock reads.

`decide` turns the watched users' presence, the schedule and an override into a `LightState`;
`presets.render` turns a state into the device's MQTT commands; `light_state_payload` is the
retained ``<base>/lights/<name>`` JSON; `parse_override` reads ``<base>/lights/<name>/set``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bridge.lights.schedule import in_schedule, next_boundary
from bridge.lights.spec import DEFAULT_PALETTE, OFF_STATUSES, LightSpec, normalize_color
from bridge.presence import Presence, Status, format_timestamp

__all__ = [
    "LightState",
    "Override",
    "decide",
    "light_state_payload",
    "next_boundary",
    "parse_override",
    "status_color",
]

OFF_COLOR = "#000000"
OVERRIDE = "override"


@dataclass(frozen=True, slots=True)
class LightState:
    """What a light shows. ``color`` None = off; ``because`` = the deciding id, ``"override"`` or None."""

    color: str | None
    status: Status | None
    activity: str | None
    because: str | None
    scheduled_off: bool


@dataclass(frozen=True, slots=True)
class Override:
    """A manual colour from ``<base>/lights/<name>/set``: ``color`` None = off; ``until`` None = no end."""

    color: str | None
    until: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until


def status_color(status: Status) -> str:
    """The ``<base>/<id>/color`` payload: the default palette, ``#000000`` for offline/unknown.

    It ignores every light's ``colors``/``activity_colors``: one topic per user, many lights.
    """
    return DEFAULT_PALETTE.get(status, OFF_COLOR)


def _rank(priority: Sequence[Status]) -> dict[Status, int]:
    # A status missing from a user's `priority` list ranks after all listed ones.
    rank: dict[Status, int] = {}
    for index, status in enumerate(priority):
        rank.setdefault(Status(status), index)
    return rank


def _busiest(
    spec: LightSpec, presences: Mapping[str, Presence | None], rank: Mapping[Status, int]
) -> tuple[Status, str, Presence | None, bool]:
    """The busiest watched status, its user, their presence and whether it has a colour.

    Users with a colour always beat offline/unknown ones; a user not reported yet counts as
    unknown. Ties go to the first id in ``watch``.
    """
    best: tuple[tuple[bool, int, int], Status, str, Presence | None] | None = None
    for order, user in enumerate(spec.watch):
        presence = presences.get(user)
        status = Status.UNKNOWN if presence is None else presence.status
        key = (status in OFF_STATUSES, rank.get(status, len(rank)), order)
        if best is None or key < best[0]:
            best = (key, status, user, presence)
    assert best is not None  # noqa: S101 - LightSpec guarantees a non-empty watch list
    key, status, user, presence = best
    return status, user, presence, not key[0]


def decide(
    spec: LightSpec,
    presences: Mapping[str, Presence | None],
    priority: Sequence[Status],
    now: datetime,
    override: Override | None = None,
) -> LightState:
    """The state ``spec``'s light should show at ``now``.

    Order of precedence: an active override (even outside the schedule: a person asked for it;
    ``scheduled_off`` is then false; ``status`` is None), then the schedule (outside it: off,
    nobody decided), then the busiest watched user by ``priority`` (earlier = busier), ties to the
    first id in ``watch``. Offline/unknown/missing users have no colour and never decide while
    someone else is on; when all are, the light is off with ``because`` None. ``status`` is the
    busiest watched status in every case but an override, also offline/unknown and outside the
    schedule: it says what the light would be about. The deciding user's activity colour, if the
    light has one for it, wins over their status colour.
    """
    if override is not None and override.active(now):
        return LightState(
            color=override.color, status=None, activity=None, because=OVERRIDE, scheduled_off=False
        )
    status, user, presence, has_color = _busiest(spec, presences, _rank(priority))
    if spec.schedule is not None and not in_schedule(spec.schedule, now):
        return LightState(color=None, status=status, activity=None, because=None, scheduled_off=True)
    if not has_color or presence is None:
        return LightState(color=None, status=status, activity=None, because=None, scheduled_off=False)
    color = spec.activity_colors.get(presence.activity or "") or spec.palette()[status]
    return LightState(
        color=color, status=status, activity=presence.activity, because=user, scheduled_off=False
    )


def light_state_payload(state: LightState, delivered: bool | None = None) -> bytes:
    """The retained ``<base>/lights/<name>`` JSON.

    ``color``, ``status``, ``because``, ``scheduled_off``, plus ``activity`` (the deciding user's
    activity token, or null: it tells a user why an ``activity_colors`` colour is showing), plus,
    for ``http`` lights (``delivered`` not None), whether the device confirmed the current state.
    """
    body: dict[str, object] = {
        "color": state.color,
        "status": None if state.status is None else str(state.status),
        "activity": state.activity,
        "because": state.because,
        "scheduled_off": state.scheduled_off,
    }
    if delivered is not None:
        body["delivered"] = delivered
    return json.dumps(body, separators=(",", ":")).encode()


_OVERRIDE_KEYS = frozenset({"override", "for_s", "transaction"})


def parse_override(raw: bytes, now: datetime) -> Override | str | None:
    """Read a ``<base>/lights/<name>/set`` payload.

    ``{"override": "#RRGGBB" | "off" | null, "for_s": N}``: an `Override` to apply, ``None`` to clear
    the override, or a ``str`` saying precisely what is wrong. ``for_s`` (optional, positive
    seconds) counts from ``now``. ``transaction`` is allowed and ignored here (the controller echoes it).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "payload is not UTF-8 text"
    if not text.strip():
        return 'empty payload: expected a JSON object like {"override": "#FF0000", "for_s": 600}'
    try:
        body = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        return f"payload is not valid JSON: {exc}"
    if not isinstance(body, dict):
        return f"payload must be a JSON object, got {_json_type(body)}"
    unknown = sorted(set(body) - _OVERRIDE_KEYS)
    if unknown:
        return f"unknown key(s) {', '.join(unknown)}: allowed are override, for_s, transaction"
    if "override" not in body:
        return 'missing key "override": give "#RRGGBB", "off" or null'
    value = body["override"]
    for_s = body.get("for_s")
    if value is None:
        if for_s is not None:
            return "for_s cannot be combined with override null (null clears the override)"
        return None
    if not isinstance(value, str):
        return f'override must be "#RRGGBB", "off" or null, got {_json_type(value)}'
    color: str | None
    if value.strip().lower() == "off":
        color = None
    else:
        try:
            color = normalize_color(value)
        except ValueError:
            return f'override must be "#RRGGBB", "off" or null, got {value!r}'
    if for_s is None:
        return Override(color=color, until=None)
    if isinstance(for_s, bool) or not isinstance(for_s, int | float):
        return f"for_s must be a number of seconds, got {_json_type(for_s)}"
    if not math.isfinite(for_s) or for_s <= 0:
        return f"for_s must be a positive number of seconds, got {for_s}"
    try:
        until = now + timedelta(seconds=for_s)
    except OverflowError:
        return f"for_s is too large: {for_s}"
    return Override(color=color, until=until)


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not allowed")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def override_summary(override: Override | None) -> dict[str, str | None]:
    """The ``data`` of an override response: the override (colour, ``off`` or null) and its end."""
    if override is None:
        return {"override": None, "until": None}
    until = None if override.until is None else format_timestamp(override.until.astimezone(UTC))
    return {"override": override.color or "off", "until": until}
