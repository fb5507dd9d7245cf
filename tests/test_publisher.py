"""The paho adapter against a real private broker: will, online, reconnects, offline buffering, TLS, auth."""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge.errors import MqttError
from bridge.mqtt.publisher import MqttPublisher
from bridge.mqtt.settings import MqttSettings
from tests.support.convergence import eventually
from tests.support.mqtt import Broker, MqttProbe, mosquitto_binary
from tests.support.outputs import wait_until
from tests.support.tls import TestCa

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
MakeProbe = Callable[..., MqttProbe]
MakeBroker = Callable[..., Broker]


class Inbox:
    """What the publisher hands to the application: messages, connects and disconnects."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.messages: list[tuple[str, bytes]] = []
        self.connects = 0
        self.disconnects = 0

    def on_message(self, topic: str, payload: bytes) -> None:
        with self.cond:
            self.messages.append((topic, payload))
            self.cond.notify_all()

    def on_connect(self) -> None:
        with self.cond:
            self.connects += 1
            self.cond.notify_all()

    def on_disconnect(self) -> None:
        with self.cond:
            self.disconnects += 1
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)


MakePublisher = Callable[..., tuple[MqttPublisher, Inbox]]


@pytest.fixture
def make_publisher(base_topic: str) -> Iterator[MakePublisher]:
    made: list[MqttPublisher] = []

    def make(broker: Broker, start: bool = True, **kw: object) -> tuple[MqttPublisher, Inbox]:
        inbox = Inbox()
        options: dict[str, object] = {
            "client_id": f"pub-{base_topic}-{len(made)}",
            "will_topic": f"{base_topic}/bridge/state",
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 0.5,
            **kw,
        }
        settings = MqttSettings.from_url(broker.url, **options)
        publisher = MqttPublisher(
            settings,
            subscriptions=[f"{base_topic}/self/set", f"{base_topic}/bridge/request/+"],
            on_message=inbox.on_message,
            on_connect=inbox.on_connect,
            on_disconnect=inbox.on_disconnect,
        )
        made.append(publisher)
        if start:
            publisher.start(wait_s=10)
        return publisher, inbox

    yield make
    for publisher in made:
        publisher.stop()


# ------------------------------------------------------------------------------ settings


def test_settings_from_url() -> None:
    plain = MqttSettings.from_url("mqtt://broker.lan")
    assert (plain.host, plain.port, plain.tls) == ("broker.lan", 1883, False)
    secure = MqttSettings.from_url("mqtts://broker.lan", ca_file="/ca.pem")
    assert (secure.port, secure.tls, secure.ca_file) == (8883, True, "/ca.pem")
    assert MqttSettings.from_url("mqtt://[::1]:1884").port == 1884
    creds = MqttSettings.from_url("mqtt://bob:p%40ss@h:1")
    assert (creds.username, creds.password) == ("bob", "p@ss")
    assert MqttSettings.from_url("mqtt://bob:x@h", username="alice").username == "alice"


@pytest.mark.parametrize("url", ["http://h", "mqtt://", "h:1883", "mqtt://h:99999"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="MQTT URL"):
        MqttSettings.from_url(url)


def test_the_password_never_shows_in_a_repr() -> None:
    settings = MqttSettings.from_url("mqtt://u:hunter2@h")
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in repr(MqttSettings("h", password="hunter2"))


# ------------------------------------------------------------------------------ online / commands


def test_online_on_connect_and_commands_arrive(
    shared_mosquitto: Broker,
    make_publisher: Callable[..., tuple[MqttPublisher, Inbox]],
    make_mqtt_probe: MakeProbe,
    base_topic: str,
) -> None:
    publisher, inbox = make_publisher(shared_mosquitto)
    assert publisher.connected
    probe: MqttProbe = make_mqtt_probe(shared_mosquitto)
    assert probe.retained(f"{base_topic}/bridge/state") == b"online"
    assert inbox.wait(lambda: inbox.connects == 1)

    probe.publish(f"{base_topic}/self/set", b'{"status":"busy"}')
    probe.publish(f"{base_topic}/bridge/request/refresh", b"")
    probe.publish(f"{base_topic}/bob", b"not a command")
    assert inbox.wait(lambda: len(inbox.messages) >= 2)
    assert inbox.messages[:2] == [
        (f"{base_topic}/self/set", b'{"status":"busy"}'),
        (f"{base_topic}/bridge/request/refresh", b""),
    ]


def test_a_retained_stale_command_is_not_executed_on_connect(
    shared_mosquitto: Broker, make_publisher: MakePublisher, make_mqtt_probe: MakeProbe, base_topic: str
) -> None:
    probe = make_mqtt_probe(shared_mosquitto)
    probe.publish(f"{base_topic}/self/set", b'{"status":"away"}', retain=True)
    _, inbox = make_publisher(shared_mosquitto)
    probe.publish(f"{base_topic}/bridge/request/refresh", b"live")
    assert inbox.wait(lambda: len(inbox.messages) >= 1)
    assert inbox.messages == [(f"{base_topic}/bridge/request/refresh", b"live")]
    probe.publish(f"{base_topic}/self/set", b"", retain=True)  # clean up the shared broker


def test_publish_and_read_back_retained(
    shared_mosquitto: Broker, make_publisher: MakePublisher, base_topic: str
) -> None:
    publisher, _ = make_publisher(shared_mosquitto)
    publisher.publish(f"{base_topic}/bob", '{"status":"busy"}')
    assert publisher.publish_and_wait(f"{base_topic}/carol", b"x")
    retained = publisher.read_retained([f"{base_topic}/+"])
    assert retained == {f"{base_topic}/bob": b'{"status":"busy"}', f"{base_topic}/carol": b"x"}
    assert publisher.read_retained([f"{base_topic}/nobody/#"], quiet_s=0.05) == {}


def test_publishing_from_many_threads(
    shared_mosquitto: Broker, make_publisher: MakePublisher, base_topic: str
) -> None:
    publisher, _ = make_publisher(shared_mosquitto)

    def work(n: int) -> None:
        for i in range(50):
            publisher.publish(f"{base_topic}/t{n}/{i}", f"{n}-{i}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert publisher.publish_and_wait(f"{base_topic}/last", b"done")
    retained = publisher.read_retained([f"{base_topic}/#"])
    assert len([t for t in retained if t.startswith(f"{base_topic}/t")]) == 200


def test_wildcard_topics_are_refused(
    shared_mosquitto: Broker, make_publisher: MakePublisher, base_topic: str
) -> None:
    publisher, _ = make_publisher(shared_mosquitto)
    with pytest.raises(MqttError, match="cannot contain"):
        publisher.publish(f"{base_topic}/+", b"x")


def test_a_read_back_cut_short_by_a_lost_connection_is_an_error_not_an_answer(
    make_publisher: MakePublisher, mosquitto: Broker, base_topic: str
) -> None:
    """What arrived before the connection went is not "everything the broker holds": the start
    would take the missing topics for empty ones and leave their stale payloads retained."""
    publisher, _ = make_publisher(mosquitto)
    assert publisher.publish_and_wait(f"{base_topic}/bob", b"held")
    outcome: list[object] = []

    def read() -> None:
        try:
            outcome.append(publisher.read_retained([f"{base_topic}/+"], quiet_s=2.0, timeout_s=10.0))
        except MqttError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    # The retained message is in; the read is waiting for a quiet spell when the broker goes.
    wait_until(lambda: any(c.count for c in publisher._inbox._collectors))
    mosquitto.kill()
    reader.join(15)
    assert len(outcome) == 1
    assert isinstance(outcome[0], MqttError)
    assert "lost while reading" in str(outcome[0])


def test_read_retained_needs_a_connection(make_publisher: MakePublisher, mosquitto: Broker) -> None:
    publisher, _ = make_publisher(mosquitto, start=False)
    with pytest.raises(MqttError, match="not connected"):
        publisher.read_retained(["x/#"])


# ------------------------------------------------------------------------------ stop / will


def test_clean_stop_publishes_final_messages_and_not_the_will(
    mosquitto: Broker, make_publisher: MakePublisher, make_mqtt_probe: MakeProbe, base_topic: str
) -> None:
    publisher, _ = make_publisher(mosquitto)
    publisher.stop(final=[(f"{base_topic}/bridge/cwa", b"offline")])
    assert not publisher.connected
    probe = make_mqtt_probe(mosquitto)
    assert probe.retained(f"{base_topic}/bridge/cwa") == b"offline"
    # The will was not sent: bridge/state still says what the bridge last said itself.
    assert probe.retained(f"{base_topic}/bridge/state") == b"online"


def test_stop_with_offline_on_the_state_topic(
    mosquitto: Broker, make_publisher: MakePublisher, make_mqtt_probe: MakeProbe, base_topic: str
) -> None:
    publisher, _ = make_publisher(mosquitto)
    publisher.stop(final=[(f"{base_topic}/bridge/state", b"offline")])
    assert make_mqtt_probe(mosquitto).retained(f"{base_topic}/bridge/state") == b"offline"


def test_last_will_after_the_process_is_killed(
    mosquitto: Broker, make_mqtt_probe: MakeProbe, base_topic: str
) -> None:
    script = textwrap.dedent(
        f"""
        import sys, threading
        from bridge.mqtt.publisher import MqttPublisher
        from bridge.mqtt.settings import MqttSettings
        settings = MqttSettings.from_url({mosquitto.url!r}, client_id="killed-{base_topic}",
                                         will_topic="{base_topic}/bridge/state")
        publisher = MqttPublisher(settings, subscriptions=[], on_message=lambda t, p: None)
        publisher.start(wait_s=10)
        print("READY" if publisher.connected else "FAILED", flush=True)
        threading.Event().wait()
        """
    )
    probe = make_mqtt_probe(mosquitto)
    probe.subscribe(f"{base_topic}/bridge/state")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        probe.wait_for(f"{base_topic}/bridge/state", lambda p: p == b"online")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        probe.wait_for(f"{base_topic}/bridge/state", lambda p: p == b"offline")
        assert probe.retained(f"{base_topic}/bridge/state") == b"offline"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


# ------------------------------------------------------------------------------ broker restarts


def test_subscriptions_survive_a_broker_restart(
    mosquitto: Broker, make_publisher: MakePublisher, make_mqtt_probe: MakeProbe, base_topic: str
) -> None:
    publisher, inbox = make_publisher(mosquitto)
    mosquitto.stop()
    assert inbox.wait(lambda: inbox.disconnects == 1)
    assert not publisher.connected
    mosquitto.start()
    assert publisher.wait_connected(10)
    assert inbox.wait(lambda: inbox.connects == 2)
    assert publisher.reconnects == 1
    probe = make_mqtt_probe(mosquitto)
    # `online` again on the new broker (it kept nothing: persistence is off).
    assert probe.retained(f"{base_topic}/bridge/state") == b"online"
    probe.publish(f"{base_topic}/bridge/request/health_check", b"{}")
    assert inbox.wait(lambda: (f"{base_topic}/bridge/request/health_check", b"{}") in inbox.messages)


def test_nothing_published_while_the_broker_is_away_goes_out_by_itself(
    mosquitto: Broker, make_publisher: MakePublisher, make_mqtt_probe: MakeProbe, base_topic: str
) -> None:
    # The owner (the service) republishes its whole retained state from on_connect; the
    # publisher replaying it too sent every topic that changed while away twice.
    publisher, inbox = make_publisher(mosquitto, reconnect_min_s=1.0, reconnect_max_s=1.0)
    mosquitto.kill()
    assert inbox.wait(lambda: inbox.disconnects == 1)
    publisher.publish(f"{base_topic}/bob", b"busy")
    publisher.publish(f"{base_topic}/lights/door/cmd", b"#FF0000", retain=False)
    assert not publisher.publish_and_wait(f"{base_topic}/dave", b"offline")
    assert publisher.dropped == 1  # the non-retained light command
    mosquitto.start()
    probe = make_mqtt_probe(mosquitto)
    probe.subscribe(f"{base_topic}/#")
    assert publisher.wait_connected(10)
    assert inbox.wait(lambda: inbox.connects == 2)
    publisher.publish(f"{base_topic}/bob", b"away")  # what the owner's replay does
    probe.wait_for(f"{base_topic}/bob")
    assert probe.messages(f"{base_topic}/bob") == [b"away"]
    assert probe.messages(f"{base_topic}/lights/door/cmd") == []
    assert probe.messages(f"{base_topic}/dave") == []


def test_keeps_retrying_while_the_broker_is_down_at_start(
    mosquitto: Broker, make_publisher: MakePublisher, make_mqtt_probe: MakeProbe, base_topic: str
) -> None:
    mosquitto.stop()
    publisher, inbox = make_publisher(mosquitto, start=False)
    publisher.start()
    assert eventually(lambda: publisher.last_error is not None)
    assert not publisher.connected
    mosquitto.start()
    assert publisher.wait_connected(10)
    assert inbox.wait(lambda: inbox.connects == 1)  # the owner is told, and publishes its state
    assert make_mqtt_probe(mosquitto).retained(f"{base_topic}/bridge/state") == b"online"
    assert publisher.last_error is None


# ------------------------------------------------------------------------------ auth and TLS


@pytest.fixture
def auth_broker(tmp_path: Path, make_broker: MakeBroker) -> Broker:
    """A broker that only lets in ``bridge`` / ``s3cret-pw``."""
    tool = shutil.which("mosquitto_passwd")
    if tool is None or mosquitto_binary() is None:
        pytest.skip("needs mosquitto and mosquitto_passwd")
    path = tmp_path / "passwd"
    subprocess.run([tool, "-b", "-c", str(path), "bridge", "s3cret-pw"], check=True, capture_output=True)
    return make_broker(password_file=str(path))


def test_username_and_password(
    auth_broker: Broker,
    make_publisher: MakePublisher,
    make_mqtt_probe: MakeProbe,
    base_topic: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = auth_broker
    publisher, _ = make_publisher(broker, username="bridge", password="s3cret-pw")
    assert publisher.connected
    probe = make_mqtt_probe(broker, username="bridge", password="s3cret-pw")
    assert probe.retained(f"{base_topic}/bridge/state") == b"online"

    caplog.set_level(logging.DEBUG)
    wrong, _ = make_publisher(broker, start=False, username="bridge", password="wrong-pw")
    wrong.start()
    assert eventually(lambda: (wrong.last_error or "").startswith("broker refused"))
    assert not wrong.connected
    assert "wrong-pw" not in caplog.text
    assert "wrong-pw" not in (wrong.last_error or "")


def test_mqtts_with_a_private_ca(
    test_ca: TestCa,
    make_broker: MakeBroker,
    make_publisher: MakePublisher,
    make_mqtt_probe: MakeProbe,
    base_topic: str,
) -> None:
    if mosquitto_binary() is None:
        pytest.skip("TLS tests need the mosquitto binary")
    tls = test_ca.files
    broker = make_broker(tls=tls)
    assert broker.url.startswith("mqtts://")
    publisher, _ = make_publisher(broker, ca_file=tls.ca_file)
    assert publisher.connected
    assert make_mqtt_probe(broker, ca_file=tls.ca_file).retained(f"{base_topic}/bridge/state") == b"online"

    untrusting, _ = make_publisher(broker, start=False)  # system CAs only: the private CA is unknown
    untrusting.start()
    assert eventually(lambda: "certificate" in (untrusting.last_error or "").lower())
    assert not untrusting.connected
