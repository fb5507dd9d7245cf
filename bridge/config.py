"""The configuration: YAML file + ``CWA2MQTT_*`` environment, validated into frozen models.

Contract: interface.md §1 (env prefix), §3 (keys), §5 (discovery needs the JSON topic), §8 (lights).

Theory of operation. `load_settings` finds and parses the YAML itself (so syntax errors carry a
line and column), then builds `Settings` through pydantic-settings with two sources, highest
priority first: the environment (``CWA2MQTT_SECTION__KEY``), then the file. Both read the
mapping and document stashed in a context variable, which is how a caller (or a test) can pass
an explicit environment instead of ``os.environ``. Every problem pydantic finds is turned into a
``key.path: message`` line — built from ``loc`` and ``msg`` only, never from ``input``, because the
input may be a password — and raised at once as `ConfigError`.

Passwords may come from ``password`` (file or env), ``password_file`` or systemd's
``$CREDENTIALS_DIRECTORY`` (``cwa_password``/``mqtt_password``), in that order of preference.
Relative paths (``password_file``, ``ca_file``) are relative to the working directory.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticUndefined
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from bridge.errors import ConfigError
from bridge.presence import ALL_STATUSES, RESERVED_IDS, Status, derive_id, normalize_activity

ENV_PREFIX = "CWA2MQTT_"
REDACTED = "**********"
DEFAULT_PATHS: tuple[Path, ...] = (Path("config.yaml"), Path("/etc/cwa2mqtt/config.yaml"))
# CWA2MQTT_* variables that are not settings (so not "unknown environment variable"):
# the config path, and CWA2MQTT_TEST_* knobs of the test suite, which child processes inherit.
NON_SETTING_ENV = frozenset({"config"})
NON_SETTING_ENV_PREFIX = "test_"
DEFAULT_PRIORITY: tuple[Status, ...] = (
    Status.DO_NOT_DISTURB,
    Status.BUSY,
    Status.BE_RIGHT_BACK,
    Status.AWAY,
    Status.AVAILABLE,
    Status.OFFLINE,
    Status.UNKNOWN,
)
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
PAYLOAD_PLACEHOLDERS = ("{hex}", "{HEX}", "{r}", "{g}", "{b}", "{status}", "{activity}")

_ID = re.compile(r"[a-z0-9_-]+")
_SIP = re.compile(r"sip:([^@\s:;?<>\"]+)@([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)", re.IGNORECASE)
_COLOR = re.compile(r"#[0-9A-Fa-f]{6}")
_HHMM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


class _Problems(ValueError):
    """Several problems below one field; `items` are (relative loc, message). See `_format_errors`."""

    def __init__(self, items: list[tuple[tuple[str | int, ...], str]]) -> None:
        self.items = items
        super().__init__("; ".join(msg for _, msg in items))


# --- small parsers, also used by the CLI ----------------------------------------------------------


def normalize_sip_uri(value: str) -> str:
    """``SIP:bob@example.org`` → ``sip:bob@example.org``; `ValueError` for anything else."""
    text = value.strip()
    if not _SIP.fullmatch(text):
        raise ValueError("not a SIP URI (expected sip:user@domain)")
    return "sip:" + text[4:]


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8099`` for IPv6) → ``(host, port)``; `ValueError` otherwise."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:8099")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError("port must be a number from 0 to 65535")
    return host, int(port_text)


def parse_color(value: object) -> str:
    """``#rrggbb`` in any case → ``#RRGGBB``."""
    if not isinstance(value, str) or not _COLOR.fullmatch(value.strip()):
        raise ValueError("not a colour (expected #RRGGBB)")
    return value.strip().upper()


