"""A burst of retained publishes arrives complete at a broker with default limits, QoS 1 and 2.

QoS 1 goes out without paho's in-flight limit (issue 8: paho walks its whole queue on every ack
when a limit is set). QoS 2 keeps the limit: mosquitto holds at most 20 incoming QoS 2 messages
per client by default, and a burst beyond that stalled for good.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bridge.mqtt.publisher import MqttPublisher
from bridge.mqtt.settings import MqttSettings
from tests.support.mqtt import Broker, MqttProbe

pytestmark = pytest.mark.integration

BURST = 300


@pytest.mark.parametrize("qos", [1, 2])
def test_a_burst_beyond_the_brokers_inflight_limit_arrives_complete(
    mosquitto: Broker, make_mqtt_probe: Callable[..., MqttProbe], base_topic: str, qos: int
) -> None:
    settings = MqttSettings.from_url(mosquitto.url, client_id=f"inflight-{base_topic}", qos=qos)
    publisher = MqttPublisher(settings, subscriptions=[], on_message=lambda _t, _p: None)
    publisher.start(wait_s=10)
    try:
        for i in range(BURST):
            publisher.publish(f"{base_topic}/u{i}", f"state {i}".encode(), retain=True)
        assert publisher.publish_and_wait(f"{base_topic}/last", b"done", timeout=20)
    finally:
        publisher.stop()
    probe = make_mqtt_probe(mosquitto)
    probe.subscribe(f"{base_topic}/#")  # the retained state, after the publisher is gone
    probe.wait_for(f"{base_topic}/last", lambda p: p == b"done", timeout=10)
    assert all(probe.retained(f"{base_topic}/u{i}") == f"state {i}".encode() for i in range(BURST))
