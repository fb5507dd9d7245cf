"""The log of a real `cwa2mqtt run` at ``debug``: every line starts with an event name, the
libraries' own lines (httpx's "HTTP Request: ...") included."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.simulator import Simulator
from tests.support.bridge import USERS, BridgeProcess, config_dict, write_config
from tests.support.mqtt import Broker

pytestmark = pytest.mark.integration
EVENT_LINE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (DEBUG|INFO|WARNING|ERROR) [a-z0-9_]+(\.[a-z0-9_]+)+( |$)"
)


def test_every_line_of_a_debug_run_starts_with_an_event_name(
    make_simulator: Callable[..., Simulator],
    mosquitto: Broker,
    run_bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    sim = make_simulator(users=list(USERS), poll_wait_ms=50)
    config = write_config(tmp_path / "config.yaml", config_dict(sim, mosquitto.url, "loglines"))
    config.chmod(0o600)
    bridge = run_bridge("run", "-c", str(config))
    bridge.wait_output("bridge.ready")
    bridge.wait_output("cwa.subscribe.sent")  # HTTP requests to CWA have been made and logged
    bridge.signal(signal.SIGTERM)
    assert bridge.wait(20) == 0
    lines = bridge.output().splitlines()
    assert "DEBUG" in bridge.output()
    assert [line for line in lines if not EVENT_LINE.match(line)] == []
