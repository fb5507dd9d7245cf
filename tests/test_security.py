"""Secrets never leak, and user-provided strings never become markup — checked on a full real run.

The real `cwa2mqtt` process runs at log level debug against the simulator (tickets rotating
every fraction of a second, one forced re-sign-in) and a broker that wants a password; then every
output is grepped for the CWA password, the MQTT password and every CWA-Ticket the simulator
issued: the log, `check-config`, every MQTT message (topics and payloads), `/healthz`, `/metrics`,
the board and its JSON.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.config import load_settings
from bridge.simulator import Simulator, SimUser
from tests.support.bridge import ALICE, BOB, CAROL, PASSWORD, BridgeProcess, config_dict, write_config
from tests.support.config import MQTT_PASSWORD
from tests.support.convergence import http_get, http_url_from_output, wait_converged
from tests.support.mqtt import Broker, MqttProbe, mosquitto_binary

pytestmark = pytest.mark.integration

HOSTILE_NAME = '<script>alert("name")</script>'
HOSTILE_NOTE = "<img src=x onerror=alert(1)> & <b>bold</b>"
CLEAN_STOP_S = 5.0


@pytest.fixture
def auth_broker(tmp_path: Path, make_broker: Callable[..., Broker]) -> Broker:
    tool = shutil.which("mosquitto_passwd")
    if tool is None or mosquitto_binary() is None:
        pytest.skip("needs mosquitto and mosquitto_passwd")
    path = tmp_path / "passwd"
    subprocess.run([tool, "-b", "-c", str(path), "bridge", MQTT_PASSWORD], check=True, capture_output=True)
    return make_broker(password_file=str(path))


def test_no_secret_appears_in_any_output_of_a_full_run(
    make_simulator: Callable[..., Simulator],
    auth_broker: Broker,
    make_mqtt_probe: Callable[..., MqttProbe],
    base_topic: str,
    tmp_path: Path,
    run_bridge: Callable[..., BridgeProcess],
) -> None:
    hostile_carol = SimUser(CAROL.uri, name=HOSTILE_NAME, availability=3500, note=HOSTILE_NOTE)
    sim = make_simulator(
        users=[ALICE, BOB, hostile_carol], poll_wait_ms=50, ticket_rotate_s=0.3, ticket_grace_s=5.0
    )
    config = config_dict(sim, auth_broker.url, base_topic)
    del config["cwa"]["password"]  # from the environment, as a deployment would
    secret_file = tmp_path / "mqtt_password"
    secret_file.write_text(MQTT_PASSWORD + "\n")
    config["mqtt"] |= {"username": "bridge", "password_file": str(secret_file)}
    config["log"] = {"level": "debug", "format": "text"}
    path = write_config(tmp_path / "config.yaml", config)
    env = {"CWA2MQTT_CWA__PASSWORD": PASSWORD}
    auth = {"username": "bridge", "password": MQTT_PASSWORD}

    check = run_bridge("check-config", "-c", str(path), env=env)
    assert check.wait(timeout=20) == 0, check.output()

    everything = make_mqtt_probe(auth_broker, **auth)
    everything.subscribe("#")
    bridge = run_bridge("run", "-c", str(path), env=env)
    bridge.wait_output("bridge.ready", timeout=20)
    watched = {"bob": BOB.uri, "carol": CAROL.uri}
    wait_converged(auth_broker, sim, base_topic, watched, timeout=10.0, **auth)

    # own-state command, a forced re-sign-in (the password goes over the wire again) and a change
    everything.publish(f"{base_topic}/self/set", json.dumps({"status": "busy", "note": "Secret-free note"}))
    everything.wait_for(f"{base_topic}/bridge/response/self/set", lambda p: json.loads(p)["status"] == "ok")
    sim.faults.expire_tickets()
    sim.set_presence(BOB.uri, availability=12500, activity=None, note="Coffee")
    bridge.wait_output("cwa.session.started", timeout=10)
    sim.wait_for(lambda: bridge.output().count("cwa.sign_in.ok") >= 2, timeout=10)
    wait_converged(auth_broker, sim, base_topic, watched, timeout=10.0, **auth)
    assert sim.truth(ALICE.uri).status.value == "busy"

    base_url = http_url_from_output(bridge.output())
    answers = {
        endpoint: http_get(base_url + endpoint) for endpoint in ("/healthz", "/metrics", "/", "/api/presence")
    }
    assert answers["/healthz"][0] == 200, answers["/healthz"]
    bridge.signal(signal.SIGTERM)
    assert bridge.wait(timeout=CLEAN_STOP_S) == 0

    tickets = sim.issued_tickets()
    assert len(tickets) >= 3, "the run should have seen rotated and re-issued tickets"
    outputs = {
        "log": bridge.output(),
        "check-config": check.output(),
        "mqtt": "\n".join(f"{r.topic} {r.payload.decode('utf-8', 'replace')}" for r in everything.records()),
        **{f"http {endpoint}": f"{headers}\n{body}" for endpoint, (_, headers, body) in answers.items()},
    }
    assert "cwa.sign_in.ok" in outputs["log"]
    assert " DEBUG " in outputs["log"]
    assert f"{base_topic}/bob" in outputs["mqtt"]
    for where, text in outputs.items():
        assert PASSWORD not in text, f"CWA password in {where}"
        assert MQTT_PASSWORD not in text, f"MQTT password in {where}"
        leaked = [t for t in tickets if t in text]
        assert not leaked, f"{len(leaked)} CWA-Ticket value(s) in {where}"

    # user-provided strings reach the board only as data, never as markup (cross-checks test_http_board)
    for endpoint, (_, _, body) in answers.items():
        assert "<script>alert" not in body, endpoint
        assert "<img" not in body, endpoint
        assert "<b>bold" not in body, endpoint
    users = {u["id"]: u for u in json.loads(answers["/api/presence"][2])["users"]}
    assert users["carol"]["note"] == HOSTILE_NOTE
    assert users["carol"]["name"] == HOSTILE_NAME


def test_the_http_endpoint_binds_to_loopback_by_default(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "cwa: {url: 'https://cwa.example.org', username: 'EXAMPLE\\alice', uri: 'sip:alice@example.org'}\n"
        "watch: [sip:bob@example.org]\n"
    )
    settings = load_settings(path, env={"CWA2MQTT_CWA__PASSWORD": PASSWORD})
    assert settings.http.host == "127.0.0.1"
    assert settings.cwa.verify_tls is True  # and TLS verification toward CWA is on by default