def parse_days(value: object) -> frozenset[int]:
    """``daily``, ``mon-fri``, ``sat,sun`` or a list of such → weekday numbers (0 = Monday)."""
    if (
        isinstance(value, frozenset | set)
        and value
        and all(isinstance(d, int) and 0 <= d <= 6 for d in value)
    ):
        return frozenset(value)  # already parsed (the default, or a model built in code)
    items = value if isinstance(value, list) else str(value).split(",") if isinstance(value, str) else None
    if items is None:
        raise ValueError("expected daily, a range like mon-fri, or a list like sat,sun")
    days: set[int] = set()
    for item in items:
        word = str(item).strip().lower()
        if word == "daily":
            days.update(range(7))
            continue
        first, _, last = word.partition("-")
        start, end = _day(first), _day(last or first)
        days.update((start + i) % 7 for i in range((end - start) % 7 + 1))
    if not days:
        raise ValueError("no days given")
    return frozenset(days)


def _day(token: str) -> int:
    word = token.strip()
    for number, (short, full) in enumerate(zip(DAY_NAMES, _FULL_DAY_NAMES, strict=True)):
        if word == short or (len(word) >= 3 and full.startswith(word)):
            return number
    raise ValueError(f"unknown day {word!r} (use {', '.join(DAY_NAMES)} or daily)")


def parse_hhmm(value: object) -> time:
    if isinstance(value, time):
        return value
    match = _HHMM.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError('not a time (expected "HH:MM", quoted)')
    return time(int(match.group(1)), int(match.group(2)))


