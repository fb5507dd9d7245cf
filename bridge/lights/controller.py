"""Drives the status lights: keeps presence, overrides and what each light last showed, and
returns what to publish (docs/lights.md). No MQTT, no threads: the caller publishes the
`Outgoing` messages, calls `on_tick` at `next_wakeup()`, and serialises calls (not thread-safe).

What is sent:
- a light's device commands when what it shows changes (for wled/tasmota/esphome/zigbee2mqtt: the
  colour; for raw and http: the rendered payload or request, which may carry
  ``{status}``/``{activity}``), on start, after a broker reconnect (not for http lights: the broker
  is not between the bridge and them), and at schedule boundaries / override expiry when that
  changes the light;
- its retained state (``<base>/lights/<name>``) when the state JSON changes, and on start/reconnect.
On start and reconnect the device's state is unknown, so commands are rendered with no previous
state (a wled light gets ``ON`` before its colour). Overrides live in memory: a restart drops them.

An http light's request goes out as an ``"http"`` `Outgoing`; the caller hands it to its sender
and reports the outcome with `delivered`, which keeps ``delivered`` in the light's state honest:
false from the moment a new request is wanted until the device confirmed it.
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
from bridge.lights.presets import HttpRequest, render, render_http
from bridge.lights.schedule import next_boundary
from bridge.lights.spec import LightSpec
from bridge.presence import DEFAULT_PRIORITY, Presence, Status

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to publish.

    ``kind`` "command": to the device, ``topic`` is the full topic, ``retain`` = the light's
    ``retain``. ``kind`` "state": the light's retained state for ``<base>/lights/<name>``
    (``topic`` None: the owner builds it with `Topics.light_state`); always retained. ``kind``
    "http": ``request`` is the request for an http light (``topic`` None, ``payload`` its body or
    b""); nothing to publish.
    """

    kind: Literal["command", "state", "http"]
    light: str
    topic: str | None
    payload: bytes
    retain: bool
    request: HttpRequest | None = None


class LightController:
    def __init__(
        self,
        specs: Sequence[LightSpec],
        priority: Sequence[Status] = DEFAULT_PRIORITY,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``priority``: earlier = busier. ``clock``: timezone-aware now (default: the system clock in
        UTC; tests inject one). State messages carry no topic: the owner publishes them at
        ``Topics.light_state(name)``.
        """
        names = [spec.name for spec in specs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"light names must be unique: {', '.join(duplicates)}")
        self._specs = {spec.name: spec for spec in specs}
        self._priority = tuple(Status(s) for s in priority)
        self._clock = clock if clock is not None else _system_clock
        self._presences: dict[str, Presence | None] = {}
        self._overrides: dict[str, Override] = {}
        self._shown: dict[str, LightState] = {}  # what each light was last told to show
        self._published: dict[str, bytes] = {}  # each light's state payload last returned
        # http lights only: has the device confirmed the request for what it shows now?
        self._delivered: dict[str, bool] = {s.name: False for s in specs if s.preset == "http"}

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
        """After a broker reconnect, MQTT commands and state go out again; http lights get no
        request (they did not lose anything) unless what they should show changed."""
        return self._evaluate(force=True, resend_http=False)

    def delivered(self, name: str, ok: bool) -> list[Outgoing]:
        """An http light's sender reports whether its newest request reached the device: the
        light's state (``delivered``) when that changes it. Unknown or non-http lights: []."""
        if name not in self._delivered or name not in self._shown:
            return []
        self._delivered[name] = ok
        return self._state_message(name, self._shown[name], force=False)

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

    def _evaluate(self, force: bool, resend_http: bool = True) -> list[Outgoing]:
        now = self._clock()
        self._drop_expired(now)
        out: list[Outgoing] = []
        for name, spec in self._specs.items():
            new = decide(spec, self._presences, self._priority, now, self._overrides.get(name))
            old = self._shown.get(name)
            if spec.preset == "http":
                request = render_http(spec, new)
                if (force and resend_http) or old is None or request != render_http(spec, old):
                    self._delivered[name] = False
                    out.append(Outgoing("http", name, None, request.body or b"", False, request))
            else:
                if force or old is None:
                    commands = render(spec, new, None)
                elif render(spec, new, new) != render(spec, old, old):
                    # Compare steady-state renderings: same colour (and raw payload) = nothing to send.
                    commands = render(spec, new, old)
                else:
                    commands = []
                out += [Outgoing("command", name, c.topic, c.payload, c.retain) for c in commands]
            out += self._state_message(name, new, force or old is None)
            if old != new:
                log.debug("lights.changed light=%s color=%s because=%s", name, new.color, new.because)
            self._shown[name] = new
        return out

    def _state_message(self, name: str, state: LightState, force: bool) -> list[Outgoing]:
        payload = light_state_payload(state, self._delivered.get(name))
        if not force and self._published.get(name) == payload:
            return []
        self._published[name] = payload
        return [Outgoing("state", name, None, payload, True)]


def _system_clock() -> datetime:
    return datetime.now(UTC)


def _with_transaction(response: dict[str, Any], transaction: Any) -> dict[str, Any]:
    if transaction is not None:
        response["transaction"] = transaction
    return response
