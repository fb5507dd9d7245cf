"""A burst larger than paho's bounded queue must not drop retained state (found by bench/pipeline.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from bridge.mqtt.paho_glue import MAX_QUEUED_MESSAGES
from bridge.mqtt.publisher import MqttPublisher
from bridge.mqtt.settings import MqttSettings
from tests.support.mqtt import Broker, MqttProbe

pytestmark = pytest.mark.integration


def test_a_burst_beyond_the_queue_limit_reaches_the_broker_complete(
    shared_mosquitto: Broker, make_mqtt_probe: Callable[..., MqttProbe], base_topic: str
) -> None:
    probe = make_mqtt_probe(shared_mosquitto)
    # QoS 0: the broker queues at most 1000 QoS 1 messages for a slow subscriber and drops the rest,
    # which would blame the publisher for the probe's backlog.
    probe.subscribe(f"{base_topic}/#", qos=0)
    settings = MqttSettings.from_url(shared_mosquitto.url, client_id=f"burst-{base_topic}")
    publisher = MqttPublisher(settings, subscriptions=[], on_message=lambda _t, _p: None)
    publisher.start(wait_s=10)
    try:
        count = MAX_QUEUED_MESSAGES + 1500
        for i in range(count):
            publisher.publish(f"{base_topic}/u{i}", f"state {i}".encode(), retain=True)
        assert publisher.dropped == 0
        deadline = time.monotonic() + 60
        while len(probe.records()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        received = {r.topic: r.payload for r in probe.records()}
        assert len(received) == count
        assert received[f"{base_topic}/u{count - 1}"] == f"state {count - 1}".encode()
    finally:
        publisher.stop()
