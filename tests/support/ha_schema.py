"""Home Assistant's MQTT discovery schemas, recorded for the platforms the bridge uses.

Read from HA's ``homeassistant/components/mqtt/`` (``schemas.py``, ``config.py``, ``sensor.py``,
``binary_sensor.py``, ``button.py``, ``select.py``, ``text.py``, ``discovery.py``) in releases
2026.2.3 and 2024.11.3, and for the strict ``device``/``origin`` blocks 2024.3.3. HA drops unknown
keys of a component silently (``extra=REMOVE_EXTRA``), so a key not listed here would be a
feature that quietly does nothing; unknown keys in ``device``, ``origin`` or at the top level of a
device-based payload make HA reject the whole entity or device.

    errors = component_errors("sensor", payload_dict)      # single-component format
    errors = device_payload_errors(payload_dict)           # device-based format
"""

from __future__ import annotations

import re

# schemas.py: _MQTT_AVAILABILITY_SCHEMA
AVAILABILITY = {
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "payload_available",
    "payload_not_available",
}
# schemas.py: MQTT_ENTITY_COMMON_SCHEMA, config.py: SCHEMA_BASE; `name` is in every platform's schema.
COMMON = AVAILABILITY | {
    "device",
    "entity_picture",
    "origin",
    "enabled_by_default",
    "entity_category",
    "icon",
    "json_attributes_topic",
    "json_attributes_template",
    "default_entity_id",  # 2025.10+; older releases drop it
    "object_id",
    "unique_id",
    "qos",
    "encoding",
    "name",
}
RO = {"state_topic", "value_template"}  # config.py: MQTT_RO_SCHEMA
RW = {"command_topic", "optimistic", "retain", "state_topic"}  # config.py: MQTT_RW_SCHEMA

ALLOWED: dict[str, set[str]] = {
    "sensor": COMMON
    | RO
    | {
        "device_class",
        "expire_after",
        "force_update",
        "last_reset_value_template",
        "options",
        "state_class",
        "suggested_display_precision",
        "unit_of_measurement",
    },
    "binary_sensor": COMMON
    | RO
    | {"device_class", "expire_after", "force_update", "off_delay", "payload_off", "payload_on"},
    "button": COMMON | {"command_topic", "command_template", "device_class", "payload_press", "retain"},
    "select": COMMON | RW | {"command_template", "options", "value_template"},
    "text": COMMON | RW | {"command_template", "max", "min", "mode", "pattern", "value_template"},
}
REQUIRED: dict[str, set[str]] = {
    "sensor": {"state_topic"},
    "binary_sensor": {"state_topic"},
    "button": {"command_topic"},
    "select": {"command_topic", "options"},
    "text": {"command_topic"},
}
# schemas.py: MQTT_ENTITY_DEVICE_INFO_SCHEMA as of 2024.3 (later releases add model_id only).
DEVICE_KEYS = {
    "identifiers",
    "connections",
    "manufacturer",
    "model",
    "name",
    "hw_version",
    "serial_number",
    "sw_version",
    "via_device",
    "suggested_area",
    "configuration_url",
}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}  # schemas.py: MQTT_ORIGIN_INFO_SCHEMA
# schemas.py: DEVICE_DISCOVERY_SCHEMA (2024.11.3 and 2026.2.3 alike); extra keys are refused.
DEVICE_PAYLOAD_KEYS = AVAILABILITY | {
    "device",
    "components",
    "origin",
    "state_topic",
    "command_topic",
    "qos",
    "encoding",
}
AVAILABILITY_ITEM_KEYS = {"topic", "payload_available", "payload_not_available", "value_template"}
DEVICE_PAYLOAD_REQUIRED = {"device", "components", "origin"}
ENTITY_CATEGORIES = {"config", "diagnostic"}
AVAILABILITY_MODES = {"all", "any", "latest"}
SENSOR_DEVICE_CLASSES_USED = {"enum", "timestamp"}  # a subset: the classes this project may use
BINARY_SENSOR_DEVICE_CLASSES_USED = {"connectivity"}
# homeassistant/core.py: valid_entity_id (the strict pre-2024 form).
VALID_ENTITY_ID = re.compile(r"^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$")
ICON = re.compile(r"^[a-z0-9-]+:[a-z0-9-]+$")


def _topic_ok(topic: object, publish: bool) -> bool:
    if not isinstance(topic, str) or not topic or "\x00" in topic:
        return False
    return not (publish and ("+" in topic or "#" in topic))


