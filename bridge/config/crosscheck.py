"""The rules that span fields or sections: duplicate watch ids, light references, preset keys,
discovery vs. ``mqtt.output``.

Each rule is a function of plain values, used twice. The validators of `Settings` and
`LightConfig` call them on validated values. But pydantic runs a validator only when every field
it depends on is valid, so a config with a type error would hide these problems until the next
run; `raw_problems` therefore applies the same rules to the raw input (each entry validated on its
own, invalid values skipped), and the loader adds what it finds to the first pass's problems.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from bridge.presence import ID_PATTERN, derive_id, entity_key

Problem = tuple[tuple[str | int, ...], str]
PRESETS = ("wled", "tasmota", "esphome", "zigbee2mqtt", "http", "raw")
# The keys only some presets use; every other preset refuses them.
PRESET_KEYS: dict[str, frozenset[str]] = {
    "raw": frozenset({"topic", "payload", "off_topic", "off_payload"}),
    "zigbee2mqtt": frozenset({"device", "topic_prefix"}),
    "http": frozenset({"url", "method", "body", "headers", "off_url", "off_body", "verify_tls", "ca_file"}),
    "wled": frozenset({"device"}),
    "tasmota": frozenset({"device"}),
    "esphome": frozenset({"device"}),
}
ALL_PRESET_KEYS: frozenset[str] = frozenset().union(*PRESET_KEYS.values())
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "raw": ("topic", "payload"),
    "http": ("url",),
    "zigbee2mqtt": ("device",),
    "wled": ("device",),
    "tasmota": ("device",),
    "esphome": ("device",),
}
_BOOL: TypeAdapter[bool] = TypeAdapter(bool)


def watch_clashes(entries: Sequence[tuple[int, str, str]], self_uri: str | None = None) -> list[Problem]:
    """(index, uri, id) of each valid ``watch[]`` entry → the signed-in account's own URI (it is
    ``self``), a URI watched twice, an id used twice (also as Home Assistant sees ids: ``a-b`` and
    ``a_b`` make the same entity id)."""
    problems: list[Problem] = []
    by_uri: dict[str, tuple[int, str]] = {}
    by_key: dict[str, tuple[int, str, str]] = {}
    own = self_uri.strip().lower() if self_uri else None
    for n, uri, wid in entries:
        if own is not None and uri.lower() == own:
            problems.append(((n, "uri"), f"{uri} is the signed-in account (cwa.uri): it is bridged as self"))
        elif (first := by_uri.setdefault(uri.lower(), (n, uri)))[0] != n:
            problems.append(((n, "uri"), f"{uri} is already watched (watch[{first[0]}])"))
        elif (clash := by_key.setdefault(entity_key(wid), (n, uri, wid)))[0] != n:
            same = (
                ""
                if clash[2] == wid
                else f" (id {clash[2]!r}: Home Assistant sees both as {entity_key(wid)!r})"
            )
            problems.append(
                ((n, "id"), f"id {wid!r} of {uri} clashes with {clash[1]} (watch[{clash[0]}]){same}")
            )
    return problems


def light_clashes(
    lights: Sequence[tuple[int, str | None, Sequence[str | None]]], known: Sequence[str] | None
) -> list[Problem]:
    """(index, name, watch ids) of each light → names used twice and, unless `known` is None
    (ids unknowable: watch_contacts, or the watch list itself is broken), unknown ids. An id of
    None (malformed, reported on its own) is skipped."""
    problems: list[Problem] = []
    names: dict[str, int] = {}
    for n, name, ids in lights:
        if name is not None and (first := names.setdefault(name, n)) != n:
            problems.append(((n, "name"), f"{name!r} is already used by lights[{first}]"))
        if known is None:
            continue
        for k, wid in enumerate(ids):
            if wid is not None and wid not in known:
                problems.append(((n, "watch", k), f"unknown id {wid!r} (known: {', '.join(known)})"))
    return problems


def preset_problems(preset: str, given: Mapping[str, bool]) -> list[Problem]:
    """What a preset needs and which keys it refuses; `given`: key → written (not null, not the
    default). A key another preset uses is refused, so a typo'd preset is never silent."""
    problems: list[Problem] = []
    for key in REQUIRED_KEYS.get(preset, ()):
        if not given.get(key):
            problems.append(((key,), f"required for preset {preset}"))
    for key in sorted(ALL_PRESET_KEYS - PRESET_KEYS.get(preset, frozenset())):
        if given.get(key) and preset == "raw" and key == "device":
            problems.append(((key,), "not used by preset raw (set topic and payload)"))
        elif given.get(key):
            users = sorted(p for p, keys in PRESET_KEYS.items() if key in keys)
            named = users[0] if len(users) == 1 else f"{', '.join(users[:-1])} or {users[-1]}"
            problems.append(((key,), f"only for preset {named}, not {preset}"))
    return problems


