"""The service: the one place that knows both CWA and MQTT.

Theory of operation. Every input (a notice from the CWA client, an MQTT message, a broker
(re)connect, a timer) is put on one queue and handled, in order, by one loop thread. That thread
alone owns the presence store and decides what to publish, so no lock guards the store and two
quick changes can never be published out of order. What an entry looks like on MQTT is computed
by `projection` (pure) and published by `retained` (only on change; all again after a reconnect
or a Home Assistant birth). Commands that wait for CWA go to `requests.CommandWorker`, so a slow
server never stalls presence. The HTTP endpoint reads immutable snapshots (`status`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from bridge.cwa.messages import PresenceSummary
from bridge.cwa.notices import (
    CommandNotice,
    ContactsNotice,
    Notice,
    SelfNotice,
    SessionNotice,
    UserNotice,
    WatchabilityNotice,
)
from bridge.errors import BridgeError
from bridge.http import BoardEntry, HealthReport
from bridge.lights.controller import LightController, Outgoing
from bridge.liveness import Liveness
from bridge.mqtt.discovery import previous_format
from bridge.mqtt.topics import Topics
from bridge.presence import Presence
from bridge.service import status
from bridge.service.gate import StartGate
from bridge.service.inbox import Inbox
from bridge.service.inputs import (
    Call,
    Inputs,
    Item,
    LightResult,
    MqttConnected,
    MqttDisconnected,
    MqttMessage,
    Received,
)
from bridge.service.ports import (
    CwaPort,
    DiscoveryFormat,
    LightSenderPort,
    MetricsPort,
    MqttPort,
    ServiceOptions,
)
from bridge.service.projection import Projection, Retained
from bridge.service.retained import RetainedPublisher
from bridge.service.status import Snapshot
from bridge.store import SELF_ID, Entry, PresenceStore, WatchSpec

log = logging.getLogger(__name__)

# One pass of the loop handles one input; the longest (a full publish of 10,000 users after a
# reconnect) takes seconds. Longer than this without a pass, the loop counts as stuck.
LOOP_STALL_S = 60.0
READBACK_TIMEOUT_S = 3.0  # reading the previous run's retained state back; cut off after this
SNAPSHOT_MAX_AGE_S = 0.5  # under a steady stream of inputs the HTTP snapshot lags at most this
Job = Callable[[], None]


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
        monotonic: Callable[[], float] = time.monotonic,
        heartbeat: Callable[[], None] | None = None,
        inputs: Inputs | None = None,
        poll_age: Callable[[], float] | None = None,
        liveness: Liveness | None = None,
    ) -> None:
        self._cwa = cwa
        self._mqtt = mqtt
        self._opt = options
        self._view = Projection.of(options)
        self._topics = self._view.topics
        self._lights = lights
        self._light_sender = light_sender  # http lights' requests go there
        self._metrics = metrics
        self._clock = clock
        self._monotonic = monotonic
        self._heartbeat = heartbeat
        self._poll_age = poll_age  # seconds since the data channel last completed a poll
        self._liveness = liveness
        self._beat = liveness.register("service", LOOP_STALL_S) if liveness is not None else None
        self._store = PresenceStore(watch, options.self_uri)
        self._out = RetainedPublisher(mqtt, metrics, nullable=self._view.is_nullable)
        self._gate = StartGate(options.start_grace_s, monotonic)
        self._session = "connecting"
        self._session_since: datetime | None = clock()
        self._session_down_at: float | None = monotonic()
        self._last_error: str | None = None
        self._pending_removals: set[str] = set()
        # The discovery format HA holds our entities in (read back from the broker): a different
        # configured one is migrated to on the first full publish.
        self._held_format: DiscoveryFormat | None = None
        self._contacts_known = False
        self._light_state: dict[str, bytes] = {}
        self.inputs = inputs if inputs is not None else Inputs(clock=monotonic)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._inbox = Inbox(self)
        self.snapshot = Snapshot()
        self._snapshot_dirty = False
        self._snapshot_at = 0.0

    # ------------------------------------------------------------------ inputs (any thread)

    def on_notice(self, notice: Notice) -> None:
        self.inputs.on_notice(notice)

    def on_mqtt_connect(self) -> None:
        self.inputs.on_mqtt_connect()

    def on_mqtt_disconnect(self) -> None:
        self.inputs.on_mqtt_disconnect()

    def on_mqtt_message(self, topic: str, payload: bytes) -> None:
        self.inputs.on_mqtt_message(topic, payload)

    def on_light_result(self, light: str, delivered: bool) -> None:
        """An http light's sender reports an attempt (from its worker thread)."""
        self.inputs.on_light_result(light, delivered)

    def call(self, job: Job) -> None:
        """Run ``job`` on the loop thread (tests and the app use it to act on the store safely)."""
        self.inputs.call(job)

    # ------------------------------------------------------------------ lifecycle

    @staticmethod
    def subscriptions_for(options: ServiceOptions) -> list[str]:
        """The MQTT filters the service takes input from (commands, requests, HA's birth)."""
        subs = Topics(options.base_topic).command_subscriptions()
        if options.discovery:
            subs.append(options.ha_status_topic)
        return subs

    def subscriptions(self) -> list[str]:
        return self.subscriptions_for(self._opt)

    def start(self) -> None:
        self._gate.restart()
        self._cwa.set_watched(self._store.watched_uris())
        self._inbox.start()
        self._thread = threading.Thread(target=self._loop, name="cwa2mqtt-service", daemon=True)
        self._thread.start()
        self.on_mqtt_disconnect()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self.inputs.call(lambda: None)
        if self._thread is not None:
            self._thread.join(timeout)
        self._inbox.stop()

    def set_heartbeat(self, heartbeat: Callable[[], None]) -> None:
        """Called after every loop iteration (the app feeds systemd's watchdog from it)."""
        self._heartbeat = heartbeat

    def final_messages(self) -> list[tuple[str, bytes]]:
        """The retained messages of a clean stop: bridge and CWA offline."""
        return [(self._topics.bridge_cwa, b"offline"), (self._topics.bridge_state, b"offline")]

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until every input queued so far has been handled (for tests and orderly stops)."""
        done = threading.Event()

        def job() -> None:
            self._refresh_snapshot()
            done.set()

        self.inputs.call(job)
        return done.wait(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            item = self.inputs.get(self._wait_s())
            try:
                if item is not None:
                    self._handle(item)
                self._after_job()
            except Exception:
                # A bug in one handler must not stop the bridge: log it with its traceback and go on.
                log.exception("service.handler_failed")
            if self._beat is not None:
                self._beat.progress()
            if self._heartbeat is not None:
                self._heartbeat()

    def _handle(self, item: Item) -> None:
        match item:
            case Received(notice=notice, at=at):
                self._handle_notice(notice, at)
            case MqttMessage(topic=topic, payload=payload):
                self._inbox.handle(topic, payload)
            case MqttConnected():
                self._handle_connect()
            case MqttDisconnected():
                self._update_snapshot()
            case LightResult(light=light, delivered=delivered):
                self._light_delivered(light, delivered)
            case Call(job=job):
                job()

    def _wait_s(self) -> float:
        wait = 1.0
        if self._lights is not None:
            wakeup = self._lights.next_wakeup()
            if wakeup is not None:
                wait = max(0.0, min(wait, (wakeup - self._clock()).total_seconds()))
        return wait

    def _after_job(self) -> None:
        if self._snapshot_dirty and (
            self.inputs.empty() or self._monotonic() - self._snapshot_at >= SNAPSHOT_MAX_AGE_S
        ):
            self._refresh_snapshot()
        if self._gate.check(self._store.all_reported):
            self._publish_all()  # users whose name never came: discovery with the URI; lights start
        elif self._lights is not None and self._gate.open and not self._stop.is_set():
            self.send_lights(self._lights.on_tick())

    # ------------------------------------------------------------------ CWA notices

    def _handle_notice(self, notice: Notice, received: float) -> None:
        match notice:
            case UserNotice(uri=uri, summary=summary, resync=resync):
                self._count("user_presence")
                entry = self._store.by_uri(uri)
                if entry is not None and not entry.reported:
                    self._gate.reported()  # a first report: the first picture is still arriving
                if entry is not None and entry.id != SELF_ID:
                    changed = self._observe(entry, summary, received)
                    if resync and changed and self._metrics is not None:
                        self._metrics.resync_correction()
            case SelfNotice(summary=summary):
                self._count("self_presence")
                self._observe(self._store[SELF_ID], summary, received)
            case SessionNotice(state=state, error=error):
                self._count("session")
                self._session_changed(state, error)
            case WatchabilityNotice(uri=uri, watchable=watchable, reason=reason):
                self._count("subscription_state")
                entry = self._store.by_uri(uri)
                if entry is not None:
                    if not entry.reported:
                        self._gate.reported()
                    self._watchability(entry, watchable, reason)
            case ContactsNotice(contacts=contacts):
                self._count("contact_group")
                self._contacts_changed(contacts)
            case CommandNotice(status=status_, note=note, ok=ok, error=error):
                self._count("command")
                data = {"status": status_, "note": note, "applied": ok}
                self._inbox.respond("self/set", "ok" if ok else "error", data=data, error=error)
        self._update_snapshot()

    def _watchability(self, entry: Entry, watchable: bool, reason: str | None) -> None:
        if watchable != entry.watchable:
            if watchable:
                log.info("service.watchable_again id=%s uri=%s", entry.id, entry.uri)
            else:
                log.warning("service.unwatchable id=%s uri=%s reason=%s", entry.id, entry.uri, reason)
        entry.watchable = watchable
        entry.unwatchable_reason = None if watchable else (reason or "CWA cannot watch this user")
        self._publish_entry(entry)
        self._publish_bridge()

    def _count(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.events_received(kind)

    def _observe(self, entry: Entry, summary: PresenceSummary, received: float) -> bool:
        """Record a snapshot and publish what changed; True when the presence changed."""
        before = entry.presence
        self._store.observe(entry, summary, self._clock())
        changed = _log_change(entry, before)
        if self._gate.read_back:
            self._publish_entry(entry)
            if self._metrics is not None:
                self._metrics.observe_event_to_publish(self._monotonic() - received)
            self._update_lights()
        return changed

    def _session_changed(self, state: str, error: str | None) -> None:
        if state != self._session:
            self._session = state
            self._session_since = self._clock()
        if error:
            self._last_error = error
        online = state == "online"
        self._session_down_at = None if online else (self._session_down_at or self._monotonic())
        self._publish_bridge()
        if self._gate.read_back:
            for entry in self._store:
                self._retain(self._view.availability(entry, self._session == "online"))

    def _contacts_changed(self, contacts: Iterable[tuple[str, str | None]]) -> None:
        self._contacts_known = True
        if self._opt.watch_contacts:
            added, gone = self._store.apply_contacts(contacts)
            for ident in added:
                log.info("service.contact_added id=%s", ident)
            for entry in gone:
                self._out.clear(self._view.removal_topics(entry.id))
                log.info("service.contact_removed id=%s", entry.id)
            self._cwa.set_watched(self._store.watched_uris())
        self._apply_pending_removals()
        self._publish_all()

    # ------------------------------------------------------------------ MQTT side

    def _handle_connect(self, ha_birth: bool = False) -> None:
        if not self._gate.read_back:
            self._read_back()
        self._out.forget()
        for entry in self._store:
            entry.discovered_as = None
        lights_were_started = self._gate.open
        self._publish_all()  # may start the lights: their first commands go out then, once
        if self._lights is not None and lights_were_started:
            outgoing = self._lights.on_reconnect()
            if ha_birth:
                # HA needs the lights' state again, the devices did not lose anything.
                outgoing = [out for out in outgoing if out.kind == "state"]
            self.send_lights(outgoing)
        self._update_snapshot()

    def ha_birth(self) -> None:
        log.info("service.ha_birth republishing discovery and state")
        self._handle_connect(ha_birth=True)

    def _read_back(self) -> None:
        """Read the previous run's retained state: clear removed users, keep `last_change`."""
        t = self._topics
        try:
            started = self._monotonic()
            retained = self._mqtt.read_retained(
                [
                    t.bridge_devices,
                    t.bridge_discovery,
                    f"{self._opt.base_topic}/+",
                    *self._view.nullable_filters(),
                ],
                timeout_s=READBACK_TIMEOUT_S,
            )
            if self._monotonic() - started < READBACK_TIMEOUT_S:  # it went quiet: nothing cut off
                self._out.held(retained)  # which nullable topics hold something: the others need no clear
        except BridgeError as exc:
            log.warning("service.readback_failed error=%s", exc)
            retained = {}
        self._held_format = previous_format(
            retained.get(t.bridge_discovery), published_before=t.bridge_devices in retained
        )
        self._pending_removals = self._store.load_retained(
            retained, self._opt.base_topic, t.bridge_devices, self._clock()
        )
        self._gate.read_back = True
        self._apply_pending_removals()

    def _apply_pending_removals(self) -> None:
        if not self._gate.read_back or (self._opt.watch_contacts and not self._contacts_known):
            return
        for ident in sorted(self._pending_removals):
            if ident not in self._store:
                log.info("service.removed_user_cleared id=%s", ident)
                self._out.clear(self._view.removal_topics(ident, self._held_format))
        self._pending_removals.clear()

    def _publish_all(self) -> None:
        if not self._gate.read_back:
            return
        if self._opt.discovery:
            self._publish_bridge_discovery()
        self._publish_bridge()  # first: nothing a user's entry holds can keep these from the broker
        for entry in self._store:
            try:
                self._publish_entry(entry)
            except Exception as exc:  # one bad entry must not stop the others
                log.error("service.entry_failed id=%s error=%s", entry.id, exc, exc_info=log.isEnabledFor(10))
        self._update_lights()

    def _publish_bridge_discovery(self) -> None:
        names = self._lights.names() if self._lights is not None else ()
        current = self._opt.discovery_format
        if self._held_format is not None and self._held_format != current:
            log.info("service.discovery_migrating from=%s to=%s", self._held_format, current)
            for msg in self._view.discovery_plan(self._held_format, self._store, names):
                self._retain(msg)
            for entry in self._store:
                entry.discovered_as = entry.display_name() or entry.uri
        else:
            for msg in self._view.bridge_discovery(names):
                self._retain(msg)
            self._retain(self._view.format_message())
        self._held_format = current

    def _publish_bridge(self) -> None:
        if not self._gate.read_back:
            return
        since, error = self._session_since, self._last_error
        for msg in self._view.bridge(self._store, session=self._session, since=since, last_error=error):
            self._retain(msg)

    def _publish_entry(self, entry: Entry) -> None:
        if not self._gate.read_back:
            return
        if self._opt.discovery:
            self._publish_discovery(entry)
        for msg in self._view.state(entry):
            self._retain(msg)
        self._retain(self._view.availability(entry, self._session == "online"))

    def _publish_discovery(self, entry: Entry) -> None:
        """Discovery of one user's device, again whenever its display name changes. While the start
        gate is closed, a user whose name CWA has not told yet waits rather than appear under its URI."""
        display = entry.display_name()
        if display is None and not entry.reported and not self._gate.open:
            return
        display = display or entry.uri
        if entry.discovered_as != display:
            for msg in self._view.user_discovery(entry, display):
                self._retain(msg)
            entry.discovered_as = display

    def _retain(self, msg: Retained) -> None:
        self._out.retain(msg.topic, msg.payload, msg.kind)

    # ------------------------------------------------------------------ lights

    def _update_lights(self) -> None:
        if self._lights is not None and self._gate.open:
            self.send_lights(self._lights.on_presence(self._store.presences()))

    def send_lights(self, outgoing: Iterable[Outgoing]) -> None:
        for out in outgoing:
            if out.kind == "state":
                self._light_state[out.light] = out.payload
                self._out.retain(self._topics.light_state(out.light), out.payload)
            elif out.kind == "http":
                if self._light_sender is not None and out.request is not None:
                    self._light_sender.submit(out.light, out.request)
            elif out.topic is not None:
                self._mqtt.publish(out.topic, out.payload, retain=out.retain)

    def _light_delivered(self, light: str, delivered: bool) -> None:
        if self._lights is not None:
            self.send_lights(self._lights.delivered(light, delivered))
            self._update_snapshot()

    def open_gate(self) -> None:
        """A light override evaluated every light: the lights have started."""
        self._gate.force()

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
        self._snapshot_at = self._monotonic()
        self.snapshot = status.take_snapshot(
            self._store,
            session=self._session,
            since=self._session_since,
            last_error=self._last_error,
            mqtt_connected=self._mqtt.connected,
            lights=self._light_state,
        )

    def health(self) -> HealthReport:
        if threading.current_thread() is self._thread:  # a health_check request: see its own inputs
            self._refresh_snapshot()
        down_at = self._session_down_at
        down_for = 0.0 if down_at is None else self._monotonic() - down_at
        return status.health(
            self.snapshot,
            mqtt_ok=self._mqtt.connected,
            session_down_for=down_for,
            grace_s=self._opt.health_grace_s,
            poll_age=self._poll_age() if self._poll_age is not None else None,
            poll_timeout_s=self._opt.poll_timeout_s,
            stuck=self._liveness.stuck() if self._liveness is not None else (),
        )

    def board(self) -> list[BoardEntry]:
        return status.board(self.snapshot)


changes = logging.getLogger("bridge.changes")


def _log_change(entry: Entry, before: Presence | None) -> bool:
    """One line per presence change at info (the first report of each user at debug): what an
    operator reads to see the bridge working (set the ``bridge.changes`` logger to warning to turn
    it down). True when a known presence changed."""
    after = entry.presence
    if after is None or (before is not None and not after.differs_from(before)):
        return False
    level = logging.DEBUG if before is None else logging.INFO
    if changes.isEnabledFor(level):
        status, activity = after.status.value, after.activity
        changes.log(level, "presence.changed id=%s status=%s activity=%s", entry.id, status, activity)
    return before is not None
