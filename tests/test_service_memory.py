"""Publish-on-change remembers a digest per retained topic, not the payload (issue 8: 10,000 users).

At 10,000 users the bridge keeps ~100,000 retained topics; keeping each last payload (discovery
~700 B each, presence JSON with the note) doubled what the presence store itself needs.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Sequence

from bridge.cwa.messages import PresenceSummary
from bridge.cwa.notices import SessionNotice, UserNotice
from bridge.presence import Note
from bridge.service import Service, ServiceOptions, WatchSpec
from tests.test_service import FakeCwa

USERS = 300
NOTE_CHARS = 4000


class CountingMqtt:
    """Keeps no payloads: the service's own memory is what is measured."""

    connected = True

    def __init__(self) -> None:
        self.published: dict[str, int] = {}

    def publish(
        self, topic: str, payload: bytes | str, *, retain: bool = True, qos: int | None = None
    ) -> None:
        self.published[topic] = self.published.get(topic, 0) + 1

    def read_retained(
        self, topic_filters: Sequence[str], quiet_s: float = 0.3, timeout_s: float = 3.0
    ) -> dict[str, bytes]:
        return {}


def uri(i: int) -> str:
    return f"sip:user{i:04d}@example.org"


def _grown_after_notes(note_chars: int) -> int:
    """Bytes the service holds after every user's first report carries a note of `note_chars`."""
    mqtt = CountingMqtt()
    service = Service(
        cwa=FakeCwa(),
        mqtt=mqtt,
        watch=[WatchSpec(f"user{i:04d}", uri(i)) for i in range(USERS)],
        options=ServiceOptions(self_uri="sip:alice@example.org", cwa_url="https://cwa.example.org"),
    )
    service.start()
    tracemalloc.start()
    try:
        service.on_notice(SessionNotice("online"))
        service.on_mqtt_connect()
        assert service.drain(30)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(USERS):
            note = (f"{i:04d} " * note_chars)[:note_chars]  # distinct per user: nothing shared
            summary = PresenceSummary(6500, None, (Note("personal", note),), f"User {i}", None)
            service.on_notice(UserNotice(uri(i), summary))
        assert service.drain(30)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        service.stop()
    assert all(mqtt.published[f"cwa2mqtt/user{i:04d}/note"] == 1 for i in range(USERS))
    return grown


def test_long_notes_are_held_once_not_once_per_retained_payload() -> None:
    # What the first reports cost besides their notes (discovery topics first published now,
    # dict growth) is the same for short and long notes: the difference is what the notes cost.
    short, long = 8, NOTE_CHARS
    held = _grown_after_notes(long) - _grown_after_notes(short)
    notes = USERS * (long - short)
    # The presence store holds each note once; the presence JSON and the note attribute payload
    # kept as "last sent" would hold it twice more (~3x the notes).
    assert held < 1.6 * notes, f"{held} bytes held for {notes} bytes of notes"
