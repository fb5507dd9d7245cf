"""Home Assistant discovery payloads in the component format, key by key (README: Home Assistant)."""

from __future__ import annotations

import json
import re

import pytest

from bridge.mqtt.discovery import (
    DiscoveryContext,
    DiscoveryMessage,
    bridge_discovery,
    bridge_discovery_topics,
    default_entity_id,
    discovery_topics,
    light_discovery,
    light_discovery_topics,
    user_discovery,
)

CTX = DiscoveryContext(prefix="homeassistant", base_topic="cwa2mqtt", sw_version="1.2.3")
ORIGIN = {"name": "cwa2mqtt", "sw_version": "1.2.3", "support_url": "https://github.com/cwa2mqtt/cwa2mqtt"}
DEVICE_KEYS = {
    "identifiers",
    "name",
    "manufacturer",
    "model",
    "sw_version",
    "via_device",
    "configuration_url",
}
# Home Assistant's entity-id rule (homeassistant/core.py), the strict pre-2024 form.
VALID_ENTITY_ID = re.compile(r"^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$")
USER_AVAILABILITY = [
    {"topic": "cwa2mqtt/bridge/state"},
    {"topic": "cwa2mqtt/bridge/cwa"},
    {"topic": "cwa2mqtt/carol-n/availability"},
]


def by_topic(messages: list[DiscoveryMessage]) -> dict[str, dict[str, object]]:
    return {m.topic: json.loads(m.payload) for m in messages}


def test_bridge_entities() -> None:
    docs = by_topic(bridge_discovery(CTX))
    assert list(docs) == [
        "homeassistant/binary_sensor/cwa2mqtt_bridge/cwa/config",
        "homeassistant/button/cwa2mqtt_bridge/refresh/config",
        "homeassistant/sensor/cwa2mqtt_bridge/session/config",
    ]
    device = {
        "identifiers": ["cwa2mqtt_bridge"],
        "name": "cwa2mqtt bridge",
        "manufacturer": "cwa2mqtt",
        "model": "CWA to MQTT bridge",
        "sw_version": "1.2.3",
    }
    assert docs["homeassistant/binary_sensor/cwa2mqtt_bridge/cwa/config"] == {
        "name": "CWA connection",
        "unique_id": "cwa2mqtt_bridge_cwa",
        "default_entity_id": "binary_sensor.cwa2mqtt_bridge_cwa",
        "state_topic": "cwa2mqtt/bridge/cwa",
        "payload_on": "online",
        "payload_off": "offline",
        "device_class": "connectivity",
        "entity_category": "diagnostic",
        "availability": [{"topic": "cwa2mqtt/bridge/state"}],
        "device": device,
        "origin": ORIGIN,
    }
    assert docs["homeassistant/button/cwa2mqtt_bridge/refresh/config"] == {
        "name": "Refresh",
        "unique_id": "cwa2mqtt_bridge_refresh",
        "default_entity_id": "button.cwa2mqtt_bridge_refresh",
        "command_topic": "cwa2mqtt/bridge/request/refresh",
        "payload_press": "",
        "icon": "mdi:refresh",
        "availability": [{"topic": "cwa2mqtt/bridge/state"}],
        "device": device,
        "origin": ORIGIN,
    }
    assert docs["homeassistant/sensor/cwa2mqtt_bridge/session/config"] == {
        "name": "CWA session",
        "unique_id": "cwa2mqtt_bridge_session",
        "default_entity_id": "sensor.cwa2mqtt_bridge_session",
        "state_topic": "cwa2mqtt/bridge/info",
        "value_template": "{{ value_json.session }}",
        "device_class": "enum",
        "options": ["connecting", "online", "reconnecting", "auth_failed", "stopped"],
        "entity_category": "diagnostic",
        "json_attributes_topic": "cwa2mqtt/bridge/info",
        "json_attributes_template": (
            "{{ {'since': value_json.since, 'last_error': value_json.last_error} | tojson }}"
        ),
        "icon": "mdi:lan-connect",
        "availability": [{"topic": "cwa2mqtt/bridge/state"}],
        "device": device,
        "origin": ORIGIN,
    }


