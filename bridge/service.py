"""The service: the one place that knows both CWA and MQTT.

Theory of operation. Every input — a notice from the CWA client, an MQTT message, a broker
(re)connect, a timer — is put on one queue and handled, in order, by one loop thread. That thread
alone owns the presence store and decides what to publish, so no lock guards the store and two
quick changes can never be published out of order. Retained state is published through
`_retain()`, which remembers the last payload sent per topic: a topic is published only when its
payload changes ("publish only on change"), and forgetting that memory republishes everything
(after a broker reconnect or a Home Assistant birth message). Commands that wait for CWA run on a
single worker thread, in arrival order, so a slow server never stalls presence. Snapshots for the
HTTP endpoint are immutable tuples swapped atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from bridge import __version__, commands
from bridge.cwa.messages import PresenceSummary
from bridge.cwa.notices import (
    CommandNotice,
    ContactsNotice,
    SelfNotice,
    SessionNotice,
    UserNotice,
    WatchabilityNotice,
)
from bridge.errors import BridgeError, CommandFailed, CwaError
from bridge.http import BoardEntry, HealthReport
from bridge.lights.controller import LightController
from bridge.lights.model import status_color
from bridge.lights.presets import HttpRequest
from bridge.mqtt import discovery as disco
from bridge.mqtt.topics import Topics, attribute_payloads, info_payload, presence_payload, response_payload
from bridge.presence import Presence, Status, format_timestamp
from bridge.store import SELF_ID, Entry, PresenceStore, WatchSpec

__all__ = ["SELF_ID", "Service", "ServiceOptions", "Snapshot", "WatchSpec"]

log = logging.getLogger(__name__)

Output = Literal["json", "attributes", "both"]
# Lights' first commands, and the discovery of users whose name CWA has not told yet, wait at most
# this long after start for every watched user to be reported (no blink, no device named by URI).
START_GRACE_S = 5.0
SETTLED_CHECK_S = 0.1
SNAPSHOT_MAX_AGE_S = 0.5  # under a steady stream of inputs the HTTP snapshot lags at most this


class CwaPort(Protocol):
    """What the service needs of the CWA client (`bridge.cwa.client.CwaClient`)."""

    @property
    def state(self) -> str: ...

    def set_watched(self, uris: Sequence[str]) -> None: ...

    def refresh(self, uri: str | None = None) -> None: ...

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


class MetricsPort(Protocol):
    def events_received(self, kind: str) -> None: ...

    def publishes(self, kind: str) -> None: ...

    def command_result(self, op: str, status: str) -> None: ...

    def observe_event_to_publish(self, seconds: float) -> None: ...


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    base_topic: str = "cwa2mqtt"
    self_uri: str = ""
    cwa_url: str = ""
    output: Output = "both"
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    ha_status_topic: str = "homeassistant/status"
    note_max_length: int = 255
    watch_contacts: bool = False
    color_topics: bool = False
    health_grace_s: float = 120.0
    start_grace_s: float = START_GRACE_S
    configuration_url: str | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the HTTP endpoint reads: replaced as a whole after each change."""

    entries: tuple[tuple[str, Presence | None, bool, str | None], ...] = ()
    session: str = "connecting"
    session_since: datetime | None = None
    last_error: str | None = None
    mqtt_connected: bool = False
    lights: Mapping[str, bytes] = field(default_factory=dict)


class LightSenderPort(Protocol):
    def submit(self, light: str, request: HttpRequest) -> None: ...


