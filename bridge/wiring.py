"""The composition root: `Settings` in, the bridge's parts out, wired to each other.

This is the only module that reads `Settings`; every part below takes plain values or small
option types. The service's input queue is made first, so the CWA client and the MQTT publisher
can be handed the place their events go before the service that consumes them exists.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from bridge.config import LightConfig, Settings
from bridge.cwa.client import CwaClient, CwaClientSettings
from bridge.cwa.codec import DEFAULT_MAX_BYTES
from bridge.cwa.iwa import IWA_MISSING, iwa_available
from bridge.errors import ConfigError
from bridge.http import HttpServer
from bridge.lights.controller import LightController
from bridge.lights.http_sender import HttpLightSender
from bridge.lights.spec import DEFAULT_TOPIC_PREFIX, LightSpec, ScheduleSpec
from bridge.liveness import Liveness
from bridge.metrics import Metrics
from bridge.mqtt.publisher import MqttPublisher
from bridge.mqtt.settings import MqttSettings
from bridge.mqtt.topics import Topics
from bridge.sdnotify import Notifier
from bridge.service import Service, ServiceOptions, WatchSpec
from bridge.service.inputs import Inputs

log = logging.getLogger(__name__)

BODY_BYTES_PER_USER = 4096  # data-channel body allowance per watched user, on top of the 4 MiB


@dataclass(frozen=True, slots=True)
class Knobs:
    """Test and bench knobs; the defaults are what `cwa2mqtt run` uses."""

    backoff_scale: float = 1.0
    health_grace_s: float | None = None  # None: the service's own (120 s)
    clock: Callable[[], datetime] | None = None  # one timezone-aware "now" for schedules and timestamps
    ha_node: str = "cwa2mqtt"  # prefix of HA unique ids: the demo on a real broker takes its own


@dataclass(frozen=True, slots=True)
class Parts:
    metrics: Metrics
    notifier: Notifier
    inputs: Inputs
    http_client: httpx.Client
    client: CwaClient
    publisher: MqttPublisher
    service: Service
    http: HttpServer | None
    light_sender: HttpLightSender | None
    topics: Topics
    liveness: Liveness
    cwa_host: str  # for log lines: the CWA server's host name, never its URL (it may hold a user)


def build(settings: Settings, knobs: Knobs = Knobs()) -> Parts:
    cwa, mqtt = settings.cwa, settings.mqtt
    if cwa.auth == "iwa" and not iwa_available():  # fail at start-up, not at the first sign-in
        raise ConfigError([IWA_MISSING])
    metrics = Metrics()
    inputs = Inputs()
    liveness = Liveness()  # every long-lived loop reports here: WATCHDOG and /healthz read it
    options = ServiceOptions(
        base_topic=mqtt.base_topic,
        self_uri=cwa.uri,
        cwa_url=str(cwa.url),
        output=mqtt.output,
        discovery=settings.homeassistant.discovery,
        discovery_prefix=settings.homeassistant.prefix,
        discovery_format=settings.homeassistant.discovery_format,
        ha_node=knobs.ha_node,
        ha_status_topic=settings.homeassistant.status_topic,
        note_max_length=cwa.note_max_length,
        watch_contacts=settings.watch_contacts,
        color_topics=settings.color_topics,
        health_grace_s=ServiceOptions().health_grace_s
        if knobs.health_grace_s is None
        else knobs.health_grace_s,
    )
    topics = Topics(mqtt.base_topic)
    http_client = httpx.Client(verify=_verify(settings), follow_redirects=False)
    client = CwaClient(
        CwaClientSettings(
            base_url=str(cwa.url),
            username=cwa.username,
            password=cwa.password.get_secret_value(),
            auth=cwa.auth,
            uri=cwa.uri,
            command_path=cwa.command_path,
            data_path=cwa.data_path,
            timeout_s=cwa.timeout_s,
            poll_timeout_s=cwa.poll_timeout_s,
            resync_s=cwa.resync_s,
            command_ttl_s=cwa.command_ttl_s,
            republish_s=cwa.republish_s,
            initial_availability=cwa.initial_availability,
            watch_contacts=settings.watch_contacts,
            backoff_initial_s=1.0 * knobs.backoff_scale,
            backoff_max_s=60.0 * knobs.backoff_scale,
            # One data-channel answer carries every queued event: the initial burst of N watched
            # users is ~1 KB each, so a fixed 4 MiB cap made a 10,000-user start fail and restart
            # forever (bench/RESULTS.md). The cap grows with the list.
            max_body_bytes=DEFAULT_MAX_BYTES + BODY_BYTES_PER_USER * len(settings.watch),
        ),
        http_client,
        inputs.on_notice,
        on_metric=_cwa_metrics(metrics),
        liveness=liveness,
    )
    # Known before the session starts, the watch list is subscribed from its start, and the first
    # data-channel answer carries the first users' presence (the service sets the same list again).
    client.set_watched([w.uri for w in settings.watch])
    publisher = MqttPublisher(
        MqttSettings.from_url(
            mqtt.url,
            username=mqtt.username,
            password=mqtt.password.get_secret_value() if mqtt.password else None,
            ca_file=str(mqtt.ca_file) if mqtt.ca_file else None,
            client_id=mqtt.client_id,
            keepalive_s=mqtt.keepalive_s,
            qos=mqtt.qos,
            will_topic=topics.bridge_state,
        ),
        subscriptions=Service.subscriptions_for(options),
        on_message=inputs.on_mqtt_message,
        on_connect=_counting_reconnects(metrics, inputs.on_mqtt_connect),
        on_disconnect=inputs.on_mqtt_disconnect,
        progress=liveness.register("mqtt", 60.0).progress,
    )
    lights, light_sender = None, None
    if settings.lights:
        specs = [light_spec(light) for light in settings.lights]
        lights = LightController(specs, settings.priority, clock=knobs.clock)
        if any(spec.preset == "http" for spec in specs):
            light_sender = HttpLightSender(
                specs,
                inputs.on_light_result,
                on_failure=metrics.light_failure,
                progress=liveness.register("lights", 60.0).progress,
                backoff_initial_s=0.5 * knobs.backoff_scale,
                backoff_max_s=30.0 * knobs.backoff_scale,
            )
    service = Service(
        cwa=client,
        mqtt=publisher,
        watch=[WatchSpec(w.id, w.uri, w.name) for w in settings.watch],
        options=options,
        lights=lights,
        light_sender=light_sender,
        metrics=metrics,
        clock=knobs.clock if knobs.clock is not None else _utc_now,
        inputs=inputs,
        poll_age=lambda: time.monotonic() - client.last_poll_completed,
        liveness=liveness,
    )
    metrics.gauges_from(
        lambda: (service.snapshot.watched, service.snapshot.session == "online", publisher.connected)
    )
    http = None
    if settings.http.port is not None:
        http = HttpServer(
            settings.http.host or "127.0.0.1",
            settings.http.port,
            health=service.health,
            metrics=metrics,
            board=service.board,
            token=settings.http.token.get_secret_value() if settings.http.token else None,
            allowed_hosts=settings.http.allowed_hosts,
        )
    notifier = Notifier()
    return Parts(
        metrics,
        notifier,
        inputs,
        http_client,
        client,
        publisher,
        service,
        http,
        light_sender,
        topics,
        liveness,
        cwa_host=urlsplit(str(cwa.url)).hostname or "",
    )


def light_spec(cfg: LightConfig) -> LightSpec:
    """One ``lights[]`` entry of the (validated) config as the lights feature takes it."""
    when = cfg.schedule
    schedule = (
        None if when is None else ScheduleSpec(frozenset(when.days), when.start, when.end, when.timezone)
    )
    return LightSpec(
        name=cfg.name,
        watch=tuple(cfg.watch),
        preset=cfg.preset,
        device=cfg.device,
        topic=cfg.topic,
        payload=cfg.payload,
        off_topic=cfg.off_topic,
        off_payload=cfg.off_payload,
        colors=dict(cfg.colors),
        activity_colors=dict(cfg.activity_colors),
        schedule=schedule,
        retain=cfg.retain,
        brightness=cfg.brightness,
        topic_prefix=cfg.topic_prefix or DEFAULT_TOPIC_PREFIX,
        url=cfg.url,
        method=cfg.method or "POST",
        body=cfg.body,
        headers={k: v.get_secret_value() for k, v in cfg.headers.items()},
        off_url=cfg.off_url,
        off_body=cfg.off_body,
        verify_tls=cfg.verify_tls,
        ca_file=None if cfg.ca_file is None else str(cfg.ca_file),
    )


def _verify(settings: Settings) -> ssl.SSLContext | bool:
    cwa = settings.cwa
    if not cwa.verify_tls:
        log.warning(
            "cwa.tls_verification_disabled the CWA server's certificate is NOT checked: "
            "anyone on the network path can read the password; use only for testing"
        )
        return False
    if cwa.ca_file:
        return ssl.create_default_context(cafile=str(cwa.ca_file))
    return True


def _cwa_metrics(metrics: Metrics) -> Callable[[str, float | str], None]:
    def on_metric(name: str, value: float | str) -> None:
        if name == "poll_latency" and isinstance(value, float):
            metrics.observe_poll_latency(value)
        elif name == "error" and isinstance(value, str):
            metrics.cwa_error(value)
        elif name == "session_restart":
            metrics.session_restart()

    return on_metric


def _counting_reconnects(metrics: Metrics, then: Callable[[], None]) -> Callable[[], None]:
    connected_once = False

    def on_connect() -> None:
        nonlocal connected_once
        if connected_once:
            metrics.mqtt_reconnect()
        connected_once = True
        then()

    return on_connect


def _utc_now() -> datetime:
    return datetime.now(UTC)