def block_errors(device: object, origin: object) -> list[str]:
    errors: list[str] = []
    if not isinstance(device, dict) or not (device.get("identifiers") or device.get("connections")):
        errors.append("device needs identifiers")
    elif extra := set(device) - DEVICE_KEYS:
        errors.append(f"device has unknown keys {sorted(extra)}")
    if not isinstance(origin, dict) or "name" not in origin:
        errors.append("origin needs a name")
    elif extra := set(origin) - ORIGIN_KEYS:
        errors.append(f"origin has unknown keys {sorted(extra)}")
    return errors


def component_errors(platform: str, config: dict[str, object], *, needs_blocks: bool = True) -> list[str]:
    """What HA would drop or refuse in one entity's config; ``[]`` when it takes it whole."""
    if platform not in ALLOWED:
        return [f"platform {platform!r} is not recorded"]
    errors = [f"unknown key {k!r}" for k in sorted(set(config) - ALLOWED[platform])]
    errors += [f"missing {k!r}" for k in sorted(REQUIRED[platform] - set(config))]
    if needs_blocks:
        errors += block_errors(config.get("device"), config.get("origin"))
    if "unique_id" not in config:
        errors.append("missing 'unique_id'")  # schemas.py check_unique_id (device format)
    entity_id = config.get("default_entity_id")
    if not isinstance(entity_id, str) or not VALID_ENTITY_ID.match(entity_id):
        errors.append(f"default_entity_id {entity_id!r} is not a valid entity id")
    elif not entity_id.startswith(platform + "."):
        errors.append(f"default_entity_id {entity_id!r} is not a {platform}")
    if "entity_category" in config and config["entity_category"] not in ENTITY_CATEGORIES:
        errors.append(f"entity_category {config['entity_category']!r}")
    if config.get("availability_mode", "latest") not in AVAILABILITY_MODES:
        errors.append(f"availability_mode {config['availability_mode']!r}")
    for item in config.get("availability", []):  # type: ignore[attr-defined]
        if not isinstance(item, dict) or set(item) - AVAILABILITY_ITEM_KEYS:
            errors.append(f"availability item {item!r}")
        elif not _topic_ok(item.get("topic"), publish=False):
            errors.append(f"availability topic {item.get('topic')!r}")
    for key in ("state_topic", "json_attributes_topic"):
        if key in config and not _topic_ok(config[key], publish=False):
            errors.append(f"{key} {config[key]!r}")
    if "command_topic" in config and not _topic_ok(config["command_topic"], publish=True):
        errors.append(f"command_topic {config['command_topic']!r}")
    if "icon" in config and not ICON.match(str(config["icon"])):
        errors.append(f"icon {config['icon']!r}")
    if platform == "sensor":
        device_class = config.get("device_class")
        if device_class is not None and device_class not in SENSOR_DEVICE_CLASSES_USED:
            errors.append(f"sensor device_class {device_class!r}")
        # sensor.py: options only with device_class enum, and an enum sensor needs them.
        if ("options" in config) != (device_class == "enum"):
            errors.append("sensor options go with device_class enum, and only with it")
    if platform == "binary_sensor" and config.get("device_class", "connectivity") not in (
        BINARY_SENSOR_DEVICE_CLASSES_USED
    ):
        errors.append(f"binary_sensor device_class {config['device_class']!r}")
    if platform == "select":
        options = config.get("options")
        if not isinstance(options, list) or not options or not all(isinstance(o, str) for o in options):
            errors.append("select options must be a non-empty list of strings")
    if platform == "text" and not 0 <= int(config.get("max", 255)) <= 255:  # type: ignore[call-overload]
        errors.append(f"text max {config['max']!r} outside 0..255")
    return errors


def device_payload_errors(payload: dict[str, object]) -> list[str]:
    """What HA would refuse in a device-based payload (any error drops the whole device)."""
    errors = [f"unknown top-level key {k!r}" for k in sorted(set(payload) - DEVICE_PAYLOAD_KEYS)]
    errors += [f"missing {k!r}" for k in sorted(DEVICE_PAYLOAD_REQUIRED - set(payload))]
    errors += block_errors(payload.get("device"), payload.get("origin"))
    components = payload.get("components")
    if not isinstance(components, dict) or not components:
        return [*errors, "components must be a non-empty object"]
    for key, config in components.items():
        if not isinstance(config, dict) or "platform" not in config:
            errors.append(f"component {key!r} has no platform")
            continue
        body = {k: v for k, v in config.items() if k != "platform"}
        if "device" in body or "origin" in body:
            errors.append(f"component {key!r} repeats device/origin")
        errors += [f"{key}: {e}" for e in component_errors(str(config["platform"]), body, needs_blocks=False)]
    return errors
