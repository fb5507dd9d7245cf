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
from bridge.http import BoardEntry, HealthReport
from bridge.lights.controller import LightController
from bridge.liveness import Liveness
from bridge.mqtt.topics import Topics
from bridge.service import status
from bridge.service.changes import log_change
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
from bridge.service.lights import Lights
from bridge.service.mirror import Mirror, Session
from bridge.service.ports import CwaPort, LightSenderPort, MetricsPort, MqttPort, ServiceOptions
from bridge.service.projection import Projection
from bridge.service.retained import RetainedPublisher
from bridge.service.status import Snapshot
from bridge.store import SELF_ID, Entry, PresenceStore, WatchSpec

log = logging.getLogger(__name__)

# One pass of the loop handles one input; the longest (a full publish of 10,000 users after a
# reconnect) takes seconds. Longer than this without a pass, the loop counts as stuck.
LOOP_STALL_S = 60.0
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
        self._metrics = metrics
        self._clock = clock
        self._monotonic = monotonic
        self._heartbeat = heartbeat
        self._liveness = liveness
        self._beat = liveness.register("service", LOOP_STALL_S) if liveness is not None else None
        self._store = PresenceStore(watch, options.self_uri)
        self._gate = StartGate(options.start_grace_s, monotonic)
        self._session = Session("connecting", since=clock(), down_at=monotonic())
        self._mirror = Mirror(
            store=self._store,
            view=self._view,
            out=RetainedPublisher(mqtt, metrics, nullable=self._view.is_nullable),
            gate=self._gate,
            mqtt=mqtt,
            session=self._session,
            light_names=lights.names if lights is not None else tuple,
            monotonic=monotonic,
        )
        self._lights = Lights(lights, light_sender, mqtt=mqtt, mirror=self._mirror, gate=self._gate)
        self.inputs = inputs if inputs is not None else Inputs(clock=monotonic)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._inbox = Inbox(self)
        self._status = status.Reporter(
            store=self._store,
            session=self._session,
            mqtt=mqtt,
            lights=self._lights.state,
            monotonic=monotonic,
            grace_s=options.health_grace_s,
            poll_timeout_s=options.poll_timeout_s,
            poll_age=poll_age,
            liveness=liveness,
        )

    # ------------------------------------------------------------------ inputs (any thread)

    def on_notice(self, notice: Notice) -> None:
        self.inputs.on_notice(notice)

    def on_mqtt_connect(self) -> None:
        self.inputs.on_mqtt_connect()

    def on_mqtt_disconnect(self) -> None:
        self.inputs.on_mqtt_disconnect()

    def on_mqtt_message(self, topic: str, payload: bytes) -> None:
        self.inputs.on_mqtt_message(topic, payload)

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
            self._status.refresh()
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
            except Exception:  # a bug in one handler must not stop the bridge: logged, and on
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
                self._lights.delivered(light, delivered)
            case Call(job=job):
                job()

    def _wait_s(self) -> float:
        wakeup = self._lights.next_wakeup()  # a schedule boundary or an override's end
        return 1.0 if wakeup is None else max(0.0, min(1.0, (wakeup - self._clock()).total_seconds()))

    def _after_job(self) -> None:
        self._status.refresh_if_due(idle=self.inputs.empty())
        if self._gate.check(self._store.all_reported):
            self._publish_all()  # users whose name never came: discovery with the URI; lights start
        elif not self._stop.is_set():
            self._lights.tick()

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
        self._mirror.publish_entry(entry)
        self._mirror.publish_bridge()

    def _count(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.events_received(kind)

    def _observe(self, entry: Entry, summary: PresenceSummary, received: float) -> bool:
        """Record a snapshot and publish what changed; True when the presence changed."""
        before = entry.presence
        self._store.observe(entry, summary, self._clock())
        changed = log_change(entry, before)
        if self._gate.read_back:
            self._mirror.publish_entry(entry)
            if self._metrics is not None:
                self._metrics.observe_event_to_publish(self._monotonic() - received)
            self._lights.presence(self._store.presences)
        return changed

    def _session_changed(self, state: str, error: str | None) -> None:
        session = self._session
        if state != session.state:
            session.state, session.since = state, self._clock()
        if error:
            session.last_error = error
        session.down_at = None if session.online else (session.down_at or self._monotonic())
        self._mirror.publish_bridge()
        self._mirror.publish_availability()

    def _contacts_changed(self, contacts: Iterable[tuple[str, str | None]]) -> None:
        self._mirror.contacts_known = True
        if self._opt.watch_contacts:
            added, gone = self._store.apply_contacts(contacts)
            for ident in added:
                log.info("service.contact_added id=%s", ident)
            for entry in gone:
                self._mirror.remove(entry)
                log.info("service.contact_removed id=%s", entry.id)
            self._cwa.set_watched(self._store.watched_uris())
        self._mirror.apply_pending_removals()
        self._publish_all()

    # ------------------------------------------------------------------ MQTT side

    def _handle_connect(self, ha_birth: bool = False) -> None:
        self._mirror.forget()
        if not self._gate.read_back:  # once: what the broker holds is known then, only what differs goes out
            self._mirror.read_back(self._clock())
        lights_were_started = self._gate.open
        self._publish_all()  # may start the lights: their first commands go out then, once
        if lights_were_started:
            self._lights.reconnected(ha_birth)
        self._update_snapshot()

    def ha_birth(self) -> None:
        log.info("service.ha_birth republishing discovery and state")
        self._handle_connect(ha_birth=True)

    def _publish_all(self) -> None:
        self._mirror.publish_all()
        self._lights.presence(self._store.presences)

    # ------------------------------------------------------------------ lights

    # ------------------------------------------------------------------ status for HTTP

    @property
    def snapshot(self) -> Snapshot:
        """What the HTTP endpoint reads: replaced as a whole, safe from any thread."""
        return self._status.snapshot

    def _update_snapshot(self) -> None:
        self._status.mark_stale()

    def health(self) -> HealthReport:
        if threading.current_thread() is self._thread:  # a health_check request: see its own inputs
            self._status.refresh()
        return self._status.health()

    def board(self) -> list[BoardEntry]:
        return status.board(self._status.snapshot)