def _check_topic(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    if any(c in value for c in "+#\0"):
        raise ValueError("must not contain +, # or NUL")
    if value.startswith("/") or value.endswith("/"):
        raise ValueError("must not start or end with /")
    return value


def _check_file(value: Path | None) -> Path | None:
    if value is not None and not value.is_file():
        raise ValueError(f"no such file: {value}")
    return value


# --- models -----------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _resolve_password(data: Any, credential: str) -> Any:
    """Fill ``password`` from ``password_file`` or the systemd credential when it was not given."""
    if not isinstance(data, dict) or data.get("password") is not None:
        return data
    data = dict(data)
    file = data.get("password_file")
    if file is not None and file != "":
        # An unreadable file is reported by the password_file validator; a placeholder keeps the
        # password from also being reported as missing.
        data["password"] = _read_secret(Path(str(file))) or _UNRESOLVED
        return data
    cred_dir = _context().env.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        secret = _read_secret(Path(cred_dir) / credential)
        if secret is not None:
            data["password"] = secret
    return data


def _read_secret(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n") or None
    except (OSError, UnicodeDecodeError):
        return None


def _check_password_file(value: Path | None) -> Path | None:
    if value is None:
        return None
    try:
        text = value.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {value}: {type(exc).__name__}") from None
    if not text.rstrip("\r\n"):
        raise ValueError(f"{value} is empty")
    return value


_UNRESOLVED = SecretStr("")


def _check_secret(value: Any) -> Any:
    if value is not _UNRESOLVED and (
        value == "" or (isinstance(value, SecretStr) and not value.get_secret_value())
    ):
        raise ValueError("must not be empty")
    return value


class CwaConfig(_Model):
    """``cwa:`` — the Communicator Web Access server and the account the bridge signs in with."""

    url: str = Field(description="Base URL of the CWA server (http:// or https://).")
    auth: Literal["forms", "iwa"] = Field("forms", description="forms | iwa (NTLM/Negotiate).")
    username: str = Field(description="Account used to sign in, e.g. EXAMPLE\\alice.", min_length=1)
    password: SecretStr = Field(
        description="Password (secret). Or password_file, CWA2MQTT_CWA__PASSWORD, "
        "or the systemd credential cwa_password."
    )
    password_file: Path | None = Field(None, description="File with the password.")
    uri: str = Field(description="The account's SIP URI, e.g. sip:alice@example.org.")
    verify_tls: bool = Field(True, description="Verify the TLS certificate.")
    ca_file: Path | None = Field(None, description="CA bundle for a server with a private CA.")
    command_path: str = Field("/cwa/MainCommandHandler.ashx", description="Path of the command handler.")
    data_path: str = Field("/cwa/AsyncDataChannel.ashx", description="Path of the event (data) channel.")
    timeout_s: float = Field(30, gt=0, description="HTTP timeout per request, seconds.")
    republish_s: float = Field(300, gt=0, description="Re-publish a commanded own state this often, seconds.")
    note_max_length: int = Field(
        255,
        ge=1,
        le=255,
        description="Longest own note accepted from MQTT, 1-255 (Home Assistant's text entity "
        "allows at most 255, so a larger value is an error).",
    )
    initial_availability: int | None = Field(
        None,
        ge=3000,
        le=18999,
        description="Availability (3000-18999, e.g. 3500) set at sign-in; null: leave the state alone.",
    )

    _password = model_validator(mode="before")(lambda data: _resolve_password(data, "cwa_password"))
    _secret = field_validator("password", mode="before")(_check_secret)
    _pw_file = field_validator("password_file")(_check_password_file)
    _ca = field_validator("ca_file")(_check_file)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError("must not contain credentials (use cwa.username and cwa.password)")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("invalid port") from None
        return value.strip().rstrip("/")

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        return normalize_sip_uri(value)

    @field_validator("command_path", "data_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with /")
        return value

    @property
    def host(self) -> str:
        """The server's host name (``bridge/info`` shows only this)."""
        return urlsplit(self.url).hostname or ""


class WatchEntry(_Model):
    """``watch[]`` — a user whose presence is bridged; a plain string is the URI."""

    uri: str = Field(description="SIP URI of the user.")
    id: str = Field(
        description="Topic id, [a-z0-9_-]+, unique, not bridge/self; default: the URI's local part "
        "lowercased, other characters as _."
    )
    name: str | None = Field(None, description="Display name override.")

    @model_validator(mode="before")
    @classmethod
    def _plain(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"uri": data}
        if isinstance(data, dict) and data.get("id") is None and isinstance(data.get("uri"), str):
            # "_" stands in when the URI is too broken to derive from; the uri error is reported.
            data = {**data, "id": derive_id(data["uri"]) or "_"}
        return data

    _uri = field_validator("uri")(normalize_sip_uri)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid id (use only a-z, 0-9, _ and -)")
        if value in RESERVED_IDS:
            raise ValueError(f"{value!r} is reserved (set another id)")
        return value


class MqttConfig(_Model):
    """``mqtt:`` — the broker and the topic layout."""

    url: str = Field("mqtt://localhost:1883", description="Broker URL: mqtt://host[:port] or mqtts:// (TLS).")
    username: str | None = Field(None, description="Broker user name.")
    password: SecretStr | None = Field(
        None, description="Broker password (secret). Or password_file, env, or the credential mqtt_password."
    )
    password_file: Path | None = Field(None, description="File holding the broker password.")
    ca_file: Path | None = Field(None, description="CA bundle for mqtts with a private CA.")
    client_id: str = Field("cwa2mqtt", min_length=1, description="MQTT client id.")
    keepalive_s: int = Field(60, ge=1, le=65535, description="MQTT keep-alive, seconds.")
    base_topic: str = Field("cwa2mqtt", description="Prefix of every topic.")
    qos: int = Field(1, ge=0, le=2, description="QoS of every publication (0, 1 or 2).")
    output: Literal["json", "attributes", "both"] = Field(
        "both", description="json: <base>/<id> JSON | attributes: one topic per field | both."
    )

    _password = model_validator(mode="before")(lambda data: _resolve_password(data, "mqtt_password"))
    _secret = field_validator("password", mode="before")(_check_secret)
    _pw_file = field_validator("password_file")(_check_password_file)
    _ca = field_validator("ca_file")(_check_file)
    _base = field_validator("base_topic")(_check_topic)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme.lower() not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("must be mqtt://host[:port] or mqtts://host[:port]")
        if parts.username or parts.password:
            raise ValueError("must not contain credentials (use mqtt.username and mqtt.password)")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("must not have a path or query")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("invalid port (1-65535)") from None
        if port == 0:
            raise ValueError("invalid port (1-65535)")
        return value.strip().rstrip("/")

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme.lower() == "mqtts"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)


class HomeAssistantConfig(_Model):
    """``homeassistant:`` — MQTT discovery (interface.md §5)."""

    discovery: bool = Field(True, description="Publish Home Assistant discovery.")
    prefix: str = Field("homeassistant", description="Discovery prefix.")
    status_topic: str = Field(
        "homeassistant/status", description='HA birth topic; on "online" discovery and state are re-sent.'
    )

    _topics = field_validator("prefix", "status_topic")(_check_topic)


class HttpConfig(_Model):
    """``http:`` — health, metrics and the presence board."""

    listen: str = Field("127.0.0.1:8099", description='HOST:PORT to serve on; "" disables the endpoint.')

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        if value.strip():
            parse_listen(value)
        return value.strip()

    @property
    def host(self) -> str | None:
        return parse_listen(self.listen)[0] if self.listen else None

    @property
    def port(self) -> int | None:
        return parse_listen(self.listen)[1] if self.listen else None


class LogConfig(_Model):
    """``log:``"""

    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="debug | info | warning | error"
    )
    format: Literal["text", "json"] = Field("text", description="text | json (one object per line).")

    @field_validator("level", "format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class ScheduleConfig(_Model):
    """``lights[].schedule`` — when the light may be on; outside the window it is off."""

    model_config = ConfigDict(populate_by_name=True)

    days: frozenset[int] = Field(
        frozenset(range(7)),
        description="daily, mon-fri, mon-sun or a list like sat,sun (0 = Monday once parsed). "
        "A window crossing midnight belongs to the day it starts.",
    )
    start: time = Field(time(0), alias="from", description='Start, "HH:MM", inclusive.')
    end: time = Field(time(0), alias="to", description='End, "HH:MM", exclusive; from == to means all day.')
    timezone: ZoneInfo | None = Field(None, description="IANA name, e.g. Europe/Berlin; default: local.")

    _days = field_validator("days", mode="before")(parse_days)
    _times = field_validator("start", "end", mode="before")(parse_hhmm)

    @field_validator("timezone", mode="before")
    @classmethod
    def _tz(cls, value: Any) -> Any:
        if value is None or isinstance(value, ZoneInfo) or value == "":
            return value or None
        try:
            return ZoneInfo(str(value))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name like Europe/Berlin)") from None

    @field_serializer("days")
    def _days_out(self, days: frozenset[int]) -> str:
        return "daily" if len(days) == 7 else ",".join(DAY_NAMES[d] for d in sorted(days))

    @field_serializer("start", "end")
    def _time_out(self, moment: time) -> str:
        return moment.strftime("%H:%M")

    @field_serializer("timezone")
    def _tz_out(self, zone: ZoneInfo | None) -> str | None:
        return None if zone is None else zone.key


