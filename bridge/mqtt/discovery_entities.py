"""The one table of Home Assistant entities the bridge announces, and the devices they sit on.

Pure. Everything discovery publishes or clears is derived from `ENTITIES` (plus one
`light_entity` per status light): the single-component payloads, the device-based payload and
the config topics to clear for a removed user, so the three can never disagree.

Template choices (HA 2024.3 .. newest):
- A null never shows as the text ``None``: string sensors map null to ``''``; the binary sensors
  always render ``ON``/``OFF``. The one exception is ``last_change``: a timestamp sensor needs a
  date or nothing, and HA's MQTT sensor reads the payload ``None`` as "unknown" (2024.3 also
  logs one "Invalid state message" warning for it).
- The ``select`` template renders ``None`` for a status outside its options: HA's MQTT select
  treats the payload ``None`` as "unknown" instead of logging an invalid option.
- HA's ``text`` entity refuses a state longer than its ``max``, and every state is limited to
  255 characters, so both the note sensor and the text template cut the note.
- Entity names never repeat the device name (HA 2024.2+ strips or warns otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bridge.mqtt.topics import Topics
from bridge.presence import ALL_STATUSES, SESSION_STATES, SETTABLE_STATUSES

HA_STATE_MAX = 255  # Home Assistant's longest state string (and the text entity's largest `max`)
BRIDGE_ID = "bridge"
BRIDGE_IDENTIFIER = "cwa2mqtt_bridge"
# The activities during which a user is on a call (CWA tokens in the presence JSON's snake_case).
CALL_ACTIVITIES = ("on_the_phone", "in_a_conference")

Scope = Literal["bridge", "user", "self"]  # "user": every watched user and self; "self": self only


@dataclass(frozen=True, slots=True)
class Source:
    """What an entity's keys are built from: the topic tree, the device's id, the note limit."""

    topics: Topics
    id: str
    note_max_length: int = HA_STATE_MAX


@dataclass(frozen=True, slots=True)
class EntitySpec:
    """One row of the entity table: where it lives and how its keys are built."""

    component: str
    entity: str
    name: str
    scope: Scope
    body: Callable[[Source], dict[str, object]]

    @property
    def key(self) -> str:
        """The entity's key under ``components`` of a device-based payload."""
        return f"{self.component}_{self.entity}"


def _options_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def _reads_presence(src: Source) -> dict[str, object]:
    state = src.topics.presence(src.id)
    return {"state_topic": state, "json_attributes_topic": state}


def _cwa(src: Source) -> dict[str, object]:
    return {
        "state_topic": src.topics.bridge_cwa,
        "payload_on": "online",
        "payload_off": "offline",
        "device_class": "connectivity",
        "entity_category": "diagnostic",
    }


def _refresh(src: Source) -> dict[str, object]:
    # An empty payload refreshes every watched user.
    return {"command_topic": src.topics.request("refresh"), "payload_press": "", "icon": "mdi:refresh"}


def _session(src: Source) -> dict[str, object]:
    info = src.topics.bridge_info
    return {
        "state_topic": info,
        "value_template": "{{ value_json.session }}",
        "device_class": "enum",
        "options": list(SESSION_STATES),
        "entity_category": "diagnostic",
        # Only these two: `bridge/info` also lists every watched id, far too much for attributes.
        "json_attributes_topic": info,
        "json_attributes_template": (
            "{{ {'since': value_json.since, 'last_error': value_json.last_error} | tojson }}"
        ),
        "icon": "mdi:lan-connect",
    }


def _status(src: Source) -> dict[str, object]:
    return {
        **_reads_presence(src),
        "value_template": "{{ value_json.status }}",
        "device_class": "enum",
        "options": [s.value for s in ALL_STATUSES],
        "icon": "mdi:account-circle",
    }


def _activity(src: Source) -> dict[str, object]:
    return {
        **_reads_presence(src),
        "value_template": "{{ value_json.activity or '' }}",
        "icon": "mdi:calendar-clock",
    }


def _note(src: Source) -> dict[str, object]:
    return {
        **_reads_presence(src),
        "value_template": f"{{{{ (value_json.note or '')[:{HA_STATE_MAX}] }}}}",
        "icon": "mdi:note-text-outline",
    }


def _out_of_office(src: Source) -> dict[str, object]:
    return {
        **_reads_presence(src),
        "value_template": "{{ 'ON' if value_json.out_of_office else 'OFF' }}",
        "payload_on": "ON",
        "payload_off": "OFF",
        "icon": "mdi:airplane",
    }


