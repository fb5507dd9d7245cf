"""The service with in-memory fakes for both sides and an injected clock: no network, no sleeps."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.cwa.messages import PresenceSummary
from bridge.cwa.notices import CommandOutcome, ContactsNotice, SessionNotice, UserNotice, WatchabilityNotice
from bridge.errors import CommandFailed
from bridge.presence import Note, Status, with_hash
from bridge.service import Service, ServiceOptions, WatchSpec
from tests.support.outputs import wait_until

BASE = "cwa2mqtt"
BOB = "sip:bob@example.org"
CAROL = "sip:carol.nguyen@example.org"


class FakeCwa:
    def __init__(self) -> None:
        self.state = "online"
        self.watched: list[str] = []
        self.refreshed: list[str | None] = []
        self.published: list[tuple[Status | None, str | None]] = []
        self.fail_with: Exception | None = None

    def set_watched(self, uris: Sequence[str]) -> None:
        self.watched = list(uris)

    def refresh(self, uri: str | None = None, *, on_done: Any = None) -> None:
        if self.fail_with is not None:
            if on_done is not None:
                on_done(self.fail_with)
            return
        self.refreshed.append(uri)
        if on_done is not None:
            on_done(None)

    def publish_self(self, status: Status | None = None, note: str | None = None) -> CommandOutcome:
        if self.fail_with is not None:
            raise self.fail_with
        self.published.append((status, note))
        return CommandOutcome(applied=True, confirmed=True)


class FakeMqtt:
    def __init__(self, retained: dict[str, bytes] | None = None) -> None:
        self.connected = True
        self.retained_store = dict(retained or {})
        self.log: list[tuple[str, bytes, bool]] = []

    def publish(
        self, topic: str, payload: bytes | str, *, retain: bool = True, qos: int | None = None
    ) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        self.log.append((topic, data, retain))
        if retain:
            self.retained_store[topic] = data

    def read_retained(
        self, topic_filters: Sequence[str], quiet_s: float = 0.3, timeout_s: float = 3.0
    ) -> dict[str, bytes]:
        result = {}
        for topic, payload in self.retained_store.items():
            for flt in topic_filters:
                if flt.endswith("/+"):
                    prefix = flt[:-1]
                    if topic.startswith(prefix) and "/" not in topic[len(prefix) :]:
                        result[topic] = payload
                elif topic == flt:
                    result[topic] = payload
        return result

    def topics(self) -> list[str]:
        return [t for t, _, _ in self.log]

    def last(self, topic: str) -> bytes:
        return next(p for t, p, _ in reversed(self.log) if t == topic)


class Clock:
    """Wall-clock time for timestamps and a monotonic one for grace periods, both moved by tests."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 9, 0, 0, tzinfo=UTC)
        self.mono = 1000.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono


def summary(
    availability: int | None, activity: str | None = None, note: str | None = None
) -> PresenceSummary:
    notes = (Note("personal", note),) if note else ()
    return PresenceSummary(availability, activity, notes, "Bob Example", "bob@example.org")


class FakeMetrics:
    def __init__(self) -> None:
        self.corrections = 0

    def events_received(self, kind: str) -> None: ...

    def publishes(self, kind: str) -> None: ...

    def command_result(self, op: str, status: str) -> None: ...

    def observe_event_to_publish(self, seconds: float) -> None: ...

    def resync_correction(self) -> None:
        self.corrections += 1


Harness = tuple[Service, FakeCwa, FakeMqtt, Clock]


@pytest.fixture
def make() -> Any:
    services: list[Service] = []

    def build(retained: dict[str, bytes] | None = None, metrics: Any = None, **options: Any) -> Harness:
        cwa, mqtt, clock = FakeCwa(), FakeMqtt(retained), Clock()
        service = Service(
            cwa=cwa,
            mqtt=mqtt,
            watch=[WatchSpec("bob", BOB), WatchSpec("carol", CAROL, "Carol")],
            options=ServiceOptions(
                self_uri="sip:alice@example.org", cwa_url="https://cwa.example.org", **options
            ),
            clock=clock,
            monotonic=clock.monotonic,
            metrics=metrics,
        )
        services.append(service)
        service.start()
        return service, cwa, mqtt, clock

    yield build
    for service in services:
        service.stop()


