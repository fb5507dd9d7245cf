"""MQTT test fixtures: a private broker, a recording probe client and a unique base topic.

    def test_x(mosquitto, mqtt_probe, base_topic):
        mqtt_probe.subscribe(f"{base_topic}/#")
        ...  # run something against mosquitto.url
        assert mqtt_probe.wait_for(f"{base_topic}/bridge/state") == b"online"
        assert mqtt_probe.retained(f"{base_topic}/bob") is not None

- `mosquitto`: a private broker for this test on a free loopback port (``.host``, ``.port``,
  ``.url``, ``.stop()``, ``.start()`` -- restarts on the same port and waits until ready --,
  ``.kill()`` -- SIGKILL). Uses the ``mosquitto`` binary (on PATH or /usr/sbin/mosquitto); without
  one it falls back to an embedded amqtt broker in a thread with the same interface (``kill``
  then drops every connection abruptly, like a crashed broker). Set ``CWA2MQTT_TEST_BROKER=amqtt``
  to force the fallback.
- `shared_mosquitto`: one broker for the whole session, for tests that never stop it (faster).
- `make_broker(password_file=..., tls=TlsFiles(...))`: a broker with options (mosquitto only).
- `mqtt_probe`: a probe client on `mosquitto`; `make_mqtt_probe(broker, username=, password=, ...)`
  for any other broker. Probes record every message on their subscriptions and wait on a
  condition, never on a fixed sleep.
- `base_topic`: ``t<random hex>``, unique per test.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

READY_TIMEOUT_S = 10.0


def mosquitto_binary() -> str | None:
    if os.environ.get("CWA2MQTT_TEST_BROKER") == "amqtt":
        return None
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float, alive: Callable[[], bool] = lambda: True) -> bool:
    """Poll until ``host:port`` accepts a TCP connection (a broker has no readiness signal)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


@dataclass(frozen=True)
class TlsFiles:
    ca_file: str
    cert_file: str
    key_file: str


class Broker(Protocol):
    host: str
    port: int

    @property
    def url(self) -> str: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def kill(self) -> None: ...


