"""What a store entry looks like on MQTT: pure functions from state to retained messages.

No I/O and no clock: the loop hands in the entry and the facts it needs (is the session online,
was discovery of this device published yet) and publishes what comes back through
`bridge.service.retained`, which drops what has not changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple
from urllib.parse import urlsplit

from bridge import __version__
from bridge.lights.model import status_color
from bridge.mqtt import discovery as disco
from bridge.mqtt.topics import (
    OFFLINE,
    ONLINE,
    Topics,
    attribute_payloads,
    devices_payload,
    info_payload,
    presence_payload,
)
from bridge.presence import Presence
from bridge.service.ports import DiscoveryFormat, ServiceOptions
from bridge.store import SELF_ID, Entry, PresenceStore

NULLABLE_FIELDS = ("activity", "note")  # attribute fields that may be null (status never is)


class Retained(NamedTuple):
    """One retained message; ``kind`` names it for the publish metrics (None: not counted)."""

    topic: str
    payload: bytes
    kind: str | None = None


@dataclass(frozen=True, slots=True)
class Projection:
    """The options that shape the messages, built once from `ServiceOptions`."""

    options: ServiceOptions
    topics: Topics
    discovery: disco.DiscoveryContext

    @classmethod
    def of(cls, options: ServiceOptions) -> Projection:
        return cls(
            options=options,
            topics=Topics(options.base_topic),
            discovery=disco.DiscoveryContext(
                prefix=options.discovery_prefix,
                base_topic=options.base_topic,
                sw_version=__version__,
                note_max_length=options.note_max_length,
                configuration_url=options.configuration_url,
                discovery_format=options.discovery_format,
                node=options.ha_node,
            ),
        )

    # ------------------------------------------------------------------ users

    def state(self, entry: Entry) -> list[Retained]:
        """The presence topics of ``entry`` (JSON, attributes, colour), as the options ask."""
        presence = entry.presence
        reason = None if entry.watchable else entry.unwatchable_reason
        if presence is None:
            if reason is None:
                return []
            presence = Presence.unknown(entry.uri)  # the reason must reach HA's attributes
        presence = presence.with_name(entry.display_name())
        t, output = self.topics, self.options.output
        out: list[Retained] = []
        if output in ("json", "both"):
            out.append(Retained(t.presence(entry.id), presence_payload(presence, reason), "presence"))
        if output in ("attributes", "both"):
            out += [Retained(t.attribute(entry.id, f), p) for f, p in attribute_payloads(presence).items()]
        if self.options.color_topics:
            out.append(Retained(t.color(entry.id), status_color(presence.status).encode()))
        return out

    def is_nullable(self, topic: str) -> bool:
        """An attribute topic a null field clears (an empty payload)."""
        base = self.options.base_topic
        head, _, field = topic.rpartition("/")
        return field in NULLABLE_FIELDS and head.startswith(base + "/") and "/" not in head[len(base) + 1 :]

    def availability(self, entry: Entry, session_online: bool) -> Retained:
        online = session_online and entry.watchable
        return Retained(self.topics.availability(entry.id), ONLINE if online else OFFLINE)

    def user_discovery(self, entry: Entry, display: str) -> list[Retained]:
        return _retained(disco.messages(self.discovery, self._user_device(entry, display)))

    def removal_topics(self, ident: str, discovery_format: DiscoveryFormat | None = None) -> list[str]:
        """Every retained topic a bridged id may own: cleared when the id stops being bridged.
        Discovery topics are those of ``discovery_format`` (the one HA holds them in)."""
        topics = self.topics.user_topics(ident)
        if self.options.discovery:
            fmt = discovery_format or self.options.discovery_format
            topics += disco.removal_topics(
                self.options.discovery_prefix, ident, fmt, is_self=ident == SELF_ID
            )
        return topics

    def _user_device(self, entry: Entry, display: str) -> disco.Device:
        return disco.user_device(self.discovery, entry.id, display, entry.uri, is_self=entry.id == SELF_ID)

    # ------------------------------------------------------------------ discovery as a whole

    def bridge_discovery(self, light_names: Iterable[str]) -> list[Retained]:
        return _retained(disco.messages(self.discovery, disco.bridge_device(self.discovery, light_names)))

    def discovery_plan(
        self, previous: DiscoveryFormat | None, store: PresenceStore, light_names: Iterable[str]
    ) -> list[Retained]:
        """Everything HA needs, bridge device first, migrating from ``previous`` (see
        `bridge.mqtt.discovery.discovery_plan`); every entry named as it is known now."""
        devices = [disco.bridge_device(self.discovery, light_names)]
        devices += [self._user_device(e, e.display_name() or e.uri) for e in store]
        return _retained(disco.discovery_plan(self.discovery, previous, devices))

    def format_message(self) -> Retained:
        msg = disco.format_message(self.discovery)
        return Retained(msg.topic, msg.payload)

    # ------------------------------------------------------------------ bridge

    def bridge(
        self,
        store: PresenceStore,
        *,
        session: str,
        since: datetime | None,
        last_error: str | None,
    ) -> list[Retained]:
        """``bridge/cwa``, ``bridge/info`` and ``bridge/devices``."""
        t = self.topics
        info = info_payload(
            version=__version__,
            cwa_server=urlsplit(self.options.cwa_url).hostname or "",
            uri=self.options.self_uri,
            session=session,
            since=since,
            watched=store.watched_ids(),
            last_error=last_error,
            unwatchable={e.id: e.unwatchable_reason or "" for e in store if not e.watchable},
        )
        # The account's own topics count once published, by this run or (still retained) the last:
        # a restart must not list it, drop it and list it again while its first presence is on the way.
        published = [
            e.id for e in store if e.id != SELF_ID or e.presence is not None or store.held_before(SELF_ID)
        ]
        return [
            Retained(t.bridge_cwa, ONLINE if session == "online" else OFFLINE),
            Retained(t.bridge_info, info),
            Retained(t.bridge_devices, devices_payload(published)),
        ]


def _retained(messages: Iterable[disco.DiscoveryMessage]) -> list[Retained]:
    return [Retained(m.topic, m.payload) for m in messages]