def connect(service: Service) -> None:
    service.on_mqtt_connect()
    assert service.drain()


def feed(service: Service, *notices: object) -> None:
    for notice in notices:
        service.on_notice(notice)
    assert service.drain()


def test_presence_is_published_retained_with_every_key(make: Any) -> None:
    service, cwa, mqtt, _ = make()
    connect(service)
    feed(service, SessionNotice("online"), UserNotice(BOB, summary(6500, "in-a-meeting", "Back at 3pm")))
    assert json.loads(mqtt.last(f"{BASE}/bob")) == {
        "uri": BOB,
        "name": "Bob Example",
        "status": "busy",
        "idle": False,
        "activity": "in_a_meeting",
        "availability": 6500,
        "note": "Back at 3pm",
        "note_type": "personal",
        "out_of_office": False,
        "last_change": "2026-11-22T09:00:00Z",
    }
    assert mqtt.last(f"{BASE}/bob/status") == b"busy"
    assert mqtt.last(f"{BASE}/bob/activity") == b"in_a_meeting"
    assert mqtt.last(f"{BASE}/bob/availability") == b"online"
    assert mqtt.last(f"{BASE}/bridge/cwa") == b"online"
    assert all(retain for t, _, retain in mqtt.log if not t.startswith(f"{BASE}/bridge/response"))
    assert cwa.watched == [BOB, CAROL]


def test_an_identical_snapshot_publishes_nothing(make: Any) -> None:
    service, _, mqtt, clock = make()
    connect(service)
    feed(service, SessionNotice("online"), UserNotice(BOB, summary(3500)))
    before = len(mqtt.log)
    clock.now += timedelta(minutes=5)
    feed(service, UserNotice(BOB, summary(3500)))
    assert len(mqtt.log) == before


def test_last_change_moves_only_when_status_activity_or_note_changes(make: Any) -> None:
    service, _, mqtt, clock = make()
    connect(service)
    feed(service, SessionNotice("online"), UserNotice(BOB, summary(6500)))
    clock.now += timedelta(minutes=1)
    feed(service, UserNotice(BOB, summary(6900)))  # same band: still busy
    assert json.loads(mqtt.last(f"{BASE}/bob"))["last_change"] == "2026-11-22T09:00:00Z"
    assert json.loads(mqtt.last(f"{BASE}/bob"))["availability"] == 6900
    feed(service, UserNotice(BOB, summary(3500)))
    assert json.loads(mqtt.last(f"{BASE}/bob"))["last_change"] == "2026-11-22T09:01:00Z"


def test_last_change_survives_a_restart_when_nothing_changed(make: Any) -> None:
    earlier = {
        "uri": BOB,
        "name": "Bob Example",
        "status": "busy",
        "idle": False,
        "activity": None,
        "availability": 6500,
        "note": None,
        "note_type": None,
        "out_of_office": False,
        "last_change": "2026-11-20T07:30:00Z",
    }
    service, _, mqtt, _ = make(retained={f"{BASE}/bob": json.dumps(earlier).encode()})
    feed(service, SessionNotice("online"), UserNotice(BOB, summary(6500)))  # before the broker is up
    connect(service)
    assert json.loads(mqtt.last(f"{BASE}/bob"))["last_change"] == "2026-11-20T07:30:00Z"


