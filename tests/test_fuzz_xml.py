"""Mutated CWA XML (issue 7): the codec gives events or its one error; the real process stays up.

`sim.faults.mutate` replaces data-channel bodies with seeded mutations of the real ones (byte flips,
truncation, deleted/duplicated elements, swapped attribute values, huge numbers, unknown elements).
Tree mutations stay well-formed, so the bridge can be handed plausible nonsense it cannot tell from
the truth (a deleted event, a swapped availability); what it must do is survive, keep its session,
and bridge every change made after the storm.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.cwa import codec
from bridge.cwa.codec_category_writer import note_category, state_category
from bridge.cwa.events import EventBatch, UserPresence, UserPresenceEvent
from bridge.cwa.session import MAX_POLL_WAIT_MS, CwaSession, Poll, SignIn
from bridge.errors import CwaProtocolError
from bridge.simulator import Simulator, SimUser
from bridge.simulator.faults import MUTATIONS, mutated_body
from tests.support.bridge import ALICE, PASSWORD, BridgeProcess, config_dict, write_config
from tests.support.convergence import eventually, wait_converged
from tests.support.mqtt import Broker, MqttProbe

WATCHED = {f"u{i}": f"sip:fuzz{i}@example.org" for i in range(4)}
STORM_S = 6.0
CLEAN_STOP_S = 5.0


# A real data-channel body: two watched users' states and notes, as the simulator encodes them.
REAL_BODY = codec.encode_events(
    EventBatch(
        "7",
        12,
        50,
        1_200_000,
        (
            UserPresenceEvent(
                11,
                (UserPresence("sip:bob@example.org", (state_category(6500), note_category("Back at 3"))),),
            ),
            UserPresenceEvent(12, (UserPresence("sip:carol@example.org", (state_category(3500),)),)),
        ),
    )
)


@pytest.fixture
def sim(make_simulator: Callable[..., Simulator]) -> Simulator:
    users = [ALICE] + [
        SimUser(uri=uri, name=f"Fuzz {ident}", availability=3500, note=f"start {ident}")
        for ident, uri in WATCHED.items()
    ]
    # A short sessionTimeout bounds the pause a mutated pollWaitTime can ask for (half of it).
    return make_simulator(users=users, poll_wait_ms=50, session_timeout_ms=4000)


def test_every_mutation_kind_is_produced_and_is_reproducible_from_its_seed() -> None:
    kinds = {mutated_body(REAL_BODY, seed)[1] for seed in range(200)}
    assert kinds == set(MUTATIONS)
    assert all(mutated_body(REAL_BODY, seed) == mutated_body(REAL_BODY, seed) for seed in range(50))
    assert all(mutated_body(REAL_BODY, seed)[0] != REAL_BODY for seed in range(50))


@settings(max_examples=300)
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_mutated_real_bodies_decode_to_events_or_the_protocol_error(seed: int) -> None:
    """h11's rule for a protocol core: garbage in gives events or one error type, nothing else."""
    mutated, _ = mutated_body(REAL_BODY, seed)
    try:
        batch: EventBatch | str = codec.decode_events(mutated)
    except CwaProtocolError as exc:
        batch = str(exc)  # the one error, with a message
    assert isinstance(batch, EventBatch) or batch


@pytest.mark.parametrize(
    ("poll_wait_time", "session_timeout", "expected_ms"),
    [
        (2000, None, 2000),  # an ordinary value is honoured
        (30_000, 600_000, 30_000),  # so is throttling (§7.2.6)
        (10**25, None, MAX_POLL_WAIT_MS),  # a "huge" mutation: not a stall for ever
        (600_000, 50, 25),  # a swapped pollWaitTime/sessionTimeout pair: the session would expire
    ],
)
def test_a_mutated_poll_wait_time_cannot_stall_the_bridge(
    poll_wait_time: int, session_timeout: int | None, expected_ms: int
) -> None:
    session = CwaSession()
    assert isinstance(session.next_action(), SignIn)
    session.signed_in("T1", None)
    session.next_action()
    session.session_started("7", 50)
    session.next_action()
    session.events_received(EventBatch("7", 1, poll_wait_time, session_timeout))
    action = session.next_action()
    assert isinstance(action, Poll)
    assert action.wait_ms == expected_ms


@pytest.mark.integration
def test_process_survives_mutated_data_channel_and_converges_afterwards(
    sim: Simulator,
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    tmp_path: Path,
    run_bridge: Callable[..., BridgeProcess],
) -> None:
    config = config_dict(
        sim, mosquitto.url, base_topic, watch=[{"uri": uri, "id": ident} for ident, uri in WATCHED.items()]
    )
    config["log"] = {"level": "info"}
    process = run_bridge("run", "-c", str(write_config(tmp_path / "config.yaml", config)))
    process.wait_output("bridge.ready", timeout=20)
    wait_converged(mosquitto, sim, base_topic, WATCHED, timeout=10)

    # The storm: bursts of mutated data-channel bodies while presence keeps changing. Bursts of
    # two keep runs of consecutive failures short, so the real back-off (1 s doubling) stays short.
    started, round_no = time.monotonic(), 0
    while time.monotonic() - started < STORM_S:
        round_no += 1
        sim.faults.mutate(2, channel="data", seed=1000 * round_no)
        for i, uri in enumerate(WATCHED.values()):
            availability = (3500, 6500, 9500, 12500, 15500)[(round_no + i) % 5]
            sim.set_presence(uri, availability=availability, note=f"storm {round_no}")
        time.sleep(0.3)  # paces the churn (not a settle wait): ~3 changes per user per second
    mutated = [r.fault for r in sim.recordings if r.fault and r.fault.startswith("mutate:")]
    sim.faults.mutate(0)  # faults off
    assert process.proc.poll() is None, process.output()[-3000:]
    assert len(mutated) >= 8, (mutated, process.output()[-4000:])

    # After the storm every change is bridged again: one fresh change per user, then convergence.
    for ident, uri in WATCHED.items():
        sim.set_presence(uri, availability=6500, activity="in-a-meeting", note=f"after the storm {ident}")
    wait_converged(mosquitto, sim, base_topic, WATCHED, timeout=30)
    assert eventually(lambda: mqtt_probe.retained(f"{base_topic}/bridge/cwa") == b"online", timeout=10)

    output = process.output()
    assert "Traceback" not in output
    assert PASSWORD not in output
    process.signal(signal.SIGTERM)
    assert process.wait(timeout=CLEAN_STOP_S) == 0
    assert json.loads(mqtt_probe.retained(f"{base_topic}/u0") or b"{}")["note"] == "after the storm u0"