class LightConfig(_Model):
    """``lights[]`` — a status light driven over MQTT (interface.md §8)."""

    name: str = Field(description="Light name, [a-z0-9_-]+, unique.", pattern=r"^[a-z0-9_-]+$")
    watch: tuple[str, ...] = Field(
        description='Watch ids (or "self") whose busiest status decides the colour; ties: first listed.'
    )
    preset: Literal["wled", "tasmota", "esphome", "raw"] = Field(description="wled | tasmota | esphome | raw")
    device: str | None = Field(None, description="WLED/Tasmota topic or ESPHome light name.")
    topic: str | None = Field(None, description="raw only: topic of the colour command.")
    payload: str | None = Field(
        None, description="raw only: payload template with " + ", ".join(PAYLOAD_PLACEHOLDERS) + "."
    )
    off_topic: str | None = Field(None, description="raw only: topic for off (default: topic).")
    off_payload: str | None = Field(None, description="raw only: off payload (default: payload, #000000).")
    colors: dict[Status, str] = Field(default_factory=dict, description="Status → #RRGGBB overrides.")
    activity_colors: dict[str, str] = Field(
        default_factory=dict, description="Activity token → #RRGGBB; wins over the status colour."
    )
    schedule: ScheduleConfig | None = Field(None, description="When the light may be on.")
    retain: bool = Field(False, description="Publish light commands retained.")

    @field_validator("watch", mode="before")
    @classmethod
    def _watch(cls, value: Any) -> Any:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            return value
        ids = [str(i).strip() for i in items]
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for n, wid in enumerate(ids):
            if not _ID.fullmatch(wid):
                problems.append(((n,), f"{wid!r} is not a valid id"))
            elif wid in ids[:n]:
                problems.append(((n,), f"{wid!r} is listed twice"))
        if not ids:
            problems.append(((), "must list at least one id"))
        if problems:
            raise _Problems(problems)
        return tuple(ids)

    @field_validator("colors", mode="before")
    @classmethod
    def _colors(cls, value: Any) -> Any:
        bad = f"not a status (one of: {', '.join(ALL_STATUSES)})"
        return _color_map(value, lambda k: k if k in ALL_STATUSES else None, bad)

    @field_validator("activity_colors", mode="before")
    @classmethod
    def _activity_colors(cls, value: Any) -> Any:
        return _color_map(value, normalize_activity, "not an activity token")

    @field_validator("device", "topic", "off_topic")
    @classmethod
    def _topic(cls, value: str | None) -> str | None:
        return None if value is None else _check_topic(value)

    @model_validator(mode="after")
    def _preset(self) -> LightConfig:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if self.preset == "raw":
            missing = [key for key in ("topic", "payload") if getattr(self, key) is None]
            problems += [((key,), "required for preset raw") for key in missing]
            if self.device is not None:
                problems.append((("device",), "not used by preset raw (set topic and payload)"))
        else:
            if self.device is None:
                problems.append((("device",), f"required for preset {self.preset}"))
            for key in ("topic", "payload", "off_topic", "off_payload"):
                if getattr(self, key) is not None:
                    problems.append(((key,), f"only for preset raw, not {self.preset}"))
        if problems:
            raise _Problems(problems)
        return self