class Service:
    def __init__(
        self,
        *,
        cwa: CwaPort,
        mqtt: MqttPort,
        watch: Sequence[WatchSpec],
        options: ServiceOptions,
        lights: LightController | None = None,
        light_sender: LightSenderPort | None = None,
        metrics: MetricsPort | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        heartbeat: Callable[[], None] | None = None,
    ) -> None:
        self._cwa = cwa
        self._mqtt = mqtt
        self._opt = options
        self._topics = Topics(options.base_topic)
        self._lights = lights
        self._light_sender = light_sender  # http lights' requests go there (lights issue 17)
        self._metrics = metrics
        self._clock = clock
        self._heartbeat = heartbeat
        self._ctx = disco.DiscoveryContext(
            prefix=options.discovery_prefix,
            base_topic=options.base_topic,
            sw_version=__version__,
            note_max_length=options.note_max_length,
            configuration_url=options.configuration_url,
        )
        self._store = PresenceStore(watch, options.self_uri)
        # topic -> digest of the retained payload last sent there (`_digest`): the payloads
        # themselves (~100,000 topics at 10,000 users) cost ~20 MB of RSS (bench/NOTES.md).
        self._sent: dict[str, bytes] = {}
        self._session = "connecting"
        self._session_since: datetime | None = clock()
        self._session_down_at: float | None = time.monotonic()
        self._last_error: str | None = None
        self._readback_done = False
        self._pending_removals: set[str] = set()
        self._contacts_known = False
        self._light_state: dict[str, bytes] = {}
        self._lights_started = False  # see `_settled`
        self._names_settled = False  # see `_publish_discovery`
        self._settled_checked = 0.0
        self._started_at = time.monotonic()
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cwa2mqtt-command")
        self.snapshot = Snapshot()
        self._snapshot_dirty = False
        self._snapshot_at = 0.0

    # ------------------------------------------------------------------ inputs (any thread)

    def on_notice(self, notice: object) -> None:
        received = time.monotonic()
        self._queue.put(lambda: self._handle_notice(notice, received))

    def on_mqtt_connect(self) -> None:
        self._queue.put(self._handle_connect)

    def on_mqtt_disconnect(self) -> None:
        self._queue.put(self._update_snapshot)

    def on_mqtt_message(self, topic: str, payload: bytes) -> None:
        self._queue.put(lambda: self._handle_message(topic, payload))

    def on_light_result(self, light: str, delivered: bool) -> None:
        """An http light's sender reports an attempt (from its worker thread)."""
        self._queue.put(lambda: self._light_delivered(light, delivered))

    def call(self, job: Callable[[], None]) -> None:
        """Run ``job`` on the loop thread (tests and the app use it to act on the store safely)."""
        self._queue.put(job)

    # ------------------------------------------------------------------ lifecycle

    def subscriptions(self) -> list[str]:
        subs = self._topics.command_subscriptions()
        if self._opt.discovery:
            subs.append(self._opt.ha_status_topic)
        return subs

    def start(self) -> None:
        self._started_at = time.monotonic()
        self._cwa.set_watched(self._store.watched_uris())
        self._thread = threading.Thread(target=self._loop, name="cwa2mqtt-service", daemon=True)
        self._thread.start()
        self.on_mqtt_disconnect()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._queue.put(lambda: None)
        if self._thread is not None:
            self._thread.join(timeout)
        self._worker.shutdown(wait=False, cancel_futures=True)

    def final_messages(self) -> list[tuple[str, bytes]]:
        """The retained messages of a clean stop (§7.8): bridge and CWA offline."""
        return [(self._topics.bridge_cwa, b"offline"), (self._topics.bridge_state, b"offline")]

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until every input queued so far has been handled (for tests and orderly stops)."""
        done = threading.Event()

        def job() -> None:
            self._refresh_snapshot()
            done.set()

        self._queue.put(job)
        return done.wait(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            wait = 1.0
            if self._lights is not None:
                wakeup = self._lights.next_wakeup()
                if wakeup is not None:
                    wait = max(0.0, min(wait, (wakeup - self._clock()).total_seconds()))
            try:
                job = self._queue.get(timeout=wait)
            except queue.Empty:
                job = None
            try:
                if job is not None:
                    job()
                if self._snapshot_dirty and (
                    self._queue.empty() or time.monotonic() - self._snapshot_at >= SNAPSHOT_MAX_AGE_S
                ):
                    self._refresh_snapshot()
                if not self._names_settled and self._settled():
                    self._names_settled = True
                    self._publish_all()  # users whose name never came: discovery with the URI
                if self._lights is not None and not self._stop.is_set():
                    if self._lights_started:
                        self._send_lights(self._lights.on_tick())
                    else:
                        self._update_lights()  # starts them once due (also after the grace)
            except Exception:
                # A bug in one handler must not stop the bridge: log it with its traceback and go on.
                log.exception("service.handler_failed")
            if self._heartbeat is not None:
                self._heartbeat()

    # ------------------------------------------------------------------ CWA notices

    def _handle_notice(self, notice: object, received: float) -> None:
        if isinstance(notice, UserNotice):
            self._count("user_presence")
            entry = self._store.by_uri(notice.uri)
            if entry is not None and entry.id != SELF_ID:
                self._observe(entry, notice.summary, received)
        elif isinstance(notice, SelfNotice):
            self._count("self_presence")
            self._observe(self._store[SELF_ID], notice.summary, received)
        elif isinstance(notice, SessionNotice):
            self._count("session")
            self._session_changed(notice.state, notice.error)
        elif isinstance(notice, WatchabilityNotice):
            self._count("subscription_state")
            entry = self._store.by_uri(notice.uri)
            if entry is not None:
                entry.watchable = notice.watchable
                self._publish_entry(entry)
        elif isinstance(notice, ContactsNotice):
            self._count("contact_group")
            self._contacts_changed(notice.contacts)
        elif isinstance(notice, CommandNotice):
            self._count("command")
            data = {"status": notice.status, "note": notice.note, "applied": notice.ok}
            self._respond("self/set", "ok" if notice.ok else "error", data=data, error=notice.error)
        self._update_snapshot()

    def _count(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.events_received(kind)

    def _observe(self, entry: Entry, summary: PresenceSummary, received: float) -> None:
        self._store.observe(entry, summary, self._clock())
        if self._readback_done:
            self._publish_entry(entry)
            if self._metrics is not None:
                self._metrics.observe_event_to_publish(time.monotonic() - received)
            self._update_lights()

    def _session_changed(self, state: str, error: str | None) -> None:
        if state != self._session:
            self._session = state
            self._session_since = self._clock()
        if error:
            self._last_error = error
        online = state == "online"
        self._session_down_at = None if online else (self._session_down_at or time.monotonic())
        self._publish_bridge()
        for entry in self._store:
            self._publish_availability(entry)

    def _contacts_changed(self, contacts: Iterable[tuple[str, str | None]]) -> None:
        self._contacts_known = True
        if self._opt.watch_contacts:
            added, gone = self._store.apply_contacts(contacts)
            for ident in added:
                log.info("service.contact_added id=%s", ident)
            for entry in gone:
                self._clear_topics(entry.id)
                log.info("service.contact_removed id=%s", entry.id)
            self._cwa.set_watched(self._store.watched_uris())
        self._apply_pending_removals()
        if self._readback_done:
            self._publish_all()

    # ------------------------------------------------------------------ MQTT side

    def _handle_connect(self, ha_birth: bool = False) -> None:
        if not self._readback_done:
            self._read_back()
        self._sent.clear()
        for entry in self._store:
            entry.discovered_as = None
        lights_were_started = self._lights_started
        self._publish_all()  # may start the lights: their first commands go out then, once
        if self._lights is not None and lights_were_started:
            outgoing = self._lights.on_reconnect()
            if ha_birth:
                # HA needs the lights' state again, the devices did not lose anything (§8).
                outgoing = [out for out in outgoing if out.kind == "state"]
            self._send_lights(outgoing)
        self._update_snapshot()

    def _read_back(self) -> None:
        """Read the previous run's retained state (§5: clear removed users; keep `last_change`)."""
        t = self._topics
        try:
            retained = self._mqtt.read_retained([t.bridge_devices, f"{self._opt.base_topic}/+"])
        except BridgeError as exc:
            log.warning("service.readback_failed error=%s", exc)
            retained = {}
        self._pending_removals = self._store.load_retained(
            retained, self._opt.base_topic, t.bridge_devices, self._clock()
        )
        self._readback_done = True
        self._apply_pending_removals()

    def _apply_pending_removals(self) -> None:
        if not self._readback_done or (self._opt.watch_contacts and not self._contacts_known):
            return
        for ident in sorted(self._pending_removals):
            if ident not in self._store:
                log.info("service.removed_user_cleared id=%s", ident)
                self._clear_topics(ident)
        self._pending_removals.clear()

    def _clear_topics(self, ident: str) -> None:
        t = self._topics
        topics = [t.presence(ident), t.availability(ident), t.color(ident)]
        topics += [t.attribute(ident, f) for f in ("status", "activity", "note")]
        if self._opt.discovery:
            topics += disco.discovery_topics(self._opt.discovery_prefix, ident, is_self=ident == SELF_ID)
        for topic in topics:
            self._sent.pop(topic, None)
            self._mqtt.publish(topic, b"", retain=True)

    def _publish_all(self) -> None:
        if not self._readback_done:
            return
        if self._opt.discovery:
            for msg in disco.bridge_discovery(self._ctx):
                self._retain(msg.topic, msg.payload)
            if self._lights is not None:
                for name in self._lights.names():
                    for msg in disco.light_discovery(self._ctx, name):
                        self._retain(msg.topic, msg.payload)
            for entry in self._store:
                self._publish_discovery(entry)
        self._publish_bridge()
        for entry in self._store:
            self._publish_entry(entry)
        self._update_lights()

    def _publish_bridge(self) -> None:
        if not self._readback_done:
            return
        t = self._topics
        online = self._session == "online"
        watched = self._store.watched_ids()
        info = info_payload(
            version=__version__,
            cwa_server=urlsplit(self._opt.cwa_url).hostname or "",
            uri=self._opt.self_uri,
            session=self._session,
            since=self._session_since,
            watched=watched,
            last_error=self._last_error,
        )
        self._retain(t.bridge_cwa, b"online" if online else b"offline")
        self._retain(t.bridge_info, info)
        published = sorted(e.id for e in self._store if e.presence is not None or e.id != SELF_ID)
        self._retain(t.bridge_devices, _json_bytes(published))

    def _publish_entry(self, entry: Entry) -> None:
        if not self._readback_done:
            return
        t = self._topics
        if self._opt.discovery:
            self._publish_discovery(entry)
        presence = entry.presence
        if presence is not None:
            presence = presence.with_name(entry.display_name())
            if self._opt.output in ("json", "both"):
                self._retain(t.presence(entry.id), presence_payload(presence), kind="presence")
            if self._opt.output in ("attributes", "both"):
                for name, payload in attribute_payloads(presence).items():
                    self._retain(t.attribute(entry.id, name), payload)
            if self._opt.color_topics:
                self._retain(t.color(entry.id), status_color(presence.status).encode())
        self._publish_availability(entry)

    def _publish_discovery(self, entry: Entry) -> None:
        """Discovery of one user's device, again whenever its display name changes. A device is
        named by its display name from the start: while CWA may still tell the name (see
        `_settled`), a user without one waits rather than appear under its URI and be renamed."""
        display = entry.display_name()
        if display is None and not entry.reported and not self._names_settled:
            return
        display = display or entry.uri
        if entry.discovered_as != display:
            for msg in disco.user_discovery(
                self._ctx, entry.id, display, entry.uri, is_self=entry.id == SELF_ID
            ):
                self._retain(msg.topic, msg.payload)
            entry.discovered_as = display

    def _publish_availability(self, entry: Entry) -> None:
        if not self._readback_done:
            return
        online = self._session == "online" and entry.watchable
        self._retain(self._topics.availability(entry.id), b"online" if online else b"offline")

    def _retain(self, topic: str, payload: bytes, kind: str | None = None) -> None:
        """Publish retained ``payload`` on ``topic`` unless it is what was last sent there."""
        digest = _digest(payload)
        if self._sent.get(topic) == digest:
            return
        self._sent[topic] = digest
        self._mqtt.publish(topic, payload, retain=True)
        if kind is not None and self._metrics is not None:
            self._metrics.publishes(kind)

    # ------------------------------------------------------------------ lights

    def _settled(self) -> bool:
        """The broker is connected and CWA has reported every watched user (or they cannot be
        watched), or `start_grace_s` have passed since start. Until then lights get no commands
        (a restart must not blink a busy light off while the first presence is on its way)."""
        if not self._readback_done:
            return False
        now = time.monotonic()
        if now - self._settled_checked < SETTLED_CHECK_S:  # O(users): not once per notice
            return False
        self._settled_checked = now
        return now - self._started_at >= self._opt.start_grace_s or self._store.all_reported()

    def _update_lights(self) -> None:
        if self._lights is not None and (self._lights_started or self._settled()):
            # The first call is the lights' start: every light is new to the controller.
            self._lights_started = True
            self._send_lights(self._lights.on_presence(self._store.presences()))

    def _send_lights(self, outgoing: Iterable[Any]) -> None:
        for out in outgoing:
            if out.kind == "state":
                topic = self._topics.light_state(out.light)
                self._light_state[out.light] = out.payload
                self._retain(topic, out.payload)
            elif out.kind == "http":
                if self._light_sender is not None and out.request is not None:
                    self._light_sender.submit(out.light, out.request)
            else:
                self._mqtt.publish(out.topic, out.payload, retain=out.retain)

    def _light_delivered(self, light: str, delivered: bool) -> None:
        if self._lights is not None:
            self._send_lights(self._lights.delivered(light, delivered))
            self._update_snapshot()

    # ------------------------------------------------------------------ commands

    def _handle_message(self, topic: str, payload: bytes) -> None:
        if self._opt.discovery and topic == self._opt.ha_status_topic:
            if payload.strip().lower() == b"online":
                log.info("service.ha_birth republishing discovery and state")
                self._handle_connect(ha_birth=True)
            return
        command = self._topics.classify(topic)
        if command is None:
            return
        kind = command.kind
        parsed: commands.SelfSet | commands.Rejected
        if kind == "self_set":
            parsed = commands.parse_self_set(payload, self._opt.note_max_length)
        elif kind == "self_set_status":
            parsed = commands.parse_set_status(payload)
        elif kind == "self_set_note":
            parsed = commands.parse_set_note(payload, self._opt.note_max_length)
        elif kind == "refresh":
            self._run_refresh(commands.parse_refresh(payload, self._store.ids()))
            return
        elif kind == "health_check":
            report = self.health()
            self._respond(
                "health_check", "ok", data=report.body(), transaction=commands.transaction_of(payload)
            )
            return
        elif kind == "light_set" and command.light is not None:
            self._set_light_override(command.light, command.op, payload)
            return
        else:
            error = f"unknown request {command.op!r}; known: refresh, health_check"
            self._respond(command.op, "error", error=error, transaction=commands.transaction_of(payload))
            return
        if isinstance(parsed, commands.Rejected):
            log.info("service.command_rejected topic=%s error=%s", topic, parsed.error)
            self._respond("self/set", "error", error=parsed.error, transaction=parsed.transaction)
            return
        self._worker.submit(self._run_self_set, parsed)

    def _set_light_override(self, light: str, op: str, payload: bytes) -> None:
        if self._lights is None or light not in self._lights.names():
            error = f"unknown light {light!r}"
            self._respond(op, "error", error=error, transaction=commands.transaction_of(payload))
            return
        outs, response = self._lights.set_override(light, payload)
        self._lights_started = True  # the controller has evaluated every light now
        self._send_lights(outs)
        if self._metrics is not None:
            self._metrics.command_result("lights", str(response.get("status", "error")))
        # The §4 response shape, every key present (the controller leaves out the unused ones).
        answer = response_payload(
            "ok" if response.get("status") == "ok" else "error",
            data=response.get("data"),
            error=response.get("error"),
            transaction=response.get("transaction"),
        )
        self._mqtt.publish(self._topics.response(op), answer, retain=False)

    def _run_refresh(self, refresh: commands.Refresh | commands.Rejected) -> None:
        if isinstance(refresh, commands.Rejected):
            self._respond("refresh", "error", error=refresh.error, transaction=refresh.transaction)
            return
        uri = self._store[refresh.id].uri if refresh.id is not None else None

        def run() -> None:
            try:
                self._cwa.refresh(uri)
            except CwaError as exc:
                self._respond("refresh", "error", error=str(exc), transaction=refresh.transaction)
            else:
                data = {"id": refresh.id} if refresh.id else {"ids": self._store.watched_ids()}
                self._respond("refresh", "ok", data=data, transaction=refresh.transaction)

        self._worker.submit(run)

    def _run_self_set(self, cmd: commands.SelfSet) -> None:
        data: dict[str, Any] = {}
        if cmd.status is not None:
            data["status"] = cmd.status.value
        if cmd.note is not None:
            data["note"] = cmd.note
        try:
            outcome = self._cwa.publish_self(cmd.status, cmd.note)
        except CommandFailed as exc:
            self._respond("self/set", "error", error=str(exc), transaction=cmd.transaction)
            return
        except CwaError as exc:
            self._respond("self/set", "error", error=f"CWA unavailable: {exc}", transaction=cmd.transaction)
            return
        queued = bool(getattr(outcome, "queued", False))
        data["applied"] = not queued
        if queued:
            data["queued"] = True
        self._respond("self/set", "ok", data=data, transaction=cmd.transaction)

    def _respond(
        self,
        op: str,
        status: Literal["ok", "error"],
        *,
        data: object = None,
        error: str | None = None,
        transaction: object = None,
    ) -> None:
        if self._metrics is not None:
            self._metrics.command_result(op, status)
        payload = response_payload(status, data=data, error=error, transaction=transaction)
        self._mqtt.publish(self._topics.response(op), payload, retain=False)

    # ------------------------------------------------------------------ snapshots for HTTP

    def _update_snapshot(self) -> None:
        """Mark the snapshot stale; the loop rebuilds it when the queue is empty (at least every
        `SNAPSHOT_MAX_AGE_S`). A rebuild costs O(users): once per notice made a 10,000-user start
        quadratic (17 ms per notice, bench/RESULTS.md)."""
        self._snapshot_dirty = True

    def _refresh_snapshot(self) -> None:
        if not self._snapshot_dirty:
            return
        self._snapshot_dirty = False
        self._snapshot_at = time.monotonic()
        self.snapshot = Snapshot(
            entries=tuple(
                (e.id, e.presence.with_name(e.display_name()) if e.presence else None, e.watchable, e.uri)
                for e in self._store
            ),
            session=self._session,
            session_since=self._session_since,
            last_error=self._last_error,
            mqtt_connected=self._mqtt.connected,
            lights=dict(self._light_state),
        )

    def health(self) -> HealthReport:
        if threading.current_thread() is self._thread:  # a health_check request: see its own inputs
            self._refresh_snapshot()
        snap = self.snapshot
        reasons: list[str] = []
        mqtt_ok = self._mqtt.connected
        if not mqtt_ok:
            reasons.append("MQTT broker not connected")
        down_for = 0.0 if self._session_down_at is None else time.monotonic() - self._session_down_at
        if snap.session != "online" and down_for > self._opt.health_grace_s:
            reasons.append(f"CWA session {snap.session} for {int(down_for)} s")
        details: dict[str, object] = {
            "mqtt": "connected" if mqtt_ok else "disconnected",
            "cwa": "online" if snap.session == "online" else "offline",
            "session": snap.session,
            "since": format_timestamp(snap.session_since),
            "watched": sum(1 for e in snap.entries if e[0] != SELF_ID),
            "reasons": reasons,
        }
        if snap.last_error:
            details["last_error"] = snap.last_error
        return HealthReport(healthy=not reasons, details=details)

    def board(self) -> list[BoardEntry]:
        entries = []
        for ident, presence, watchable, uri in self.snapshot.entries:
            shown = presence if presence is not None else Presence.unknown(uri or "")
            entries.append(BoardEntry.from_presence(ident, shown, watchable=watchable))
        return entries


def _digest(payload: bytes) -> bytes:
    """16 bytes stand for a payload in `Service._sent`: a collision (2**-128) would skip a publish."""
    return hashlib.blake2b(payload, digest_size=16).digest()


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
