"""What the service needs of its neighbours, and the options it runs with.

The service is built from values (`ServiceOptions`) and three small ports; `bridge.wiring` hands
in the real CWA client, MQTT publisher and metrics, the tests hand in fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bridge.errors import CwaError
from bridge.lights.presets import HttpRequest
from bridge.presence import Status

Output = Literal["json", "attributes", "both"]
DiscoveryFormat = Literal["component", "device"]
# Lights' first commands, and the discovery of users whose name CWA has not told yet, wait at most
# this long after start for every watched user to be reported (no blink, no device named by URI).
START_GRACE_S = 5.0


RefreshDone = Callable[[CwaError | None], None]


class CwaPort(Protocol):
    """What the service needs of the CWA client (`bridge.cwa.client.CwaClient`)."""

    @property
    def state(self) -> str: ...

    def set_watched(self, uris: Sequence[str]) -> None: ...

    def refresh(
        self, uri: str | None = None, *, on_done: Callable[[CwaError | None], None] | None = None
    ) -> None:
        """queryPresence without waiting; ``on_done`` is called exactly once with the outcome."""

    def publish_self(self, status: Status | None = None, note: str | None = None) -> Any: ...


class MqttPort(Protocol):
    """What the service needs of the MQTT publisher (`bridge.mqtt.publisher.MqttPublisher`)."""

    @property
    def connected(self) -> bool: ...

    def publish(
        self, topic: str, payload: bytes | str, *, retain: bool = True, qos: int | None = None
    ) -> None: ...

    def read_retained(
        self, topic_filters: Sequence[str], quiet_s: float = 0.3, timeout_s: float = 3.0
    ) -> dict[str, bytes]: ...


class LightSenderPort(Protocol):
    """Where requests for lights behind an HTTP API go (`bridge.lights.http_sender`)."""

    def submit(self, light: str, request: HttpRequest) -> None: ...


class MetricsPort(Protocol):
    def events_received(self, kind: str) -> None: ...

    def publishes(self, kind: str) -> None: ...

    def command_result(self, op: str, status: str) -> None: ...

    def observe_event_to_publish(self, seconds: float) -> None: ...

    def resync_correction(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    base_topic: str = "cwa2mqtt"
    self_uri: str = ""
    cwa_url: str = ""
    output: Output = "both"
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    discovery_format: DiscoveryFormat = "component"
    ha_node: str = "cwa2mqtt"  # prefix of HA unique ids; the demo on a real broker uses its own
    ha_status_topic: str = "homeassistant/status"
    note_max_length: int = 255
    watch_contacts: bool = False
    color_topics: bool = False
    health_grace_s: float = 120.0
    poll_timeout_s: float = 95.0  # a data channel without an answer for longer (+ the grace) is stalled
    start_grace_s: float = START_GRACE_S
    configuration_url: str | None = None
    command_ttl_s: float = 120.0
