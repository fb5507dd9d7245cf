"""What a start publishes: nothing that carries no news (issue 16, "less traffic").

A null activity or note is published as an empty retained payload, which clears the topic. On a
broker that never held the topic that message changes nothing; at 10,000 users a start sent
~20,000 of them (bench/NOTES.md). A real broker and the in-process bridge against the simulator.
And the start gate, which holds discovery back until names are known, waits as long as the first
picture is still arriving (pure logic, a fake clock).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import pytest

from bridge.app import Bridge
from bridge.cwa.notices import SelfNotice, SessionNotice, UserNotice
from bridge.service import Service, ServiceOptions, WatchSpec
from bridge.service.gate import MAX_WAIT_S, StartGate
from bridge.simulator import Simulator
from tests.support.bridge import CAROL, USERS
from tests.support.mqtt import Broker, MqttProbe
from tests.test_service import Clock, FakeCwa, FakeMqtt, summary

NULLABLE = ("activity", "note")


def _published_all(probe: MqttProbe, base: str) -> None:
    """Each entry's availability is published after its presence topics: once all three are in,
    so is every clear the start made."""
    for ident in ("self", "bob", "carol"):
        probe.wait_for(f"{base}/{ident}/availability")


def _clears(probe: MqttProbe, base: str) -> list[str]:
    return [
        r.topic
        for r in probe.records()
        if r.topic.startswith(base + "/") and r.topic.rsplit("/", 1)[-1] in NULLABLE and not r.payload
    ]


@pytest.mark.integration
def test_a_first_start_clears_no_topic_the_broker_never_held(
    make_simulator: Callable[..., Simulator],
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    make_bridge: Callable[..., Bridge],
    base_topic: str,
) -> None:
    sim = make_simulator(list(USERS))
    mqtt_probe.subscribe(f"{base_topic}/#")
    make_bridge(sim, mosquitto.url, base_topic)
    # Carol has a note and no activity; Bob an activity and no note; the account itself neither.
    mqtt_probe.wait_for(f"{base_topic}/carol/note", lambda p: p == b"Lab day")
    mqtt_probe.wait_for(f"{base_topic}/carol", lambda p: b"Lab day" in p)
    mqtt_probe.wait_for(f"{base_topic}/bob/activity", lambda p: p == b"in_a_meeting")
    _published_all(mqtt_probe, base_topic)
    assert _clears(mqtt_probe, base_topic) == []

    # A note that goes away is still cleared: the broker holds it now.
    sim.set_presence(CAROL.uri, note=None)
    mqtt_probe.wait_for(f"{base_topic}/carol/note", lambda p: p == b"")
    assert mqtt_probe.retained(f"{base_topic}/carol/note") is None
    assert _clears(mqtt_probe, base_topic) == [f"{base_topic}/carol/note"]


@pytest.mark.integration
def test_a_start_clears_what_the_previous_run_left_on_a_topic_now_null(
    make_simulator: Callable[..., Simulator],
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    make_bridge: Callable[..., Bridge],
    base_topic: str,
) -> None:
    # A previous run left Bob a note; Bob has none now.
    mqtt_probe.publish(f"{base_topic}/bob/note", b"Gone fishing", retain=True)
    assert mqtt_probe.retained(f"{base_topic}/bob/note") == b"Gone fishing"
    sim = make_simulator(list(USERS))
    mqtt_probe.subscribe(f"{base_topic}/#")
    make_bridge(sim, mosquitto.url, base_topic)
    mqtt_probe.wait_for(f"{base_topic}/bob/note", lambda p: p == b"")
    assert mqtt_probe.retained(f"{base_topic}/bob/note") is None
    # The clear went to that one topic only.
    _published_all(mqtt_probe, base_topic)
    assert _clears(mqtt_probe, base_topic) == [f"{base_topic}/bob/note"]


@pytest.mark.integration
def test_a_restart_republishes_nothing_the_broker_already_holds(
    make_simulator: Callable[..., Simulator],
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    make_bridge: Callable[..., Bridge],
    base_topic: str,
) -> None:
    """A restart (a deploy, a reboot) used to republish every retained topic byte for byte."""
    sim = make_simulator(list(USERS))
    first = make_bridge(sim, mosquitto.url, base_topic)
    mqtt_probe.subscribe(f"{base_topic}/#")
    mqtt_probe.wait_for(f"{base_topic}/bob/activity", lambda p: p == b"in_a_meeting")
    mqtt_probe.wait_for(f"{base_topic}/carol", lambda p: b"Lab day" in p)
    _published_all(mqtt_probe, base_topic)
    first.stop()
    mqtt_probe.wait_for(f"{base_topic}/bridge/state", lambda p: p == b"offline")
    held = {r.topic: r.payload for r in mqtt_probe.records()}
    mqtt_probe.clear()

    make_bridge(sim, mosquitto.url, base_topic)
    # One connection delivers in order: once this change is in, so is everything the start sent.
    sim.set_presence(CAROL.uri, note="Back on Monday")
    mqtt_probe.wait_for(f"{base_topic}/carol/note", lambda p: p == b"Back on Monday")
    repeated = [r.topic for r in mqtt_probe.records() if held.get(r.topic) == r.payload]
    assert repeated == []
    # What did change went out, and the broker holds the same state as before otherwise.
    assert mqtt_probe.messages(f"{base_topic}/bridge/cwa") == [b"online"]
    assert mqtt_probe.retained(f"{base_topic}/bob") == held[f"{base_topic}/bob"]
    assert mqtt_probe.retained(f"{base_topic}/bob/availability") == b"online"


def test_the_start_gate_waits_while_first_reports_still_arrive_and_no_longer() -> None:
    """At 10,000 users the first picture takes longer than the grace: a gate opened by the clock
    alone published ~6,000 devices under their URI, then again under their name."""
    now = [0.0]
    gate = StartGate(5.0, lambda: now[0])
    gate.read_back = True

    def at(t: float) -> bool:
        now[0] = t
        return gate.check(lambda: False)

    for t in (1.0, 3.0, 4.5, 8.0, 11.0):  # first reports keep arriving past the grace
        assert not at(t)
        gate.reported()
    assert not at(15.9)  # 4.9 s since the last first report
    assert at(16.1)  # quiet for the grace: the rest may never come
    assert gate.open


def test_the_start_gate_opens_at_the_latest_after_its_bound() -> None:
    now = [0.0]
    gate = StartGate(5.0, lambda: now[0])
    gate.read_back = True
    opened = None
    for step in range(1, 200):
        now[0] = step
        gate.reported()  # a server that trickles first reports forever
        if gate.check(lambda: False):
            opened = now[0]
            break
    assert opened == MAX_WAIT_S


class _ReadBackCutOff(FakeMqtt):
    """A read-back that ran into its deadline: what it returns may be incomplete."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock

    def read_retained(
        self, topic_filters: Sequence[str], quiet_s: float = 0.3, timeout_s: float = 3.0
    ) -> dict[str, bytes]:
        self._clock.mono += timeout_s
        return super().read_retained(topic_filters, quiet_s, timeout_s)


