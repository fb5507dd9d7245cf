"""Faults real deployments meet: inject one, then the bridge converges by itself, without a restart.

Converged (`tests/support/convergence.py`): every watched user's retained state equals the
simulator's truth, and ``bridge/state`` and ``bridge/cwa`` are ``online``. Each wait is bounded
by a figure derived from pollWaitTime and the back-off settings (`recovery_bound_s`), written
next to it. Besides convergence each test checks what a user would notice: no crash (the bridge
is healthy afterwards), a commanded own state is never lost, and a reconnect does not cause a
storm of duplicate publishes.

The long tail of CWA faults runs against the in-process `Bridge` (`make_bridge`, back-off scaled
by 0.05: 50 ms initial, 3 s cap); a representative subset runs against the real `cwa2mqtt`
process with its real back-off (1 s initial, 60 s cap).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.app import Bridge
from bridge.cwa.client import CwaClient, CwaClientSettings
from bridge.cwa.notices import Notice, UserNotice
from bridge.presence import Presence, Status
from bridge.simulator import Simulator
from tests.support.bridge import ALICE, BOB, CAROL, PASSWORD, USERS, BridgeProcess, config_dict, write_config
from tests.support.convergence import (
    eventually,
    matches_truth,
    recovery_bound_s,
    wait_converged,
)
from tests.support.mqtt import Broker, MqttProbe

pytestmark = pytest.mark.integration

POLL_WAIT_MS = 50
POLL_WAIT_S = POLL_WAIT_MS / 1000
# make_bridge builds `Bridge(..., backoff_scale=0.05)`; `cwa2mqtt run` uses the real 1 s / 60 s.
SCALED = {"backoff_initial_s": 0.05, "backoff_max_s": 3.0}
REAL = {"backoff_initial_s": 1.0, "backoff_max_s": 60.0}
SLACK_S = 6.0  # sign-in + session + subscribe round trips on a busy 2-core machine
MQTT_RECONNECT_SLACK_S = 3.0  # paho connect, re-subscribe, full republish
CLEAN_STOP_S = 5.0  # interface.md §7.8
STORM_LIMIT = 3  # publishes on one user's topic per reconnect: the change, the republish, one spare
WATCHED = {"bob": BOB.uri, "carol": CAROL.uri}
WITH_SELF = {**WATCHED, "self": ALICE.uri}


def mqtt_reconnect_bound_s(down_s: float) -> float:
    """The publisher retries after a delay that starts at 0.5 s and doubles (cap 30 s): after
    ``down_s`` seconds down the pending retry comes at most ~``2·down_s + 0.5`` s after the broker
    is back; then connect, subscribe and the full republish."""
    return 2 * down_s + 0.5 + MQTT_RECONNECT_SLACK_S


# ---------------------------------------------------------------------- in-process: the CWA fault list


@dataclass(frozen=True)
class Fault:
    """One CWA fault: how to inject it, and how many consecutive requests it makes fail (at most)."""

    inject: Callable[[Simulator], None]
    failures: int
    options: dict[str, Any] = field(default_factory=dict)
    new_session: bool = False  # the fault ends the session: a new one must be started
    extra_s: float = 0.0  # a delay the fault adds on top of the back-offs


CWA_FAULTS = {
    **{
        f"ticket-expired-{mode}": Fault(
            lambda sim: sim.faults.expire_tickets(), 1, {"expired_ticket": mode}, new_session=True
        )
        for mode in ("401", "403", "302", "html")
    },
    "session-killed": Fault(lambda sim: sim.faults.kill_sessions(), 2, new_session=True),
    "server-restarted": Fault(lambda sim: sim.faults.restart(), 2, new_session=True),
    "http-503-burst": Fault(lambda sim: sim.faults.http_503(5), 5),
    "dropped-connections": Fault(lambda sim: sim.faults.drop(3), 3),
    "malformed-bodies": Fault(lambda sim: sim.faults.malformed(3, channel="data"), 4),
    "billion-laughs": Fault(lambda sim: sim.faults.hostile(2, "data", "billion_laughs"), 2),
    "external-entity": Fault(lambda sim: sim.faults.hostile(2, "data", "external_entity"), 2),
    "oversized-body": Fault(lambda sim: sim.faults.oversized(1, 8_000_000, "data"), 1),
    "slow-response": Fault(lambda sim: sim.faults.slow(1, 1.0, "data"), 0, extra_s=1.0),
}


def _self_set(probe: MqttProbe, base: str, **command: Any) -> dict[str, Any]:
    """Send an own-state command and return its first response."""
    transaction = time.monotonic_ns()
    probe.publish(f"{base}/self/set", json.dumps({**command, "transaction": transaction}))
    raw = probe.wait_for(
        f"{base}/bridge/response/self/set",
        lambda p: json.loads(p).get("transaction") == transaction,
        timeout=10,
    )
    answer: dict[str, Any] = json.loads(raw)
    return answer


def _assert_healthy(bridge: Bridge) -> None:
    assert bridge.client.state == "online"
    assert bridge.publisher.connected
    assert bridge.service.health().healthy, bridge.service.health().details


@pytest.mark.parametrize("name", list(CWA_FAULTS))
def test_cwa_fault_converges_without_losing_commanded_state(
    name: str,
    make_simulator: Callable[..., Simulator],
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
) -> None:
    fault = CWA_FAULTS[name]
    sim = make_simulator(users=list(USERS), poll_wait_ms=POLL_WAIT_MS, **fault.options)
    mqtt_probe.subscribe(f"{base_topic}/#")
    bridge = make_bridge(sim, mosquitto.url, base_topic)
    answer = _self_set(mqtt_probe, base_topic, status="busy", note="Heads down")
    assert answer["status"] == "ok", answer
    assert answer["data"]["applied"] is True
    wait_converged(mosquitto, sim, base_topic, WITH_SELF, timeout=10)
    sessions_before = {s.sid for s in sim.sessions()}
    mqtt_probe.clear()

    fault.inject(sim)
    sim.set_presence(BOB.uri, availability=12500, activity=None, note="Back in 5")

    bound = recovery_bound_s(fault.failures, poll_wait_s=POLL_WAIT_S, slack_s=SLACK_S, **SCALED)
    wait_converged(mosquitto, sim, base_topic, WITH_SELF, timeout=bound + fault.extra_s)
    assert json.loads(mqtt_probe.wait_for(f"{base_topic}/bob", lambda p: b"Back in 5" in p))["status"] == (
        "be_right_back"
    )
    # the fault really bit
    assert not sim.stats()["faults_pending"]
    if fault.new_session:
        assert {s.sid for s in sim.sessions()} - sessions_before, "no new session was started"
    # no crash, nothing lost, no storm
    _assert_healthy(bridge)
    truth = sim.truth(ALICE.uri)
    assert (truth.status, truth.note) == (Status.BUSY, "Heads down")
    assert len(mqtt_probe.messages(f"{base_topic}/bob")) <= STORM_LIMIT
    assert len(mqtt_probe.messages(f"{base_topic}/carol")) <= STORM_LIMIT - 1  # carol did not change


def test_throttled_for_a_while_queues_the_command_and_applies_it_after(
    make_simulator: Callable[..., Simulator],
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
) -> None:
    sim = make_simulator(users=list(USERS), poll_wait_ms=POLL_WAIT_MS)
    mqtt_probe.subscribe(f"{base_topic}/#")
    bridge = make_bridge(sim, mosquitto.url, base_topic)
    throttled_poll_ms = 1500
    sim.faults.throttle(True, throttled_poll_ms)
    answer = _self_set(mqtt_probe, base_topic, status="away")
    assert answer["status"] == "ok"
    assert answer["data"] == {"status": "away", "applied": False, "queued": True}
    sim.set_presence(CAROL.uri, availability=6500, activity="on-the-phone")
    assert sim.truth(ALICE.uri).status is not Status.AWAY  # CWA refused it (18101): not applied yet

    sim.faults.throttle(False)
    # one throttled poll interval, then the capped back-off of the refused re-publishes
    bound = throttled_poll_ms / 1000 + recovery_bound_s(6, poll_wait_s=POLL_WAIT_S, slack_s=SLACK_S, **SCALED)
    wait_converged(mosquitto, sim, base_topic, WITH_SELF, timeout=bound)
    assert sim.truth(ALICE.uri).status is Status.AWAY
    applied = mqtt_probe.wait_for(
        f"{base_topic}/bridge/response/self/set", lambda p: json.loads(p)["data"].get("applied") is True
    )
    assert json.loads(applied)["status"] == "ok"
    _assert_healthy(bridge)


def test_own_state_command_while_cwa_is_down_is_queued_and_applied_on_recovery(
    make_simulator: Callable[..., Simulator],
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
) -> None:
    """The documented rule: `status: ok` with `data.queued: true` now, applied once CWA is back."""
    sim = make_simulator(users=list(USERS), poll_wait_ms=POLL_WAIT_MS)
    mqtt_probe.subscribe(f"{base_topic}/#")
    bridge = make_bridge(sim, mosquitto.url, base_topic)
    sim.faults.drop(10**6)  # every request: the connection closes without an answer
    mqtt_probe.wait_for(f"{base_topic}/bridge/cwa", lambda p: p == b"offline", timeout=10)

    answer = _self_set(mqtt_probe, base_topic, status="do_not_disturb", note="Call me later")
    assert answer["status"] == "ok"
    assert answer["data"]["queued"] is True
    assert answer["data"]["applied"] is False
    assert sim.truth(ALICE.uri).status is not Status.DO_NOT_DISTURB

    down_failures = sim.stats()["requests"]["data"] + sim.stats()["requests"]["command"]
    sim.faults.drop(0)
    bound = recovery_bound_s(max(6, down_failures), poll_wait_s=POLL_WAIT_S, slack_s=SLACK_S, **SCALED)
    # A republish that failed while CWA was down is retried after its back-off, inside the bound.
    sim.wait_for(lambda: sim.truth(ALICE.uri).status is Status.DO_NOT_DISTURB, timeout=bound)
    wait_converged(mosquitto, sim, base_topic, WITH_SELF, timeout=bound)
    truth = sim.truth(ALICE.uri)
    assert (truth.status, truth.note) == (Status.DO_NOT_DISTURB, "Call me later")
    # ... and the queued command's result is reported once it is applied
    mqtt_probe.wait_for(
        f"{base_topic}/bridge/response/self/set", lambda p: json.loads(p)["data"].get("applied") is True
    )
    _assert_healthy(bridge)


@pytest.mark.parametrize("first", ["mqtt", "cwa"], ids=["mqtt-back-first", "cwa-back-first"])
def test_both_sides_down_at_once_recover_in_either_order(
    first: str,
    make_simulator: Callable[..., Simulator],
    mosquitto: Broker,
    make_mqtt_probe: Callable[..., MqttProbe],
    base_topic: str,
    make_bridge: Callable[..., Bridge],
) -> None:
    sim = make_simulator(users=list(USERS), poll_wait_ms=POLL_WAIT_MS)
    bridge = make_bridge(sim, mosquitto.url, base_topic)
    wait_converged(mosquitto, sim, base_topic, WATCHED, timeout=10)

    down_at = time.monotonic()
    mosquitto.kill()
    sim.faults.drop(10**6)
    sim.set_presence(BOB.uri, availability=15500, activity=None, note="Gone fishing")
    sim.set_presence(CAROL.uri, availability=6500, activity="in-a-meeting")
    assert eventually(lambda: not bridge.publisher.connected and bridge.client.state != "online", 15)

    def mqtt_back() -> None:
        mosquitto.start()
        assert eventually(
            lambda: bridge.publisher.connected, mqtt_reconnect_bound_s(time.monotonic() - down_at)
        )

    def cwa_back() -> None:
        sim.faults.drop(0)
        bound = recovery_bound_s(12, poll_wait_s=POLL_WAIT_S, slack_s=SLACK_S, **SCALED)
        assert eventually(lambda: bridge.client.state == "online", bound)

    probe: MqttProbe | None = None
    for side in (first, "cwa" if first == "mqtt" else "mqtt"):
        if side == "mqtt":
            mqtt_back()
            probe = make_mqtt_probe(mosquitto)
            probe.subscribe(f"{base_topic}/#")
        else:
            cwa_back()
    assert probe is not None
    wait_converged(mosquitto, sim, base_topic, WATCHED, timeout=SLACK_S)
    assert len(probe.messages(f"{base_topic}/bob")) <= STORM_LIMIT
    _assert_healthy(bridge)


def test_a_poll_held_past_the_read_timeout_is_repeated_with_the_same_ack_id(
    make_simulator: Callable[..., Simulator],
) -> None:
    """A poll held for 3 s with ``poll_timeout_s`` 0.5 is abandoned and re-sent."""
    sim = make_simulator(users=list(USERS), poll_wait_ms=POLL_WAIT_MS)
    seen: dict[str, Presence] = {}
    lock = threading.Lock()

    def on_notice(notice: Notice) -> None:
        if isinstance(notice, UserNotice):
            s = notice.summary
            with lock:
                seen[notice.uri] = Presence.observe(notice.uri, None, s.availability, s.activity, s.notes)

    settings = CwaClientSettings(
        base_url=sim.url,
        username=ALICE.username or "",
        password=PASSWORD,
        uri=ALICE.uri,
        timeout_s=5.0,
        poll_timeout_s=0.5,
        backoff_initial_s=SCALED["backoff_initial_s"],
        backoff_max_s=SCALED["backoff_max_s"],
    )
    with httpx.Client() as http:
        client = CwaClient(settings, http, on_notice)
        client.start()
        try:
            client.set_watched([BOB.uri])
            sim.wait_for(lambda: BOB.uri in seen, timeout=5)
            sim.faults.slow(1, 3.0, "data")
            sim.set_presence(BOB.uri, availability=3500, activity=None, note="Held but not lost")
            bound = 0.5 + recovery_bound_s(1, poll_wait_s=POLL_WAIT_S, slack_s=SLACK_S, **SCALED)
            sim.wait_for(lambda: seen[BOB.uri].note == "Held but not lost", timeout=bound)
            assert client.state == "online"
            assert client.stats.get("unavailable", 0) >= 1  # the held poll timed out
        finally:
            client.stop(timeout=2.0)
    polls = [r for r in sim.recordings if r.channel == "data"]
    held = next(i for i, r in enumerate(polls) if r.fault == "slow")
    assert polls[held + 1].ack_id == polls[held].ack_id  # re-polled with the same AckId


# ---------------------------------------------------------------------- the real process


@pytest.fixture
def process_config(tmp_path: Path) -> Callable[..., Path]:
    def make(sim: Simulator, broker: Broker, base: str, **overrides: Any) -> Path:
        config = config_dict(sim, broker.url, base, **overrides)
        config["log"] = {"level": "info"}
        return write_config(tmp_path / "config.yaml", config)

    return make


@pytest.fixture
def process_sim(make_simulator: Callable[..., Simulator]) -> Simulator:
    return make_simulator(users=list(USERS), poll_wait_ms=POLL_WAIT_MS, expired_ticket="302")


@pytest.fixture
def running(
    process_sim: Simulator,
    mosquitto: Broker,
    base_topic: str,
    process_config: Callable[..., Path],
    run_bridge: Callable[..., BridgeProcess],
) -> Iterator[BridgeProcess]:
    process = run_bridge("run", "-c", str(process_config(process_sim, mosquitto, base_topic)))
    process.wait_output("bridge.ready", timeout=20)
    yield process
    if process.proc.poll() is None:
        process.signal(signal.SIGTERM)
        assert process.wait(timeout=CLEAN_STOP_S) == 0


def test_broker_sigkilled_and_restarted_empty_several_times(
    running: BridgeProcess,
    process_sim: Simulator,
    mosquitto: Broker,
    make_mqtt_probe: Callable[..., MqttProbe],
    base_topic: str,
) -> None:
    """mosquitto runs without persistence: every restart comes back with no retained message."""
    sim = process_sim
    wait_converged(mosquitto, sim, base_topic, WITH_SELF, timeout=10)

    def connect_failures() -> int:
        return running.output().count("mqtt.connect_failed")

    def one_round(round_no: int, availability: int) -> None:
        failed_before = connect_failures()
        mosquitto.kill()
        down_at = time.monotonic()
        sim.set_presence(BOB.uri, availability=availability, activity=None, note=f"Round {round_no}")
        # down "a few seconds": until the bridge has tried and failed to reconnect twice
        sim.wait_for(lambda: connect_failures() >= failed_before + 2, timeout=10)
        mosquitto.start()
        probe = make_mqtt_probe(mosquitto)
        probe.subscribe(f"{base_topic}/#")
        bound = mqtt_reconnect_bound_s(time.monotonic() - down_at)
        wait_converged(mosquitto, sim, base_topic, WITH_SELF, timeout=bound)
        probe.wait_for(f"{base_topic}/bob", lambda p: matches_truth(p, sim, BOB.uri))
        # a change after the reconnect is still bridged, and the reconnect caused no storm
        after = f"After round {round_no}".encode()
        sim.set_presence(CAROL.uri, note=after.decode())
        probe.wait_for(f"{base_topic}/carol", lambda p: after in p, timeout=5)
        assert len(probe.messages(f"{base_topic}/bob")) <= STORM_LIMIT
        assert probe.retained(f"{base_topic}/bridge/devices") is not None

    for round_no, availability in enumerate((6500, 3500, 15500), start=1):
        one_round(round_no, availability)
    assert running.proc.poll() is None


def test_ticket_expiry_session_kill_and_server_restart_against_the_process(
    running: BridgeProcess,
    process_sim: Simulator,
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
) -> None:
    sim = process_sim
    mqtt_probe.subscribe(f"{base_topic}/#")
    answer = _self_set(mqtt_probe, base_topic, status="be_right_back", note="Errand")
    assert answer["status"] == "ok"
    wait_converged(mosquitto, sim, base_topic, WITH_SELF, timeout=10)
    faults: list[tuple[str, Callable[[], None], int]] = [
        ("ticket expired (302 to the logon page)", sim.faults.expire_tickets, 1),
        ("session killed", sim.faults.kill_sessions, 2),
        ("server restarted", sim.faults.restart, 2),
    ]
    for step, (what, inject, failures) in enumerate(faults, start=1):
        mqtt_probe.clear()
        inject()
        sim.set_presence(BOB.uri, note=f"{what} ({step})")
        # real back-off: 1 s initial, doubling
        bound = recovery_bound_s(failures, poll_wait_s=POLL_WAIT_S, slack_s=SLACK_S, **REAL)
        wait_converged(mosquitto, sim, base_topic, WITH_SELF, timeout=bound)
        truth = sim.truth(ALICE.uri)
        assert (truth.status, truth.note) == (Status.BE_RIGHT_BACK, "Errand"), what
        assert len(mqtt_probe.messages(f"{base_topic}/bob")) <= STORM_LIMIT, what
    output = running.output()
    assert output.count("cwa.sign_in.ok") >= 3  # start, the expired ticket, the restart
    assert "Traceback" not in output
    assert running.proc.poll() is None


def test_sigterm_in_the_middle_of_recovery_stops_cleanly_within_5_s(
    running: BridgeProcess,
    process_sim: Simulator,
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
) -> None:
    sim = process_sim
    wait_converged(mosquitto, sim, base_topic, WATCHED, timeout=10)
    logons = sim.stats()["requests"]["logon"]
    sim.faults.slow(10, 30.0, "logon")  # the re-sign-in hangs…
    sim.faults.expire_tickets()  # …and is needed now
    sim.wait_for(lambda: sim.stats()["requests"]["logon"] > logons, timeout=10)

    asked = time.monotonic()
    running.signal(signal.SIGTERM)
    assert running.wait(timeout=CLEAN_STOP_S + 1) == 0
    assert time.monotonic() - asked <= CLEAN_STOP_S
    assert mqtt_probe.retained(f"{base_topic}/bridge/state") == b"offline"
    assert mqtt_probe.retained(f"{base_topic}/bridge/cwa") == b"offline"
    assert "Traceback" not in running.output()
