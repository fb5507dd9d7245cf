"""Fixtures that run the whole bridge against the simulator and a private broker.

`bridge_config(sim, broker, base, **overrides)` writes a config file for them; `make_bridge(...)`
starts an in-process `bridge.app.Bridge` (stopped at teardown); `BridgeProcess` runs the real
`cwa2mqtt` program for signals and exit codes.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.app import Bridge
from bridge.config import load_settings
from bridge.simulator import Simulator, SimUser
from tests.support._files import config_file

ALICE = SimUser(
    uri="sip:alice@example.org",
    username="EXAMPLE\\alice",
    password="Al1ce-pa55-Zq8!",
    name="Alice Example",
)
BOB = SimUser(uri="sip:bob@example.org", name="Bob Example", availability=6500, activity="in-a-meeting")
CAROL = SimUser(uri="sip:carol.nguyen@example.org", name="Carol Nguyen", availability=3500, note="Lab day")
DAVE = SimUser(uri="sip:dave@example.org", name="Dave Okafor", availability=15500)
USERS = (ALICE, BOB, CAROL, DAVE)
PASSWORD = ALICE.password or ""


def config_dict(sim: Simulator, broker_url: str, base: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "cwa": {
            "url": sim.url,
            "username": ALICE.username,
            "password": PASSWORD,
            "uri": ALICE.uri,
            "timeout_s": 5,
        },
        "watch": [BOB.uri, {"uri": CAROL.uri, "id": "carol"}],
        "mqtt": {"url": broker_url, "base_topic": base, "client_id": f"cwa2mqtt-{base}"},
        "homeassistant": {"prefix": f"{base}-ha", "status_topic": f"{base}-ha/status"},
        "http": {"listen": "127.0.0.1:0"},
        "log": {"level": "debug"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def write_config(path: Path, config: dict[str, Any]) -> Path:
    return config_file(path, config)


@pytest.fixture
def make_bridge(tmp_path: Path) -> Iterator[Callable[..., Bridge]]:
    bridges: list[Bridge] = []

    def make(
        sim: Simulator,
        broker_url: str,
        base: str,
        *,
        health_grace_s: float | None = None,
        clock: Callable[[], datetime] | None = None,
        wait_ready: bool = True,
        **overrides: Any,
    ) -> Bridge:
        path = write_config(
            tmp_path / f"config-{len(bridges)}.yaml", config_dict(sim, broker_url, base, **overrides)
        )
        settings = load_settings(path, env={})
        bridge = Bridge(settings, backoff_scale=0.05, health_grace_s=health_grace_s, clock=clock)
        bridges.append(bridge)
        bridge.start()
        if wait_ready:
            assert bridge.wait_ready(15), "the bridge did not become ready"
        return bridge

    yield make
    for bridge in bridges:
        bridge.stop()


class BridgeProcess:
    """The real `cwa2mqtt` program, output captured to a file (read with `output()`)."""

    def __init__(self, args: Sequence[str], workdir: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = workdir / f"cwa2mqtt-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("CWA2MQTT_")}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=workdir,
        )

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_output(self, needle: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.output():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not in output:\n{self.output()[-3000:]}")

    def http_url(self, timeout: float = 15.0) -> str:
        """The base URL of the HTTP endpoint, from the ``http.listening url=...`` start-up line
        (needed with ``http.listen: 127.0.0.1:0``, where the system picks the port); text or JSON logs."""
        self.wait_output("http.listening url=", timeout)
        match = re.search(r"http\.listening url=(https?://[^\s\"\\]+)", self.output())
        assert match is not None
        return match.group(1).rstrip("/")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


@pytest.fixture
def run_bridge(tmp_path: Path) -> Iterator[Callable[..., BridgeProcess]]:
    processes: list[BridgeProcess] = []

    def run(*args: str, env: dict[str, str] | None = None) -> BridgeProcess:
        process = BridgeProcess(args, tmp_path, env)
        processes.append(process)
        return process

    yield run
    for process in processes:
        process.close()
