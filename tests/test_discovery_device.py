"""Device-based discovery, the migration plan between formats, HA's schema and HA's templates."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.sandbox import ImmutableSandboxedEnvironment

from bridge.config import Settings
from bridge.errors import ConfigError
from bridge.mqtt.discovery import (
    MIGRATE_PAYLOAD,
    Device,
    DiscoveryContext,
    DiscoveryMessage,
    Format,
    bridge_device,
    discovery_plan,
    messages,
    parse_format,
    previous_format,
    removal_topics,
    user_device,
)
from bridge.mqtt.topics import RESERVED_IDS, presence_payload
from bridge.presence import Presence, Status
from tests.support.config import BASE_YAML
from tests.support.ha_schema import component_errors, device_payload_errors

COMPONENT = DiscoveryContext(prefix="homeassistant", base_topic="cwa2mqtt", sw_version="1.2.3")
DEVICE = DiscoveryContext(
    prefix="homeassistant", base_topic="cwa2mqtt", sw_version="1.2.3", discovery_format="device"
)
ORIGIN = {"name": "cwa2mqtt", "sw_version": "1.2.3", "support_url": "https://github.com/cwa2mqtt/cwa2mqtt"}


def devices(ctx: DiscoveryContext) -> list[Device]:
    return [
        bridge_device(ctx, lights=("office-door", "desk")),
        user_device(ctx, "self", "Alice", "sip:alice@example.org", is_self=True),
        user_device(ctx, "carol-n", None, "sip:carol@example.org"),
        user_device(ctx, "a-_b_", "Odd", "sip:odd@example.org"),
    ]


def doc(msg: DiscoveryMessage) -> dict[str, Any]:
    value = json.loads(msg.payload)
    assert isinstance(value, dict)
    return value


# ---------------------------------------------------------------------------------------------- the format


def test_one_payload_per_device_with_only_device_origin_components() -> None:
    (msg,) = messages(DEVICE, user_device(DEVICE, "carol-n", "Carol", "sip:carol@example.org"))
    assert msg.topic == "homeassistant/device/cwa2mqtt_carol-n/config"
    payload = doc(msg)
    assert list(payload) == ["device", "origin", "components"]
    assert payload["origin"] == ORIGIN
    assert payload["device"] == {
        "identifiers": ["cwa2mqtt_carol-n"],
        "name": "Carol",
        "manufacturer": "Microsoft",
        "model": "Communicator Web Access contact",
        "via_device": "cwa2mqtt_bridge",
    }
    assert list(payload["components"]) == [
        "sensor_status",
        "sensor_activity",
        "sensor_note",
        "binary_sensor_out_of_office",
        "binary_sensor_in_a_call",
        "sensor_last_change",
    ]
    status = payload["components"]["sensor_status"]
    assert status["platform"] == "sensor"
    assert status["unique_id"] == "cwa2mqtt_carol-n_status"
    assert status["default_entity_id"] == "sensor.cwa2mqtt_carol_n_status"
    assert status["availability_mode"] == "all"


def test_bridge_device_carries_its_lights_and_self_its_commands() -> None:
    bridge, me, *_ = (doc(m) for d in devices(DEVICE) for m in messages(DEVICE, d))
    assert list(bridge["components"]) == [
        "binary_sensor_cwa",
        "button_refresh",
        "sensor_session",
        "sensor_light_office-door",
        "sensor_light_desk",
    ]
    assert {"select_set_status", "text_set_note"} <= set(me["components"])


def entity_views(ctx: DiscoveryContext, of: list[Device] | None = None) -> dict[str, dict[str, Any]]:
    """Every entity as HA builds it: (platform, unique_id) -> its config with device and origin."""
    views: dict[str, dict[str, Any]] = {}
    for device in devices(ctx) if of is None else of:
        for msg in messages(ctx, device):
            payload = doc(msg)
            if ctx.discovery_format == "component":
                views[f"{msg.topic.split('/')[1]} {payload['unique_id']}"] = payload
                continue
            for config in payload["components"].values():
                entity = {k: v for k, v in config.items() if k != "platform"}
                entity |= {"device": payload["device"], "origin": payload["origin"]}
                views[f"{config['platform']} {config['unique_id']}"] = entity
    return views


def test_both_formats_describe_identical_entities() -> None:
    component, device = entity_views(COMPONENT), entity_views(DEVICE)
    assert len(component) == 3 + 2 + 8 + 6 + 6
    assert component == device


@pytest.mark.parametrize("ctx", [COMPONENT, DEVICE], ids=["component", "device"])
def test_every_payload_validates_against_ha_schema(ctx: DiscoveryContext) -> None:
    for device in devices(ctx):
        for msg in messages(ctx, device):
            if ctx.discovery_format == "device":
                assert device_payload_errors(doc(msg)) == [], msg.topic
            else:
                assert component_errors(msg.topic.split("/")[1], doc(msg)) == [], msg.topic


def test_the_recorded_schema_catches_what_ha_refuses() -> None:
    (msg,) = messages(DEVICE, bridge_device(DEVICE))
    payload = doc(msg)
    assert device_payload_errors({**payload, "~": "cwa2mqtt"}) == ["unknown top-level key '~'"]
    payload["device"]["suggested_room"] = "x"
    assert device_payload_errors(payload) == ["device has unknown keys ['suggested_room']"]
    sensor = doc(messages(COMPONENT, bridge_device(COMPONENT))[2])
    assert component_errors("sensor", {**sensor, "value_tmpl": "x"}) == ["unknown key 'value_tmpl'"]


def test_entity_names_never_repeat_the_device_name() -> None:
    for entity in entity_views(DEVICE).values():
        assert not str(entity["name"]).lower().startswith(str(entity["device"]["name"]).lower())


@settings(deadline=None, max_examples=60)
@given(
    ident=st.from_regex(r"[a-z0-9_-]{1,64}", fullmatch=True).filter(
        lambda i: i not in RESERVED_IDS | {"self"}
    ),
    name=st.one_of(st.none(), st.text(max_size=80)),
)
def test_any_id_and_name_give_payloads_ha_accepts_in_both_formats(ident: str, name: str | None) -> None:
    for ctx in (COMPONENT, DEVICE):
        (device,) = [user_device(ctx, ident, name, f"sip:{ident}@example.org")]
        for msg in messages(ctx, device):
            payload = doc(msg)
            if ctx.discovery_format == "device":
                assert device_payload_errors(payload) == []
            else:
                assert component_errors(msg.topic.split("/")[1], payload) == []
    assert entity_views_of(COMPONENT, ident, name) == entity_views_of(DEVICE, ident, name)


def entity_views_of(ctx: DiscoveryContext, ident: str, name: str | None) -> dict[str, dict[str, Any]]:
    return entity_views(ctx, [user_device(ctx, ident, name, f"sip:{ident}@example.org")])


# ---------------------------------------------------------------------------------------------- templates

# HA renders value templates with Jinja2's immutable sandbox, `value_json` being the parsed payload.
JINJA = ImmutableSandboxedEnvironment()


def render(ctx: DiscoveryContext, component_key: str, presence: Presence) -> str:
    (msg,) = messages(ctx, user_device(ctx, "self", "Alice", "sip:alice@example.org", is_self=True))
    template = doc(msg)["components"][component_key]["value_template"]
    return JINJA.from_string(template).render(value_json=json.loads(presence_payload(presence)))


def presence(**changes: Any) -> Presence:
    base = Presence.unknown("sip:alice@example.org", "Alice")
    values = {f: getattr(base, f) for f in base.__dataclass_fields__} | changes
    return Presence(**values)


@pytest.mark.parametrize(
    ("activity", "expected"),
    [("on_the_phone", "ON"), ("in_a_conference", "ON"), ("in_a_meeting", "OFF"), (None, "OFF")],
)
def test_in_a_call_is_on_only_on_the_phone_or_in_a_conference(activity: str | None, expected: str) -> None:
    assert render(DEVICE, "binary_sensor_in_a_call", presence(activity=activity)) == expected


def test_out_of_office_follows_the_flag() -> None:
    assert render(DEVICE, "binary_sensor_out_of_office", presence(out_of_office=True)) == "ON"
    assert render(DEVICE, "binary_sensor_out_of_office", presence(out_of_office=False)) == "OFF"


def test_last_change_is_a_timestamp_and_null_is_none_which_ha_reads_as_unknown() -> None:
    when = datetime(2026, 11, 22, 9, 14, 3, tzinfo=UTC)
    assert render(DEVICE, "sensor_last_change", presence(last_change=when)) == "2026-11-22T09:14:03Z"
    assert render(DEVICE, "sensor_last_change", presence(last_change=None)) == "None"


def test_other_nulls_never_show_as_none() -> None:
    empty = presence(status=Status.UNKNOWN, activity=None, note=None)
    for key in ("sensor_activity", "sensor_note", "text_set_note"):
        assert render(DEVICE, key, empty) == "", key
    assert render(DEVICE, "sensor_status", empty) == "unknown"
    assert render(DEVICE, "select_set_status", presence(status=Status.BUSY)) == "busy"


def test_session_sensor_reads_bridge_info() -> None:
    (msg,) = messages(DEVICE, bridge_device(DEVICE))
    session = doc(msg)["components"]["sensor_session"]
    info = {
        "session": "reconnecting",
        "since": "2026-11-22T09:14:03Z",
        "last_error": "timeout",
        "watched": [],
    }
    assert session["state_topic"] == "cwa2mqtt/bridge/info"
    assert JINJA.from_string(session["value_template"]).render(value_json=info) == "reconnecting"
    attributes = JINJA.from_string(session["json_attributes_template"]).render(value_json=info)
    assert json.loads(attributes) == {"since": "2026-11-22T09:14:03Z", "last_error": "timeout"}


# ---------------------------------------------------------------------------------------------- migration


def plan(previous: Format | None, current: DiscoveryContext) -> list[DiscoveryMessage]:
    return discovery_plan(current, previous, devices(current))


@pytest.mark.parametrize("ctx", [COMPONENT, DEVICE], ids=["component", "device"])
@pytest.mark.parametrize("previous", [None, "same"])
def test_same_format_publishes_the_payloads_and_is_idempotent(
    ctx: DiscoveryContext, previous: str | None
) -> None:
    before: Format | None = ctx.discovery_format if previous else None
    first = plan(before, ctx)
    assert first == plan(before, ctx)
    assert first[:-1] == [m for d in devices(ctx) for m in messages(ctx, d)]
    assert first[-1] == DiscoveryMessage("cwa2mqtt/bridge/discovery", ctx.discovery_format.encode())
    assert not [m for m in first if m.payload in (b"", MIGRATE_PAYLOAD)]


def test_component_to_device_migrates_then_publishes_then_clears() -> None:
    steps = plan("component", DEVICE)
    old = [m.topic for d in devices(COMPONENT) for m in messages(COMPONENT, d)]
    new = [m for d in devices(DEVICE) for m in messages(DEVICE, d)]
    assert steps == [
        *(DiscoveryMessage(t, b'{"migrate_discovery":true}') for t in old),
        *new,
        *(DiscoveryMessage(t, b"") for t in old),
        DiscoveryMessage("cwa2mqtt/bridge/discovery", b"device"),
    ]
    assert len(old) == 5 + 8 + 6 + 6
    assert len(new) == 4


def test_device_to_component_migrates_the_device_topics() -> None:
    steps = plan("device", COMPONENT)
    old = [f"homeassistant/device/cwa2mqtt_{i}/config" for i in ("bridge", "self", "carol-n", "a-_b_")]
    assert [m.topic for m in steps[:4]] == old
    assert {m.payload for m in steps[:4]} == {b'{"migrate_discovery":true}'}
    assert steps[4:-5] == [m for d in devices(COMPONENT) for m in messages(COMPONENT, d)]
    assert steps[-5:-1] == [DiscoveryMessage(t, b"") for t in old]
    assert steps[-1].payload == b"component"


def test_the_remembered_format_is_read_back() -> None:
    assert parse_format(b"device") == "device"
    assert parse_format(b"component\n") == "component"
    assert parse_format(b"xml") is None
    assert parse_format(None) is None
    # An older bridge left component-format discovery but did not remember it.
    assert previous_format(None, published_before=True) == "component"
    assert previous_format(None, published_before=False) is None
    assert previous_format(b"device", published_before=True) == "device"


@pytest.mark.parametrize("ctx", [COMPONENT, DEVICE], ids=["component", "device"])
def test_removal_clears_exactly_what_was_published(ctx: DiscoveryContext) -> None:
    fmt = ctx.discovery_format
    for ident, is_self in (("self", True), ("carol-n", False)):
        published = [
            m.topic for m in messages(ctx, user_device(ctx, ident, None, "sip:x@example.org", is_self))
        ]
        assert removal_topics("homeassistant", ident, fmt, is_self=is_self) == published


# ---------------------------------------------------------------------------------------------- config


def test_discovery_format_is_configurable(make_settings: Callable[..., Settings]) -> None:
    assert make_settings().homeassistant.discovery_format == "component"
    chosen = make_settings(BASE_YAML + "homeassistant:\n  discovery_format: device\n")
    assert chosen.homeassistant.discovery_format == "device"
    env = {"CWA2MQTT_CWA__PASSWORD": "x", "CWA2MQTT_HOMEASSISTANT__DISCOVERY_FORMAT": "device"}
    assert make_settings(env=env).homeassistant.discovery_format == "device"


def test_an_unknown_discovery_format_names_the_key(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError) as info:
        make_settings(BASE_YAML + "homeassistant:\n  discovery_format: single\n")
    (problem,) = info.value.problems
    assert problem.startswith("homeassistant.discovery_format: ")
    assert "'component'" in problem
    assert "'device'" in problem


def test_an_unknown_format_is_refused_by_the_context() -> None:
    with pytest.raises(ValueError, match="discovery_format"):
        DiscoveryContext("homeassistant", "cwa2mqtt", "1", discovery_format="single")  # type: ignore[arg-type]
