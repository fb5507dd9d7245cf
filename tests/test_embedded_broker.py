"""The embedded broker of `cwa2mqtt demo`: real paho clients against a real amqtt on loopback."""

from __future__ import annotations

import logging
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from bridge.embedded_broker import EmbeddedBroker, topic_matches
from bridge.errors import BridgeError
from tests.support.mqtt import MqttProbe, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
def topic() -> str:
    return f"t{secrets.token_hex(4)}"


def broker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "embedded-broker"]


def test_url_names_the_loopback_port_it_listens_on(broker: EmbeddedBroker) -> None:
    assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
    assert broker.port > 0
    assert broker.running


def test_clients_exchange_qos0_and_qos1_messages(
    broker: EmbeddedBroker, make_mqtt_probe: Callable[..., MqttProbe], topic: str
) -> None:
    listener = make_mqtt_probe(broker)
    listener.subscribe(f"{topic}/#")
    sender = make_mqtt_probe(broker)

    sender.publish(f"{topic}/zero", "hello", qos=0)
    sender.publish(f"{topic}/one", "world", qos=1)

    assert listener.wait_for(f"{topic}/zero") == b"hello"
    assert listener.wait_for(f"{topic}/one") == b"world"


def test_a_later_subscriber_gets_the_retained_message(
    broker: EmbeddedBroker, make_mqtt_probe: Callable[..., MqttProbe], topic: str
) -> None:
    publisher = make_mqtt_probe(broker)
    publisher.publish(f"{topic}/bridge/state", "online", retain=True)
    publisher.publish(f"{topic}/bridge/state", "online-again", retain=True)
    publisher.close()

    late = make_mqtt_probe(broker)
    assert late.retained(f"{topic}/bridge/state") == b"online-again"