def _color_map(value: Any, key_of: Any, bad_key: str) -> Any:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("must be a mapping of name: #RRGGBB")  # noqa: TRY004  # pydantic wants ValueError
    out: dict[str, str] = {}
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for raw_key, colour in value.items():
        key = key_of(str(raw_key))
        if key is None:
            problems.append(((str(raw_key),), bad_key))
            continue
        try:
            out[key] = parse_color(colour)
        except ValueError as exc:
            problems.append(((str(raw_key),), str(exc)))
    if problems:
        raise _Problems(problems)
    return out


def _json_or_list(value: Any) -> Any:
    """Env values of list fields: JSON (``["a", "b"]``) or comma-separated (``a,b``)."""
    if not isinstance(value, str):
        return [] if value is None else value
    text = value.strip()
    if text.startswith(("[", "{")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    return [part.strip() for part in text.split(",") if part.strip()]


# --- loading --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LoadContext:
    env: Mapping[str, str]
    document: Mapping[str, Any]


_CONTEXT: ContextVar[_LoadContext | None] = ContextVar("cwa2mqtt_config_load", default=None)


def _context() -> _LoadContext:
    return _CONTEXT.get() or _LoadContext(env=os.environ, document={})


class _YamlSource(PydanticBaseSettingsSource):
    """The parsed config file (parsed by `load_settings`, which reports syntax errors itself)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.current_state.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_context().document)


class _EnvSource(EnvSettingsSource):
    """``CWA2MQTT_…`` from the mapping given to `load_settings` (``os.environ`` by default)."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {key.lower(): (None if val == "null" else val) for key, val in _context().env.items()}


class Settings(BaseSettings):
    """The whole configuration (interface.md §3 and §8)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
        validate_default=True,
    )

    cwa: CwaConfig = Field(description="The CWA server and account.")
    watch: Annotated[list[WatchEntry], NoDecode] = Field(
        default_factory=list, description="Users to bridge: SIP URIs or {uri, id, name}."
    )
    watch_contacts: bool = Field(False, description="Also bridge every contact of the account.")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="The MQTT broker.")
    homeassistant: HomeAssistantConfig = Field(
        default_factory=HomeAssistantConfig,
        description="Home Assistant discovery.",
    )
    http: HttpConfig = Field(default_factory=HttpConfig, description="HTTP endpoint.")
    log: LogConfig = Field(default_factory=LogConfig, description="Logging.")
    lights: Annotated[list[LightConfig], NoDecode] = Field(default_factory=list, description="Status lights.")
    color_topics: bool = Field(False, description='Also publish <base>/<id>/color as "#RRGGBB", retained.')
    priority: Annotated[tuple[Status, ...], NoDecode] = Field(
        DEFAULT_PRIORITY, description="Statuses from busiest to least busy (all seven, once each)."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First wins: explicit arguments, then the environment, then the file (§1: env overrides file).
        return init_settings, _EnvSource(settings_cls), _YamlSource(settings_cls)

    @model_validator(mode="before")
    @classmethod
    def _sections(cls, data: Any) -> Any:
        # A missing cwa section is validated as empty so each required key is named on its own.
        if isinstance(data, dict) and data.get("cwa") is None:
            return {**data, "cwa": {}}
        return data

    _lists = field_validator("watch", "lights", "priority", mode="before")(_json_or_list)

    @field_validator("watch")
    @classmethod
    def _unique_watch(cls, entries: list[WatchEntry]) -> list[WatchEntry]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        by_uri: dict[str, int] = {}
        by_id: dict[str, int] = {}
        for n, entry in enumerate(entries):
            if (first := by_uri.setdefault(entry.uri.lower(), n)) != n:
                problems.append(((n, "uri"), f"{entry.uri} is already watched (watch[{first}])"))
            elif (first := by_id.setdefault(entry.id, n)) != n:
                other = entries[first].uri
                problems.append(
                    ((n, "id"), f"id {entry.id!r} of {entry.uri} clashes with {other} (watch[{first}])")
                )
        if problems:
            raise _Problems(problems)
        return entries

    @field_validator("homeassistant")
    @classmethod
    def _discovery(cls, ha: HomeAssistantConfig, info: ValidationInfo) -> HomeAssistantConfig:
        mqtt = info.data.get("mqtt")
        if ha.discovery and mqtt is not None and mqtt.output == "attributes":
            raise _Problems(
                [
                    (
                        ("discovery",),
                        "Home Assistant reads the JSON state topic: with discovery on, "
                        "mqtt.output must be json or both, not attributes",
                    )
                ]
            )
        return ha

    @field_validator("lights")
    @classmethod
    def _lights(cls, lights: list[LightConfig], info: ValidationInfo) -> list[LightConfig]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        names: dict[str, int] = {}
        watch: list[WatchEntry] | None = info.data.get("watch")
        known = None if watch is None else sorted({w.id for w in watch} | {"self"})
        for n, light in enumerate(lights):
            if (first := names.setdefault(light.name, n)) != n:
                problems.append(((n, "name"), f"{light.name!r} is already used by lights[{first}]"))
            if known is None or info.data.get("watch_contacts", False):
                continue  # with watch_contacts, ids may be contacts found later: see `config_warnings`
            for k, wid in enumerate(light.watch):
                if wid not in known:
                    problems.append(((n, "watch", k), f"unknown id {wid!r} (known: {', '.join(known)})"))
        if problems:
            raise _Problems(problems)
        return lights

    @field_validator("priority")
    @classmethod
    def _priority(cls, order: tuple[Status, ...]) -> tuple[Status, ...]:
        missing = [s.value for s in ALL_STATUSES if s not in order]
        if missing or len(order) != len(ALL_STATUSES):
            detail = f" (missing: {', '.join(missing)})" if missing else ""
            raise ValueError("must list all seven statuses once each" + detail)
        return order

    def config_warnings(self) -> list[str]:
        """Valid but worth a word: unknown light ids under watch_contacts, TLS checks off."""
        warnings: list[str] = []
        known = {w.id for w in self.watch} | {"self"}
        for n, light in enumerate(self.lights):
            for k, wid in enumerate(light.watch):
                if wid not in known:
                    warnings.append(
                        f"lights[{n}].watch[{k}]: id {wid!r} is not configured; it must be a contact "
                        "(watch_contacts) or the light stays off"
                    )
        if not self.cwa.verify_tls:
            warnings.append("cwa.verify_tls: false — the server's certificate is not checked")
        return warnings

    def redacted_yaml(self) -> str:
        """The effective configuration as YAML, every secret as ``'**********'``."""
        data = self.model_dump(mode="json", by_alias=True)
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)


def find_config_file(path: str | Path | None, env: Mapping[str, str]) -> Path | None:
    """``-c`` path, else ``$CWA2MQTT_CONFIG``, else the first existing default path (§2)."""
    if path is not None and str(path) != "":
        return Path(path)
    if env.get("CWA2MQTT_CONFIG"):
        return Path(env["CWA2MQTT_CONFIG"])
    return next((p for p in DEFAULT_PATHS if p.is_file()), None)


def load_settings(path: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> Settings:
    """Load and validate; raises `ConfigError` listing every problem with its key path."""
    env_map = dict(os.environ if env is None else env)
    file = find_config_file(path, env_map)
    document = {} if file is None else read_document(file)
    problems = _unknown_env(env_map)
    token = _CONTEXT.set(_LoadContext(env=env_map, document=document))
    try:
        settings = Settings()  # values come from the sources
    except ValidationError as exc:
        problems += _format_errors(exc)
    except SettingsError as exc:
        field = re.search(r'field "([^"]+)"', str(exc))
        name = field.group(1) if field else "?"
        problems.append(f"{name}: cannot parse {ENV_PREFIX}{name.upper()} (expected JSON)")
    finally:
        _CONTEXT.reset(token)
    if problems:
        raise ConfigError(problems) from None
    return settings


def _env_names() -> list[str]:
    names = [ENV_PREFIX + name.upper() for name in (*Settings.model_fields, *NON_SETTING_ENV)]
    for section, model, has_env in _SECTIONS:
        if has_env:
            names += [f"{ENV_PREFIX}{section.upper()}__{key.upper()}" for key in model.model_fields]
    return names


def _unknown_env(env: Mapping[str, str]) -> list[str]:
    """A mistyped variable (``CWA2MQTT_MQTT_URL``) must not be silently ignored, like a file key."""
    problems = []
    for key in sorted(env):
        if not key.upper().startswith(ENV_PREFIX):
            continue
        top = key[len(ENV_PREFIX) :].split("__", 1)[0].lower()
        if top in Settings.model_fields or top in NON_SETTING_ENV or top.startswith(NON_SETTING_ENV_PREFIX):
            continue
        close = difflib.get_close_matches(key.upper(), _env_names(), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"{key}: unknown environment variable{hint}")
    return problems


# --- YAML ---------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe YAML without YAML 1.1's sexagesimal numbers (``to: 18:00`` stays a string) and
    with duplicate keys reported instead of silently overwritten."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            problem = "a key must be a plain value" if isinstance(key, list | dict) else None
            problem = problem or (f"duplicate key {key!r}" if key in seen else None)
            if problem:
                raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _INT,
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def read_document(file: Path) -> dict[str, Any]:
    """Read and parse the config file; every failure is a `ConfigError` naming the file."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{file}: config file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{file}: cannot read the config file ({type(exc).__name__})"]) from None
    try:
        document = yaml.load(text, Loader=_Loader)  # noqa: S506  # _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else str(file)
        raise ConfigError([f"{where}: YAML syntax error: {exc.problem or exc.context}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{file}: YAML error ({type(exc).__name__})"]) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError([f"{file}: the top level must be a mapping of keys, not {_kind(document)}"])
    bad = [k for k in document if not isinstance(k, str)]
    if bad:
        raise ConfigError([f"{file}: top-level keys must be names, not {_kind(bad[0])}"])
    return document


