"""Drives the status lights: keeps presence, overrides and what each light last showed, and
returns what to publish (interface.md §8). No MQTT, no threads: the caller publishes the
`Outgoing` messages, calls `on_tick` at `next_wakeup()`, and serialises calls (not thread-safe).

What is sent:
- a light's device commands when what it shows changes (for wled/tasmota/esphome: the colour; for
  raw: the rendered payload, which may carry ``{status}``/``{activity}``), on start, after a broker
  reconnect, and at schedule boundaries / override expiry when that changes the light;
- its retained state (``<base>/lights/<name>``) when the state JSON changes, and on start/reconnect.
On start and reconnect the device's state is unknown, so commands are rendered with no previous
state (a wled light gets ``ON`` before its colour). Overrides live in memory: a restart drops them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from bridge.commands import Rejected, parse_transaction
from bridge.lights.model import (
    LightState,
    Override,
    decide,
    light_state_payload,
    override_summary,
    parse_override,
)
from bridge.lights.presets import render
from bridge.lights.schedule import next_boundary
from bridge.lights.spec import DEFAULT_PRIORITY, LightSpec
from bridge.presence import Presence, Status

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to publish.

    ``kind`` "command": to the device, ``topic`` is the full topic, ``retain`` = the light's
    ``retain``. ``kind`` "state": the light's retained state for ``<base>/lights/<name>``; ``topic``
    is that topic when the controller was given ``base_topic``, else None (build it with
    `state_topic`). Always retained.
    """

    kind: Literal["command", "state"]
    light: str
    topic: str | None
    payload: bytes
    retain: bool


def state_topic(base_topic: str, light: str) -> str:
    """``<base>/lights/<name>``: the light's retained state (interface.md §8)."""
    return f"{base_topic}/lights/{light}"


def set_topic(base_topic: str, light: str) -> str:
    """``<base>/lights/<name>/set``: the override command topic."""
    return f"{base_topic}/lights/{light}/set"


def response_topic(base_topic: str, light: str) -> str:
    """``<base>/bridge/response/lights/<name>/set``: where `set_override`'s response goes."""
    return f"{base_topic}/bridge/response/lights/{light}/set"


class LightController:
    def __init__(
        self,
        specs: Sequence[LightSpec],
        priority: Sequence[Status] = DEFAULT_PRIORITY,
        clock: Callable[[], datetime] | None = None,
        *,
        base_topic: str | None = None,
    ) -> None:
        """``priority``: earlier = busier. ``clock``: timezone-aware now (default: the system clock in
        UTC; tests inject one). ``base_topic``: when given, state messages carry their full topic
        ``state_topic(base_topic, name)``; without it their ``topic`` is None.
        """
        names = [spec.name for spec in specs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"light names must be unique: {', '.join(duplicates)}")
        self._specs = {spec.name: spec for spec in specs}
        self._priority = tuple(Status(s) for s in priority)
        self._clock = clock if clock is not None else _system_clock
        self._base_topic = base_topic
        self._presences: dict[str, Presence | None] = {}
        self._overrides: dict[str, Override] = {}
        self._shown: dict[str, LightState] = {}  # what each light was last told to show

    def names(self) -> tuple[str, ...]:
        """The light names, in configuration order."""
        return tuple(self._specs)

    def state(self, name: str) -> LightState | None:
        """What light ``name`` was last told to show (None before the first evaluation)."""
        return self._shown.get(name)

    def on_presence(self, presences: Mapping[str, Presence | None]) -> list[Outgoing]:
        """Merge presence updates (id → presence; None forgets the user) and report changed lights."""
        self._presences.update(presences)
        return self._evaluate(force=False)

    def on_start(self) -> list[Outgoing]:
        """Every light's commands and state: the devices' state is unknown at start."""
        return self._evaluate(force=True)

    def on_reconnect(self) -> list[Outgoing]:
        """Same as `on_start`: after a broker reconnect, commands and state go out again."""
        return self._evaluate(force=True)

    def on_tick(self) -> list[Outgoing]:
        """Apply schedule boundaries and override expiries reached by ``clock()``."""
        return self._evaluate(force=False)

    def next_wakeup(self) -> datetime | None:
        """When `on_tick` must next run: the earliest schedule boundary or override expiry; None = never."""
        now = self._clock()
        moments = [o.until for o in self._overrides.values() if o.until is not None and o.active(now)]
        moments += [next_boundary(s.schedule, now) for s in self._specs.values() if s.schedule is not None]
        return min(moments, default=None)

    def set_override(self, name: str, raw: bytes) -> tuple[list[Outgoing], dict[str, Any]]:
        """Handle ``<base>/lights/<name>/set``: returns the messages and the response body.

        Response: ``{"status": "ok", "data": {"light", "override", "until"}}`` or
        ``{"status": "error", "error": "..."}``, with the request's ``transaction`` echoed.
        """
        transaction = parse_transaction(raw)
        response: dict[str, Any]
        if isinstance(transaction, Rejected):
            return [], {"status": "error", "error": transaction.error}
        if name not in self._specs:
            response = {"status": "error", "error": f"unknown light {name!r}"}
            log.warning("lights.override.rejected light=%r reason=unknown_light", name)
            return [], _with_transaction(response, transaction)
        now = self._clock()
        parsed = parse_override(raw, now)
        if isinstance(parsed, str):
            log.warning("lights.override.rejected light=%s reason=%r", name, parsed)
            return [], _with_transaction({"status": "error", "error": parsed}, transaction)
        if parsed is None:
            self._overrides.pop(name, None)
            log.info("lights.override.cleared light=%s", name)
        else:
            self._overrides[name] = parsed
            log.info(
                "lights.override.set light=%s color=%s until=%s", name, parsed.color or "off", parsed.until
            )
        response = {"status": "ok", "data": {"light": name, **override_summary(parsed)}}
        return self._evaluate(force=False), _with_transaction(response, transaction)

    def _drop_expired(self, now: datetime) -> None:
        for name, override in list(self._overrides.items()):
            if not override.active(now):
                del self._overrides[name]
                log.info("lights.override.expired light=%s", name)

    def _evaluate(self, force: bool) -> list[Outgoing]:
        now = self._clock()
        self._drop_expired(now)
        out: list[Outgoing] = []
        for name, spec in self._specs.items():
            new = decide(spec, self._presences, self._priority, now, self._overrides.get(name))
            old = self._shown.get(name)
            if force or old is None:
                commands = render(spec, new, None)
            elif render(spec, new, new) != render(spec, old, old):
                # Compare steady-state renderings: same colour (and raw payload) = nothing to send.
                commands = render(spec, new, old)
            else:
                commands = []
            out += [Outgoing("command", name, c.topic, c.payload, c.retain) for c in commands]
            payload = light_state_payload(new)
            if force or old is None or payload != light_state_payload(old):
                topic = None if self._base_topic is None else state_topic(self._base_topic, name)
                out.append(Outgoing("state", name, topic, payload, True))
            if old != new:
                log.debug("lights.changed light=%s color=%s because=%s", name, new.color, new.because)
            self._shown[name] = new
        return out


def _system_clock() -> datetime:
    return datetime.now(UTC)


def _with_transaction(response: dict[str, Any], transaction: Any) -> dict[str, Any]:
    if transaction is not None:
        response["transaction"] = transaction
    return response