def _in_a_call(src: Source) -> dict[str, object]:
    return {
        **_reads_presence(src),
        "value_template": (
            f"{{{{ 'ON' if value_json.activity in {_options_list(CALL_ACTIVITIES)} else 'OFF' }}}}"
        ),
        "payload_on": "ON",
        "payload_off": "OFF",
        "icon": "mdi:phone-in-talk",
    }


def _last_change(src: Source) -> dict[str, object]:
    return {
        **_reads_presence(src),
        "value_template": "{{ value_json.last_change }}",  # null -> "None" -> unknown (see above)
        "device_class": "timestamp",
        "icon": "mdi:clock-outline",
    }


def _set_status(src: Source) -> dict[str, object]:
    settable = tuple(s.value for s in SETTABLE_STATUSES)
    return {
        "command_topic": src.topics.self_set_status,
        "state_topic": src.topics.presence(src.id),
        "value_template": (
            f"{{{{ value_json.status if value_json.status in {_options_list(settable)} else None }}}}"
        ),
        "options": list(settable),
        "icon": "mdi:account-edit",
    }


def _set_note(src: Source) -> dict[str, object]:
    max_note = min(src.note_max_length, HA_STATE_MAX)
    return {
        "command_topic": src.topics.self_set_note,
        "state_topic": src.topics.presence(src.id),
        "value_template": f"{{{{ (value_json.note or '')[:{max_note}] }}}}",
        "max": max_note,
        "icon": "mdi:note-edit-outline",
    }


ENTITIES: tuple[EntitySpec, ...] = (
    EntitySpec("binary_sensor", "cwa", "CWA connection", "bridge", _cwa),
    EntitySpec("button", "refresh", "Refresh", "bridge", _refresh),
    EntitySpec("sensor", "session", "CWA session", "bridge", _session),
    EntitySpec("sensor", "status", "Status", "user", _status),
    EntitySpec("sensor", "activity", "Activity", "user", _activity),
    EntitySpec("sensor", "note", "Note", "user", _note),
    EntitySpec("binary_sensor", "out_of_office", "Out of office", "user", _out_of_office),
    EntitySpec("binary_sensor", "in_a_call", "In a call", "user", _in_a_call),
    EntitySpec("sensor", "last_change", "Last change", "user", _last_change),
    EntitySpec("select", "set_status", "Set status", "self", _set_status),
    EntitySpec("text", "set_note", "Set note", "self", _set_note),
)


def light_entity(name: str) -> EntitySpec:
    """A status light as ``sensor``/``light_<name>`` on the bridge device; ``off`` while dark."""

    def body(src: Source) -> dict[str, object]:
        state = src.topics.light_state(name)
        return {
            "state_topic": state,
            "value_template": "{{ value_json.color or 'off' }}",
            "json_attributes_topic": state,
            "icon": "mdi:lightbulb",
        }

    return EntitySpec("sensor", f"light_{name}", f"Light {name}", "bridge", body)


def bridge_entities(lights: tuple[str, ...] = ()) -> tuple[EntitySpec, ...]:
    """The bridge device's entities: the table's, then one sensor per status light."""
    return tuple(e for e in ENTITIES if e.scope == "bridge") + tuple(light_entity(n) for n in lights)


def user_entities(is_self: bool) -> tuple[EntitySpec, ...]:
    """A watched user's entities, or with ``is_self`` the signed-in account's (commands too)."""
    scopes = ("user", "self") if is_self else ("user",)
    return tuple(e for e in ENTITIES if e.scope in scopes)


def bridge_device_block(
    sw_version: str, configuration_url: str | None, node: str = "cwa2mqtt"
) -> dict[str, object]:
    device: dict[str, object] = {
        "identifiers": [f"{node}_{BRIDGE_ID}"],
        "name": "cwa2mqtt bridge",
        "manufacturer": "cwa2mqtt",
        "model": "CWA to MQTT bridge",
        "sw_version": sw_version,
    }
    if configuration_url:
        device["configuration_url"] = configuration_url
    return device


def user_device_block(
    id: str, name: str | None, uri: str, is_self: bool, node: str = "cwa2mqtt"
) -> dict[str, object]:
    return {
        "identifiers": [f"{node}_{id}"],
        "name": name or uri,
        "manufacturer": "Microsoft",
        "model": "Communicator Web Access account" if is_self else "Communicator Web Access contact",
        "via_device": f"{node}_{BRIDGE_ID}",
    }