def test_a_user_removed_from_the_config_is_cleared(make: Any) -> None:
    retained = {
        f"{BASE}/bridge/devices": b'["bob","dave","self"]',
        f"{BASE}/dave": b'{"uri": "sip:dave@example.org", "status": "away"}',
    }
    service, _, mqtt, _ = make(retained=retained)
    connect(service)
    cleared = {t for t, p, r in mqtt.log if p == b"" and r}
    assert {f"{BASE}/dave", f"{BASE}/dave/status", f"{BASE}/dave/availability"} <= cleared
    assert "homeassistant/sensor/cwa2mqtt_dave/status/config" in cleared
    assert json.loads(mqtt.last(f"{BASE}/bridge/devices")) == ["bob", "carol"]


def test_ha_birth_republishes_discovery_then_state(make: Any) -> None:
    service, _, mqtt, _ = make()
    connect(service)
    feed(service, SessionNotice("online"), UserNotice(BOB, summary(3500)))
    mqtt.log.clear()
    service.on_mqtt_message("homeassistant/status", b"online")
    assert service.drain()
    topics = mqtt.topics()
    assert topics[0].startswith("homeassistant/binary_sensor/cwa2mqtt_bridge/")
    assert topics.index("homeassistant/sensor/cwa2mqtt_bob/status/config") < topics.index(f"{BASE}/bob")
    mqtt.log.clear()
    service.on_mqtt_message("homeassistant/status", b"offline")
    assert service.drain()
    assert mqtt.log == []


def test_session_loss_marks_cwa_and_users_offline(make: Any) -> None:
    service, _, mqtt, _ = make()
    connect(service)
    feed(service, SessionNotice("online"), UserNotice(BOB, summary(3500)))
    feed(service, SessionNotice("reconnecting", "ticket_expired"))
    assert mqtt.last(f"{BASE}/bridge/cwa") == b"offline"
    assert mqtt.last(f"{BASE}/bob/availability") == b"offline"
    info = json.loads(mqtt.last(f"{BASE}/bridge/info"))
    assert info["session"] == "reconnecting"
    assert info["last_error"] == "ticket_expired"
    assert info["cwa_server"] == "cwa.example.org"
    assert info["watched"] == ["bob", "carol"]


def test_unwatchable_user_gets_availability_offline(make: Any) -> None:
    service, _, mqtt, _ = make()
    connect(service)
    feed(service, SessionNotice("online"), WatchabilityNotice(CAROL, False, "terminated"))
    assert mqtt.last(f"{BASE}/carol/availability") == b"offline"
    assert mqtt.last(f"{BASE}/bob/availability") == b"online"


def responses(mqtt: FakeMqtt, op: str = "self/set") -> list[dict[str, Any]]:
    return [json.loads(p) for t, p, _ in mqtt.log if t == f"{BASE}/bridge/response/{op}"]


def wait_responses(
    service: Service, mqtt: FakeMqtt, count: int, op: str = "self/set"
) -> list[dict[str, Any]]:
    wait_until(lambda: len(responses(mqtt, op)) >= count, 5, f"{count} responses on {op}")
    found = responses(mqtt, op)
    assert len(found) == count, found
    return found


@pytest.mark.parametrize(
    ("topic", "payload", "error"),
    [
        ("self/set", b"{", "payload is not valid JSON"),
        ("self/set", b"{}", "nothing to set"),
        ("self/set", b'{"status": "sleeping"}', "unknown status 'sleeping'"),
        ("self/set", b'{"note": ' + json.dumps("x" * 256).encode() + b"}", "at most 255"),
        ("self/set/status", b"lunch", "unknown status 'lunch'"),
        ("self/set/note", b"y" * 300, "at most 255"),
    ],
)
def test_invalid_commands_get_an_error_and_reach_nothing(
    make: Any, topic: str, payload: bytes, error: str
) -> None:
    service, cwa, mqtt, _ = make()
    connect(service)
    service.on_mqtt_message(f"{BASE}/{topic}", payload)
    assert service.drain()
    [answer] = wait_responses(service, mqtt, 1)
    assert answer["status"] == "error"
    assert error in answer["error"]
    assert cwa.published == []


