"""The publisher forgets a retained publish once the broker acknowledged it (issue 8: 10,000 users).

A 10,000-user start publishes ~100,000 retained topics; keeping paho's record of each (with its
threading.Condition) until the connection dropped held ~1 KB per topic for good (~100 MB).
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from bridge.mqtt.publisher import MqttPublisher
from bridge.mqtt.settings import MqttSettings
from tests.support.mqtt import Broker

pytestmark = pytest.mark.integration

TOPICS = 3000
PAYLOAD = b"p" * 200


def test_memory_does_not_grow_with_the_number_of_topics_once_acknowledged(
    shared_mosquitto: Broker, base_topic: str
) -> None:
    settings = MqttSettings.from_url(shared_mosquitto.url, client_id=f"memory-{base_topic}")
    publisher = MqttPublisher(settings, subscriptions=[], on_message=lambda _t, _p: None)
    publisher.start(wait_s=10)
    assert publisher.connected
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(TOPICS):
            publisher.publish(f"{base_topic}/u{i}", PAYLOAD, retain=True)
        assert publisher.publish_and_wait(f"{base_topic}/last", b"1", timeout=30)  # acks come in order
        publisher.publish(f"{base_topic}/after", b"2", retain=True)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        publisher.stop()
    # Kept, 3,000 topics held ~4 MB; forgotten, what remains is small and independent of TOPICS.
    assert grown < 150 * TOPICS, f"{grown} bytes kept for {TOPICS} acknowledged topics"
