"""Network faults on one CWA channel at a time, against the real `cwa2mqtt run` process.

A fault-injecting proxy (`tests/support/proxy.py`) sits between the bridge and the simulator and
trickles, stalls, black-holes or resets the data channel or the command channel. Whatever the
fault, every exchange ends by its overall deadline (``cwa.poll_timeout_s`` for a poll,
``cwa.timeout_s`` for a command), so the bridge never waits a fault out: a presence change made
during the fault reaches MQTT within one deadline plus the back-off after the fault ends, a
command sent during a command-channel fault is answered within its deadline and applied once
the channel is back, and the process stops cleanly afterwards.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bridge.app import Bridge
from bridge.cwa.client import CwaClient, CwaClientSettings
from bridge.simulator import Simulator
from tests.support.bridge import ALICE, BOB, CAROL, PASSWORD, USERS, BridgeProcess, config_dict, write_config
from tests.support.convergence import matches_truth, wait_converged
from tests.support.mqtt import Broker, MqttProbe
from tests.support.outputs import wait_until
from tests.support.proxy import BLACK_HOLE, PASS, RESET, STALL, Fault, FaultProxy, trickle

pytestmark = pytest.mark.integration

DEADLINE_S = 2.0  # both cwa.timeout_s and cwa.poll_timeout_s
POLL_WAIT_MS = 100
BACKOFF_INITIAL_S, BACKOFF_MAX_S = 1.0, 60.0  # `cwa2mqtt run`'s real back-off
SLACK_S = 6.0  # a session's round trips and a full republish on a busy 2-core machine
CLEAN_STOP_S = 5.0
WATCHED = {"bob": BOB.uri, "carol": CAROL.uri}
# One byte every 0.3 s: every answer (a few hundred bytes) would take minutes to arrive.
FAULTS: dict[str, Fault] = {
    "trickle": trickle(1, 0.3),
    "stall": STALL,
    "black-hole": BLACK_HOLE,
    "reset": RESET,
}


def backoff_bound_s(failures: int) -> float:
    """The longest back-off after ``failures`` consecutive failures (full jitter under this cap)."""
    return min(BACKOFF_MAX_S, BACKOFF_INITIAL_S * 2.0 ** max(0, failures - 1))


@pytest.fixture
def setup(
    make_simulator: Callable[..., Simulator],
    fault_proxy: Callable[[Simulator], FaultProxy],
    mosquitto: Broker,
    base_topic: str,
    run_bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> Iterator[tuple[Simulator, FaultProxy, BridgeProcess]]:
    sim = make_simulator(users=list(USERS), poll_wait_ms=POLL_WAIT_MS)
    proxy = fault_proxy(sim)
    config = config_dict(
        sim,
        mosquitto.url,
        base_topic,
        cwa={"url": proxy.url, "timeout_s": DEADLINE_S, "poll_timeout_s": DEADLINE_S},
        log={"level": "info"},
    )
    process = run_bridge("run", "-c", str(write_config(tmp_path / "config.yaml", config)))
    process.wait_output("bridge.ready", timeout=20)
    wait_converged(mosquitto, sim, base_topic, WATCHED, timeout=15)
    yield sim, proxy, process
    proxy.set_fault("all", PASS)


def _failures(process: BridgeProcess, channel: str) -> int:
    return process.output().count(f"cwa.{channel}.failed")


def _stop_cleanly(process: BridgeProcess) -> None:
    asked = time.monotonic()
    process.signal(signal.SIGTERM)
    assert process.wait(timeout=CLEAN_STOP_S + 2) == 0
    assert time.monotonic() - asked <= CLEAN_STOP_S
    assert "Traceback" not in process.output()


@pytest.mark.parametrize("name", list(FAULTS))
def test_a_data_channel_fault_ends_by_the_poll_deadline_and_the_change_arrives_after_it(
    name: str,
    setup: tuple[Simulator, FaultProxy, BridgeProcess],
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
) -> None:
    sim, proxy, process = setup
    mqtt_probe.subscribe(f"{base_topic}/bob")
    before = _failures(process, "data")
    proxy.set_fault("data", FAULTS[name])
    sim.set_presence(BOB.uri, availability=3500, activity=None, note=f"During the {name}")
    # The fault lasts until the bridge has given up on two polls: each needs the deadline (or the
    # reset) to end, so 0.1's per-read timeouts (held polls clamped to 90 s) never get here.
    wait_until(
        lambda: _failures(process, "data") >= before + 2, 4 * DEADLINE_S + 3 + SLACK_S, "2 failed polls"
    )
    if name != "reset":
        assert "no complete answer within the 2 s overall deadline" in process.output()
    failures = _failures(process, "data") - before
    proxy.set_fault("data", PASS)
    ended = time.monotonic()

    bound = DEADLINE_S + backoff_bound_s(failures + 1) + POLL_WAIT_MS / 1000 + SLACK_S
    mqtt_probe.wait_for(f"{base_topic}/bob", lambda p: matches_truth(p, sim, BOB.uri), timeout=bound)
    assert time.monotonic() - ended <= bound
    wait_converged(mosquitto, sim, base_topic, WATCHED, timeout=bound)
    _stop_cleanly(process)


@pytest.mark.parametrize("name", list(FAULTS))
def test_a_command_channel_fault_answers_commands_by_the_deadline_and_applies_them_after_it(
    name: str,
    setup: tuple[Simulator, FaultProxy, BridgeProcess],
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
) -> None:
    sim, proxy, process = setup
    mqtt_probe.subscribe(f"{base_topic}/#")
    proxy.set_fault("command", FAULTS[name])
    note = f"Commanded during the {name}"
    sim.set_presence(CAROL.uri, note=f"Changed during the {name}")
    transaction = time.monotonic_ns()
    mqtt_probe.publish(f"{base_topic}/self/set", json.dumps({"note": note, "transaction": transaction}))
    # The command worker is not held by the fault: the command is answered (queued) by its deadline.
    raw = mqtt_probe.wait_for(
        f"{base_topic}/bridge/response/self/set",
        lambda p: json.loads(p).get("transaction") == transaction,
        timeout=DEADLINE_S + SLACK_S,
    )
    assert json.loads(raw)["data"].get("queued") is True, raw
    if name != "trickle":  # a trickled exchange reached CWA; only its answer is slow
        assert sim.truth(ALICE.uri).note != note
    failures = 1 + process.output().count("cwa.publish.retry")
    proxy.set_fault("command", PASS)
    ended = time.monotonic()

    # a command in flight on a dead connection ends by its deadline; then the retry's back-off
    bound = 2 * DEADLINE_S + backoff_bound_s(failures + 1) + POLL_WAIT_MS / 1000 + SLACK_S
    wait_until(lambda: sim.truth(ALICE.uri).note == note, bound, "the queued note applied in CWA")
    mqtt_probe.wait_for(f"{base_topic}/self", lambda p: json.loads(p).get("note") == note, timeout=bound)
    mqtt_probe.wait_for(f"{base_topic}/carol", lambda p: matches_truth(p, sim, CAROL.uri), timeout=bound)
    assert time.monotonic() - ended <= 3 * bound
    wait_converged(mosquitto, sim, base_topic, WATCHED, timeout=bound)
    _stop_cleanly(process)


def test_changes_made_while_every_data_channel_attempt_is_reset_are_published_one_by_one(
    setup: tuple[Simulator, FaultProxy, BridgeProcess], mqtt_probe: MqttProbe, base_topic: str
) -> None:
    """Resets on the data channel leave the session alive at the server: the bridge keeps it, and
    the next answer at the same AckId brings every change queued meanwhile, in order. Three failed
    polls in a row make `bridge/cwa` offline for a moment; they do not start a new session, which
    would deliver current state only and skip the changes in between."""
    sim, proxy, process = setup
    mqtt_probe.subscribe(f"{base_topic}/bob")
    before = _failures(process, "data")
    proxy.set_fault("data", RESET)
    steps = [f"Reset step {i}" for i in range(3)]
    for k, note in enumerate(steps, start=1):
        sim.set_presence(BOB.uri, note=note)
        wait_until(
            lambda k=k: _failures(process, "data") >= before + k, 4 * DEADLINE_S + SLACK_S, "a failed poll"
        )
    process.wait_output("cwa.session.lost state=reconnecting", timeout=SLACK_S)  # three in a row: offline
    proxy.set_fault("data", PASS)
    bound = DEADLINE_S + backoff_bound_s(len(steps) + 1) + POLL_WAIT_MS / 1000 + SLACK_S
    mqtt_probe.wait_for(f"{base_topic}/bob", lambda p: steps[-1].encode() in p, timeout=bound)
    notes = [json.loads(p).get("note") for p in mqtt_probe.messages(f"{base_topic}/bob")]
    assert [n for n in notes if n in steps] == steps
    assert process.output().count("cwa.session.started") == 1  # the same session throughout
    _stop_cleanly(process)


def test_the_last_completed_poll_stops_advancing_while_the_data_channel_is_stalled(
    make_simulator: Callable[..., Simulator], fault_proxy: Callable[[Simulator], FaultProxy]
) -> None:
    """`CwaClient.last_poll_completed` is what the health check reads to report a stalled data
    channel: it must stand still while polls are abandoned, and move again once they complete."""
    sim = make_simulator(users=list(USERS), poll_wait_ms=POLL_WAIT_MS)
    proxy = fault_proxy(sim)
    settings = CwaClientSettings(
        base_url=proxy.url,
        username=ALICE.username or "",
        password=PASSWORD,
        uri=ALICE.uri,
        timeout_s=1.0,
        poll_timeout_s=1.0,
        backoff_initial_s=0.05,
        backoff_max_s=0.5,
    )

    def age() -> float:
        return time.monotonic() - client.last_poll_completed

    with httpx.Client() as http:
        client = CwaClient(settings, http, lambda _notice: None)
        client.start()
        try:
            wait_until(lambda: age() < 0.5, 5, "polls completing")
            proxy.set_fault("data", STALL)
            stalled_at = time.monotonic()
            wait_until(lambda: age() > 3 * settings.poll_timeout_s, 10, "the stall to show")
            assert client.last_poll_completed <= stalled_at + 0.5  # at most the poll in flight
            proxy.set_fault("data", PASS)
            # the poll in flight ends by its deadline, then the back-off (capped at 0.5 s)
            wait_until(lambda: age() < 0.5, settings.poll_timeout_s + 0.5 + SLACK_S, "polls completing again")
        finally:
            client.stop(timeout=2.0)


def test_health_is_503_while_the_data_channel_is_stalled_and_recovers_after(
    make_simulator: Callable[..., Simulator],
    fault_proxy: Callable[[Simulator], FaultProxy],
    mosquitto: Broker,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
) -> None:
    sim = make_simulator(users=list(USERS), poll_wait_ms=POLL_WAIT_MS)
    proxy = fault_proxy(sim)
    cwa = {"url": proxy.url, "timeout_s": DEADLINE_S, "poll_timeout_s": DEADLINE_S}
    bridge = make_bridge(sim, mosquitto.url, base_topic, health_grace_s=0.5, cwa=cwa)
    assert bridge.service.health().healthy
    proxy.set_fault("data", STALL)
    # Each poll is abandoned at its deadline: the session is reconnecting, or (between polls) no
    # answer came for poll_timeout_s + the grace. Either way health says so.
    wait_until(lambda: not bridge.service.health().healthy, 4 * DEADLINE_S + SLACK_S, "health 503")
    reasons = bridge.service.health().details["reasons"]
    assert any("CWA" in str(r) for r in reasons), reasons
    proxy.set_fault("data", PASS)
    wait_until(lambda: bridge.service.health().healthy, 4 * DEADLINE_S + SLACK_S, "health back to 200")
