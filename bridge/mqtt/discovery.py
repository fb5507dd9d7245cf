"""Home Assistant MQTT discovery in both formats, and the migration between them, byte for byte.

Pure: builds `DiscoveryMessage` values from the entity table in `discovery_entities`; the
service publishes them retained, in the order given, bridge device first.

Formats (``homeassistant.discovery_format``):
- ``component`` (HA 2024.3+): one payload per entity at
  ``<prefix>/<component>/cwa2mqtt_<id>/<entity>/config`` carrying its own ``device`` and ``origin``.
- ``device`` (HA 2024.11+): one payload per device at ``<prefix>/device/cwa2mqtt_<id>/config``
  whose top level is only ``device``, ``origin`` (required there) and ``components``; each
  component is keyed ``<component>_<entity>`` and holds ``platform`` plus exactly the keys of the
  component format (availability included, so no shared top-level option is needed). HA
  validates that top level strictly (an unknown key such as ``~`` or ``default_entity_id``
  drops the whole device); per component it accepts what the platform accepts.

Compatibility notes (HA 2024.3 .. newest):
- Full key names only (no abbreviations), so a payload reads the same as HA's documentation.
- ``device`` and ``origin`` are validated strictly by HA 2024.3 (an unknown key rejects the whole
  entity), so they carry only identifiers/name/manufacturer/model/sw_version/via_device/
  configuration_url and name/sw_version/support_url. Unknown *top-level* keys of a component are
  dropped by every HA version, which is why ``default_entity_id`` (HA 2025.10+) is safe on old ones.
- ``default_entity_id`` must pass HA's entity-id check, which forbids ``__`` and a leading or
  trailing ``_``: ``-`` becomes ``_`` and runs of ``_`` collapse (an id ``a-_b`` gives ``a_b``).

Migration, as HA's ``mqtt/discovery.py`` and ``mqtt/entity.py`` implement it (read in 2024.11.3
and 2026.2.3, where the handshake is the same):
- HA keys a discovered entity by (component, "<node> <object>") taken from the topic: component
  format gives ("sensor", "cwa2mqtt_bob status"), device format ("sensor", "cwa2mqtt_bob
  sensor_status"). The two never match, so HA refuses nothing and only the ``unique_id`` ties
  the new discovery to the existing registry entry (entity id, name, area, settings survive).
- A payload that is exactly ``{"migrate_discovery": true}`` (any other key fails HA's schema) on
  an old config topic makes HA *unload* that entity while keeping its registry entry; on a
  device topic it does so for every component HA discovered for that device. Without it, the
  empty payload that clears the old topic *deletes* the entity and its settings.
- Then the new payloads re-create the entities from the registry; then empty retained payloads
  clear the old topics. After device -> component, clearing the device topic makes HA offer an
  empty config to the now component-discovered entities of that node, which it refuses with a
  "conflicting MQTT discovery message" warning: expected and harmless.
- All three steps are retained (the migrate payload too: an HA that restarts mid-way must still
  see it rather than an orphaned old config), and the format message goes last, so a bridge
  stopped mid-way migrates again on its next start: every step is safe to repeat.
- A restart in the same format yields exactly the same messages; HA ignores an unchanged payload.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from bridge.mqtt.discovery_entities import (
    BRIDGE_ID,
    BRIDGE_IDENTIFIER,
    HA_STATE_MAX,
    EntitySpec,
    Source,
    bridge_device_block,
    bridge_entities,
    light_entity,
    user_device_block,
    user_entities,
)
from bridge.mqtt.topics import Topics, validate_id, validate_publish_topic

__all__ = ["BRIDGE_ID", "BRIDGE_IDENTIFIER", "HA_STATE_MAX"]  # re-exported for existing callers

ORIGIN_NAME = "cwa2mqtt"
NODE = "cwa2mqtt"
Format = Literal["component", "device"]
FORMATS: tuple[Format, ...] = get_args(Format)
MIGRATE_PAYLOAD = b'{"migrate_discovery":true}'


@dataclass(frozen=True, slots=True)
class DiscoveryContext:
    """What every discovery payload needs from the configuration."""

    prefix: str
    base_topic: str
    sw_version: str
    note_max_length: int = 255
    support_url: str = "https://github.com/cwa2mqtt/cwa2mqtt"
    configuration_url: str | None = None  # HA accepts http(s):// URLs here; e.g. the presence board
    discovery_format: Format = "component"
    # Prefix of every unique id, node id and device identifier: a second installation beside the
    # real one (the demo on the same broker) takes another so HA keeps them apart.
    node: str = NODE

    def __post_init__(self) -> None:
        validate_publish_topic(self.prefix)
        if self.note_max_length < 1:
            raise ValueError("note_max_length must be at least 1")
        if self.discovery_format not in FORMATS:
            raise ValueError(f"discovery_format must be one of {FORMATS}, got {self.discovery_format!r}")

    @property
    def topics(self) -> Topics:
        return Topics(self.base_topic)


@dataclass(frozen=True, slots=True)
class DiscoveryMessage:
    """One retained discovery message; an empty payload removes what the topic described."""

    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Device:
    """One HA device: its id (``bridge``, ``self`` or a user id), device block and entities."""

    id: str
    block: dict[str, object]
    entities: tuple[EntitySpec, ...]
    availability: tuple[str, ...]


def config_topic(prefix: str, component: str, id: str, entity: str, node: str = NODE) -> str:
    return validate_publish_topic(f"{prefix}/{component}/{node}_{id}/{entity}/config")


def device_topic(prefix: str, id: str, node: str = NODE) -> str:
    return validate_publish_topic(f"{prefix}/device/{node}_{id}/config")


def default_entity_id(component: str, id: str, entity: str, node: str = NODE) -> str:
    """``<component>.cwa2mqtt_<id>_<entity>``, made a valid HA entity id (see module notes)."""
    object_id = re.sub(r"_+", "_", f"{node}_{id}_{entity}".replace("-", "_")).strip("_")
    return f"{component}.{object_id}"


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _origin(cfg: DiscoveryContext) -> dict[str, object]:
    return {"name": ORIGIN_NAME, "sw_version": cfg.sw_version, "support_url": cfg.support_url}


# ---------------------------------------------------------------------------------------------- devices


def bridge_device(cfg: DiscoveryContext, lights: Iterable[str] = ()) -> Device:
    """The bridge: CWA connection, session, refresh, and one sensor per status light."""
    names = tuple(validate_id(n, allow_self=False) for n in lights)
    return Device(
        BRIDGE_ID,
        bridge_device_block(cfg.sw_version, cfg.configuration_url, cfg.node),
        bridge_entities(names),
        (cfg.topics.bridge_state,),
    )


def user_device(cfg: DiscoveryContext, id: str, name: str | None, uri: str, is_self: bool = False) -> Device:
    """A watched user's (or, with ``is_self``, the signed-in account's) device."""
    if is_self and id != "self":
        raise ValueError("the signed-in account's id is 'self'")
    validate_id(id, allow_self=is_self)
    t = cfg.topics
    return Device(
        id,
        user_device_block(id, name, uri, is_self, cfg.node),
        user_entities(is_self),
        (t.bridge_state, t.bridge_cwa, t.availability(id)),
    )


def entity_config(cfg: DiscoveryContext, device: Device, spec: EntitySpec) -> dict[str, object]:
    """An entity's keys, the same in both formats (without ``device``/``origin``/``platform``)."""
    src = Source(cfg.topics, device.id, cfg.note_max_length)
    config: dict[str, object] = {
        "name": spec.name,
        "unique_id": f"{cfg.node}_{device.id}_{spec.entity}",
        "default_entity_id": default_entity_id(spec.component, device.id, spec.entity, cfg.node),
        **spec.body(src),
        "availability": [{"topic": t} for t in device.availability],
    }
    if len(device.availability) > 1:
        config["availability_mode"] = "all"
    return config


