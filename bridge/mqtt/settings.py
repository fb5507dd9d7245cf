"""How to reach the MQTT broker: `MqttSettings` and the ``mqtt://`` / ``mqtts://`` URL form.

Pure: no paho, no sockets. The password is kept out of ``repr`` so a logged settings object never
shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

_BAD_URL = "invalid MQTT URL (expected mqtt://host[:port] or mqtts://host[:port])"


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int = 1883
    tls: bool = False
    ca_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    client_id: str = "cwa2mqtt"
    keepalive_s: int = 60
    qos: int = 1
    will_topic: str = ""
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    connect_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("MQTT host is empty")
        if self.qos not in (0, 1, 2):
            raise ValueError(f"MQTT qos must be 0, 1 or 2, got {self.qos}")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise ValueError("need 0 < reconnect_min_s <= reconnect_max_s")

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> MqttSettings:
        """``mqtt://host[:port]`` (1883) or ``mqtts://host[:port]`` (8883, TLS); keywords override.

        User info in the URL (``mqtt://user:pass@host``) is used when ``username``/``password``
        are not given; it is never logged.
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(_BAD_URL) from exc
        scheme = parts.scheme.lower()
        if scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(_BAD_URL)
        tls = scheme == "mqtts"
        values: dict[str, Any] = {"host": parts.hostname, "port": port or (8883 if tls else 1883), "tls": tls}
        if parts.username:
            values["username"] = unquote(parts.username)
        if parts.password:
            values["password"] = unquote(parts.password)
        values.update({k: v for k, v in kw.items() if v is not None})
        return cls(**values)
