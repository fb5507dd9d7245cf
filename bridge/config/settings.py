"""`Settings`, the whole configuration, and the two sources pydantic-settings builds it from.

Sources, highest priority first: the environment (``CWA2MQTT_SECTION__KEY``), the file, then
the packaging defaults file named by ``$CWA2MQTT_DEFAULTS_FILE``. All three read the inputs of
the running `load_settings` call from `bridge.config.context`. The validators here are the ones
that span sections (`bridge.config.crosscheck` has their rules).
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
from bridge.config.crosscheck import DISCOVERY_NEEDS_JSON, light_clashes, watch_clashes
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


class _DefaultsSource(_YamlSource):
    """The packaging defaults file (``$CWA2MQTT_DEFAULTS_FILE``): below the user's file."""

    def __call__(self) -> dict[str, Any]:
        return dict(current().defaults)


class _EnvSource(EnvSettingsSource):
    """``CWA2MQTT_…`` from the mapping given to `load_settings` (``os.environ`` by default)."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {key.lower(): (None if val == "null" else val) for key, val in current().env.items()}


class Settings(BaseSettings):
    """The whole configuration (README, "Configuration", and docs/lights.md)."""

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
        # First wins: explicit arguments, the user's environment, the user's file, the packaging
        # defaults (a container image's listen address must not override the user's file).
        return (
            init_settings,
            _EnvSource(settings_cls),
            _YamlSource(settings_cls),
            _DefaultsSource(settings_cls),
        )

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
    def _unique_watch(cls, entries: list[WatchEntry], info: ValidationInfo) -> list[WatchEntry]:
        cwa = info.data.get("cwa")
        own = cwa.uri if cwa is not None else None
        if problems := watch_clashes([(n, e.uri, e.id) for n, e in enumerate(entries)], own):
            raise Problems(problems)
        return entries

    @field_validator("homeassistant")
    @classmethod
    def _discovery(cls, ha: HomeAssistantConfig, info: ValidationInfo) -> HomeAssistantConfig:
        mqtt = info.data.get("mqtt")
        if ha.discovery and mqtt is not None and mqtt.output == "attributes":
            raise Problems([(DISCOVERY_NEEDS_JSON[0][1:], DISCOVERY_NEEDS_JSON[1])])
        return ha

    @field_validator("lights")
    @classmethod
    def _lights(cls, lights: list[LightConfig], info: ValidationInfo) -> list[LightConfig]:
        watch: list[WatchEntry] | None = info.data.get("watch")
        # With watch_contacts, ids may be contacts found later: see `config_warnings`.
        unknowable = watch is None or info.data.get("watch_contacts", False)
        known = None if unknowable else sorted({w.id for w in watch or ()} | {"self"})
        if problems := light_clashes([(n, li.name, li.watch) for n, li in enumerate(lights)], known):
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