@pytest.mark.parametrize("cut_off", [False, True])
def test_a_read_back_cut_off_by_its_deadline_keeps_every_clear(cut_off: bool) -> None:
    """Only a complete read-back proves that a topic holds nothing: after one cut off by its
    deadline (a huge broker state, a slow broker), a null note is cleared as before."""
    clock = Clock()
    mqtt = _ReadBackCutOff(clock) if cut_off else FakeMqtt()
    service = Service(
        cwa=FakeCwa(),
        mqtt=mqtt,
        watch=[WatchSpec("bob", "sip:bob@example.org")],
        options=ServiceOptions(self_uri="sip:alice@example.org"),
        clock=clock,
        monotonic=clock.monotonic,
    )
    service.start()
    try:
        service.on_mqtt_connect()
        service.on_notice(SessionNotice("online"))
        service.on_notice(UserNotice("sip:bob@example.org", summary(3500)))
        assert service.drain()
        cleared = [t for t, p, _ in mqtt.log if t == "cwa2mqtt/bob/note" and p == b""]
        assert cleared == (["cwa2mqtt/bob/note"] if cut_off else [])
    finally:
        service.stop()


def test_a_restart_keeps_self_in_bridge_devices_while_its_first_presence_is_on_the_way() -> None:
    """The read-back finds the account's own topics from the last run: `bridge/devices` lists it from
    the first publish, instead of going out without `self` and again with it (two messages, and a
    moment where a reader of `bridge/devices` sees the account gone)."""

    def run(mqtt: FakeMqtt, self_first: bool) -> None:
        clock = Clock()
        service = Service(
            cwa=FakeCwa(),
            mqtt=mqtt,
            watch=[WatchSpec("bob", "sip:bob@example.org")],
            options=ServiceOptions(self_uri="sip:alice@example.org"),
            clock=clock,
            monotonic=clock.monotonic,
        )
        service.start()
        try:
            if self_first:
                service.on_notice(SelfNotice(summary(3500)))
            service.on_mqtt_connect()  # the read-back and the first publish of bridge/devices
            service.on_notice(SessionNotice("online"))
            service.on_notice(UserNotice("sip:bob@example.org", summary(6500)))
            service.on_notice(SelfNotice(summary(3500)))
            assert service.drain()
        finally:
            service.stop()

    first = FakeMqtt()
    run(first, self_first=True)
    assert json.loads(first.last("cwa2mqtt/bridge/devices")) == ["bob", "self"]
    again = FakeMqtt(retained=first.retained_store)
    run(again, self_first=False)
    assert "cwa2mqtt/bridge/devices" not in again.topics()  # nothing new to say
    assert json.loads(again.retained_store["cwa2mqtt/bridge/devices"]) == ["bob", "self"]
