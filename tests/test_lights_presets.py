"""Exact device topics and payloads per preset (§8), and LightSpec validation."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.lights.model import LightState
from bridge.lights.presets import LightCommand, render
from bridge.lights.spec import LightSpec
from bridge.presence import Status
from bridge.wiring import light_spec
from tests.support.lights import light

BUSY = LightState("#D50000", Status.BUSY, "in_a_meeting", "bob", False)
GREEN = LightState("#00C853", Status.AVAILABLE, None, "carol", False)
OFF = LightState(None, None, None, None, False)
OVERRIDDEN = LightState("#102030", None, None, "override", False)


def cmd(topic: str, payload: str, retain: bool = False) -> LightCommand:
    return LightCommand(topic, payload.encode(), retain)


def test_wled_colour_when_it_was_on() -> None:
    assert render(light(preset="wled", device="door"), BUSY, GREEN) == [cmd("wled/door/col", "#D50000")]


def test_wled_gets_on_right_before_its_colour_after_being_off() -> None:
    assert render(light(device="door"), BUSY, OFF) == [
        cmd("wled/door", "ON"),
        cmd("wled/door/col", "#D50000"),
    ]


def test_wled_unknown_previous_state_also_gets_on_first() -> None:
    assert render(light(device="door"), GREEN, None) == [
        cmd("wled/door", "ON"),
        cmd("wled/door/col", "#00C853"),
    ]


def test_wled_off() -> None:
    assert render(light(device="door"), OFF, BUSY) == [cmd("wled/door", "OFF")]
    assert render(light(device="door"), OFF, None) == [cmd("wled/door", "OFF")]


def test_tasmota() -> None:
    spec = light(preset="tasmota", device="lamp")
    assert render(spec, BUSY, None) == [cmd("cmnd/lamp/Color", "D50000")]
    assert render(spec, OFF, BUSY) == [cmd("cmnd/lamp/Power", "OFF")]


def test_esphome() -> None:
    spec = light(preset="esphome", device="desk")
    assert render(spec, BUSY, None) == [
        cmd("desk/light/desk/command", '{"state":"ON","color":{"r":213,"g":0,"b":0}}')
    ]
    assert render(spec, OFF, BUSY) == [cmd("desk/light/desk/command", '{"state":"OFF"}')]


def test_retain_flag_follows_the_light() -> None:
    spec = light(preset="tasmota", device="lamp", retain=True)
    assert render(spec, BUSY, None) == [cmd("cmnd/lamp/Color", "D50000", retain=True)]
    assert all(c.retain for c in render(light(retain=True), BUSY, None))


ALL = "{hex}|{HEX}|{r}|{g}|{b}|{status}|{activity}"


def raw(**kwargs: str) -> LightSpec:
    kwargs.setdefault("payload", ALL)
    return light(preset="raw", topic="home/busy", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "payload"),
    [
        (BUSY, "#D50000|D50000|213|0|0|busy|in_a_meeting"),
        (GREEN, "#00C853|00C853|0|200|83|available|"),
        (OVERRIDDEN, "#102030|102030|16|32|48||"),
        (OFF, "#000000|000000|0|0|0||"),  # off without off_topic/off_payload: colour #000000
    ],
)
def test_raw_template_placeholders(state: LightState, payload: str) -> None:
    assert render(raw(), state, None) == [cmd("home/busy", payload)]


def test_raw_json_template_keeps_its_own_braces() -> None:
    spec = raw(payload='{"color": "{hex}", "rgb": [{r}, {g}, {b}], "why": "{status}", "x": "{unknown}"}')
    [command] = render(spec, BUSY, None)
    assert command.payload == b'{"color": "#D50000", "rgb": [213, 0, 0], "why": "busy", "x": "{unknown}"}'


def test_raw_off_topic_and_payload() -> None:
    assert render(raw(off_topic="home/busy/power", off_payload="0"), OFF, BUSY) == [
        cmd("home/busy/power", "0")
    ]
    assert render(raw(off_payload="off"), OFF, BUSY) == [cmd("home/busy", "off")]
    assert render(raw(off_topic="home/busy/power"), OFF, BUSY) == [
        cmd("home/busy/power", "#000000|000000|0|0|0||")
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Office Door"}, "name must match"),
        ({"watch": ()}, "at least one id"),
        ({"preset": "hue"}, "preset must be one of"),
        ({"preset": "wled", "device": None}, "needs device"),
        ({"preset": "raw", "topic": None, "payload": "{hex}"}, "needs topic and payload"),
        ({"preset": "raw", "topic": "a/+", "payload": "{hex}"}, "wildcards"),
        ({"colors": {"busy": "red"}}, "#RRGGBB"),
        ({"colors": {"napping": "#FF0000"}}, "napping"),
        ({"activity_colors": {"on_the_phone": "#12345"}}, "#RRGGBB"),
    ],
)
def test_light_spec_rejects_bad_config(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        light(**kwargs)


def test_light_spec_normalises_colours_and_activity_names() -> None:
    spec = light(colors={"busy": "#ff0000"}, activity_colors={"OnThePhone": "#ff00ff"})
    assert dict(spec.colors) == {Status.BUSY: "#FF0000"}
    assert dict(spec.activity_colors) == {"on_the_phone": "#FF00FF"}


def test_light_spec_from_the_lights_yaml_config() -> None:
    from datetime import time
    from zoneinfo import ZoneInfo

    from bridge.config import LightConfig

    cfg = LightConfig.model_validate(
        {
            "name": "office-door",
            "watch": ["bob", "carol"],
            "preset": "wled",
            "device": "door",
            "colors": {"busy": "#ff0000"},
            "activity_colors": {"on-the-phone": "#FF00FF"},
            "schedule": {"days": "mon-fri", "from": "08:00", "to": "18:00", "timezone": "Europe/Berlin"},
        }
    )
    spec = light_spec(cfg)
    assert (spec.name, spec.watch, spec.preset, spec.device, spec.retain) == (
        "office-door",
        ("bob", "carol"),
        "wled",
        "door",
        False,
    )
    assert dict(spec.colors) == {Status.BUSY: "#FF0000"}
    assert dict(spec.activity_colors) == {"on_the_phone": "#FF00FF"}
    assert spec.schedule is not None
    assert (spec.schedule.days, spec.schedule.start, spec.schedule.end, spec.schedule.tz) == (
        frozenset(range(5)),
        time(8),
        time(18),
        ZoneInfo("Europe/Berlin"),
    )
