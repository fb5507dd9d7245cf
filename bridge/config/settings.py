"""`Settings`, the whole configuration, and the two sources pydantic-settings builds it from.

Sources, highest priority first: the environment (``CWA2MQTT_SECTION__KEY``), then the file
(interface.md §1: env overrides file). Both read the inputs of the running `load_settings` call
from `bridge.config.context`. The validators here are the ones that span sections (watch ids
used by lights, discovery vs. ``mqtt.output``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bridge.config.context import current
from bridge.config.errors import Problems
from bridge.config.lights import LightConfig, ScheduleConfig
from bridge.config.sections import (
    CwaConfig,
    HomeAssistantConfig,
    HttpConfig,
    LogConfig,
    MqttConfig,
    WatchEntry,
)
from bridge.presence import ALL_STATUSES, DEFAULT_PRIORITY, Status

ENV_PREFIX = "CWA2MQTT_"
REDACTED = "**********"


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


class _YamlSource(PydanticBaseSettingsSource):
    """The parsed config file (parsed by `load_settings`, which reports syntax errors itself)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.current_state.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(current().document)


class _EnvSource(EnvSettingsSource):
    """``CWA2MQTT_…`` from the mapping given to `load_settings` (``os.environ`` by default)."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {key.lower(): (None if val == "null" else val) for key, val in current().env.items()}


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
            raise Problems(problems)
        return entries

    @field_validator("homeassistant")
    @classmethod
    def _discovery(cls, ha: HomeAssistantConfig, info: ValidationInfo) -> HomeAssistantConfig:
        mqtt = info.data.get("mqtt")
        if ha.discovery and mqtt is not None and mqtt.output == "attributes":
            raise Problems(
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
            raise Problems(problems)
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


# The sections with their YAML path and whether they have CWA2MQTT_<SECTION>__<KEY> variables:
# for the reference tables and the "did you mean" of an unknown environment variable.
SECTIONS: tuple[tuple[str, type[BaseModel], bool], ...] = (
    ("cwa", CwaConfig, True),
    ("watch[]", WatchEntry, False),
    ("mqtt", MqttConfig, True),
    ("homeassistant", HomeAssistantConfig, True),
    ("http", HttpConfig, True),
    ("log", LogConfig, True),
    ("lights[]", LightConfig, False),
    ("lights[].schedule", ScheduleConfig, False),
)
