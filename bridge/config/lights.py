"""``lights[]``: the status lights a user configures (docs/lights.md) and their schedules.

Validated here; `bridge.lights.spec` converts these models into the light package's own types.
"""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ConfigDict, Field, SecretStr, field_serializer, field_validator, model_validator

from bridge.config.crosscheck import ALL_PRESET_KEYS, preset_problems
from bridge.config.errors import Problems
from bridge.config.parsers import (
    DAY_NAMES,
    check_file,
    check_topic,
    parse_color,
    parse_days,
    parse_hhmm,
)
from bridge.config.sections import SectionModel
from bridge.lights.presets import redact_url
from bridge.presence import ALL_STATUSES, ID_PATTERN, Status, normalize_activity

PAYLOAD_PLACEHOLDERS = ("{hex}", "{HEX}", "{r}", "{g}", "{b}", "{status}", "{activity}", "{brightness}")


class ScheduleConfig(SectionModel):
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


class LightConfig(SectionModel):
    """``lights[]`` — a status light driven over MQTT (docs/lights.md)."""

    name: str = Field(
        description="Light name, [a-z0-9_-], 1-64 characters, unique.", pattern=rf"^{ID_PATTERN.pattern}$"
    )
    watch: tuple[str, ...] = Field(
        description='Watch ids (or "self") whose busiest status decides the colour; ties: first listed.'
    )
    preset: Literal["wled", "tasmota", "esphome", "zigbee2mqtt", "http", "raw"] = Field(
        description="wled | tasmota | esphome | zigbee2mqtt | http | raw"
    )
    device: str | None = Field(
        None, description="WLED/Tasmota topic, ESPHome light name or zigbee2mqtt friendly name."
    )
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
    brightness: int | None = Field(
        None, ge=1, le=255, strict=True, description="1-255, sent in the preset's own form; null: leave it."
    )
    topic_prefix: str | None = Field(
        None, description="zigbee2mqtt only: its base topic (default zigbee2mqtt)."
    )
    url: str | None = Field(None, description="http only: URL template (placeholders are URL-encoded).")
    method: Literal["GET", "POST", "PUT"] | None = Field(
        None, description="http only: GET | POST | PUT (default POST)."
    )
    body: str | None = Field(None, description="http only: body template.")
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="http only: request headers (secret: never shown or logged)."
    )
    off_url: str | None = Field(None, description="http only: URL for off (default: url, #000000).")
    off_body: str | None = Field(None, description="http only: body for off (default: body, #000000).")
    verify_tls: bool = Field(True, description="http only: verify the light's TLS certificate.")
    ca_file: Path | None = Field(None, description="http only: CA bundle for a light with a private CA.")

    @field_validator("watch", mode="before")
    @classmethod
    def _watch(cls, value: Any) -> Any:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            return value
        ids = [str(i).strip() for i in items]
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for n, wid in enumerate(ids):
            if not ID_PATTERN.fullmatch(wid):
                problems.append(((n,), f"{wid!r} is not a valid id"))
            elif wid in ids[:n]:
                problems.append(((n,), f"{wid!r} is listed twice"))
        if not ids:
            problems.append(((), "must list at least one id"))
        if problems:
            raise Problems(problems)
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

    @field_validator("device", "topic", "off_topic", "topic_prefix")
    @classmethod
    def _topic(cls, value: str | None) -> str | None:
        return None if value is None else check_topic(value)

    @field_validator("url", "off_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        # The message never echoes the URL: it may carry a password or a token.
        if value is None:
            return None
        try:
            parts = urlsplit(value.strip())
        except ValueError:
            raise ValueError("not a URL (expected http://host/... or https://host/...)") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must start with http:// or https:// and name a host")
        return value.strip()

    _ca_file = field_validator("ca_file")(check_file)

    @field_validator("headers", mode="before")
    @classmethod
    def _headers(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for key, item in value.items():
            if not str(key).strip() or any(c in str(key) for c in ":\r\n"):
                problems.append(((str(key),), "not a header name"))
            elif not isinstance(item, str | SecretStr) or any(c in str(item) for c in "\r\n"):
                problems.append(((str(key),), "must be a one-line string"))
        if problems:
            raise Problems(problems)
        return value

    @field_serializer("url", "off_url")
    def _url_out(self, value: str | None) -> str | None:
        return None if value is None else redact_url(value)

    @model_validator(mode="after")
    def _preset(self) -> LightConfig:
        fields = type(self).model_fields
        given = {
            # A default written out (check-config's effective configuration) is not a mistake.
            key: key in self.model_fields_set
            and getattr(self, key) is not None
            and getattr(self, key) != fields[key].get_default(call_default_factory=True)
            for key in ALL_PRESET_KEYS
        }
        if problems := preset_problems(self.preset, given):
            raise Problems(problems)
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
        raise Problems(problems)
    return out
