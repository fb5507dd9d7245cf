"""TLS toward CWA (on by default: `cwa.verify_tls`, `cwa.ca_file`) and toward MQTT (`mqtts://`).

A private CA is generated for the session (`tests/support/tls.py`); the simulator serves https
with a certificate it signed (`SimOptions.tls_cert`/``tls_key``) and mosquitto gets a TLS listener.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.app import Bridge
from bridge.simulator import Simulator
from tests.support.bridge import BOB, CAROL, PASSWORD, USERS, BridgeProcess, config_dict, write_config
from tests.support.convergence import wait_converged
from tests.support.mqtt import Broker, MqttProbe, mosquitto_binary
from tests.support.tls import TestCa

pytestmark = pytest.mark.integration

WATCHED = {"bob": BOB.uri, "carol": CAROL.uri}
CLEAN_STOP_S = 5.0  # interface.md §7.8


@pytest.fixture
def tls_sim(make_simulator: Callable[..., Simulator], test_ca: TestCa) -> Simulator:
    return make_simulator(
        users=list(USERS), poll_wait_ms=50, tls_cert=test_ca.cert_file, tls_key=test_ca.key_file
    )


def _process_config(tmp_path: Path, sim: Simulator, broker_url: str, base: str, **overrides: Any) -> Path:
    config = config_dict(sim, broker_url, base, **overrides)
    config["log"] = {"level": "info"}  # the default level: what an operator sees
    return write_config(tmp_path / "config.yaml", config)


def test_the_simulator_serves_https_with_the_given_certificate(tls_sim: Simulator) -> None:
    assert tls_sim.url.startswith("https://127.0.0.1:")


def test_bridge_over_https_with_a_private_ca_and_mqtts(
    tls_sim: Simulator,
    test_ca: TestCa,
    make_broker: Callable[..., Broker],
    base_topic: str,
    make_bridge: Callable[..., Bridge],
) -> None:
    if mosquitto_binary() is None:
        pytest.skip("TLS toward MQTT needs the mosquitto binary")
    broker = make_broker(tls=test_ca.files)
    assert broker.url.startswith("mqtts://")
    make_bridge(
        tls_sim,
        broker.url,
        base_topic,
        cwa={"ca_file": test_ca.ca_file},
        mqtt={"ca_file": test_ca.ca_file},
    )
    wait_converged(broker, tls_sim, base_topic, WATCHED, timeout=10.0, ca_file=test_ca.ca_file)
    assert any(r.channel == "data" and r.status == 200 for r in tls_sim.recordings)

    tls_sim.set_presence(BOB.uri, availability=9500, activity=None, note="Presenting over TLS")
    wait_converged(broker, tls_sim, base_topic, WATCHED, timeout=10.0, ca_file=test_ca.ca_file)


@pytest.mark.parametrize("ca", ["system", "other"], ids=["default-system-cas", "wrong-private-ca"])
def test_an_untrusted_cwa_certificate_stops_sign_in_and_says_why(
    tls_sim: Simulator,
    test_ca: TestCa,
    mosquitto: Broker,
    make_mqtt_probe: Callable[..., MqttProbe],
    base_topic: str,
    tmp_path: Path,
    run_bridge: Callable[..., BridgeProcess],
    ca: str,
) -> None:
    """verify_tls is on by default: neither the system CAs nor an unrelated CA accept the server."""
    overrides: dict[str, Any] = {"cwa": {"ca_file": test_ca.other_ca_file}} if ca == "other" else {}
    path = _process_config(tmp_path, tls_sim, mosquitto.url, base_topic, **overrides)
    bridge = run_bridge("run", "-c", str(path))
    # It says why, keeps MQTT bridged with bridge/cwa offline, and keeps trying (the CA may be fixed).
    bridge.wait_output("TLS certificate of the CWA server not trusted", timeout=20)
    probe = make_mqtt_probe(mosquitto)
    probe.subscribe(f"{base_topic}/bridge/#")
    probe.wait_for(f"{base_topic}/bridge/state", lambda p: p == b"online", timeout=10)
    assert probe.wait_for(f"{base_topic}/bridge/cwa", timeout=10) == b"offline"
    bridge.signal(signal.SIGTERM)
    assert bridge.wait(timeout=CLEAN_STOP_S) == 0
    output = bridge.output()
    assert "Traceback" not in output
    assert PASSWORD not in output
    # the password never left: no sign-in reached the server
    assert not [r for r in tls_sim.recordings if r.channel == "logon"]


def test_verify_tls_false_warns_loudly_and_still_bridges(
    tls_sim: Simulator,
    mosquitto: Broker,
    base_topic: str,
    tmp_path: Path,
    run_bridge: Callable[..., BridgeProcess],
) -> None:
    path = _process_config(tmp_path, tls_sim, mosquitto.url, base_topic, cwa={"verify_tls": False})
    bridge = run_bridge("run", "-c", str(path))
    bridge.wait_output("bridge.ready", timeout=20)
    wait_converged(mosquitto, tls_sim, base_topic, WATCHED, timeout=10.0)
    warnings = [line for line in bridge.output().splitlines() if "WARNING" in line and "NOT checked" in line]
    assert warnings, bridge.output()
    assert "cwa.tls_verification_disabled" in warnings[0]
    bridge.signal(signal.SIGTERM)
    assert bridge.wait(timeout=CLEAN_STOP_S) == 0


def test_mqtts_with_the_wrong_ca_does_not_connect_and_says_why(
    make_simulator: Callable[..., Simulator],
    test_ca: TestCa,
    make_broker: Callable[..., Broker],
    base_topic: str,
    tmp_path: Path,
    run_bridge: Callable[..., BridgeProcess],
) -> None:
    if mosquitto_binary() is None:
        pytest.skip("TLS toward MQTT needs the mosquitto binary")
    sim = make_simulator(users=list(USERS), poll_wait_ms=50)
    broker = make_broker(tls=test_ca.files)
    path = _process_config(tmp_path, sim, broker.url, base_topic, mqtt={"ca_file": test_ca.other_ca_file})
    bridge = run_bridge("run", "-c", str(path))
    bridge.wait_output("mqtt.connect_failed error=SSLCertVerificationError", timeout=20)
    output = bridge.output()
    assert "Traceback" not in output
    assert "bridge.ready" not in output
    bridge.signal(signal.SIGTERM)
    assert bridge.wait(timeout=CLEAN_STOP_S) == 0