def messages(cfg: DiscoveryContext, device: Device, fmt: Format | None = None) -> list[DiscoveryMessage]:
    """The retained discovery of ``device`` in ``fmt`` (default: the configured format)."""
    fmt = fmt or cfg.discovery_format
    if fmt == "device":
        components = {
            spec.key: {"platform": spec.component, **entity_config(cfg, device, spec)}
            for spec in device.entities
        }
        payload = {"device": device.block, "origin": _origin(cfg), "components": components}
        return [DiscoveryMessage(device_topic(cfg.prefix, device.id, cfg.node), _json(payload))]
    return [
        DiscoveryMessage(
            config_topic(cfg.prefix, spec.component, device.id, spec.entity, cfg.node),
            _json({**entity_config(cfg, device, spec), "device": device.block, "origin": _origin(cfg)}),
        )
        for spec in device.entities
    ]


def topics_of(
    prefix: str, id: str, entities: Sequence[EntitySpec], fmt: Format, node: str = NODE
) -> list[str]:
    """The config topics a device with ``entities`` occupies in ``fmt``."""
    if fmt == "device":
        return [device_topic(prefix, id, node)]
    return [config_topic(prefix, e.component, id, e.entity, node) for e in entities]


def removal_topics(prefix: str, id: str, fmt: Format, is_self: bool = False, node: str = NODE) -> list[str]:
    """The config topics of a user published in ``fmt``: empty retained payloads there remove it."""
    validate_id(id)
    return topics_of(prefix, id, user_entities(is_self), fmt, node)