def _kind(value: object) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false"}.get(
        type(value), type(value).__name__
    )


# --- error formatting ---------------------------------------------------------------------------


def _format_loc(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


_MESSAGES = {
    "missing": "required",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "string_type": "must be a string (quote it in YAML)",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "enum": "must be one of: " + ", ".join(ALL_STATUSES),
}


def _format_errors(exc: ValidationError) -> list[str]:
    problems: list[str] = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, _Problems):
            problems += [f"{_format_loc(loc + rel)}: {msg}" for rel, msg in cause.items]
            continue
        if kind == "value_error" and isinstance(cause, ValueError):
            msg = str(cause)
        elif kind == "missing" and loc == ("cwa", "password"):
            msg = (
                "required (set cwa.password, cwa.password_file, CWA2MQTT_CWA__PASSWORD "
                "or the credential cwa_password)"
            )
        elif kind == "extra_forbidden":
            msg = "unknown key" + _did_you_mean(loc)
        elif kind == "literal_error":
            msg = f"must be {(err.get('ctx') or {}).get('expected', 'one of the allowed values')}"
        elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            msg = "must be " + err["msg"].removeprefix("Input should be ")
        elif kind == "string_pattern_mismatch":
            msg = "may contain only a-z, 0-9, _ and -"
        elif kind == "string_too_short":
            msg = "must not be empty"
        else:
            msg = _MESSAGES.get(kind, err["msg"])
        problems.append(f"{_format_loc(loc)}: {msg}")
    return problems


