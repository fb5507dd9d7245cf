"""The 0.2 light keys in the configuration: each mistake named by its key path, secrets never shown."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.config import Settings, load_settings
from bridge.errors import ConfigError
from bridge.wiring import light_spec
from tests.support.config import BASE_YAML, PASSWORD_ENV

TOKEN = "t0ken-Zq8-s3cret"  # looks like a secret on purpose: every output is grepped for it


def light_yaml(**fields: object) -> str:
    body = {"name": "door", "watch": ["bob"], **fields}
    return BASE_YAML + "lights:\n  - " + json.dumps({k: v for k, v in body.items() if v is not None}) + "\n"


def problems(write_config: Callable[[str], Path], **fields: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(write_config(light_yaml(**fields)), env=PASSWORD_ENV)
    return info.value.problems


HTTP = {"preset": "http", "url": "http://127.0.0.1:8080/color?hex={hex}"}
Z2M = {"preset": "zigbee2mqtt", "device": "Office Hue"}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"preset": "http"}, ["lights[0].url: required for preset http"]),
        (
            {**HTTP, "url": "ftp://lamp/set"},
            ["lights[0].url: must start with http:// or https:// and name a host"],
        ),
        (
            {**HTTP, "off_url": "lamp/off"},
            ["lights[0].off_url: must start with http:// or https:// and name a host"],
        ),
        ({**HTTP, "method": "DELETE"}, ["lights[0].method: must be 'GET', 'POST' or 'PUT'"]),
        ({**HTTP, "headers": {"Bad:Name": "x"}}, ["lights[0].headers.Bad:Name: not a header name"]),
        (
            {**HTTP, "ca_file": "/nonexistent/ca.pem"},
            ["lights[0].ca_file: no such file: /nonexistent/ca.pem"],
        ),
        ({**Z2M, "brightness": 0}, ["lights[0].brightness: must be greater than or equal to 1"]),
        ({**Z2M, "brightness": 256}, ["lights[0].brightness: must be less than or equal to 255"]),
        ({**Z2M, "brightness": True}, ["lights[0].brightness: must be a whole number"]),
        ({"preset": "zigbee2mqtt"}, ["lights[0].device: required for preset zigbee2mqtt"]),
        ({**Z2M, "topic_prefix": "z2m/#"}, ["lights[0].topic_prefix: must not contain +, # or NUL"]),
        ({**Z2M, "topic_prefix": "+/bridge"}, ["lights[0].topic_prefix: must not contain +, # or NUL"]),
        (
            {"preset": "wled", "device": "door", "topic_prefix": "z2m", "url": "http://x/"},
            [
                "lights[0].topic_prefix: only for preset zigbee2mqtt, not wled",
                "lights[0].url: only for preset http, not wled",
            ],
        ),
        (
            {**HTTP, "device": "door", "verify_tls": False},
            ["lights[0].device: only for preset esphome, tasmota, wled or zigbee2mqtt, not http"],
        ),
    ],
)
def test_each_new_key_mistake_names_its_key_path(
    write_config: Callable[[str], Path], fields: dict[str, object], expected: list[str]
) -> None:
    assert problems(write_config, **fields) == expected


def test_a_secret_in_a_bad_url_is_not_echoed(write_config: Callable[[str], Path]) -> None:
    found = problems(write_config, preset="http", url=f"ftp://user:{TOKEN}@lamp/?key={TOKEN}")
    assert found == ["lights[0].url: must start with http:// or https:// and name a host"]


def test_http_and_zigbee2mqtt_lights_load_with_their_defaults(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(light_yaml(**Z2M, brightness=128).replace("door", "hue", 1))
    spec = light_spec(settings.lights[0])
    assert (spec.topic_prefix, spec.device, spec.brightness) == ("zigbee2mqtt", "Office Hue", 128)
    spec = light_spec(make_settings(light_yaml(**HTTP)).lights[0])
    assert (spec.method, spec.verify_tls, spec.ca_file, spec.body, dict(spec.headers)) == (
        "POST",
        True,
        None,
        None,
        {},
    )


def test_effective_config_hides_header_values_and_url_secrets_and_loads_again(
    make_settings: Callable[..., Settings], write_config: Callable[[str], Path]
) -> None:
    settings = make_settings(
        light_yaml(
            preset="http",
            url=f"https://me:{TOKEN}@lamp.example.org/api/{{HEX}}?token={TOKEN}&b={{brightness}}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            body='{"on":true}',
        )
    )
    shown = settings.redacted_yaml()
    assert TOKEN not in shown
    assert "url: https://***@lamp.example.org/api/{HEX}?token=***&b=***\n" in shown
    assert "Authorization: '**********'" in shown
    again = load_settings(write_config(shown, "again.yaml"), env=PASSWORD_ENV)
    assert again.lights[0].preset == "http"
    # The real values still reach the light.
    spec = light_spec(settings.lights[0])
    assert dict(spec.headers) == {"Authorization": f"Bearer {TOKEN}"}
    assert TOKEN in (spec.url or "")
