"""zigbee2mqtt and http lights and brightness, rendered exactly (docs/lights.md, "More lights")."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.lights.controller import LightController
from bridge.lights.model import LightState
from bridge.lights.presets import HttpRequest, LightCommand, redact_url, render, render_http, url_origin
from bridge.lights.spec import LightSpec
from bridge.presence import DEFAULT_PRIORITY, Status
from tests.support.lights import FakeClock, light, presence

BUSY = LightState("#D50000", Status.BUSY, "in_a_meeting", "bob", False)
GREEN = LightState("#00C853", Status.AVAILABLE, None, "carol", False)
OFF = LightState(None, Status.OFFLINE, None, None, False)


def cmd(topic: str, payload: str) -> LightCommand:
    return LightCommand(topic, payload.encode(), False)


def z2m(**kwargs: Any) -> LightSpec:
    return light(preset="zigbee2mqtt", device="Office Hue", **kwargs)


def test_zigbee2mqtt_sets_state_and_hex_colour_on_its_friendly_name() -> None:
    assert render(z2m(), BUSY, None) == [
        cmd("zigbee2mqtt/Office Hue/set", '{"state":"ON","color":{"hex":"#D50000"}}')
    ]
    assert render(z2m(), OFF, BUSY) == [cmd("zigbee2mqtt/Office Hue/set", '{"state":"OFF"}')]
    assert render(z2m(topic_prefix="z2m/house"), GREEN, BUSY) == [
        cmd("z2m/house/Office Hue/set", '{"state":"ON","color":{"hex":"#00C853"}}')
    ]


@pytest.mark.parametrize(
    ("spec", "on", "off"),
    [
        (
            light(brightness=128),
            [cmd("wled/door", "128"), cmd("wled/door/col", "#D50000")],  # the number also switches on
            [cmd("wled/door", "OFF")],
        ),
        (
            light(preset="tasmota", device="desk", brightness=128),
            [cmd("cmnd/desk/Color", "D50000"), cmd("cmnd/desk/Dimmer", "50")],  # after Color: it sets it
            [cmd("cmnd/desk/Power", "OFF")],
        ),
        (
            light(preset="tasmota", device="desk", brightness=1),
            [cmd("cmnd/desk/Color", "D50000"), cmd("cmnd/desk/Dimmer", "1")],  # never 0 = off
            [cmd("cmnd/desk/Power", "OFF")],
        ),
        (
            light(preset="tasmota", device="desk", brightness=255),
            [cmd("cmnd/desk/Color", "D50000"), cmd("cmnd/desk/Dimmer", "100")],
            [cmd("cmnd/desk/Power", "OFF")],
        ),
        (
            light(preset="esphome", device="hall", brightness=77),
            [cmd("hall/light/hall/command", '{"state":"ON","brightness":77,"color":{"r":213,"g":0,"b":0}}')],
            [cmd("hall/light/hall/command", '{"state":"OFF"}')],
        ),
        (
            z2m(brightness=200),
            [cmd("zigbee2mqtt/Office Hue/set", '{"state":"ON","brightness":200,"color":{"hex":"#D50000"}}')],
            [cmd("zigbee2mqtt/Office Hue/set", '{"state":"OFF"}')],
        ),
        (
            z2m(brightness=255),
            [cmd("zigbee2mqtt/Office Hue/set", '{"state":"ON","brightness":254,"color":{"hex":"#D50000"}}')],
            [cmd("zigbee2mqtt/Office Hue/set", '{"state":"OFF"}')],  # Zigbee's levels end at 254
        ),
        (
            light(preset="raw", topic="sign", payload="{hex}@{brightness}", brightness=9),
            [cmd("sign", "#D50000@9")],
            [cmd("sign", "#000000@0")],
        ),
        (
            light(preset="raw", topic="sign", payload="{hex}@{brightness}"),
            [cmd("sign", "#D50000@255")],  # not set: full
            [cmd("sign", "#000000@0")],
        ),
    ],
)
def test_brightness_in_each_presets_own_form(
    spec: LightSpec, on: list[LightCommand], off: list[LightCommand]
) -> None:
    assert render(spec, BUSY, None) == on
    assert render(spec, OFF, BUSY) == off


def test_wled_with_brightness_when_already_on_sends_only_the_colour() -> None:
    assert render(light(brightness=128), GREEN, BUSY) == [cmd("wled/door/col", "#00C853")]


def http(**kwargs: Any) -> LightSpec:
    kwargs.setdefault("url", "http://lamp.local/set?color={hex}&why={status}&act={activity}")
    return light(preset="http", **kwargs)


def test_http_url_placeholders_are_url_encoded_and_the_body_is_not() -> None:
    spec = http(body='{"color":"{hex}","bri":{brightness},"rgb":[{r},{g},{b}]}', brightness=64)
    assert render_http(spec, BUSY) == HttpRequest(
        "POST",
        "http://lamp.local/set?color=%23D50000&why=busy&act=in_a_meeting",
        (),
        b'{"color":"#D50000","bri":64,"rgb":[213,0,0]}',
    )
    assert render(spec, BUSY, None) == []  # nothing goes over MQTT


def test_http_off_defaults_to_the_colour_request_in_black() -> None:
    spec = http(method="PUT", body="{HEX}/{brightness}", headers={"X-Key": "k"})
    assert render_http(spec, OFF) == HttpRequest(
        "PUT", "http://lamp.local/set?color=%23000000&why=&act=", (("X-Key", "k"),), b"000000/0"
    )


def test_http_off_url_and_off_body() -> None:
    spec = http(method="GET", off_url="http://lamp.local/off/{HEX}", off_body="")
    assert render_http(spec, OFF) == HttpRequest("GET", "http://lamp.local/off/000000", (), b"")
    assert render_http(spec, GREEN).body is None


def test_secrets_of_a_url_never_show() -> None:
    url = "https://me:pw-Zq8@lamp.local:8443/hooks/abc123?token=s3cret&x=1"
    assert redact_url(url) == "https://***@lamp.local:8443/hooks/abc123?token=***&x=***"
    assert url_origin(url) == "https://lamp.local:8443"
    request = HttpRequest("GET", url, (("Authorization", "Bearer s3cret"),), None)
    assert "s3cret" not in repr(request)
    assert "pw-Zq8" not in repr(request)


def states(out: list[Any]) -> dict[str, dict[str, Any]]:
    return {o.light: json.loads(o.payload) for o in out if o.kind == "state"}


def test_controller_hands_http_lights_a_request_and_tracks_delivery(light_clock: FakeClock) -> None:
    lamp = http(name="lamp", url="http://lamp.local/{HEX}", watch=("bob",))
    ctl = LightController([lamp, light("door", watch=("bob",))], DEFAULT_PRIORITY, light_clock)
    ctl.on_presence({"bob": presence(Status.BUSY)})
    out = ctl.on_start()
    assert [(o.kind, o.light, o.request) for o in out if o.kind != "state"] == [
        ("http", "lamp", HttpRequest("POST", "http://lamp.local/D50000", (), None)),
        ("command", "door", None),
        ("command", "door", None),
    ]
    assert states(out)["lamp"]["delivered"] is False
    assert "delivered" not in states(out)["door"]  # only http lights can say

    assert states(ctl.delivered("lamp", ok=True)) == {
        "lamp": {
            "color": "#D50000",
            "status": "busy",
            "activity": None,
            "because": "bob",
            "scheduled_off": False,
            "delivered": True,
        }
    }
    assert ctl.delivered("lamp", ok=True) == []  # nothing new
    assert ctl.delivered("door", ok=True) == []  # not an http light

    # A new colour: a new request, and the state is honest that it has not arrived yet.
    out = ctl.on_presence({"bob": presence(Status.AVAILABLE)})
    assert [o.request for o in out if o.kind == "http"] == [
        HttpRequest("POST", "http://lamp.local/00C853", (), None)
    ]
    assert states(out)["lamp"]["delivered"] is False
    assert states(ctl.delivered("lamp", ok=False)) == {}  # still false: no change to publish
    assert states(ctl.delivered("lamp", ok=True))["lamp"]["delivered"] is True

    # A broker reconnect repeats MQTT commands and every state, but the http light lost nothing.
    out = ctl.on_reconnect()
    assert [o.kind for o in out if o.light == "lamp"] == ["state"]
    assert states(out)["lamp"]["delivered"] is True
