"""The presence store: ids, contacts, and what a previous run left retained."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bridge.cwa.messages import PresenceSummary
from bridge.presence import valid_id, with_hash
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
    # A clash and a reserved id get the URI's hash: the same id on every run, whatever the order.
    expected = [with_hash("bob", "sip:bob@other.example"), with_hash("lights", "sip:lights@example.org")]
    assert added == expected
    assert all(len(i) == len("bob-") + 6 or i.startswith("lights-") for i in added)
    assert gone == []
    assert s["bob"].contact_name == "Bob"
    assert not s["bob"].from_contacts  # configured users stay configured
    added, gone = s.apply_contacts([])
    assert added == []
    assert [e.id for e in gone] == expected
    assert "bob" in s


def test_contact_ids_are_stable_across_list_orders_and_collide_as_ha_sees_them() -> None:
    contacts = [("sip:a-b@example.org", None), ("sip:a_b@other.example", None)]
    first, _ = store().apply_contacts(contacts)
    second, _ = store().apply_contacts(list(reversed(contacts)))
    assert sorted(first) == sorted(second)
    assert "a-b" in first  # sorts first by URI, keeps the plain id
    assert with_hash("a_b", "sip:a_b@other.example") in first  # a_b is a-b to Home Assistant


def test_a_huge_contact_uri_gets_a_capped_id() -> None:
    uri = "sip:" + "x" * 70_000 + "@example.org"
    added, _ = store().apply_contacts([(uri, None)])
    assert len(added[0]) == 64
    assert added[0] == with_hash("x" * 70_000, uri)
    assert valid_id(added[0])


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
