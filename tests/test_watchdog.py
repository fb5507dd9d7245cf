"""systemd's watchdog and /healthz follow every loop, not only the service loop.

The real `cwa2mqtt run` process under a fake NOTIFY_SOCKET. The hang is injected (every real wait
in the bridge has a deadline, which is the point): a small wrapper makes the own-state command
worker block while a marker file exists, and shortens that loop's stall time to 2 s.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bridge.simulator import Simulator
from tests.support.bridge import USERS, config_dict, write_config
from tests.support.mqtt import Broker, MqttProbe
from tests.support.outputs import wait_until

WRAPPER = """
import sys, time
from pathlib import Path
from bridge import liveness
from bridge.service import requests

marker = Path(sys.argv[2])
register = liveness.Liveness.register
liveness.Liveness.register = lambda self, name, s: register(self, name, 2.0 if name == "commands" else s)
self_set = requests.CommandWorker._self_set

def hanging(self, job):
    while marker.exists():
        time.sleep(0.05)
    return self_set(self, job)

requests.CommandWorker._self_set = hanging
from bridge.cli import main
sys.exit(main(["run", "-c", sys.argv[1]]))
"""


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(0.2)
    yield sock
    sock.close()


def received(sock: socket.socket, within_s: float) -> list[str]:
    """Every notify message that arrives within ``within_s``."""
    messages: list[str] = []
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
    return messages


def test_a_hung_loop_withholds_the_watchdog_and_fails_health_until_it_recovers(
    make_simulator: Callable[..., Simulator],
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    tmp_path: Path,
    systemd: socket.socket,
) -> None:
    sim = make_simulator(users=list(USERS), poll_wait_ms=50)
    config = config_dict(sim, mosquitto.url, base_topic, log={"level": "info"})
    path = write_config(tmp_path / "config.yaml", config)
    marker = tmp_path / "hang"
    log = (tmp_path / "out.log").open("wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CWA2MQTT_", "WATCHDOG_"))}
    env.update(NOTIFY_SOCKET=str(tmp_path / "notify"), WATCHDOG_USEC="1000000")
    proc = subprocess.Popen(
        [sys.executable, "-c", WRAPPER, str(path), str(marker)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
    )
    try:
        output = (tmp_path / "out.log").read_text
        wait_until(lambda: "http.listening" in output(), 20, "the HTTP endpoint")
        url = output().split("http.listening url=")[1].split()[0]
        assert "WATCHDOG=1" in received(systemd, 5)

        marker.touch()
        mqtt_probe.publish(f"{base_topic}/self/set/status", b"busy")
        wait_until(lambda: "bridge.loop_stuck loops=commands" in output(), 15, "the stuck loop reported")
        received(systemd, 0.5)  # what was already on its way
        assert "WATCHDOG=1" not in received(systemd, 3)  # three watchdog intervals without one
        health = httpx.get(f"{url}/healthz", timeout=5)
        assert health.status_code == 503
        assert "commands loop stuck" in json.dumps(health.json())

        marker.unlink()
        wait_until(lambda: "bridge.loops_live watchdog=resumed" in output(), 15, "the loop recovered")
        assert "WATCHDOG=1" in received(systemd, 5)
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        log.close()
