"""Home Assistant MQTT discovery payloads (interface.md §5), byte for byte.

Pure: builds `DiscoveryMessage` values; the service publishes them retained, bridge device
first. Compatibility notes (HA 2024.3 .. newest):
- Single-component discovery: ``<prefix>/<component>/cwa2mqtt_<id>/<entity>/config``.
- Full key names only (no abbreviations), so a payload reads the same as HA's documentation.
- ``device`` and ``origin`` are validated strictly by HA 2024.3 (an unknown key rejects the whole
  entity), so they carry only the keys listed in §5. Unknown *top-level* keys are dropped by
  every HA version, which is why ``default_entity_id`` (HA 2025.10+) is safe on old releases.
- ``default_entity_id`` must pass HA's entity-id check, which forbids ``__`` and a leading or
  trailing ``_``: ``-`` becomes ``_`` and runs of ``_`` collapse (an id ``a-_b`` gives ``a_b``).
- The ``select`` template renders ``None`` for a status outside its options: HA's MQTT select
  treats the payload ``None`` as "unknown" instead of logging an invalid option.
- HA's ``text`` entity refuses a state longer than its ``max``, and every state is limited to
  255 characters, so both the note sensor and the text template cut the note.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from bridge.mqtt.topics import Topics, validate_id, validate_publish_topic
from bridge.presence import ALL_STATUSES, SETTABLE_STATUSES

ORIGIN_NAME = "cwa2mqtt"
BRIDGE_ID = "bridge"
BRIDGE_IDENTIFIER = "cwa2mqtt_bridge"
HA_STATE_MAX = 255  # Home Assistant's longest state string (and the text entity's largest `max`)

_Entities = tuple[tuple[str, str], ...]
_USER_ENTITIES: _Entities = (
    ("sensor", "status"),
    ("sensor", "activity"),
    ("sensor", "note"),
)
_SELF_ENTITIES: _Entities = (("select", "set_status"), ("text", "set_note"))
_BRIDGE_ENTITIES: _Entities = (("binary_sensor", "cwa"), ("button", "refresh"))


@dataclass(frozen=True, slots=True)
class DiscoveryContext:
    """What every discovery payload needs from the configuration."""

    prefix: str
    base_topic: str
    sw_version: str
    note_max_length: int = 255
    support_url: str = "https://github.com/cwa2mqtt/cwa2mqtt"
    configuration_url: str | None = None  # HA accepts http(s):// URLs here; e.g. the presence board

    def __post_init__(self) -> None:
        validate_publish_topic(self.prefix)
        if self.note_max_length < 1:
            raise ValueError("note_max_length must be at least 1")

    @property
    def topics(self) -> Topics:
        return Topics(self.base_topic)


@dataclass(frozen=True, slots=True)
class DiscoveryMessage:
    """One retained discovery config message; an empty payload removes the entity."""

    topic: str
    payload: bytes


def config_topic(prefix: str, component: str, id: str, entity: str) -> str:
    return validate_publish_topic(f"{prefix}/{component}/cwa2mqtt_{id}/{entity}/config")


def default_entity_id(component: str, id: str, entity: str) -> str:
    """``<component>.cwa2mqtt_<id>_<entity>``, made a valid HA entity id (see module notes)."""
    object_id = re.sub(r"_+", "_", f"cwa2mqtt_{id}_{entity}".replace("-", "_")).strip("_")
    return f"{component}.{object_id}"


def _origin(cfg: DiscoveryContext) -> dict[str, object]:
    return {"name": ORIGIN_NAME, "sw_version": cfg.sw_version, "support_url": cfg.support_url}


def _bridge_device(cfg: DiscoveryContext) -> dict[str, object]:
    device: dict[str, object] = {
        "identifiers": [BRIDGE_IDENTIFIER],
        "name": "cwa2mqtt bridge",
        "manufacturer": "cwa2mqtt",
        "model": "CWA to MQTT bridge",
        "sw_version": cfg.sw_version,
    }
    if cfg.configuration_url:
        device["configuration_url"] = cfg.configuration_url
    return device


def _user_device(id: str, name: str | None, uri: str, is_self: bool) -> dict[str, object]:
    return {
        "identifiers": [f"cwa2mqtt_{id}"],
        "name": name or uri,
        "manufacturer": "Microsoft",
        "model": "Communicator Web Access account" if is_self else "Communicator Web Access contact",
        "via_device": BRIDGE_IDENTIFIER,
    }


def _message(
    cfg: DiscoveryContext,
    id: str,
    entity: _Entity,
    availability: list[str],
    device: dict[str, object],
) -> DiscoveryMessage:
    payload: dict[str, object] = {
        "name": entity.name,
        "unique_id": f"cwa2mqtt_{id}_{entity.entity}",
        "default_entity_id": default_entity_id(entity.component, id, entity.entity),
        **entity.body,
        "availability": [{"topic": t} for t in availability],
    }
    if len(availability) > 1:
        payload["availability_mode"] = "all"
    payload["device"] = device
    payload["origin"] = _origin(cfg)
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return DiscoveryMessage(config_topic(cfg.prefix, entity.component, id, entity.entity), raw)


@dataclass(frozen=True, slots=True)
class _Entity:
    component: str
    entity: str
    name: str  # never repeats the device name (HA 2024.2+ strips or warns otherwise)
    body: dict[str, object]


def bridge_discovery(cfg: DiscoveryContext) -> list[DiscoveryMessage]:
    """The bridge device: CWA connectivity and the refresh button (publish these first)."""
    t = cfg.topics
    device = _bridge_device(cfg)
    avail = [t.bridge_state]
    cwa = _Entity(
        "binary_sensor",
        "cwa",
        "CWA connection",
        {
            "state_topic": t.bridge_cwa,
            "payload_on": "online",
            "payload_off": "offline",
            "device_class": "connectivity",
            "entity_category": "diagnostic",
        },
    )
    refresh = _Entity(
        "button",
        "refresh",
        "Refresh",
        # An empty payload refreshes every watched user (interface.md §4).
        {"command_topic": t.request("refresh"), "payload_press": "", "icon": "mdi:refresh"},
    )
    return [_message(cfg, BRIDGE_ID, e, avail, device) for e in (cwa, refresh)]


def _options_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def user_discovery(
    cfg: DiscoveryContext, id: str, name: str | None, uri: str, is_self: bool = False
) -> list[DiscoveryMessage]:
    """A watched user's (or, with ``is_self``, the signed-in account's) device and entities."""
    if is_self and id != "self":
        raise ValueError("the signed-in account's id is 'self'")
    validate_id(id, allow_self=is_self)
    t = cfg.topics
    state = t.presence(id)
    common: dict[str, object] = {"state_topic": state, "json_attributes_topic": state}
    entities = [
        _Entity(
            "sensor",
            "status",
            "Status",
            {
                **common,
                "value_template": "{{ value_json.status }}",
                "device_class": "enum",
                "options": [s.value for s in ALL_STATUSES],
                "icon": "mdi:account-circle",
            },
        ),
        _Entity(
            "sensor",
            "activity",
            "Activity",
            {**common, "value_template": "{{ value_json.activity or '' }}", "icon": "mdi:calendar-clock"},
        ),
        _Entity(
            "sensor",
            "note",
            "Note",
            {
                **common,
                "value_template": f"{{{{ (value_json.note or '')[:{HA_STATE_MAX}] }}}}",
                "icon": "mdi:note-text-outline",
            },
        ),
    ]
    if is_self:
        settable = tuple(s.value for s in SETTABLE_STATUSES)
        max_note = min(cfg.note_max_length, HA_STATE_MAX)
        entities += [
            _Entity(
                "select",
                "set_status",
                "Set status",
                {
                    "command_topic": t.self_set_status,
                    "state_topic": state,
                    "value_template": (
                        "{{ value_json.status if value_json.status in "
                        f"{_options_list(settable)} else None }}}}"
                    ),
                    "options": list(settable),
                    "icon": "mdi:account-edit",
                },
            ),
            _Entity(
                "text",
                "set_note",
                "Set note",
                {
                    "command_topic": t.self_set_note,
                    "state_topic": state,
                    "value_template": f"{{{{ (value_json.note or '')[:{max_note}] }}}}",
                    "max": max_note,
                    "icon": "mdi:note-edit-outline",
                },
            ),
        ]
    avail = [t.bridge_state, t.bridge_cwa, t.availability(id)]
    device = _user_device(id, name, uri, is_self)
    return [_message(cfg, id, e, avail, device) for e in entities]


def light_discovery(cfg: DiscoveryContext, light_name: str) -> list[DiscoveryMessage]:
    """A status light (§8) as ``sensor``/``light_<name>`` on the bridge device; ``off`` when dark."""
    t = cfg.topics
    state = t.light_state(light_name)
    light = _Entity(
        "sensor",
        f"light_{light_name}",
        f"Light {light_name}",
        {
            "state_topic": state,
            "value_template": "{{ value_json.color or 'off' }}",
            "json_attributes_topic": state,
            "icon": "mdi:lightbulb",
        },
    )
    return [_message(cfg, BRIDGE_ID, light, [t.bridge_state], _bridge_device(cfg))]


def discovery_topics(prefix: str, id: str, is_self: bool = False) -> list[str]:
    """The config topics of one user's entities: publish empty retained payloads to remove them."""
    validate_id(id)
    entities = _USER_ENTITIES + (_SELF_ENTITIES if is_self else ())
    return [config_topic(prefix, component, id, entity) for component, entity in entities]


def light_discovery_topics(prefix: str, light_name: str) -> list[str]:
    validate_id(light_name, allow_self=False)
    return [config_topic(prefix, "sensor", BRIDGE_ID, f"light_{light_name}")]


def bridge_discovery_topics(prefix: str) -> list[str]:
    return [config_topic(prefix, component, BRIDGE_ID, entity) for component, entity in _BRIDGE_ENTITIES]