# ---------------------------------------------------------------------------------------------- migration


def format_message(cfg: DiscoveryContext) -> DiscoveryMessage:
    """``<base>/bridge/discovery``: the format just published, for the next start to migrate from."""
    return DiscoveryMessage(cfg.topics.bridge_discovery, cfg.discovery_format.encode())


def parse_format(raw: bytes | None) -> Format | None:
    """A retained ``<base>/bridge/discovery`` read back; None when absent or foreign."""
    text = (raw or b"").strip().decode("utf-8", "replace")
    return next((f for f in FORMATS if f == text), None)


def previous_format(retained: bytes | None, published_before: bool) -> Format | None:
    """The format HA holds from earlier runs: the remembered one, else ``component`` when an older
    bridge (which only knew that format and did not remember it) published devices, else None."""
    remembered = parse_format(retained)
    if remembered is not None:
        return remembered
    return "component" if published_before else None


def discovery_plan(
    cfg: DiscoveryContext, previous: Format | None, devices: Sequence[Device]
) -> list[DiscoveryMessage]:
    """Every retained message that brings HA from ``previous`` to the configured format, in order.

    Same format (or nothing before): the payloads, then ``<base>/bridge/discovery``. A switch:
    ``{"migrate_discovery": true}`` to every old topic of every device, then the new payloads,
    then an empty payload on every old topic, then ``<base>/bridge/discovery`` (see module notes).
    Pass the bridge device first.
    """
    current = cfg.discovery_format
    new = [m for d in devices for m in messages(cfg, d, current)]
    if previous is None or previous == current:
        return [*new, format_message(cfg)]
    old = [t for d in devices for t in topics_of(cfg.prefix, d.id, d.entities, previous, cfg.node)]
    return [
        *(DiscoveryMessage(t, MIGRATE_PAYLOAD) for t in old),
        *new,
        *(DiscoveryMessage(t, b"") for t in old),
        format_message(cfg),
    ]


# ---------------------------------------------------------------------------------------------- 0.1 API
# Single-component helpers the service has used since 0.1; they build from the same table.


def bridge_discovery(cfg: DiscoveryContext) -> list[DiscoveryMessage]:
    """The bridge device's entities in component format (publish these first)."""
    return messages(cfg, bridge_device(cfg), "component")


def user_discovery(
    cfg: DiscoveryContext, id: str, name: str | None, uri: str, is_self: bool = False
) -> list[DiscoveryMessage]:
    return messages(cfg, user_device(cfg, id, name, uri, is_self), "component")


def light_discovery(cfg: DiscoveryContext, light_name: str) -> list[DiscoveryMessage]:
    """A status light as ``sensor``/``light_<name>`` on the bridge device, component format."""
    validate_id(light_name, allow_self=False)
    bridge = bridge_device(cfg)
    return messages(
        cfg, Device(BRIDGE_ID, bridge.block, (light_entity(light_name),), bridge.availability), "component"
    )


def discovery_topics(prefix: str, id: str, is_self: bool = False) -> list[str]:
    """A user's component-format config topics: publish empty retained payloads to remove them."""
    return removal_topics(prefix, id, "component", is_self)


def light_discovery_topics(prefix: str, light_name: str) -> list[str]:
    validate_id(light_name, allow_self=False)
    return topics_of(prefix, BRIDGE_ID, (light_entity(light_name),), "component")


def bridge_discovery_topics(prefix: str) -> list[str]:
    return topics_of(prefix, BRIDGE_ID, bridge_entities(), "component")