class HandDriven:
    """A paho client without a network thread, so it never reconnects or disconnects by itself."""

    def __init__(self, broker: EmbeddedBroker, client_id: str, will: tuple[str, str] | None = None) -> None:
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.client.on_connect = lambda *_a: self.connected.set()
        self.client.on_disconnect = lambda *_a: self.disconnected.set()
        self.client.connect(broker.host, broker.port, keepalive=30)
        assert self.drive_until(self.connected)

    def drive_until(self, event: threading.Event, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while not event.is_set() and time.monotonic() < deadline:
            self.client.loop(timeout=0.05)
        return event.is_set()

    def crash(self) -> None:
        """End the TCP connection without an MQTT DISCONNECT."""
        sock = self.client.socket()
        assert sock is not None
        sock.close()


def test_last_will_is_published_when_a_client_drops_without_disconnect(
    broker: EmbeddedBroker, make_mqtt_probe: Callable[..., MqttProbe], topic: str
) -> None:
    watcher = make_mqtt_probe(broker)
    watcher.subscribe(f"{topic}/state")
    doomed = HandDriven(broker, f"doomed-{topic}", will=(f"{topic}/state", "offline"))

    doomed.crash()

    assert watcher.wait_for(f"{topic}/state") == b"offline"
    assert watcher.retained(f"{topic}/state") == b"offline"


def test_stop_disconnects_clients_joins_the_thread_and_releases_the_port(
    make_mqtt_probe: Callable[..., MqttProbe],
) -> None:
    first = EmbeddedBroker()
    first.start()
    port = first.port
    client = HandDriven(first, "still-connected")  # a connected client must not hold the shutdown up

    first.stop()

    assert client.drive_until(client.disconnected)
    assert not first.running
    assert broker_threads() == []
    with EmbeddedBroker(port=port) as second:  # the same port binds again at once
        assert second.url == f"mqtt://127.0.0.1:{port}"
        make_mqtt_probe(second).close()
    first.stop()  # idempotent


def test_nothing_is_retained_across_restarts(make_mqtt_probe: Callable[..., MqttProbe], topic: str) -> None:
    with EmbeddedBroker() as first:
        port = first.port
        writer = make_mqtt_probe(first)
        writer.publish(f"{topic}/x", "kept?", retain=True)
        writer.close()
    with EmbeddedBroker(port=port) as second:
        reader = make_mqtt_probe(second)
        assert reader.retained(f"{topic}/x") is None
        reader.close()


def test_a_port_already_in_use_is_a_clear_error() -> None:
    port = free_port()
    with EmbeddedBroker(port=port), pytest.raises(BridgeError, match=str(port)):
        EmbeddedBroker(port=port).start(timeout=5)
    assert len(broker_threads()) == 0


def test_amqtt_stays_quiet_at_info_level(
    broker: EmbeddedBroker, make_mqtt_probe: Callable[..., MqttProbe], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        make_mqtt_probe(broker).publish("chatter", "x")
    noisy = [r for r in caplog.records if r.name.startswith(("amqtt", "transitions"))]
    assert noisy == []


def test_missing_amqtt_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "amqtt.broker", None)  # makes `import amqtt.broker` fail
    with pytest.raises(BridgeError) as caught:
        EmbeddedBroker().start()
    message = str(caught.value)
    assert "pip install 'cwa2mqtt[demo]'" in message
    assert "--mqtt-url" in message


def test_port_is_unknown_before_start() -> None:
    with pytest.raises(BridgeError, match="not been started"):
        _ = EmbeddedBroker().url


RETAINED = ("cwa2mqtt/bob", "cwa2mqtt/carol", "cwa2mqtt/bob/status", "cwa2mqtt", "other/x")


def retained_for(broker: EmbeddedBroker, topic_filter: str) -> set[str]:
    """The retained topics a new subscriber to `topic_filter` receives. A marker published after
    the SUBACK comes back after every retained message (which are sent while handling SUBSCRIBE)."""
    probe = MqttProbe(broker)  # type: ignore[arg-type]  # host and port are all it uses
    try:
        probe.subscribe(topic_filter)
        marker = secrets.token_hex(4)
        probe.publish(probe._marker, marker)
        probe.wait_for(probe._marker, lambda p: p == marker.encode())
        return {r.topic for r in probe.records() if r.topic != probe._marker}
    finally:
        probe.close()


@pytest.mark.parametrize(
    ("topic_filter", "expected"),
    [
        ("nothing/here", set()),
        ("cwa2mqtt/bob", {"cwa2mqtt/bob"}),
        ("cwa2mqtt/+", {"cwa2mqtt/bob", "cwa2mqtt/carol"}),
        ("cwa2mqtt/#", {"cwa2mqtt", "cwa2mqtt/bob", "cwa2mqtt/carol", "cwa2mqtt/bob/status"}),
        ("+/+/status", {"cwa2mqtt/bob/status"}),
        ("#", {"cwa2mqtt", "cwa2mqtt/bob", "cwa2mqtt/carol", "cwa2mqtt/bob/status", "other/x"}),
        ("+/x", {"other/x"}),
    ],
)
def test_a_new_subscriber_gets_only_the_retained_messages_matching_its_filter(
    broker: EmbeddedBroker, topic_filter: str, expected: set[str]
) -> None:
    publisher = MqttProbe(broker)  # type: ignore[arg-type]
    # Others' subscriptions, as a running bridge and a dashboard hold them, must not leak to
    # the new subscriber.
    publisher.subscribe("cwa2mqtt/+/set/#")
    publisher.subscribe("#")
    try:
        for topic in RETAINED:
            publisher.publish(topic, f"state of {topic}", retain=True)
        assert retained_for(broker, topic_filter) == expected
    finally:
        publisher.close()


def test_topic_matching_follows_mqtt() -> None:
    # $ topics (amqtt refuses them from clients, so only the rule itself is checked here).
    assert topic_matches("$SYS/uptime", "$SYS/#")
    assert not topic_matches("$SYS/uptime", "#")
    assert not topic_matches("$SYS/uptime", "+/uptime")
    assert topic_matches("a/$x", "a/+")
    assert topic_matches("a", "a/#")
    assert topic_matches("a/b/c", "a/#")
    assert not topic_matches("a/b", "a/+/c")
    assert topic_matches("a//c", "a/+/c")
    assert not topic_matches("a/b/c", "a/+")
    assert not topic_matches("ab", "a")
