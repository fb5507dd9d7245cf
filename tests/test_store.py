"""The presence store: ids, contacts, and what a previous run left retained."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bridge.cwa.messages import PresenceSummary
from bridge.store import SELF_ID, PresenceStore, WatchSpec

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def store() -> PresenceStore:
    return PresenceStore([WatchSpec("bob", "sip:bob@example.org")], "sip:alice@example.org")


def test_uris_are_found_case_insensitively_with_or_without_scheme() -> None:
    s = store()
    assert s.by_uri("SIP:Bob@Example.org") is s["bob"]
    assert s.by_uri("bob@example.org") is s["bob"]
    assert s.by_uri("sip:alice@example.org") is s[SELF_ID]
    assert s.by_uri("sip:zed@example.org") is None


def test_contacts_get_free_ids_and_leave_again() -> None:
    s = store()
    added, gone = s.apply_contacts(
        [
            ("sip:bob@example.org", "Bob"),
            ("sip:bob@other.example", "Other Bob"),
            ("sip:lights@example.org", None),
        ]
    )
    assert added == ["bob_2", "lights_2"]  # a clash and a reserved id get a suffix
    assert gone == []
    assert s["bob"].contact_name == "Bob"
    assert not s["bob"].from_contacts  # configured users stay configured
    added, gone = s.apply_contacts([])
    assert added == []
    assert [e.id for e in gone] == ["bob_2", "lights_2"]
    assert "bob" in s


def test_retained_state_of_a_previous_run() -> None:
    s = store()
    earlier = {
        "uri": "sip:bob@example.org",
        "status": "busy",
        "activity": None,
        "note": None,
        "last_change": "2026-11-20T07:30:00Z",
    }
    retained = {
        "cwa2mqtt/bob": json.dumps(earlier).encode(),
        "cwa2mqtt/bridge/devices": b'["bob", "dave", "self", "../x"]',
        "cwa2mqtt/dave": b"not json",
    }
    assert s.load_retained(retained, "cwa2mqtt", "cwa2mqtt/bridge/devices", NOW) == {"dave"}
    s.observe(s["bob"], PresenceSummary(6500, None, (), "Bob", None), NOW)
    presence = s["bob"].presence
    assert presence is not None
    assert presence.last_change == datetime(2026, 11, 20, 7, 30, tzinfo=UTC)
    s.observe(s["bob"], PresenceSummary(3500, None, (), "Bob", None), NOW)
    assert s["bob"].presence is not None
    assert s["bob"].presence.last_change == NOW
