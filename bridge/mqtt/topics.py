"""Every MQTT topic and payload of the bridge (README, "MQTT topics"; docs/lights.md), in one place.

Pure: no paho, no clock, no I/O. Every topic the bridge publishes to is built here from a
validated base topic and validated ids, so a publish topic can never contain a wildcard
(``+``, ``#``) or NUL (aiomqtt's lesson: topics validate themselves). `Topics.classify` is the
inverse for incoming command messages.

Payload choices where the README is silent:
- JSON is UTF-8, compact (``separators=(",", ":")``) and unescaped (``ensure_ascii=False``):
  smallest on the wire and byte-stable, so "publish only on change" can compare bytes.
- The presence JSON always carries every key, in the order of the README's "MQTT topics".
- A response always carries ``status``, ``data``, ``error`` and ``transaction`` (null when
  unused), so consumers never need ``in`` checks.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Literal
from urllib.parse import urlsplit

from bridge import presence
from bridge.presence import ID_PATTERN, Presence, format_timestamp, parse_timestamp

SELF_ID = "self"
# `<base>/bridge/...` and `<base>/lights/...` are bridge-level subtrees: a user with one of
# these ids would share topics with them (e.g. a light named "status" and a user "lights").
RESERVED_IDS: frozenset[str] = presence.RESERVED_IDS - {SELF_ID}
# MQTT 3.1.1 §1.5.3: a topic is at most 65535 bytes of UTF-8.
MAX_TOPIC_BYTES = 65535

Field = Literal["status", "activity", "note"]
ATTRIBUTE_FIELDS: tuple[Field, ...] = ("status", "activity", "note")

ONLINE = b"online"
OFFLINE = b"offline"


def validate_publish_topic(topic: str) -> str:
    """Return ``topic`` unchanged, or raise ValueError if it cannot be published to."""
    if not topic:
        raise ValueError("an MQTT topic cannot be empty")
    bad = next((c for c in ("+", "#", "\x00") if c in topic), None)
    if bad is not None:
        raise ValueError(f"an MQTT publish topic cannot contain {bad!r}: {topic!r}")
    if len(topic.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise ValueError("an MQTT topic is at most 65535 bytes")
    return topic


def validate_id(value: str, *, allow_self: bool = True) -> str:
    """A user id or light name: ``[a-z0-9_-]+``, not a reserved subtree name (see `RESERVED_IDS`)."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ValueError(f"an id must match [a-z0-9_-]+, got {value!r}")
    if value in RESERVED_IDS:
        raise ValueError(f"{value!r} is reserved and cannot be used as an id")
    if value == SELF_ID and not allow_self:
        raise ValueError("'self' is the signed-in account and cannot be used here")
    return value


CommandKind = Literal[
    "self_set", "self_set_status", "self_set_note", "refresh", "health_check", "light_set", "unknown_request"
]


@dataclass(frozen=True, slots=True)
class Command:
    """What an incoming message is, from its topic alone.

    ``op`` names the response topic (``<base>/bridge/response/<op>``): the three ``self/set*``
    commands all answer on ``self/set`` (README, "MQTT topics"), a light on ``lights/<name>/set``,
    an unknown request on its own name so the caller can answer it with an error.
    """

    kind: CommandKind
    op: str
    light: str | None = None


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic of the README's "MQTT topics" and docs/lights.md under ``base`` (``mqtt.base_topic``)."""

    base: str

    def __post_init__(self) -> None:
        validate_publish_topic(self.base)
        if self.base.startswith("/") or self.base.endswith("/") or "//" in self.base:
            raise ValueError(f"the base topic must not have empty levels: {self.base!r}")

    def _t(self, *levels: str) -> str:
        return validate_publish_topic("/".join((self.base, *levels)))

    # ------------------------------------------------------------------ bridge
    @property
    def bridge_state(self) -> str:
        return self._t("bridge", "state")

    @property
    def bridge_cwa(self) -> str:
        return self._t("bridge", "cwa")

    @property
    def bridge_info(self) -> str:
        return self._t("bridge", "info")

    @property
    def bridge_devices(self) -> str:
        return self._t("bridge", "devices")

    @property
    def bridge_discovery(self) -> str:
        """The Home Assistant discovery format last published (``component`` or ``device``)."""
        return self._t("bridge", "discovery")

    # ------------------------------------------------------------------ users
    def presence(self, id: str) -> str:
        return self._t(validate_id(id))

    def attribute(self, id: str, field: Field) -> str:
        if field not in ATTRIBUTE_FIELDS:
            raise ValueError(f"unknown attribute {field!r}")
        return self._t(validate_id(id), field)

    def availability(self, id: str) -> str:
        return self._t(validate_id(id), "availability")

    def color(self, id: str) -> str:
        return self._t(validate_id(id), "color")

    def user_topics(self, id: str) -> list[str]:
        """Every retained state topic of one user: what to clear when it leaves the config."""
        return [
            self.presence(id),
            *(self.attribute(id, f) for f in ATTRIBUTE_FIELDS),
            self.availability(id),
            self.color(id),
        ]

    # ------------------------------------------------------------------ commands
    @property
    def self_set(self) -> str:
        return self._t(SELF_ID, "set")

    @property
    def self_set_status(self) -> str:
        return self._t(SELF_ID, "set", "status")

    @property
    def self_set_note(self) -> str:
        return self._t(SELF_ID, "set", "note")

    def request(self, op: str) -> str:
        return self._t("bridge", "request", _op(op))

    def response(self, op: str) -> str:
        return self._t("bridge", "response", _op(op))

    # ------------------------------------------------------------------ lights (docs/lights.md)
    def light_state(self, name: str) -> str:
        return self._t("lights", validate_id(name, allow_self=False))

    def light_set(self, name: str) -> str:
        return self._t("lights", validate_id(name, allow_self=False), "set")

    def command_subscriptions(self) -> list[str]:
        """The filters the bridge subscribes to for commands (README, "MQTT topics", and docs/lights.md)."""
        return [
            self.self_set,
            self.self_set_status,
            self.self_set_note,
            f"{self.base}/bridge/request/+",
            f"{self.base}/lights/+/set",
        ]

    def classify(self, topic: str) -> Command | None:
        """Which command an incoming ``topic`` is, or None for anything else."""
        prefix = self.base + "/"
        if not topic.startswith(prefix):
            return None
        levels = topic[len(prefix) :].split("/")
        match levels:
            case ["self", "set"]:
                return Command("self_set", "self/set")
            case ["self", "set", "status"]:
                return Command("self_set_status", "self/set")
            case ["self", "set", "note"]:
                return Command("self_set_note", "self/set")
            case ["bridge", "request", "refresh"]:
                return Command("refresh", "refresh")
            case ["bridge", "request", "health_check"]:
                return Command("health_check", "health_check")
            case ["bridge", "request", op] if op and _safe_level(op):
                return Command("unknown_request", op)
            case ["lights", name, "set"] if ID_PATTERN.fullmatch(name) and name not in RESERVED_IDS:
                return Command("light_set", f"lights/{name}/set", light=name)
        return None