def test_valid_command_reaches_cwa_and_echoes_the_transaction(make: Any) -> None:
    service, cwa, mqtt, _ = make()
    connect(service)
    service.on_mqtt_message(f"{BASE}/self/set", b'{"status": "busy", "note": "Focus", "transaction": "t-1"}')
    assert service.drain()
    [answer] = wait_responses(service, mqtt, 1)
    assert cwa.published == [(Status.BUSY, "Focus")]
    assert answer == {
        "status": "ok",
        "data": {"status": "busy", "note": "Focus", "applied": True},
        "error": None,
        "transaction": "t-1",
    }


def test_cwa_refusal_is_reported_precisely(make: Any) -> None:
    service, cwa, mqtt, _ = make()
    connect(service)
    cwa.fail_with = CommandFailed("CWA error 18201: OCS rejected the operation: SIP 403", code=18201)
    service.on_mqtt_message(f"{BASE}/self/set/status", b"away")
    assert service.drain()
    [answer] = wait_responses(service, mqtt, 1)
    assert answer["status"] == "error"
    assert "18201" in answer["error"]


def test_refresh_requests(make: Any) -> None:
    service, cwa, mqtt, _ = make()
    connect(service)
    service.on_mqtt_message(f"{BASE}/bridge/request/refresh", b"")
    service.on_mqtt_message(f"{BASE}/bridge/request/refresh", b'{"id": "carol"}')
    service.on_mqtt_message(f"{BASE}/bridge/request/refresh", b'{"id": "zed"}')
    assert service.drain()
    answers = wait_responses(service, mqtt, 3, "refresh")
    assert cwa.refreshed == [None, CAROL]
    by_status = sorted((a["status"], json.dumps(a["data"]), a["error"]) for a in answers)
    assert by_status == [
        ("error", "null", "unknown id 'zed'; known: bob, carol, self"),
        ("ok", '{"id": "carol"}', None),
        ("ok", '{"ids": ["bob", "carol"]}', None),
    ]


def test_health_check_request_is_answered(make: Any) -> None:
    service, _, mqtt, _ = make()
    connect(service)
    feed(service, SessionNotice("online"))
    service.on_mqtt_message(f"{BASE}/bridge/request/health_check", b'{"transaction": 9}')
    assert service.drain()
    [answer] = responses(mqtt, "health_check")
    assert answer["status"] == "ok"
    assert answer["transaction"] == 9
    assert answer["data"]["cwa"] == "online"
    assert answer["data"]["mqtt"] == "connected"


def test_contacts_are_bridged_with_watch_contacts(make: Any) -> None:
    service, cwa, mqtt, _ = make(watch_contacts=True)
    connect(service)
    feed(
        service,
        SessionNotice("online"),
        ContactsNotice(((BOB, "Bob"), ("sip:Erin.Rossi@example.org", "Erin Rossi"))),
        UserNotice("sip:erin.rossi@example.org", summary(15500)),
    )
    assert json.loads(mqtt.last(f"{BASE}/erin_rossi"))["status"] == "away"
    assert "sip:Erin.Rossi@example.org" in cwa.watched
    assert json.loads(mqtt.last(f"{BASE}/bridge/devices")) == ["bob", "carol", "erin_rossi"]
    feed(service, ContactsNotice(((BOB, "Bob"),)))
    assert mqtt.last(f"{BASE}/erin_rossi") == b""
    assert json.loads(mqtt.last(f"{BASE}/bridge/devices")) == ["bob", "carol"]


def test_broker_reconnect_republishes_everything(make: Any) -> None:
    service, _, mqtt, _ = make()
    connect(service)
    feed(service, SessionNotice("online"), UserNotice(BOB, summary(3500)))
    mqtt.log.clear()
    connect(service)
    topics = set(mqtt.topics())
    assert {f"{BASE}/bob", f"{BASE}/bob/status", f"{BASE}/bridge/cwa", f"{BASE}/bridge/info"} <= topics


