"""What a status light is: the light model's own frozen inputs (docs/lights.md).

The light package does not import `bridge.config`; a converter turns the `lights:` YAML model into
these values. Construction validates and normalises (colours upper-case, activity keys snake_case),
so the model can trust every `LightSpec` it gets.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from bridge.presence import Status, normalize_activity, valid_id

Preset = Literal["wled", "tasmota", "esphome", "zigbee2mqtt", "http", "raw"]
PRESETS: tuple[Preset, ...] = ("wled", "tasmota", "esphome", "zigbee2mqtt", "http", "raw")
HttpMethod = Literal["GET", "POST", "PUT"]
HTTP_METHODS: tuple[HttpMethod, ...] = ("GET", "POST", "PUT")
DEFAULT_TOPIC_PREFIX = "zigbee2mqtt"

# Offline and unknown have no colour: the light is off for them.
DEFAULT_PALETTE: Mapping[Status, str] = MappingProxyType(
    {
        Status.AVAILABLE: "#00C853",
        Status.BUSY: "#D50000",
        Status.DO_NOT_DISTURB: "#8E24AA",
        Status.BE_RIGHT_BACK: "#FFAB00",
        Status.AWAY: "#FFAB00",
    }
)
OFF_STATUSES: frozenset[Status] = frozenset({Status.OFFLINE, Status.UNKNOWN})

# Earlier = busier (the `priority` setting).

_COLOR = re.compile(r"#[0-9A-Fa-f]{6}")


def normalize_color(value: str) -> str:
    """``#rrggbb`` → ``#RRGGBB``; anything else is a `ValueError` naming the value."""
    if not isinstance(value, str) or not _COLOR.fullmatch(value.strip()):
        raise ValueError(f"colour must be #RRGGBB, got {value!r}")
    return value.strip().upper()


@dataclass(frozen=True)
class ScheduleSpec:
    """When a light may be on: on ``days`` from ``start`` (inclusive) to ``end`` (exclusive).

    ``end <= start`` means the window crosses midnight; the part after midnight belongs to the day
    the window started on (``days: fri``, 22:00-06:00 covers Friday night into Saturday morning,
    not the early hours of Friday). ``start == end`` is a whole day. ``tz`` None = the machine's
    local time. Times are local wall-clock times, so 08:00-18:00 stays 08:00-18:00 across DST.
    """

    days: frozenset[int]
    start: datetime.time
    end: datetime.time
    tz: datetime.tzinfo | None = None

    def __post_init__(self) -> None:
        days = frozenset(self.days)
        if not days or not days <= frozenset(range(7)):
            raise ValueError(
                f"schedule days must be a non-empty subset of 0..6 (Mon..Sun), got {sorted(days)}"
            )
        object.__setattr__(self, "days", days)
        # A tz-aware time would make the wall-clock arithmetic ambiguous; the zone is `tz`.
        object.__setattr__(self, "start", self.start.replace(tzinfo=None, fold=0))
        object.__setattr__(self, "end", self.end.replace(tzinfo=None, fold=0))


@dataclass(frozen=True)
class LightSpec:
    """One entry of the ``lights:`` list, validated.

    ``brightness`` (1-255, None = the device's own) goes out in each preset's own form.
    zigbee2mqtt: ``topic_prefix`` + ``device``. http: ``url``/``body`` templates, ``method``,
    ``headers``, ``off_url``/``off_body`` (None = the colour request with ``#000000``),
    ``verify_tls``, ``ca_file``.
    """

    name: str
    watch: tuple[str, ...]
    preset: Preset
    device: str | None = None
    topic: str | None = None
    payload: str | None = None
    off_topic: str | None = None
    off_payload: str | None = None
    colors: Mapping[Status, str] = field(default_factory=dict)
    activity_colors: Mapping[str, str] = field(default_factory=dict)
    schedule: ScheduleSpec | None = None
    retain: bool = False
    brightness: int | None = None
    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    url: str | None = None
    method: HttpMethod = "POST"
    body: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    off_url: str | None = None
    off_body: str | None = None
    verify_tls: bool = True
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if not valid_id(self.name):
            raise ValueError(f"light name must match [a-z0-9_-], 1-64 characters, got {self.name!r}")
        watch = tuple(self.watch)
        if not watch:
            raise ValueError(f"light {self.name}: watch must list at least one id")
        object.__setattr__(self, "watch", watch)
        if self.preset not in PRESETS:
            raise ValueError(
                f"light {self.name}: preset must be one of {', '.join(PRESETS)}, got {self.preset!r}"
            )
        if self.preset == "raw":
            if not self.topic or self.payload is None:
                raise ValueError(f"light {self.name}: preset raw needs topic and payload")
        elif self.preset == "http":
            if not self.url:
                raise ValueError(f"light {self.name}: preset http needs url")
            if self.method not in HTTP_METHODS:
                raise ValueError(f"light {self.name}: method must be GET, POST or PUT, got {self.method!r}")
        elif not self.device:
            raise ValueError(f"light {self.name}: preset {self.preset} needs device")
        if self.brightness is not None and (
            isinstance(self.brightness, bool) or not 1 <= self.brightness <= 255
        ):
            raise ValueError(f"light {self.name}: brightness must be 1-255, got {self.brightness!r}")
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))
        for topic in (self.device, self.topic, self.off_topic, self.topic_prefix):
            if topic is not None and any(c in topic for c in "#+\0"):
                raise ValueError(f"light {self.name}: {topic!r} must not contain MQTT wildcards")
        colors = {Status(key): normalize_color(value) for key, value in self.colors.items()}
        activity_colors: dict[str, str] = {}
        for key, value in self.activity_colors.items():
            token = normalize_activity(key)
            if token is None:
                raise ValueError(f"light {self.name}: empty activity name in activity_colors")
            activity_colors[token] = normalize_color(value)
        object.__setattr__(self, "colors", MappingProxyType(colors))
        object.__setattr__(self, "activity_colors", MappingProxyType(activity_colors))

    def palette(self) -> Mapping[Status, str]:
        """The default palette with this light's overrides.

        Overrides for offline/unknown are ignored: those statuses switch the light off.
        """
        merged = dict(DEFAULT_PALETTE)
        merged.update({s: c for s, c in self.colors.items() if s not in OFF_STATUSES})
        return merged