def test_bridge_device_links_the_presence_board_when_configured() -> None:
    ctx = DiscoveryContext("homeassistant", "cwa2mqtt", "1.2.3", configuration_url="http://bridge:8099/")
    for doc in by_topic(bridge_discovery(ctx)).values():
        assert doc["device"]["configuration_url"] == "http://bridge:8099/"  # type: ignore[index]


def test_watched_user_sensors_with_a_dash_in_the_id() -> None:
    docs = by_topic(user_discovery(CTX, "carol-n", "Carol", "sip:carol.nguyen@example.org"))
    assert list(docs) == [
        "homeassistant/sensor/cwa2mqtt_carol-n/status/config",
        "homeassistant/sensor/cwa2mqtt_carol-n/activity/config",
        "homeassistant/sensor/cwa2mqtt_carol-n/note/config",
        "homeassistant/binary_sensor/cwa2mqtt_carol-n/out_of_office/config",
        "homeassistant/binary_sensor/cwa2mqtt_carol-n/in_a_call/config",
        "homeassistant/sensor/cwa2mqtt_carol-n/last_change/config",
    ]
    device = {
        "identifiers": ["cwa2mqtt_carol-n"],
        "name": "Carol",
        "manufacturer": "Microsoft",
        "model": "Communicator Web Access contact",
        "via_device": "cwa2mqtt_bridge",
    }
    common = {
        "state_topic": "cwa2mqtt/carol-n",
        "json_attributes_topic": "cwa2mqtt/carol-n",
        "availability": USER_AVAILABILITY,
        "availability_mode": "all",
        "device": device,
        "origin": ORIGIN,
    }
    assert docs["homeassistant/sensor/cwa2mqtt_carol-n/status/config"] == {
        "name": "Status",
        "unique_id": "cwa2mqtt_carol-n_status",
        "default_entity_id": "sensor.cwa2mqtt_carol_n_status",
        "value_template": "{{ value_json.status }}",
        "device_class": "enum",
        "options": ["available", "busy", "do_not_disturb", "be_right_back", "away", "offline", "unknown"],
        "icon": "mdi:account-circle",
        **common,
    }
    assert docs["homeassistant/sensor/cwa2mqtt_carol-n/activity/config"] == {
        "name": "Activity",
        "unique_id": "cwa2mqtt_carol-n_activity",
        "default_entity_id": "sensor.cwa2mqtt_carol_n_activity",
        "value_template": "{{ value_json.activity or '' }}",
        "icon": "mdi:calendar-clock",
        **common,
    }
    assert docs["homeassistant/sensor/cwa2mqtt_carol-n/note/config"] == {
        "name": "Note",
        "unique_id": "cwa2mqtt_carol-n_note",
        "default_entity_id": "sensor.cwa2mqtt_carol_n_note",
        "value_template": "{{ (value_json.note or '')[:255] }}",
        "icon": "mdi:note-text-outline",
        **common,
    }
    assert docs["homeassistant/binary_sensor/cwa2mqtt_carol-n/out_of_office/config"] == {
        "name": "Out of office",
        "unique_id": "cwa2mqtt_carol-n_out_of_office",
        "default_entity_id": "binary_sensor.cwa2mqtt_carol_n_out_of_office",
        "value_template": "{{ 'ON' if value_json.out_of_office else 'OFF' }}",
        "payload_on": "ON",
        "payload_off": "OFF",
        "icon": "mdi:airplane",
        **common,
    }
    assert docs["homeassistant/binary_sensor/cwa2mqtt_carol-n/in_a_call/config"] == {
        "name": "In a call",
        "unique_id": "cwa2mqtt_carol-n_in_a_call",
        "default_entity_id": "binary_sensor.cwa2mqtt_carol_n_in_a_call",
        "value_template": (
            "{{ 'ON' if value_json.activity in ['on_the_phone', 'in_a_conference'] else 'OFF' }}"
        ),
        "payload_on": "ON",
        "payload_off": "OFF",
        "icon": "mdi:phone-in-talk",
        **common,
    }
    assert docs["homeassistant/sensor/cwa2mqtt_carol-n/last_change/config"] == {
        "name": "Last change",
        "unique_id": "cwa2mqtt_carol-n_last_change",
        "default_entity_id": "sensor.cwa2mqtt_carol_n_last_change",
        "value_template": "{{ value_json.last_change }}",
        "device_class": "timestamp",
        "icon": "mdi:clock-outline",
        **common,
    }


