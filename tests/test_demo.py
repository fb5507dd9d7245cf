"""`cwa2mqtt demo` as a newcomer runs it: on someone's own broker it keeps off a real
installation's topics; without the `demo` extra it says which extra and how to install it."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.bridge import BridgeProcess
from tests.support.mqtt import Broker, MqttProbe

pytestmark = pytest.mark.integration
RunBridge = Callable[..., BridgeProcess]


def test_demo_on_an_external_broker_keeps_off_the_real_base_topic(
    mosquitto: Broker, mqtt_probe: MqttProbe, run_bridge: RunBridge
) -> None:
    # A real installation's retained state, which the demo must leave alone.
    mqtt_probe.publish("cwa2mqtt/bob", '{"status": "busy"}', retain=True)
    mqtt_probe.publish("cwa2mqtt/bridge/state", "online", retain=True)
    mqtt_probe.subscribe("#")
    demo = run_bridge("demo", "--no-live", "--mqtt-url", mosquitto.url, "--http-listen", "127.0.0.1:0")
    demo.wait_output("Press Ctrl-C to stop.", timeout=30)
    assert "  base topic       cwa2mqtt-demo/   (not cwa2mqtt/: a real bridge's topics stay untouched)" in (
        demo.output().splitlines()
    )
    assert f"mosquitto_sub -L '{mosquitto.url}/cwa2mqtt-demo/#' -v" in demo.output()
    mqtt_probe.wait_for("cwa2mqtt-demo/bridge/state", lambda p: p == b"online", timeout=20)
    mqtt_probe.wait_for("cwa2mqtt-demo/bob", lambda p: b'"status"' in p, timeout=20)

    demo.signal(signal.SIGINT)
    assert demo.wait(20) == 0
    touched = [r.topic for r in mqtt_probe.records() if r.topic.startswith("cwa2mqtt/") and not r.retain]
    assert touched == []
    assert mqtt_probe.retained("cwa2mqtt/bob") == b'{"status": "busy"}'
    assert mqtt_probe.retained("cwa2mqtt/bridge/state") == b"online"
    # Its Home Assistant entities are its own: no unique id or device of a real installation.
    configs = [
        json.loads(r.payload) for r in mqtt_probe.records() if r.topic.endswith("/config") and r.payload
    ]
    assert configs
    assert all(c["unique_id"].startswith("cwa2mqtt_demo_") for c in configs)
    assert all(c["device"]["identifiers"][0].startswith("cwa2mqtt_demo_") for c in configs)


def test_demo_without_the_demo_extra_names_it_and_the_pip_command(
    run_bridge: RunBridge, tmp_path: Path
) -> None:
    # An installation without amqtt: a package of that name that cannot be imported shadows it.
    shadow = tmp_path / "no-amqtt"
    (shadow / "amqtt").mkdir(parents=True)
    (shadow / "amqtt" / "__init__.py").write_text("raise ImportError(\"No module named 'amqtt'\")\n")
    demo = run_bridge("demo", "--no-live", "--http-listen", "127.0.0.1:0", env={"PYTHONPATH": str(shadow)})
    assert demo.wait(30) == 1
    errors = [line for line in demo.output().splitlines() if " ERROR " in line]
    assert len(errors) == 1, demo.output()
    assert errors[0].endswith(
        'ERROR cli.failed command=demo reason="the embedded broker needs the optional dependency amqtt: '
        "pip install 'cwa2mqtt[demo]' — or pass --mqtt-url\" type=BridgeError"
    )
    assert "Traceback" not in demo.output()
