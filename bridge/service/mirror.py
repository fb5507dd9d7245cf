"""The broker's side of the store: what must be retained, read back, migrated or cleared.

`Mirror` keeps the retained topics equal to what the store holds. It reads a previous run's
retained state once (for `last_change`, display names, the users to clear and the discovery format
Home Assistant holds), publishes through `RetainedPublisher` (only what changed), publishes the
bridge topics before any user's (nothing a user's entry holds can keep them from the broker), and
migrates discovery between formats with Home Assistant's handshake. Only the loop thread calls it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bridge.errors import BridgeError
from bridge.mqtt.discovery import previous_format
from bridge.service.gate import StartGate
from bridge.service.ports import DiscoveryFormat, MqttPort, ServiceOptions
from bridge.service.projection import Projection, Retained
from bridge.service.retained import RetainedPublisher
from bridge.store import Entry, PresenceStore

log = logging.getLogger("bridge.service")

# Reading the previous run's retained state back ends once it went quiet, or is cut off after
# this plus a millisecond per bridged user (~4 retained topics each: 10,000 users take ~1.5 s idle).
READBACK_TIMEOUT_S = 3.0


@dataclass(slots=True)
class Session:
    """The CWA session as the service last heard of it (owned by the loop thread)."""

    state: str
    since: datetime | None
    down_at: float | None  # monotonic time it went down; None while online
    last_error: str | None = None

    @property
    def online(self) -> bool:
        return self.state == "online"


class Mirror:
    def __init__(
        self,
        *,
        store: PresenceStore,
        view: Projection,
        out: RetainedPublisher,
        gate: StartGate,
        mqtt: MqttPort,
        session: Session,
        light_names: Callable[[], Sequence[str]],
        monotonic: Callable[[], float],
    ) -> None:
        self._store = store
        self._view = view
        self._opt: ServiceOptions = view.options
        self._out = out
        self._gate = gate
        self._mqtt = mqtt
        self._session = session
        self._light_names = light_names
        self._monotonic = monotonic
        self._pending_removals: set[str] = set()
        self.contacts_known = False
        # The discovery format HA holds our entities in (read back from the broker): a different
        # configured one is migrated to on the first full publish.
        self._held_format: DiscoveryFormat | None = None

    def read_back(self, now: datetime) -> None:
        """Read the previous run's retained state: clear removed users, keep `last_change`."""
        t = self._view.topics
        try:
            started = self._monotonic()
            # Every retained topic of the bridge is one or two levels under the base; the two that
            # decide what is removed and migrated are named as well.
            filters = [t.bridge_devices, t.bridge_discovery, f"{t.base}/+", f"{t.base}/+/+"]
            timeout_s = READBACK_TIMEOUT_S + len(self._store) / 1000
            retained = self._mqtt.read_retained(filters, timeout_s=timeout_s)
            # Only a read-back that went quiet before its deadline is complete.
            self._out.seed(retained, complete=self._monotonic() < started + timeout_s)
        except BridgeError as exc:
            log.warning("service.readback_failed error=%s", exc)
            retained = {}
        self._held_format = previous_format(
            retained.get(t.bridge_discovery), published_before=t.bridge_devices in retained
        )
        self._pending_removals = self._store.load_retained(retained, t.base, t.bridge_devices, now)
        self._gate.read_back = True
        self.apply_pending_removals()

    def apply_pending_removals(self) -> None:
        """Clear the topics of ids a previous run published that are not bridged any more (with
        ``watch_contacts``, once the contact list is known)."""
        if not self._gate.read_back or (self._opt.watch_contacts and not self.contacts_known):
            return
        for ident in sorted(self._pending_removals):
            if ident not in self._store:
                log.info("service.removed_user_cleared id=%s", ident)
                self._out.clear(self._view.removal_topics(ident, self._held_format))
        self._pending_removals.clear()

    def remove(self, entry: Entry) -> None:
        self._out.clear(self._view.removal_topics(entry.id))

    def forget(self) -> None:
        """After a (re)connect or HA's birth: everything is published again on the next round."""
        self._out.forget()
        for entry in self._store:
            entry.discovered_as = None

    def publish_all(self) -> None:
        if not self._gate.read_back:
            return
        if self._opt.discovery:
            self._bridge_discovery()
        self.publish_bridge()
        for entry in self._store:
            try:
                self.publish_entry(entry)
            except Exception as exc:  # one bad entry must not stop the others
                log.error("service.entry_failed id=%s error=%s", entry.id, exc, exc_info=log.isEnabledFor(10))

    def publish_bridge(self) -> None:
        if not self._gate.read_back:
            return
        s = self._session
        for msg in self._view.bridge(self._store, session=s.state, since=s.since, last_error=s.last_error):
            self._retain(msg)

    def publish_entry(self, entry: Entry) -> None:
        if not self._gate.read_back:
            return
        if self._opt.discovery:
            self._user_discovery(entry)
        for msg in self._view.state(entry):
            self._retain(msg)
        self._retain(self._view.availability(entry, self._session.online))

    def publish_availability(self) -> None:
        if self._gate.read_back:
            for entry in self._store:
                self._retain(self._view.availability(entry, self._session.online))

    def retain_light_state(self, light: str, payload: bytes) -> None:
        self._out.retain(self._view.topics.light_state(light), payload)

    def _bridge_discovery(self) -> None:
        names = self._light_names()
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

    def _user_discovery(self, entry: Entry) -> None:
        """Discovery of one user's device, again whenever its display name changes. While the start
        gate is closed, a user whose name is not known yet waits rather than appear under its URI."""
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
