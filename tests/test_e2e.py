"""The whole bridge, in-process, against the CWA simulator and a private mosquitto."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from bridge.app import Bridge
from bridge.simulator import Simulator
from tests.support.bridge import ALICE, BOB, CAROL, DAVE, USERS
from tests.support.convergence import matches_truth
from tests.support.mqtt import Broker, MqttProbe

pytestmark = pytest.mark.integration


@pytest.fixture
def sim(make_simulator: Callable[..., Simulator]) -> Simulator:
    return make_simulator(users=list(USERS), poll_wait_ms=50)


def test_watched_users_are_bridged_and_follow_changes(
    sim: Simulator,
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
) -> None:
    mqtt_probe.subscribe(f"{base_topic}/#")
    make_bridge(sim, mosquitto.url, base_topic)
    bob = mqtt_probe.wait_for(f"{base_topic}/bob", lambda p: matches_truth(p, sim, BOB.uri))
    assert json.loads(bob)["name"] == "Bob Example"
    assert json.loads(bob)["activity"] == "in_a_meeting"
    mqtt_probe.wait_for(f"{base_topic}/carol", lambda p: matches_truth(p, sim, CAROL.uri))
    assert mqtt_probe.retained(f"{base_topic}/bridge/state") == b"online"
    assert mqtt_probe.retained(f"{base_topic}/bridge/cwa") == b"online"
    assert mqtt_probe.retained(f"{base_topic}/bob/availability") == b"online"
    assert mqtt_probe.retained(f"{base_topic}/dave") is None  # not watched

    sim.set_presence(BOB.uri, availability=3500, activity=None, note="Back from lunch")
    mqtt_probe.wait_for(f"{base_topic}/bob", lambda p: json.loads(p)["note"] == "Back from lunch")
    assert mqtt_probe.wait_for(f"{base_topic}/bob/status", lambda p: p == b"available") == b"available"


def test_the_sessions_first_answer_brings_the_watched_users_presence(
    make_simulator: Callable[..., Simulator],
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
) -> None:
    # CWA asks for 30 s between polls: presence that missed the first answer would wait for the next.
    sim = make_simulator(users=list(USERS), poll_wait_ms=30_000, long_poll=False)
    mqtt_probe.subscribe(f"{base_topic}/#")
    make_bridge(sim, mosquitto.url, base_topic, wait_ready=False)
    mqtt_probe.wait_for(f"{base_topic}/bob", lambda p: matches_truth(p, sim, BOB.uri), timeout=20)
    mqtt_probe.wait_for(f"{base_topic}/carol", lambda p: matches_truth(p, sim, CAROL.uri), timeout=20)
    polls = sum(n for k, n in sim.stats()["requests"].items() if "data" in str(k).lower())
    assert polls == 1


def test_own_status_command_reaches_cwa_and_watchers(
    sim: Simulator,
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
) -> None:
    mqtt_probe.subscribe(f"{base_topic}/#")
    make_bridge(sim, mosquitto.url, base_topic)
    mqtt_probe.publish(
        f"{base_topic}/self/set", json.dumps({"status": "busy", "note": "Deep work", "transaction": 5})
    )
    answer = json.loads(mqtt_probe.wait_for(f"{base_topic}/bridge/response/self/set"))
    assert answer["status"] == "ok", answer
    assert answer["transaction"] == 5
    sim.wait_for(lambda: sim.truth(ALICE.uri).status.value == "busy", timeout=5)
    assert sim.truth(ALICE.uri).note == "Deep work"
    selfish = mqtt_probe.wait_for(f"{base_topic}/self", lambda p: json.loads(p)["status"] == "busy")
    assert json.loads(selfish)["note"] == "Deep work"


@pytest.mark.parametrize(
    ("topic", "payload"),
    [("self/set", b'{"status": "napping"}'), ("self/set/status", b"lunch"), ("self/set", b"[]")],
)
def test_invalid_command_is_refused_and_nothing_reaches_cwa(
    sim: Simulator,
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
    topic: str,
    payload: bytes,
) -> None:
    mqtt_probe.subscribe(f"{base_topic}/bridge/response/#")
    make_bridge(sim, mosquitto.url, base_topic)
    sim.clear_recordings()
    mqtt_probe.publish(f"{base_topic}/{topic}", payload)
    answer = json.loads(mqtt_probe.wait_for(f"{base_topic}/bridge/response/self/set"))
    assert answer["status"] == "error"
    assert answer["error"]
    assert not any("publishSelfPresence" in str(r) for r in sim.recordings)


def test_broker_restart_brings_everything_back(
    sim: Simulator,
    mosquitto: Broker,
    make_mqtt_probe: Any,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
) -> None:
    bridge = make_bridge(sim, mosquitto.url, base_topic)
    mosquitto.stop()  # no persistence: every retained message is gone
    sim.set_presence(CAROL.uri, availability=9500, activity="in-presentation")
    mosquitto.start()
    probe = make_mqtt_probe(mosquitto)
    probe.subscribe(f"{base_topic}/#")
    probe.wait_for(f"{base_topic}/bridge/state", lambda p: p == b"online", timeout=15)
    probe.wait_for(f"{base_topic}/carol", lambda p: matches_truth(p, sim, CAROL.uri), timeout=15)
    probe.wait_for(f"{base_topic}/bob", lambda p: matches_truth(p, sim, BOB.uri))
    # subscriptions were made again: a command still works
    probe.publish(f"{base_topic}/self/set/status", b"away")
    answer = json.loads(probe.wait_for(f"{base_topic}/bridge/response/self/set", timeout=10))
    assert answer["status"] == "ok"
    assert bridge.publisher.connected


def test_removed_user_is_cleared_and_last_change_survives_restart(
    sim: Simulator,
    mosquitto: Broker,
    make_mqtt_probe: Any,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
) -> None:
    first = make_bridge(sim, mosquitto.url, base_topic, watch=[BOB.uri, CAROL.uri, DAVE.uri])
    probe = make_mqtt_probe(mosquitto)
    probe.subscribe(f"{base_topic}/#")
    bob_before = json.loads(probe.wait_for(f"{base_topic}/bob", lambda p: matches_truth(p, sim, BOB.uri)))
    probe.wait_for(f"{base_topic}/dave", lambda p: matches_truth(p, sim, DAVE.uri))
    first.stop()

    make_bridge(sim, mosquitto.url, base_topic, watch=[BOB.uri, CAROL.uri])
    check = make_mqtt_probe(mosquitto)
    check.subscribe(f"{base_topic}/bridge/devices")
    check.wait_for(f"{base_topic}/bridge/devices", lambda p: json.loads(p) == ["bob", "carol_nguyen", "self"])
    assert check.retained(f"{base_topic}/dave") is None
    assert check.retained(f"{base_topic}/dave/availability") is None
    assert check.retained(f"{base_topic}-ha/sensor/cwa2mqtt_dave/status/config") is None
    assert check.retained(f"{base_topic}-ha/sensor/cwa2mqtt_bob/status/config") is not None
    bob_after = json.loads(check.retained(f"{base_topic}/bob") or b"{}")
    assert bob_after["last_change"] == bob_before["last_change"]


def test_ha_birth_resends_discovery_and_state(
    sim: Simulator,
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
) -> None:
    make_bridge(sim, mosquitto.url, base_topic)
    mqtt_probe.subscribe(f"{base_topic}-ha/#")
    mqtt_probe.subscribe(f"{base_topic}/+")
    mqtt_probe.wait_for(f"{base_topic}/bob", lambda p: matches_truth(p, sim, BOB.uri))
    mqtt_probe.wait_for(f"{base_topic}/carol", lambda p: matches_truth(p, sim, CAROL.uri))
    mqtt_probe.wait_for(f"{base_topic}/self")
    carol_status = f"{base_topic}-ha/sensor/cwa2mqtt_carol/status/config"
    mqtt_probe.wait_for(carol_status, lambda p: json.loads(p)["device"]["name"] == "Carol Nguyen")
    mqtt_probe.clear()
    mqtt_probe.publish(f"{base_topic}-ha/status", b"online")
    mqtt_probe.wait_for(f"{base_topic}/bob")
    order = [r.topic for r in mqtt_probe.records() if not r.retain and not r.topic.endswith("-ha/status")]
    assert order[0] == f"{base_topic}-ha/binary_sensor/cwa2mqtt_bridge/cwa/config"
    assert order.index(f"{base_topic}-ha/sensor/cwa2mqtt_bob/status/config") < order.index(
        f"{base_topic}/bob"
    )
    config = json.loads(
        mqtt_probe.retained(f"{base_topic}-ha/select/cwa2mqtt_self/set_status/config") or b"{}"
    )
    assert config["command_topic"] == f"{base_topic}/self/set/status"


def test_long_poll_server_and_quiet_observer(
    make_simulator: Callable[..., Simulator],
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
) -> None:
    sim = make_simulator(users=list(USERS), long_poll=True, max_hold_s=2.0, poll_wait_ms=100)
    mqtt_probe.subscribe(f"{base_topic}/#")
    make_bridge(sim, mosquitto.url, base_topic)
    mqtt_probe.wait_for(f"{base_topic}/bob", lambda p: matches_truth(p, sim, BOB.uri))
    sim.set_presence(BOB.uri, availability=12500, activity=None, note=None)
    mqtt_probe.wait_for(f"{base_topic}/bob", lambda p: json.loads(p)["status"] == "be_right_back")
    # §7.1: the bridge never touched the account's own state and never reported activity
    assert sim.truth(ALICE.uri).availability == ALICE.availability
    polls = [r for r in sim.recordings if r.channel == "data"]
    assert polls
    assert all(r.ua == "false" for r in polls)


def test_cwa_unreachable_at_start_is_retried_while_mqtt_is_bridged(
    sim: Simulator,
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
) -> None:
    mqtt_probe.subscribe(f"{base_topic}/#")
    sim.faults.http_503(10_000, channel="logon")  # sign-ins meet a server that is not there yet
    make_bridge(sim, mosquitto.url, base_topic, wait_ready=False)
    # MQTT is bridged meanwhile, saying CWA is offline, and the bridge keeps trying.
    mqtt_probe.wait_for(f"{base_topic}/bridge/cwa", lambda p: p == b"offline")
    mqtt_probe.wait_for(f"{base_topic}/bridge/info", lambda p: json.loads(p)["session"] != "online")
    sim.faults.clear()  # the server is back
    mqtt_probe.wait_for(f"{base_topic}/bridge/cwa", lambda p: p == b"online")
    assert mqtt_probe.messages(f"{base_topic}/bridge/cwa")[0] == b"offline"
    mqtt_probe.wait_for(f"{base_topic}/bob", lambda p: matches_truth(p, sim, BOB.uri))
    logons = [r.status for r in sim.recordings if r.channel == "logon"]
    assert len(logons) >= 2  # retried ...
    assert logons[-1] == 200  # ... until the server was back
    assert set(logons[:-1]) == {503}


@pytest.mark.parametrize("fault", ["malformed", "hostile"])
def test_a_refresh_cwa_answers_with_broken_xml_gets_exactly_one_error_response(
    sim: Simulator,
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
    fault: str,
) -> None:
    make_bridge(sim, mosquitto.url, base_topic)
    response = f"{base_topic}/bridge/response/refresh"
    mqtt_probe.subscribe(response)
    getattr(sim.faults, fault)(1, channel="command")
    mqtt_probe.publish(f"{base_topic}/bridge/request/refresh", b'{"id": "bob", "transaction": "t1"}')
    answer = json.loads(mqtt_probe.wait_for(response, timeout=15))
    assert answer["status"] == "error", answer
    assert answer["transaction"] == "t1"
    assert answer["error"]
    # The next one works again, and each request got exactly one answer.
    mqtt_probe.publish(f"{base_topic}/bridge/request/refresh", b'{"id": "bob", "transaction": "t2"}')
    mqtt_probe.wait_for(response, lambda p: json.loads(p)["transaction"] == "t2", timeout=15)
    answers = [json.loads(p)["transaction"] for p in mqtt_probe.messages(response)]
    assert answers == ["t1", "t2"]