def _safe_level(level: str) -> bool:
    return not any(c in level for c in ("+", "#", "\x00"))


def _op(op: str) -> str:
    if not op or op.startswith("/") or op.endswith("/") or "//" in op or not _safe_level(op):
        raise ValueError(f"invalid request/response op {op!r}")
    return op


# ---------------------------------------------------------------------------------------------- payloads


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_jsonable).encode("utf-8")


def _jsonable(value: object) -> object:
    """`json.dumps` fallback: frozen dataclasses, enums, datetimes and sets become JSON; else ``str``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def presence_dict(p: Presence, unwatchable: str | None = None) -> dict[str, object]:
    """The presence JSON as a dict, keys in the documented order; ``unwatchable`` (why CWA cannot
    watch the user) is added only while there is a reason, so HA shows it among the attributes."""
    data: dict[str, object] = {
        "uri": p.uri,
        "name": p.name,
        "status": p.status.value,
        "idle": p.idle,
        "activity": p.activity,
        "availability": p.availability,
        "note": p.note,
        "note_type": p.note_type,
        "out_of_office": p.out_of_office,
        "last_change": format_timestamp(p.last_change),
    }
    if unwatchable is not None:
        data["unwatchable"] = unwatchable
    return data


def presence_payload(p: Presence, unwatchable: str | None = None) -> bytes:
    """``<base>/<id>``: compact UTF-8 JSON, every key present, documented key order."""
    return _json(presence_dict(p, unwatchable))


def attribute_payloads(p: Presence) -> dict[Field, bytes]:
    """``<base>/<id>/status|activity|note``: plain text; null is ``b""`` (clears the retained topic)."""
    return {
        "status": p.status.value.encode("utf-8"),
        "activity": (p.activity or "").encode("utf-8"),
        "note": (p.note or "").encode("utf-8"),
    }


def response_payload(
    status: Literal["ok", "error"],
    data: object = None,
    error: str | None = None,
    transaction: object = None,
) -> bytes:
    """``<base>/bridge/response/<op>``: every key always present."""
    if status not in ("ok", "error"):
        raise ValueError(f"status must be 'ok' or 'error', got {status!r}")
    return _json({"status": status, "data": data, "error": error, "transaction": transaction})


def server_host(url_or_host: str) -> str:
    """The host part only (no scheme, port, path or user info) of the CWA URL, for `bridge/info`."""
    text = url_or_host.strip()
    if "//" not in text:
        text = "//" + text
    try:
        host = urlsplit(text).hostname
    except ValueError:
        host = None
    return host or ""


def info_payload(
    *,
    version: str,
    cwa_server: str,
    uri: str,
    session: str,
    since: datetime | None,
    watched: Iterable[str],
    last_error: str | None = None,
    unwatchable: Mapping[str, str] | None = None,
) -> bytes:
    """``<base>/bridge/info``. ``cwa_server`` may be the full URL: only its host is published."""
    if session not in presence.SESSION_STATES:
        raise ValueError(f"session must be one of {presence.SESSION_STATES}, got {session!r}")
    return _json(
        {
            "version": version,
            "cwa_server": server_host(cwa_server),
            "uri": uri,
            "session": session,
            "since": format_timestamp(since),
            "watched": list(watched),
            "unwatchable": dict(unwatchable or {}),
            "last_error": last_error,
        }
    )


def devices_payload(ids: Iterable[str]) -> bytes:
    """``<base>/bridge/devices``: the ids whose topics the bridge has published, sorted, unique."""
    return _json(sorted(set(ids)))


def parse_devices_payload(raw: bytes) -> list[str]:
    """Inverse of `devices_payload` for a retained value; foreign or broken data gives ``[]``."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return []
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, str) and ID_PATTERN.fullmatch(v) and v not in RESERVED_IDS]


def parse_presence_payload(raw: bytes) -> dict[str, object] | None:
    """A retained presence JSON read back (for `last_change`); None unless a JSON object. Never raises."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def retained_last_change(raw: bytes) -> datetime | None:
    """`last_change` of a retained presence payload, so a restart keeps it (README, "MQTT topics")."""
    value: Mapping[str, object] | None = parse_presence_payload(raw)
    return parse_timestamp(value.get("last_change")) if value is not None else None
