"""The service's presence store: one entry per bridged id, found by id or by URI (pure, no I/O).

Part of the service layer (it reads CWA summaries and retained MQTT payloads, as `bridge.service`
does). The service's loop thread owns the store; nothing here locks. It knows which users are configured,
which came from the contact list, what each last looked like, and what a previous run left
retained on the broker (for `last_change`, README, "MQTT topics").

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from bridge.cwa.messages import PresenceSummary
from bridge.mqtt.topics import parse_presence_payload
from bridge.presence import (
    RESERVED_IDS,
    Presence,
    Status,
    derive_id,
    entity_key,
    parse_timestamp,
    valid_id,
    with_hash,
)

SELF_ID = "self"


@dataclass(frozen=True, slots=True)
class WatchSpec:
    """A configured watched user."""

    id: str
    uri: str
    name: str | None = None


@dataclass(slots=True)
class Entry:
    """One bridged id. ``name`` is the configured name: it wins over anything CWA says."""

    id: str
    uri: str
    name: str | None
    from_contacts: bool = False
    contact_name: str | None = None
    presence: Presence | None = None
    watchable: bool = True
    unwatchable_reason: str | None = None  # why CWA cannot watch it, while `watchable` is False
    discovered_as: str | None = None  # device name used in the discovery last published
    retained_name: str | None = None  # the name a previous run published, until CWA tells one

    def display_name(self) -> str | None:
        if self.name:
            return self.name
        if self.presence is not None and self.presence.name:
            return self.presence.name
        return self.contact_name or self.retained_name

    @property
    def reported(self) -> bool:
        """CWA has said something about this user: a presence, or that it cannot be watched."""
        return self.presence is not None or not self.watchable


def uri_key(uri: str) -> str:
    """URIs compare case-insensitively, with or without the ``sip:`` scheme (§8.24)."""
    key = uri.strip().lower()
    return key if key.startswith("sip:") else f"sip:{key}"


class PresenceStore:
    def __init__(self, watch: Sequence[WatchSpec], self_uri: str) -> None:
        self._entries: dict[str, Entry] = {w.id: Entry(w.id, w.uri, w.name) for w in watch}
        self._entries[SELF_ID] = Entry(SELF_ID, self_uri, None)
        self._by_uri = {uri_key(e.uri): e.id for e in self._entries.values()}
        self._retained: dict[str, Presence] = {}

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def __contains__(self, ident: object) -> bool:
        return ident in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, ident: str) -> Entry:
        return self._entries[ident]

    def ids(self) -> frozenset[str]:
        return frozenset(self._entries)

    def watched_ids(self) -> list[str]:
        return sorted(i for i in self._entries if i != SELF_ID)

    def watched_uris(self) -> list[str]:
        return [e.uri for e in self._entries.values() if e.id != SELF_ID]

    def by_uri(self, uri: str) -> Entry | None:
        ident = self._by_uri.get(uri_key(uri))
        return None if ident is None else self._entries[ident]

    def all_reported(self) -> bool:
        return all(e.reported for e in self._entries.values())

    def presences(self) -> dict[str, Presence | None]:
        return {i: e.presence for i, e in self._entries.items()}

    def observe(self, entry: Entry, summary: PresenceSummary, now: datetime) -> None:
        """Record a fresh snapshot; `last_change` carries over when nothing that counts changed."""
        name = entry.name or summary.display_name or entry.contact_name
        fresh = Presence.observe(entry.uri, name, summary.availability, summary.activity, summary.notes)
        entry.presence = fresh.advance(entry.presence or self._retained.get(entry.id), now)

    def apply_contacts(self, contacts: Iterable[tuple[str, str | None]]) -> tuple[list[str], list[Entry]]:
        """Follow the contact list: returns the ids added and the contact entries removed."""
        current: set[str] = set()
        added: list[str] = []
        # In URI order, so that which of two colliding contacts gets the hash suffix does not
        # depend on the order CWA lists them in.
        for uri, name in sorted(contacts, key=lambda c: uri_key(c[0])):
            entry = self.by_uri(uri)
            if entry is None:
                entry = Entry(self._free_id(derive_id(uri), uri), uri, None, from_contacts=True)
                self._entries[entry.id] = entry
                self._by_uri[uri_key(uri)] = entry.id
                added.append(entry.id)
            entry.contact_name = name
            current.add(entry.id)
        gone = [e for e in self._entries.values() if e.from_contacts and e.id not in current]
        for entry in gone:
            del self._entries[entry.id]
            self._by_uri.pop(uri_key(entry.uri), None)
        return added, gone

    def _free_id(self, wanted: str, uri: str) -> str:
        """``wanted``, or, when it collides (also as Home Assistant sees ids: ``a-b`` is ``a_b``),
        ``wanted`` with the URI's hash: stable across restarts."""
        taken = {entity_key(i) for i in self._entries} | RESERVED_IDS
        if entity_key(wanted) not in taken:
            return wanted
        ident = with_hash(wanted, uri)
        n = 2
        while entity_key(ident) in taken:  # two URIs with the same 24-bit hash: vanishingly rare
            ident, n = with_hash(f"{wanted}_{n}", uri), n + 1
        return ident

    def held_before(self, ident: str) -> bool:
        """Whether the previous run left a presence for ``ident`` on the broker (read back)."""
        return ident in self._retained

    def load_retained(
        self, retained: Mapping[str, bytes], base_topic: str, devices_topic: str, now: datetime
    ) -> set[str]:
        """Take in what a previous run left on the broker; returns the ids it published that are
        not bridged any more (their topics are to be cleared)."""
        prefix = f"{base_topic}/"
        for topic, raw in retained.items():
            ident = topic[len(prefix) :]
            if topic.startswith(prefix) and valid_id(ident):
                prior = presence_from_payload(raw)
                if prior is not None:
                    self._retained[ident] = prior
                    if ident in self._entries and prior.name and prior.name != prior.uri:
                        self._entries[ident].retained_name = prior.name
        for entry in self._entries.values():
            if entry.presence is not None:  # seen before the broker was: compare with the retained one
                moment = entry.presence.last_change or now
                entry.presence = entry.presence.advance(self._retained.get(entry.id), moment)
        devices = _json_list(retained.get(devices_topic, b""))
        return {d for d in devices if d not in self._entries and valid_id(d)}


def _json_list(raw: bytes) -> list[str]:
    try:
        value = json.loads(raw) if raw else []
    except (ValueError, RecursionError):
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def presence_from_payload(raw: bytes) -> Presence | None:
    """A retained presence JSON of an earlier run, as far as `last_change` needs it."""
    data = parse_presence_payload(raw)
    if not data:
        return None
    uri, name, status_text = data.get("uri"), data.get("name"), data.get("status")
    if not isinstance(uri, str) or not isinstance(status_text, str):
        return None
    try:
        status = Status(status_text)
    except ValueError:
        return None
    activity, note = data.get("activity"), data.get("note")
    return replace(
        Presence.unknown(uri, name if isinstance(name, str) else None),
        status=status,
        activity=activity if isinstance(activity, str) else None,
        note=note if isinstance(note, str) else None,
        last_change=parse_timestamp(data.get("last_change")),
    )