def _did_you_mean(loc: tuple[str | int, ...]) -> str:
    model: Any = Settings
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return ""
        model = _model_of(field.annotation)
    fields = getattr(model, "model_fields", None)
    if not fields or not isinstance(loc[-1], str):
        return ""
    names = [f.alias or n for n, f in fields.items()]
    close = difflib.get_close_matches(loc[-1], names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


# --- reference ----------------------------------------------------------------------------------


_SECTIONS: tuple[tuple[str, type[BaseModel], bool], ...] = (
    ("cwa", CwaConfig, True),
    ("watch[]", WatchEntry, False),
    ("mqtt", MqttConfig, True),
    ("homeassistant", HomeAssistantConfig, True),
    ("http", HttpConfig, True),
    ("log", LogConfig, True),
    ("lights[]", LightConfig, False),
    ("lights[].schedule", ScheduleConfig, False),
)


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return " \\| ".join(str(a) for a in get_args(annotation))
    if origin is Annotated:
        return _type_name(get_args(annotation)[0])
    args = [a for a in get_args(annotation) if a is not type(None)]
    if origin in (list, tuple, frozenset):
        return "list"
    if origin is dict:
        return "mapping"
    if args and len(args) < len(get_args(annotation)):
        return _type_name(args[0]) + " or null"
    names = {str: "string", bool: "bool", int: "int", float: "number", SecretStr: "secret", Path: "path"}
    names |= {time: '"HH:MM"', ZoneInfo: "time zone"}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return value


def _default(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "*required*"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, frozenset) and len(value) == 7:
        return "`daily`"
    flow = yaml.safe_dump(_plain(value), default_flow_style=True, width=1000).strip()
    return "`" + flow.removesuffix("...").strip().replace("|", "\\|") + "`"


def config_reference_markdown() -> str:
    """A Markdown table per section, from the field descriptions, types and defaults."""
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by `python -m bridge.config --reference`; do not edit by hand. -->",
        "",
        "Every key can also be set by an environment variable, which wins over the file: "
        "`CWA2MQTT_<SECTION>__<KEY>` for section keys, `CWA2MQTT_<KEY>` for top-level keys. "
        "List values (`watch`, `lights`, `priority`) take JSON or, for simple lists, comma-separated values.",
        "",
        "## Top level",
        "",
        "| key | type | default | env | description |",
        "|---|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        out.append(_row(name, field, f"{ENV_PREFIX}{name.upper()}"))
    for title, model, has_env in _SECTIONS:
        out += ["", f"## `{title}`", "", (model.__doc__ or "").strip(), ""]
        out += ["| key | type | default | env | description |", "|---|---|---|---|---|"]
        for name, field in model.model_fields.items():
            key = field.alias or name
            env = f"{ENV_PREFIX}{title.upper()}__{key.upper()}" if has_env else "—"
            out.append(_row(key, field, env))
    return "\n".join(out) + "\n"


def _row(key: str, field: Any, env: str) -> str:
    desc = (field.description or "").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    env_cell = f"`{env}`" if env != "—" else env
    return f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | {env_cell} | {desc} |"


def _main(argv: list[str]) -> int:
    if argv == ["--reference"]:
        sys.stdout.write(config_reference_markdown())
        return 0
    sys.stderr.write("usage: python -m bridge.config --reference\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
