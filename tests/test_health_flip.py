"""`/healthz` follows the bridge's real connections (interface.md §6): 503 at once while the MQTT
broker is gone, 503 once the CWA session has been down longer than the grace period, and 200
again after each comes back -- also as `cwa2mqtt health` (the Docker HEALTHCHECK) reports it.

The whole bridge runs in-process (`make_bridge`) with a one-second grace instead of two minutes.
Every log record (debug), HTTP answer and MQTT message is checked for the password.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.app import Bridge
from bridge.cli import main
from bridge.simulator import Simulator
from tests.support.bridge import BOB, PASSWORD, USERS
from tests.support.http_endpoint import Answer, fetch
from tests.support.mqtt import Broker, MqttProbe
from tests.support.outputs import Seen, wait_until

pytestmark = pytest.mark.integration

GRACE_S = 1.0
FLIP_TIMEOUT_S = 20.0  # the bridge retries with back-off scaled down to at most 3 s


@pytest.fixture
def seen(caplog: pytest.LogCaptureFixture) -> Iterator[Seen]:
    """Tests ask for this first, so it is torn down last: after the bridge's stop was logged."""
    caplog.set_level(logging.DEBUG)
    collected = Seen()
    yield collected
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
    collected.add("logs", "\n".join(formatter.format(r) for r in records))
    collected.assert_free_of(PASSWORD)
    assert any(r.levelno == logging.DEBUG for r in records)  # the most talkative level was covered
    assert any(r.getMessage() == "mqtt.stopped" for r in records), "the bridge's stop was not logged"


def healthz(url: str, seen: Seen) -> Answer:
    return seen.add_answer("/healthz", fetch(url + "/healthz"))


def wait_health(url: str, seen: Seen, predicate: Callable[[Answer], bool], what: str) -> Answer:
    answers: list[Answer] = []

    def check() -> bool:
        answers.append(healthz(url, seen))
        return predicate(answers[-1])

    wait_until(check, FLIP_TIMEOUT_S, f"/healthz {what}; last: {answers[-1].text if answers else None}")
    return answers[-1]


def gauge(url: str, seen: Seen, name: str) -> float:
    text = seen.add_answer("/metrics", fetch(url + "/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} not in /metrics")


def health_command(url: str, capsys: pytest.CaptureFixture[str], seen: Seen) -> int:
    code = main(["health", "--url", url])
    out = capsys.readouterr()
    seen.add("cwa2mqtt health", out.out + out.err)
    return code


@pytest.fixture
def sim(make_simulator: Callable[..., Simulator]) -> Simulator:
    return make_simulator(users=list(USERS), poll_wait_ms=50)


def test_healthz_is_503_while_the_broker_is_gone_and_200_after(
    seen: Seen,
    sim: Simulator,
    mosquitto: Broker,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
    capsys: pytest.CaptureFixture[str],
) -> None:
    bridge = make_bridge(sim, mosquitto.url, base_topic, health_grace_s=GRACE_S)
    assert bridge.http is not None
    url = bridge.http.url
    assert healthz(url, seen).status == 200
    assert health_command(url, capsys, seen) == 0

    mosquitto.stop()
    down = wait_health(url, seen, lambda a: a.status == 503, "503 without a broker")
    body = json.loads(down.body)
    assert body["mqtt"] == "disconnected"
    assert body["cwa"] == "online"  # only the broker is gone
    assert body["status"] == "unhealthy"
    assert body["reasons"] == ["MQTT broker not connected"]
    assert health_command(url, capsys, seen) == 1
    wait_until(lambda: gauge(url, seen, "cwa2mqtt_mqtt_connected") == 0, FLIP_TIMEOUT_S, "the gauge at 0")

    mosquitto.start()
    up = wait_health(url, seen, lambda a: a.status == 200, "200 with the broker back")
    assert json.loads(up.body)["mqtt"] == "connected"
    assert health_command(url, capsys, seen) == 0
    assert gauge(url, seen, "cwa2mqtt_mqtt_reconnects_total") >= 1


def test_healthz_is_503_once_cwa_is_gone_longer_than_the_grace_and_200_after(
    seen: Seen,
    sim: Simulator,
    make_simulator: Callable[..., Simulator],
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
    capsys: pytest.CaptureFixture[str],
) -> None:
    mqtt_probe.subscribe("#")
    bridge = make_bridge(sim, mosquitto.url, base_topic, health_grace_s=GRACE_S)
    assert bridge.http is not None
    url = bridge.http.url
    assert healthz(url, seen).status == 200
    port = int(sim.url.rsplit(":", 1)[1])

    sim.stop()  # the CWA server goes away: connections are refused
    first = wait_health(url, seen, lambda a: json.loads(a.body)["cwa"] == "offline", "reporting CWA offline")
    assert first.status == 200  # within the grace: a short CWA outage is not "unhealthy"
    down = wait_health(url, seen, lambda a: a.status == 503, "503 after the grace")
    body = json.loads(down.body)
    assert body["mqtt"] == "connected"
    assert body["status"] == "unhealthy"
    [reason] = body["reasons"]
    assert reason.startswith("CWA session ")
    assert health_command(url, capsys, seen) == 1
    mqtt_probe.wait_for(f"{base_topic}/bridge/cwa", lambda p: p == b"offline")

    back = make_simulator(users=list(USERS), poll_wait_ms=50, port=port)  # restarted, sessions lost
    up = wait_health(url, seen, lambda a: a.status == 200, "200 with CWA back")
    assert json.loads(up.body)["cwa"] == "online"
    assert health_command(url, capsys, seen) == 0
    mqtt_probe.wait_for(f"{base_topic}/bridge/cwa", lambda p: p == b"online", timeout=FLIP_TIMEOUT_S)
    assert gauge(url, seen, "cwa2mqtt_session_restarts_total") >= 1
    # The bridge watches again: a change on the new server reaches MQTT.
    back.set_presence(BOB.uri, availability=3500, activity=None, note="Back again")
    mqtt_probe.wait_for(f"{base_topic}/bob", lambda p: json.loads(p)["note"] == "Back again", timeout=10)
    seen.add_mqtt(mqtt_probe)