DISCOVERY_NEEDS_JSON: Problem = (
    ("homeassistant", "discovery"),
    "Home Assistant reads the JSON state topic: with discovery on, mqtt.output must be json or both, "
    "not attributes",
)


def raw_problems(data: Mapping[str, Any]) -> list[Problem]:
    """The cross-field rules applied to the raw (merged) input; locs are absolute."""
    from bridge.config.sections import WatchEntry  # noqa: PLC0415  # sections imports this module's users
    from bridge.config.settings import _json_or_list  # noqa: PLC0415

    problems: list[Problem] = []
    watch = _listed(data.get("watch"), _json_or_list)
    valid: list[tuple[int, str, str]] = []
    known: set[str] | None = set()
    for n, raw in enumerate(watch or []):
        try:
            entry = WatchEntry.model_validate(raw)
        except ValidationError:
            # Counted as known anyway: its own error is reported, a reference to it is not wrong.
            wid = _raw_id(raw)
            if wid is not None and known is not None:
                known.add(wid)
            continue
        valid.append((n, entry.uri, entry.id))
        if known is not None:
            known.add(entry.id)
    cwa = data.get("cwa")
    own = cwa.get("uri") if isinstance(cwa, Mapping) and isinstance(cwa.get("uri"), str) else None
    problems += [(("watch", *loc), msg) for loc, msg in watch_clashes(valid, own)]
    if watch is None or _truthy(data.get("watch_contacts"), default=False) is not False:
        known = None
    mqtt, ha = data.get("mqtt"), data.get("homeassistant")
    output = mqtt.get("output") if isinstance(mqtt, Mapping) else None
    discovery = _truthy(ha.get("discovery") if isinstance(ha, Mapping) else None, default=True)
    if output == "attributes" and discovery is True:
        problems.append(DISCOVERY_NEEDS_JSON)
    lights = _listed(data.get("lights"), _json_or_list) or []
    shapes: list[tuple[int, str | None, Sequence[str | None]]] = []
    for n, light in enumerate(lights):
        if not isinstance(light, Mapping):
            continue
        name = light.get("name") if isinstance(light.get("name"), str) else None
        ids = _light_ids(light.get("watch"))
        shapes.append((n, name, ids))
        preset = light.get("preset")
        if preset in PRESETS:
            given = {key: light.get(key) is not None for key in ALL_PRESET_KEYS}
            problems += [(("lights", n, *loc), msg) for loc, msg in preset_problems(preset, given)]
    names = None if known is None else sorted(known | {"self"})
    problems += [(("lights", *loc), msg) for loc, msg in light_clashes(shapes, names)]
    return problems


def _listed(value: Any, parse: Any) -> list[Any] | None:
    try:
        items = parse(value)
    except ValueError:
        return None
    return items if isinstance(items, list) else None


def _raw_id(raw: Any) -> str | None:
    if isinstance(raw, str):
        return derive_id(raw) or None
    if isinstance(raw, Mapping):
        if isinstance(raw.get("id"), str):
            return str(raw["id"])
        if isinstance(raw.get("uri"), str):
            return derive_id(raw["uri"]) or None
    return None


def _light_ids(value: Any) -> list[str | None]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        return []
    ids = [str(i).strip() for i in items]
    # Malformed or repeated ids have their own error; only well-formed ones are looked up.
    return [wid if ID_PATTERN.fullmatch(wid) and wid not in ids[:k] else None for k, wid in enumerate(ids)]


def _truthy(value: Any, *, default: bool) -> bool | None:
    if value is None:
        return default
    try:
        return _BOOL.validate_python(value)
    except ValidationError:
        return None
