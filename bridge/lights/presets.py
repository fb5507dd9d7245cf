"""Device commands for a light state, per preset (interface.md §8). Pure."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from bridge.lights.model import OFF_COLOR, LightState
from bridge.lights.spec import LightSpec


@dataclass(frozen=True, slots=True)
class LightCommand:
    """One MQTT message to a light device; published with ``mqtt.qos``."""

    topic: str
    payload: bytes
    retain: bool


_PLACEHOLDER = re.compile(r"\{(hex|HEX|r|g|b|status|activity)\}")


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def fill_template(template: str, color: str, state: LightState) -> str:
    """Replace the §8 placeholders in a ``raw`` payload template.

    Only the seven known ``{...}`` names are touched, so JSON templates like
    ``{"color": "{hex}"}`` keep their own braces (``str.format`` would choke on them).
    ``{status}`` and ``{activity}`` are empty when the light is off or overridden.
    """
    r, g, b = _rgb(color)
    values = {
        "hex": color,
        "HEX": color[1:],
        "r": str(r),
        "g": str(g),
        "b": str(b),
        "status": "" if state.color is None or state.status is None else str(state.status),
        "activity": "" if state.color is None or state.activity is None else state.activity,
    }
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def render(spec: LightSpec, state: LightState, previous: LightState | None) -> list[LightCommand]:
    """The commands that make ``spec``'s device show ``state``.

    ``previous`` is what the device was last told; None means unknown (start, broker reconnect).
    A wled light gets ``ON`` right before a colour when it was off or its state is unknown: WLED
    keeps a switched-off segment dark when only the colour changes.
    """
    retain = spec.retain
    color = state.color
    device = spec.device or ""
    if spec.preset == "wled":
        if color is None:
            return [LightCommand(f"wled/{device}", b"OFF", retain)]
        commands = []
        if previous is None or previous.color is None:
            commands.append(LightCommand(f"wled/{device}", b"ON", retain))
        commands.append(LightCommand(f"wled/{device}/col", color.encode(), retain))
        return commands
    if spec.preset == "tasmota":
        if color is None:
            return [LightCommand(f"cmnd/{device}/Power", b"OFF", retain)]
        return [LightCommand(f"cmnd/{device}/Color", color[1:].encode(), retain)]
    if spec.preset == "esphome":
        topic = f"{device}/light/{device}/command"
        if color is None:
            return [LightCommand(topic, b'{"state":"OFF"}', retain)]
        r, g, b = _rgb(color)
        body = {"state": "ON", "color": {"r": r, "g": g, "b": b}}
        return [LightCommand(topic, json.dumps(body, separators=(",", ":")).encode(), retain)]
    # raw: LightSpec guarantees topic and payload.
    topic = spec.topic or ""
    template = spec.payload or ""
    if color is None:
        # Without off_topic/off_payload, off is the normal payload with colour #000000 (§8).
        off_template = spec.off_payload if spec.off_payload is not None else template
        text = fill_template(off_template, OFF_COLOR, state)
        return [LightCommand(spec.off_topic or topic, text.encode(), retain)]
    return [LightCommand(topic, fill_template(template, color, state).encode(), retain)]