class MosquittoBroker:
    """A private mosquitto process with a generated config."""

    def __init__(
        self,
        workdir: Path,
        *,
        binary: str,
        password_file: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.tls = tls
        self._binary = binary
        self._log = workdir / "mosquitto.log"
        self._conf = workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'false' if password_file else 'true'}",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:
            # As root, mosquitto drops to user "mosquitto", who cannot read files in pytest's tmp dirs.
            lines.append("user root")
        if password_file:
            lines.append(f"password_file {password_file}")
        if tls:
            lines += [f"cafile {tls.ca_file}", f"certfile {tls.cert_file}", f"keyfile {tls.key_file}"]
        self._conf.write_text("\n".join(lines) + "\n")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                [self._binary, "-c", str(self._conf)], stdout=log, stderr=subprocess.STDOUT
            )
        proc = self._proc
        if not wait_port(self.host, self.port, READY_TIMEOUT_S, alive=lambda: proc.poll() is None):
            self.kill()
            raise RuntimeError(f"mosquitto did not start:\n{self._log.read_text(errors='replace')}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(5)


class AmqttBroker:
    """The embedded fallback: an amqtt broker on its own event loop thread."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> None:
        if self._thread is not None:
            return
        from amqtt.broker import Broker as _AmqttBroker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._broker = _AmqttBroker(config, loop=loop)
            loop.run_until_complete(self._broker.start())
            started.set()
            loop.run_forever()
            loop.close()

        self._loop, self._thread = loop, threading.Thread(target=run, name="amqtt", daemon=True)
        self._thread.start()
        # `Broker.start()` returns once it listens; a raw TCP probe would make amqtt leak a socket.
        if not started.wait(READY_TIMEOUT_S):
            raise RuntimeError("the embedded amqtt broker did not start")

    def stop(self) -> None:
        loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), loop)
        with contextlib.suppress(Exception):
            fut.result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        # amqtt leaves the sockets of abruptly closed clients to the garbage collector; finalize
        # them here, quietly, instead of failing some later test with a ResourceWarning.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()

    kill = stop  # an in-process broker cannot be SIGKILLed; shutting it down drops every client


def _new_broker(workdir: Path, **options: Any) -> Broker:
    binary = mosquitto_binary()
    if binary is None:
        if options:
            pytest.skip("broker options (TLS, passwords) need the mosquitto binary")
        return AmqttBroker()
    return MosquittoBroker(workdir, binary=binary, **options)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    broker = _new_broker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def shared_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = _new_broker(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    brokers: list[Broker] = []

    def make(**options: Any) -> Broker:
        workdir = tmp_path / f"broker{len(brokers)}"
        workdir.mkdir()
        broker = _new_broker(workdir, **options)
        brokers.append(broker)
        broker.start()
        return broker

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def base_topic() -> str:
    return f"t{secrets.token_hex(6)}"


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class MqttProbe:
    """A paho client that records what it receives; every wait is on a condition with a timeout."""

    def __init__(
        self,
        broker: Broker,
        *,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        self._broker = broker
        self._auth: dict[str, Any] = {"username": username, "password": password, "ca_file": ca_file}
        self._cond = threading.Condition()
        self._records: list[Received] = []
        self._subacks: set[int] = set()
        self._connected = False
        self._marker = f"probe/{secrets.token_hex(6)}/marker"
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{secrets.token_hex(4)}")
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=ca_file)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        with self._cond:
            if not self._cond.wait_for(lambda: self._connected, timeout=READY_TIMEOUT_S):
                raise RuntimeError("probe could not connect")
        self.subscribe(self._marker)

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        with self._cond:
            self._connected = not reason.is_failure
            self._cond.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, _codes: Any, _p: Any) -> None:
        with self._cond:
            self._subacks.add(mid)
            self._cond.notify_all()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self._records.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    def subscribe(self, topic_filter: str, qos: int = 1, timeout: float = 5.0) -> None:
        """Subscribe and wait for the broker's SUBACK."""
        rc, mid = self.client.subscribe(topic_filter, qos)
        assert rc == paho.MQTT_ERR_SUCCESS
        with self._cond:
            assert self._cond.wait_for(lambda: mid in self._subacks, timeout), "no SUBACK"

    def publish(self, topic: str, payload: bytes | str, retain: bool = False, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(5)

    def records(self, topic: str | None = None) -> list[Received]:
        with self._cond:
            return [r for r in self._records if topic is None or r.topic == topic]

    def messages(self, topic: str) -> list[bytes]:
        return [r.payload for r in self.records(topic)]

    def clear(self) -> None:
        with self._cond:
            self._records.clear()

    def wait_for(
        self, topic: str, predicate: Callable[[bytes], bool] | None = None, timeout: float = 5.0
    ) -> bytes:
        """The first message so far (or to come) on ``topic`` that satisfies ``predicate``."""

        def find() -> bytes | None:
            for r in self._records:
                if r.topic == topic and (predicate is None or predicate(r.payload)):
                    return r.payload
            return None

        deadline = time.monotonic() + timeout
        with self._cond:
            while (hit := find()) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [r.payload for r in self._records if r.topic == topic]
                    raise AssertionError(f"no matching message on {topic!r} within {timeout}s; saw {seen!r}")
                self._cond.wait(remaining)
            return hit

    def retained(self, topic: str, timeout: float = 5.0) -> bytes | None:
        """What the broker holds retained on ``topic`` now (None if nothing).

        A fresh client subscribes to ``topic`` and to a private marker topic, then publishes the
        marker: brokers send retained messages while handling SUBSCRIBE, so once the marker is
        back every retained message has arrived -- no waiting for "maybe more".
        """
        other = MqttProbe(self._broker, **self._auth)
        try:
            other.subscribe(topic)
            marker = secrets.token_hex(4)
            other.publish(other._marker, marker)
            other.wait_for(other._marker, lambda p: p == marker.encode(), timeout)
            hits = [r.payload for r in other.records(topic) if r.retain]
            return hits[-1] if hits else None
        finally:
            other.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.client._reset_sockets()  # paho has no public close(); don't leave its socket pair to the GC


@pytest.fixture
def make_mqtt_probe() -> Iterator[Callable[..., MqttProbe]]:
    probes: list[MqttProbe] = []

    def make(broker: Broker, **auth: Any) -> MqttProbe:
        probe = MqttProbe(broker, **auth)
        probes.append(probe)
        return probe

    yield make
    for probe in probes:
        probe.close()


@pytest.fixture
def mqtt_probe(mosquitto: Broker, make_mqtt_probe: Callable[..., MqttProbe]) -> MqttProbe:
    return make_mqtt_probe(mosquitto)