def test_device_name_falls_back_to_the_uri() -> None:
    for doc in by_topic(user_discovery(CTX, "bob", None, "sip:bob@example.org")).values():
        assert doc["device"]["name"] == "sip:bob@example.org"  # type: ignore[index]


def test_self_gets_select_and_text() -> None:
    docs = by_topic(user_discovery(CTX, "self", "Alice", "sip:alice@example.org", is_self=True))
    assert len(docs) == 8
    select = docs["homeassistant/select/cwa2mqtt_self/set_status/config"]
    settable = ["available", "busy", "do_not_disturb", "be_right_back", "away", "offline"]
    assert select["name"] == "Set status"
    assert select["unique_id"] == "cwa2mqtt_self_set_status"
    assert select["default_entity_id"] == "select.cwa2mqtt_self_set_status"
    assert select["command_topic"] == "cwa2mqtt/self/set/status"
    assert select["state_topic"] == "cwa2mqtt/self"
    assert select["options"] == settable
    # "None" is what HA's MQTT select reads as "unknown" (a status outside the options).
    assert select["value_template"] == (
        "{{ value_json.status if value_json.status in "
        "['available', 'busy', 'do_not_disturb', 'be_right_back', 'away', 'offline'] else None }}"
    )
    text = docs["homeassistant/text/cwa2mqtt_self/set_note/config"]
    assert text["name"] == "Set note"
    assert text["command_topic"] == "cwa2mqtt/self/set/note"
    assert text["state_topic"] == "cwa2mqtt/self"
    assert text["max"] == 255
    assert text["value_template"] == "{{ (value_json.note or '')[:255] }}"
    assert text["default_entity_id"] == "text.cwa2mqtt_self_set_note"
    for doc in docs.values():
        assert doc["availability"] == [
            {"topic": "cwa2mqtt/bridge/state"},
            {"topic": "cwa2mqtt/bridge/cwa"},
            {"topic": "cwa2mqtt/self/availability"},
        ]
        assert doc["device"]["model"] == "Communicator Web Access account"  # type: ignore[index]


@pytest.mark.parametrize(("limit", "expected"), [(100, 100), (255, 255), (1000, 255)])
def test_text_max_is_the_note_limit_capped_at_255(limit: int, expected: int) -> None:
    ctx = DiscoveryContext("homeassistant", "cwa2mqtt", "1.2.3", note_max_length=limit)
    text = by_topic(user_discovery(ctx, "self", None, "sip:a@example.org", is_self=True))[
        "homeassistant/text/cwa2mqtt_self/set_note/config"
    ]
    assert text["max"] == expected
    assert text["value_template"] == f"{{{{ (value_json.note or '')[:{expected}] }}}}"


def test_watched_users_get_no_command_entities() -> None:
    topics = [m.topic for m in user_discovery(CTX, "bob", None, "sip:bob@example.org")]
    assert not [t for t in topics if "/select/" in t or "/text/" in t]


def test_self_must_be_called_self_and_users_may_not() -> None:
    with pytest.raises(ValueError, match="'self'"):
        user_discovery(CTX, "alice", None, "sip:a@example.org", is_self=True)
    with pytest.raises(ValueError, match="signed-in account"):
        user_discovery(CTX, "self", None, "sip:a@example.org")


