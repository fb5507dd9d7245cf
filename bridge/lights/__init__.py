"""Status lights (docs/lights.md): a pure model (`spec`, `schedule`, `model`, `presets`) and a
`LightController` that returns what to publish. Imports no MQTT, network, threading or time."""

from bridge.lights.controller import LightController, Outgoing
from bridge.lights.model import (
    LightState,
    Override,
    decide,
    light_state_payload,
    parse_override,
    status_color,
)
from bridge.lights.presets import LightCommand, render
from bridge.lights.schedule import in_schedule, next_boundary
from bridge.lights.spec import (
    DEFAULT_PALETTE,
    LightSpec,
    ScheduleSpec,
)

__all__ = [
    "DEFAULT_PALETTE",
    "LightCommand",
    "LightController",
    "LightSpec",
    "LightState",
    "Outgoing",
    "Override",
    "ScheduleSpec",
    "decide",
    "in_schedule",
    "light_state_payload",
    "next_boundary",
    "parse_override",
    "render",
    "status_color",
]