def test_discovery_names_a_device_once_its_display_name_is_known(make: Any) -> None:
    service, _, mqtt, _ = make(start_grace_s=5)
    connect(service)
    feed(service, SessionNotice("online"))
    bob_config = "homeassistant/sensor/cwa2mqtt_bob/status/config"
    carol_config = "homeassistant/sensor/cwa2mqtt_carol/status/config"
    assert carol_config in mqtt.topics()  # configured name: published at once
    assert bob_config not in mqtt.topics()  # no name yet: not under his URI
    feed(service, UserNotice(BOB, summary(3500)))
    assert json.loads(mqtt.last(bob_config))["device"]["name"] == "Bob Example"
    assert mqtt.topics().count(bob_config) == 1


def test_a_user_cwa_never_names_is_discovered_under_its_uri_after_the_grace(make: Any) -> None:
    service, _, mqtt, clock = make(start_grace_s=5)
    connect(service)
    self_config = "homeassistant/sensor/cwa2mqtt_self/status/config"
    assert service.drain()
    assert self_config not in mqtt.topics()  # within the grace: CWA may still name it
    clock.mono += 5.1
    assert service.drain()
    assert service.drain()  # the gate is checked after each input
    assert json.loads(mqtt.last(self_config))["device"]["name"] == "sip:alice@example.org"


def test_a_user_cwa_cannot_watch_stays_offline_with_its_reason_everywhere(make: Any) -> None:
    service, _, mqtt, _ = make()
    connect(service)
    feed(service, SessionNotice("online"), UserNotice(BOB, summary(3500)))
    feed(service, WatchabilityNotice(CAROL, False, "unknown user"))
    mqtt.log.clear()
    # Servers send an offline snapshot with the refusal: it does not make Carol watchable.
    feed(service, UserNotice(CAROL, summary(18500)), WatchabilityNotice(CAROL, False, "unknown user"))
    availability = [p for t, p, _ in mqtt.log if t == f"{BASE}/carol/availability"]
    assert set(availability) <= {b"offline"}
    assert mqtt.retained_store[f"{BASE}/carol/availability"] == b"offline"
    info = json.loads(mqtt.retained_store[f"{BASE}/bridge/info"])
    assert info["unwatchable"] == {"carol": "unknown user"}
    assert json.loads(mqtt.retained_store[f"{BASE}/carol"])["unwatchable"] == "unknown user"
    assert "unwatchable" not in json.loads(mqtt.retained_store[f"{BASE}/bob"])
    assert [r.unwatchable for r in service.snapshot.rows if r.id == "carol"] == ["unknown user"]
    feed(service, WatchabilityNotice(CAROL, True, None))
    assert mqtt.retained_store[f"{BASE}/carol/availability"] == b"online"
    assert json.loads(mqtt.retained_store[f"{BASE}/bridge/info"])["unwatchable"] == {}


def test_one_entry_that_cannot_be_published_stops_nobody_else(make: Any) -> None:
    service, _, mqtt, _ = make(watch_contacts=True)
    huge = "sip:" + "x" * 70_000 + "@example.org"
    connect(service)
    feed(service, SessionNotice("online"), ContactsNotice(((huge, "Huge"), (BOB, "Bob"))))
    feed(service, UserNotice(BOB, summary(6500)))
    assert json.loads(mqtt.last(f"{BASE}/bob"))["status"] == "busy"
    capped = with_hash("x" * 70_000, huge)
    assert capped in json.loads(mqtt.retained_store[f"{BASE}/bridge/info"])["watched"]
    assert mqtt.retained_store[f"{BASE}/{capped}/availability"] == b"online"