def test_light_sensor_on_the_bridge_device() -> None:
    (msg,) = light_discovery(CTX, "office-door")
    assert msg.topic == "homeassistant/sensor/cwa2mqtt_bridge/light_office-door/config"
    doc = json.loads(msg.payload)
    assert doc["name"] == "Light office-door"
    assert doc["unique_id"] == "cwa2mqtt_bridge_light_office-door"
    assert doc["default_entity_id"] == "sensor.cwa2mqtt_bridge_light_office_door"
    assert doc["state_topic"] == doc["json_attributes_topic"] == "cwa2mqtt/lights/office-door"
    assert doc["value_template"] == "{{ value_json.color or 'off' }}"
    assert doc["availability"] == [{"topic": "cwa2mqtt/bridge/state"}]
    assert doc["device"]["identifiers"] == ["cwa2mqtt_bridge"]


def all_messages() -> list[DiscoveryMessage]:
    return [
        *bridge_discovery(CTX),
        *user_discovery(CTX, "self", "Alice", "sip:alice@example.org", is_self=True),
        *user_discovery(CTX, "carol-n", None, "sip:carol@example.org"),
        *user_discovery(CTX, "a-_b_", None, "sip:odd@example.org"),
        *light_discovery(CTX, "door-"),
    ]


def test_every_payload_keeps_to_what_ha_2024_3_accepts() -> None:
    for msg in all_messages():
        doc = json.loads(msg.payload)
        assert doc["origin"] == ORIGIN, msg.topic
        assert set(doc["device"]) <= DEVICE_KEYS, msg.topic
        assert VALID_ENTITY_ID.match(doc["default_entity_id"]), doc["default_entity_id"]
        component = msg.topic.split("/")[1]
        assert doc["default_entity_id"].startswith(component + ".")
        assert doc["unique_id"] == "cwa2mqtt_" + "_".join(msg.topic.split("/")[2:4]).removeprefix("cwa2mqtt_")
        assert not str(doc["name"]).startswith(str(doc["device"]["name"]))
        assert msg.topic.endswith("/config")


def test_default_entity_id_is_valid_for_awkward_ids() -> None:
    assert default_entity_id("sensor", "a-_b_", "status") == "sensor.cwa2mqtt_a_b_status"
    assert default_entity_id("sensor", "bridge", "light_door-") == "sensor.cwa2mqtt_bridge_light_door"


def test_unique_ids_never_collide() -> None:
    ids = [json.loads(m.payload)["unique_id"] for m in all_messages()]
    assert len(ids) == len(set(ids))


def test_clearing_topics_match_what_was_published() -> None:
    published = {m.topic for m in user_discovery(CTX, "self", None, "sip:a@example.org", is_self=True)}
    assert set(discovery_topics("homeassistant", "self", is_self=True)) == published
    published = {m.topic for m in user_discovery(CTX, "carol-n", None, "sip:c@example.org")}
    assert set(discovery_topics("homeassistant", "carol-n")) == published
    assert light_discovery_topics("homeassistant", "door") == [m.topic for m in light_discovery(CTX, "door")]
    assert bridge_discovery_topics("homeassistant") == [m.topic for m in bridge_discovery(CTX)]


def test_prefix_is_validated() -> None:
    with pytest.raises(ValueError, match="topic"):
        DiscoveryContext("home/#", "cwa2mqtt", "1")


def test_discovery_modules_stay_pure() -> None:
    """The entity table and the payload builders import no network, thread or clock module."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "bridge" / "mqtt"
    for name in ("discovery.py", "discovery_entities.py"):
        tree = ast.parse((root / name).read_text(encoding="utf-8"))
        modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        modules |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        roots = {m.split(".")[0] for m in modules}
        assert not roots & {"paho", "httpx", "socket", "threading", "time", "asyncio"}, name
