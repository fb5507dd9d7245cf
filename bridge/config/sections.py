"""The sections of the configuration file other than ``lights:``: one frozen model each.

Field descriptions are user documentation: `bridge.config.reference` turns them, the types and
the defaults into docs/config-reference.md and the README's table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from bridge.config.parsers import (
    check_file,
    check_topic,
    normalize_sip_uri,
    parse_host_list,
    parse_listen,
)
from bridge.config.passwords import check_password_file, check_secret, resolve_password
from bridge.presence import ID_PATTERN, RESERVED_IDS, derive_id


class SectionModel(BaseModel):
    """Base of every section: unknown keys are errors, values are frozen, defaults are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class CwaConfig(SectionModel):
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
    timeout_s: float = Field(
        30,
        gt=0,
        description="Overall deadline of one sign-in or command exchange (connect to last byte), seconds.",
    )
    poll_timeout_s: float = Field(
        95, gt=0, description="Overall deadline of one data-channel poll, a held poll included, seconds."
    )
    resync_s: float = Field(
        1800,
        ge=0,
        description="Re-query every watched user this often, seconds (batched, spread over a minute); "
        "heals subscriptions a server dropped without telling. 0: never.",
    )
    command_ttl_s: float = Field(
        120, gt=0, description="A command not yet sent to CWA after this long is answered expired, seconds."
    )
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

    _password = model_validator(mode="before")(lambda data: resolve_password(data, "cwa_password"))
    _secret = field_validator("password", mode="before")(check_secret)
    _pw_file = field_validator("password_file")(check_password_file)
    _ca = field_validator("ca_file")(check_file)

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


class WatchEntry(SectionModel):
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
        if not ID_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid id (use only a-z, 0-9, _ and -)")
        if value in RESERVED_IDS:
            raise ValueError(f"{value!r} is reserved (set another id)")
        return value


class MqttConfig(SectionModel):
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

    _password = model_validator(mode="before")(lambda data: resolve_password(data, "mqtt_password"))
    _secret = field_validator("password", mode="before")(check_secret)
    _pw_file = field_validator("password_file")(check_password_file)
    _ca = field_validator("ca_file")(check_file)
    _base = field_validator("base_topic")(check_topic)

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


class HomeAssistantConfig(SectionModel):
    """``homeassistant:`` — Home Assistant MQTT discovery (README, section "Home Assistant")."""

    discovery: bool = Field(True, description="Publish Home Assistant discovery.")
    prefix: str = Field("homeassistant", description="Discovery prefix.")
    status_topic: str = Field(
        "homeassistant/status", description='HA birth topic; on "online" discovery and state are re-sent.'
    )
    discovery_format: Literal["component", "device"] = Field(
        "component",
        description="component: a config topic per entity (HA 2024.3+); device: one per device (2024.11+).",
    )

    _topics = field_validator("prefix", "status_topic")(check_topic)


class HttpConfig(SectionModel):
    """``http:`` — health, metrics and the presence board."""

    listen: str = Field("127.0.0.1:8099", description='HOST:PORT to serve on; "" disables the endpoint.')
    token: SecretStr | None = Field(
        None,
        description="Token (secret) every path but /healthz then needs: Authorization: Bearer <token>, "
        "or open /?token=<token> once in a browser. Or token_file, env, or the credential http_token.",
    )
    token_file: Path | None = Field(None, description="File holding the token.")
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Host names the board may be reached by besides localhost, loopback addresses "
        "and the listen address (a guard against DNS rebinding), e.g. [board.example.org].",
    )

    _token = model_validator(mode="before")(lambda data: resolve_password(data, "http_token", "token"))
    _token_file = field_validator("token_file")(check_password_file)
    _hosts = field_validator("allowed_hosts", mode="before")(parse_host_list)

    @field_validator("token", mode="before")
    @classmethod
    def _token_value(cls, value: Any) -> Any:
        check_secret(value)
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if (
            isinstance(text, str)
            and text
            and (len(text) < 16 or not text.isascii() or not text.isprintable() or " " in text)
        ):
            raise ValueError("must be at least 16 printable ASCII characters without spaces")
        return value

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


class LogConfig(SectionModel):
    """``log:``"""

    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="debug | info | warning | error"
    )
    format: Literal["text", "json"] = Field("text", description="text | json (one object per line).")
    changes: bool = Field(
        True, description="Log every presence change at info (presence.changed id=... status=...)."
    )

    @field_validator("level", "format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value