def test_switching_discovery_formats_migrates_with_the_handshake_and_a_restart_changes_nothing(
    make: Any,
) -> None:
    service, _, mqtt, _ = make()  # component format, as 0.1 published it
    connect(service)
    feed(service, SessionNotice("online"), UserNotice(BOB, summary(3500)))
    old = {t for t, p in mqtt.retained_store.items() if t.startswith("homeassistant/") and p}
    assert mqtt.retained_store[f"{BASE}/bridge/discovery"] == b"component"
    service.stop()

    switched, _, mqtt2, _ = make(retained=mqtt.retained_store, discovery_format="device")
    connect(switched)
    log = [(t, p) for t, p, _ in mqtt2.log]
    migrate = [t for t, p in log if p == b'{"migrate_discovery":true}']
    assert old <= set(migrate)  # every old topic got the handshake ...
    first_device = next(i for i, (t, _) in enumerate(log) if t.startswith("homeassistant/device/"))
    last_migrate = max(i for i, (_, p) in enumerate(log) if p == b'{"migrate_discovery":true}')
    assert last_migrate < first_device  # ... before the new payloads
    assert all(mqtt2.retained_store[t] == b"" for t in old)  # and the old topics are cleared
    devices = {t for t, p in mqtt2.retained_store.items() if t.startswith("homeassistant/device/") and p}
    assert devices == {
        "homeassistant/device/cwa2mqtt_bridge/config",
        "homeassistant/device/cwa2mqtt_bob/config",
        "homeassistant/device/cwa2mqtt_carol/config",
        "homeassistant/device/cwa2mqtt_self/config",
    }
    assert mqtt2.retained_store[f"{BASE}/bridge/discovery"] == b"device"
    switched.stop()

    again, _, mqtt3, _ = make(retained=mqtt2.retained_store, discovery_format="device")
    connect(again)
    feed(again, SessionNotice("online"), UserNotice(BOB, summary(3500)))
    changed = {
        t for t, p, _ in mqtt3.log if t.startswith("homeassistant/") and mqtt2.retained_store.get(t) != p
    }
    assert changed == set()  # a restart in the same format changes nothing in HA


def test_health_names_a_stalled_data_channel_and_a_stuck_loop() -> None:
    from bridge.service.status import Snapshot, health

    online = Snapshot(session="online")
    assert health(
        online, mqtt_ok=True, session_down_for=0, grace_s=10, poll_age=100, poll_timeout_s=95
    ).healthy
    stalled = health(online, mqtt_ok=True, session_down_for=0, grace_s=10, poll_age=106, poll_timeout_s=95)
    assert not stalled.healthy
    assert stalled.details["reasons"] == ["CWA data channel stalled: no poll answer for 106 s"]
    stuck = health(online, mqtt_ok=True, session_down_for=0, grace_s=10, stuck=["cwa-poll"])
    assert stuck.details["reasons"] == ["cwa-poll loop stuck"]


def test_a_resync_that_finds_a_change_is_counted_and_every_change_is_logged_once(
    make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = FakeMetrics()
    service, _, _, _ = make(metrics=metrics)
    connect(service)
    with caplog.at_level("INFO", logger="bridge.changes"):
        feed(service, SessionNotice("online"), UserNotice(BOB, summary(3500)))
        feed(service, UserNotice(BOB, summary(3500), resync=True))  # the resync agrees
        feed(service, UserNotice(BOB, summary(6500), resync=True))  # the push was lost: corrected
    assert metrics.corrections == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "bridge.changes"]
    assert lines == ["presence.changed id=bob status=busy activity=None"]


def test_the_input_queue_is_bounded_and_drops_mqtt_messages_beyond_it() -> None:
    from bridge.service.inputs import Inputs, MqttMessage

    inputs = Inputs(max_items=2)
    for n in range(3):
        inputs.on_mqtt_message(f"t/{n}", b"x")  # paho's thread: never blocks
    assert inputs.dropped == 1
    assert inputs.get(0.1) == MqttMessage("t/0", b"x")
    assert inputs.get(0.1) == MqttMessage("t/1", b"x")
    assert inputs.get(0.01) is None
