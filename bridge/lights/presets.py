"""Device commands for a light state, per preset (docs/lights.md). Pure.

`render` gives the MQTT commands of the MQTT presets; `render_http` the request of an ``http``
light (sent by `bridge.lights.http_sender`); `redact_url` is how a light's URL may be shown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from bridge.lights.model import OFF_COLOR, LightState
from bridge.lights.spec import LightSpec

FULL_BRIGHTNESS = 255
ZIGBEE_MAX_LEVEL = 254


@dataclass(frozen=True, slots=True)
class LightCommand:
    """One MQTT message to a light device; published with ``mqtt.qos``."""

    topic: str
    payload: bytes
    retain: bool


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request to an ``http`` light. ``url`` and ``headers`` may hold secrets: never log them."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None

    def __repr__(self) -> str:  # a traceback or a debug line must not print a token
        return f"HttpRequest(method={self.method!r}, url={redact_url(self.url)!r}, body={self.body!r})"


_PLACEHOLDER = re.compile(r"\{(hex|HEX|r|g|b|status|activity|brightness)\}")


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def fill_template(
    template: str,
    color: str,
    state: LightState,
    brightness: int | None = None,
    escape: Callable[[str], str] = str,
) -> str:
    """Replace the placeholders in a ``raw`` payload or an ``http`` URL/body template.

    Only the eight known ``{...}`` names are touched, so JSON templates like
    ``{"color": "{hex}"}`` keep their own braces (``str.format`` would choke on them).
    ``{status}`` and ``{activity}`` are empty when the light is off or overridden;
    ``{brightness}`` is the light's brightness (255 when not set), 0 when off.
    ``escape`` is applied to every value (URL templates: percent-encoding).
    """
    r, g, b = _rgb(color)
    off = state.color is None
    values = {
        "hex": color,
        "HEX": color[1:],
        "r": str(r),
        "g": str(g),
        "b": str(b),
        "status": "" if off or state.status is None else str(state.status),
        "activity": "" if off or state.activity is None else state.activity,
        "brightness": "0" if off else str(brightness or FULL_BRIGHTNESS),
    }
    return _PLACEHOLDER.sub(lambda m: escape(values[m.group(1)]), template)


def _json(body: dict[str, object]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _dimmer(brightness: int) -> int:
    """Tasmota's Dimmer is 1-100: 1-255 scaled, never 0 (0 would switch the light off)."""
    return max(1, min(100, round(brightness * 100 / 255)))


def render(spec: LightSpec, state: LightState, previous: LightState | None) -> list[LightCommand]:
    """The MQTT commands that make ``spec``'s device show ``state`` ([] for an ``http`` light).

    ``previous`` is what the device was last told; None means unknown (start, broker reconnect).
    A wled light gets ``ON`` (or its brightness, which also switches it on) right before a colour
    when it was off or its state is unknown: WLED keeps a switched-off segment dark when only the
    colour changes. Tasmota's ``Color`` also sets the dimmer from the colour, so ``Dimmer`` follows it.
    """
    retain = spec.retain
    color = state.color
    device = spec.device or ""
    bri = spec.brightness
    if spec.preset == "http":
        return []
    if spec.preset == "wled":
        if color is None:
            return [LightCommand(f"wled/{device}", b"OFF", retain)]
        commands = []
        if previous is None or previous.color is None:
            on = b"ON" if bri is None else str(bri).encode()
            commands.append(LightCommand(f"wled/{device}", on, retain))
        commands.append(LightCommand(f"wled/{device}/col", color.encode(), retain))
        return commands
    if spec.preset == "tasmota":
        if color is None:
            return [LightCommand(f"cmnd/{device}/Power", b"OFF", retain)]
        commands = [LightCommand(f"cmnd/{device}/Color", color[1:].encode(), retain)]
        if bri is not None:
            commands.append(LightCommand(f"cmnd/{device}/Dimmer", str(_dimmer(bri)).encode(), retain))
        return commands
    if spec.preset in ("esphome", "zigbee2mqtt"):
        if spec.preset == "esphome":
            topic = f"{device}/light/{device}/command"
        else:
            topic = f"{spec.topic_prefix}/{device}/set"
        if color is None:
            return [LightCommand(topic, b'{"state":"OFF"}', retain)]
        body: dict[str, object] = {"state": "ON"}
        if bri is not None:
            # Zigbee levels end at 254; zigbee2mqtt documents brightness as 0-254.
            body["brightness"] = min(bri, ZIGBEE_MAX_LEVEL) if spec.preset == "zigbee2mqtt" else bri
        if spec.preset == "esphome":
            r, g, b = _rgb(color)
            body["color"] = {"r": r, "g": g, "b": b}
        else:
            body["color"] = {"hex": color}
        return [LightCommand(topic, _json(body), retain)]
    # raw: LightSpec guarantees topic and payload.
    topic = spec.topic or ""
    template = spec.payload or ""
    if color is None:
        # Without off_topic/off_payload, off is the normal payload with colour #000000.
        off_template = spec.off_payload if spec.off_payload is not None else template
        text = fill_template(off_template, OFF_COLOR, state, bri)
        return [LightCommand(spec.off_topic or topic, text.encode(), retain)]
    return [LightCommand(topic, fill_template(template, color, state, bri).encode(), retain)]


def _quote(value: str) -> str:
    return quote(value, safe="")


def render_http(spec: LightSpec, state: LightState) -> HttpRequest:
    """The request that makes ``spec``'s ``http`` light show ``state``.

    Off uses ``off_url``/``off_body`` when given, else ``url``/``body``, filled with ``#000000``.
    Values placed in the URL are percent-encoded (``#`` would start a fragment); the body gets them
    as they are.
    """
    color = state.color
    bri = spec.brightness
    url_template = spec.url or ""
    body_template = spec.body
    if color is None:
        color = OFF_COLOR
        url_template = spec.off_url or url_template
        body_template = spec.off_body if spec.off_body is not None else body_template
    url = fill_template(url_template, color, state, bri, _quote)
    body = None if body_template is None else fill_template(body_template, color, state, bri).encode()
    return HttpRequest(spec.method, url, tuple(spec.headers.items()), body)


def redact_url(url: str) -> str:
    """``url`` with its user info and query values replaced by ``***`` (for config output)."""
    try:
        parts = urlsplit(url)
        netloc = _host_port(parts.hostname or "", parts.port)
    except ValueError:
        return "***"
    if parts.username is not None or parts.password is not None:
        netloc = f"***@{netloc}"
    query = urlencode([(k, "***") for k, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def url_origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: all a log line may show (paths can hold webhook tokens)."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{_host_port(parts.hostname or '?', parts.port)}"
    except ValueError:
        return "?"


def _host_port(host: str, port: int | None) -> str:
    """``host[:port]``, an IPv6 address in brackets; never user info."""
    host = f"[{host}]" if ":" in host else host
    return host if port is None else f"{host}:{port}"
