"""The MQTT topic contract (interface.md §4, §8) and its payloads, byte for byte."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.mqtt.topics import (
    Command,
    Topics,
    attribute_payloads,
    devices_payload,
    info_payload,
    parse_devices_payload,
    parse_presence_payload,
    presence_payload,
    response_payload,
    retained_last_change,
    validate_id,
)
from bridge.presence import Presence, Status

T = Topics("cwa2mqtt")

BOB = Presence(
    uri="sip:bob@example.org",
    name="Bob Example",
    status=Status.BUSY,
    idle=False,
    activity="in_a_meeting",
    availability=6500,
    note="Back at 3pm",
    note_type="personal",
    out_of_office=False,
    last_change=datetime(2026, 11, 22, 9, 14, 3, tzinfo=UTC),
)


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        (T.bridge_state, "cwa2mqtt/bridge/state"),
        (T.bridge_cwa, "cwa2mqtt/bridge/cwa"),
        (T.bridge_info, "cwa2mqtt/bridge/info"),
        (T.bridge_devices, "cwa2mqtt/bridge/devices"),
        (T.presence("bob"), "cwa2mqtt/bob"),
        (T.presence("self"), "cwa2mqtt/self"),
        (T.attribute("carol-n", "status"), "cwa2mqtt/carol-n/status"),
        (T.attribute("bob", "activity"), "cwa2mqtt/bob/activity"),
        (T.attribute("bob", "note"), "cwa2mqtt/bob/note"),
        (T.availability("bob_2"), "cwa2mqtt/bob_2/availability"),
        (T.color("bob"), "cwa2mqtt/bob/color"),
        (T.self_set, "cwa2mqtt/self/set"),
        (T.self_set_status, "cwa2mqtt/self/set/status"),
        (T.self_set_note, "cwa2mqtt/self/set/note"),
        (T.request("refresh"), "cwa2mqtt/bridge/request/refresh"),
        (T.request("health_check"), "cwa2mqtt/bridge/request/health_check"),
        (T.response("self/set"), "cwa2mqtt/bridge/response/self/set"),
        (T.response("lights/office-door/set"), "cwa2mqtt/bridge/response/lights/office-door/set"),
        (T.light_state("office-door"), "cwa2mqtt/lights/office-door"),
        (T.light_set("office-door"), "cwa2mqtt/lights/office-door/set"),
    ],
)
def test_every_topic_of_the_contract(topic: str, expected: str) -> None:
    assert topic == expected


def test_a_nested_base_topic_prefixes_everything() -> None:
    assert Topics("home/cwa").presence("bob") == "home/cwa/bob"


@pytest.mark.parametrize("bad", ["", "a/+", "a/#", "a\x00b", "/a", "a/", "a//b"])
def test_a_base_topic_that_could_not_be_published_to_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="topic"):
        Topics(bad)


@pytest.mark.parametrize("bad", ["Bob", "bob smith", "+", "#", "a/b", "", "bridge", "lights", "bob\x00"])
def test_invalid_or_reserved_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="id"):
        T.presence(bad)


def test_self_is_no_light_name() -> None:
    with pytest.raises(ValueError, match="signed-in account"):
        T.light_state("self")
    assert validate_id("self") == "self"


@pytest.mark.parametrize("bad", ["+", "a/#", "/x", "x/", ""])
def test_request_ops_never_carry_wildcards(bad: str) -> None:
    with pytest.raises(ValueError, match="op"):
        T.response(bad)


@given(st.text())
def test_no_built_topic_ever_contains_a_wildcard(text: str) -> None:
    for build in (T.presence, T.availability, T.color, T.light_state, T.request, T.response):
        try:
            topic = build(text)
        except ValueError:
            continue
        assert "+" not in topic
        assert "#" not in topic
        assert "\x00" not in topic


def test_command_subscriptions() -> None:
    assert T.command_subscriptions() == [
        "cwa2mqtt/self/set",
        "cwa2mqtt/self/set/status",
        "cwa2mqtt/self/set/note",
        "cwa2mqtt/bridge/request/+",
        "cwa2mqtt/lights/+/set",
    ]


@pytest.mark.parametrize(
    ("topic", "command"),
    [
        ("cwa2mqtt/self/set", Command("self_set", "self/set")),
        ("cwa2mqtt/self/set/status", Command("self_set_status", "self/set")),
        ("cwa2mqtt/self/set/note", Command("self_set_note", "self/set")),
        ("cwa2mqtt/bridge/request/refresh", Command("refresh", "refresh")),
        ("cwa2mqtt/bridge/request/health_check", Command("health_check", "health_check")),
        ("cwa2mqtt/bridge/request/reboot", Command("unknown_request", "reboot")),
        ("cwa2mqtt/lights/office-door/set", Command("light_set", "lights/office-door/set", "office-door")),
        ("cwa2mqtt/lights/Office/set", None),
        ("cwa2mqtt/bob", None),
        ("cwa2mqtt/self", None),
        ("cwa2mqtt/bridge/state", None),
        ("other/self/set", None),
        ("cwa2mqttx/self/set", None),
        ("cwa2mqtt/self/set/status/extra", None),
    ],
)
def test_classify_incoming_topics(topic: str, command: Command | None) -> None:
    assert T.classify(topic) == command


def test_every_command_response_topic_is_publishable() -> None:
    for sub in T.command_subscriptions():
        command = T.classify(sub.replace("+", "x"))
        assert command is not None
        assert "+" not in T.response(command.op)


def test_presence_json_byte_for_byte() -> None:
    assert presence_payload(BOB) == (
        b'{"uri":"sip:bob@example.org","name":"Bob Example","status":"busy","idle":false,'
        b'"activity":"in_a_meeting","availability":6500,"note":"Back at 3pm","note_type":"personal",'
        b'"out_of_office":false,"last_change":"2026-11-22T09:14:03Z"}'
    )


def test_unknown_presence_has_every_key_with_nulls() -> None:
    doc = json.loads(presence_payload(Presence.unknown("sip:x@example.org")))
    assert list(doc) == [
        "uri",
        "name",
        "status",
        "idle",
        "activity",
        "availability",
        "note",
        "note_type",
        "out_of_office",
        "last_change",
    ]
    assert doc["status"] == "unknown"
    assert doc["activity"] is None
    assert doc["note"] is None
    assert doc["last_change"] is None


def test_notes_are_utf8_not_escaped() -> None:
    p = Presence.unknown("sip:x@example.org", name="Zoë")
    assert "Zoë".encode() in presence_payload(p)


def test_attribute_payloads_and_null_clears() -> None:
    assert attribute_payloads(BOB) == {"status": b"busy", "activity": b"in_a_meeting", "note": b"Back at 3pm"}
    empty = attribute_payloads(Presence.unknown("sip:x@example.org"))
    assert empty == {"status": b"unknown", "activity": b"", "note": b""}


def test_response_payload_always_has_all_keys() -> None:
    assert (
        response_payload("ok", transaction=7) == b'{"status":"ok","data":null,"error":null,"transaction":7}'
    )
    assert json.loads(response_payload("error", error="status must be one of: available")) == {
        "status": "error",
        "data": None,
        "error": "status must be one of: available",
        "transaction": None,
    }
    assert json.loads(response_payload("ok", data={"ids": ("bob",), "status": Status.AWAY}))["data"] == {
        "ids": ["bob"],
        "status": "away",
    }


def test_info_payload_publishes_the_host_only() -> None:
    raw = info_payload(
        version="0.1.0",
        cwa_server="https://alice:s3cret@cwa.example.org:8443/cwa/",
        uri="sip:alice@example.org",
        session="online",
        since=datetime(2026, 11, 22, 9, 0, tzinfo=UTC),
        watched=["bob", "carol"],
    )
    assert b"s3cret" not in raw
    assert json.loads(raw) == {
        "version": "0.1.0",
        "cwa_server": "cwa.example.org",
        "uri": "sip:alice@example.org",
        "session": "online",
        "since": "2026-11-22T09:00:00Z",
        "watched": ["bob", "carol"],
        "unwatchable": {},
        "last_error": None,
    }


def test_info_payload_refuses_unknown_session_states() -> None:
    with pytest.raises(ValueError, match="session"):
        info_payload(version="1", cwa_server="h", uri="u", session="up", since=None, watched=[])


def test_devices_round_trip_and_garbage() -> None:
    assert devices_payload(["carol", "bob", "bob"]) == b'["bob","carol"]'
    assert parse_devices_payload(b'["bob","carol"]') == ["bob", "carol"]
    assert parse_devices_payload(b'["bob", 3, "Bad Id", "bridge"]') == ["bob"]
    for junk in (b"", b"\xff", b"{}", b"null", b"[" * 10000):
        assert parse_devices_payload(junk) == []


def test_retained_presence_read_back_keeps_last_change() -> None:
    raw = presence_payload(BOB)
    assert parse_presence_payload(raw) == json.loads(raw)
    assert retained_last_change(raw) == BOB.last_change


@given(st.binary())
def test_parsing_retained_data_never_raises(raw: bytes) -> None:
    parse_presence_payload(raw)
    retained_last_change(raw)
    parse_devices_payload(raw)


@pytest.mark.parametrize("junk", [b"", b"\xff\xfe", b"[1]", b'"x"', b"{", b'{"last_change": 5}', b"[" * 5000])
def test_foreign_retained_presence_gives_nothing(junk: bytes) -> None:
    assert retained_last_change(junk) is None


def test_pure_modules_import_no_io() -> None:
    """ARCHITECTURE.md: topics and discovery import no paho, httpx, socket, threading or time."""
    root = Path(__file__).resolve().parents[1] / "bridge" / "mqtt"
    forbidden = {"paho", "httpx", "socket", "threading", "time", "asyncio"}
    for name in ("topics.py", "discovery.py"):
        tree = ast.parse((root / name).read_text())
        imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
        modules = [a.name for n in imports if isinstance(n, ast.Import) for a in n.names]
        modules += [n.module or "" for n in imports if isinstance(n, ast.ImportFrom)]
        roots = {m.split(".")[0] for m in modules}
        assert not roots & forbidden, (name, roots & forbidden)
        assert not [m for m in modules if m.startswith("bridge.cwa")], "mqtt/* never imports cwa/*"
