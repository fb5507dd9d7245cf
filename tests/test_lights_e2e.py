"""Status lights end to end (interface.md §8, §5 last bullet, issue 9).

The whole bridge runs in-process against the CWA simulator and a private mosquitto; plain MQTT
subscribers play a WLED (``wled/door``), a Tasmota bulb (``cmnd/desk``) and an ESPHome light
(``hall``). Every step asserts the exact list of device commands: after a step the test sends a
health-check request and waits for its answer. The bridge handles inputs in order on one thread
and the broker keeps one publisher's QoS-1 messages in order, so once the answer is in, every
command the step caused has arrived too — "no message" is checked without a fixed sleep.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from bridge.app import Bridge
from bridge.config import load_settings
from bridge.simulator import Simulator
from tests.support.bridge import BOB, CAROL, DAVE, PASSWORD, USERS
from tests.support.lights import FakeClock, light_state, set_and_wait, settle, status_in_bridge
from tests.support.mqtt import Broker, MqttProbe
from tests.support.outputs import wait_until

pytestmark = pytest.mark.integration

DEVICE_FILTERS = ("wled/#", "cmnd/#", "hall/#", "strip/#")
WLED = {"name": "door", "watch": ["bob", "carol"], "preset": "wled", "device": "door"}
TASMOTA = {
    "name": "desk",
    "watch": ["carol"],
    "preset": "tasmota",
    "device": "desk",
    "activity_colors": {"on-the-phone": "#ff00ff"},
}
ESPHOME = {
    "name": "hall",
    "watch": ["carol", "bob"],
    "preset": "esphome",
    "device": "hall",
    "colors": {"busy": "#FF8000"},
}
LIGHTS = [WLED, TASMOTA, ESPHOME]
WATCH = [BOB.uri, {"uri": CAROL.uri, "id": "carol"}, DAVE.uri]  # no light watches Dave

RAW = {"name": "strip", "watch": ["bob"], "preset": "raw", "topic": "strip/set"}
RAW["payload"] = '{"rgb": "{HEX}", "why": "{status}"}'  # JSON braces stay, placeholders are filled

HALL = "hall/light/hall/command"


def esphome_on(r: int, g: int, b: int) -> bytes:
    return json.dumps({"state": "ON", "color": {"r": r, "g": g, "b": b}}, separators=(",", ":")).encode()


# What the three devices are told at start: Bob is busy (in a meeting), Carol available.
START = [
    ("wled/door", b"ON"),
    ("wled/door/col", b"#D50000"),
    ("cmnd/desk/Color", b"00C853"),
    (HALL, esphome_on(255, 128, 0)),  # the hall light's own busy colour: Bob outranks Carol
]


@pytest.fixture
def sim(make_simulator: Callable[..., Simulator]) -> Simulator:
    return make_simulator(users=list(USERS), poll_wait_ms=50)


def listen(probe: MqttProbe, base: str) -> None:
    """Subscribe ``probe`` the way the devices and a user watching the bridge would."""
    for topic_filter in (*DEVICE_FILTERS, f"{base}/#"):
        probe.subscribe(topic_filter)


def device_commands(probe: MqttProbe) -> list[tuple[str, bytes]]:
    devices = tuple(f.removesuffix("#") for f in DEVICE_FILTERS)
    return [(r.topic, r.payload) for r in probe.records() if r.topic.startswith(devices)]


def test_devices_get_exactly_the_right_commands_as_presence_changes(
    sim: Simulator,
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
) -> None:
    base, probe = base_topic, mqtt_probe
    listen(probe, base)
    make_bridge(sim, mosquitto.url, base, watch=WATCH, lights=LIGHTS)
    probe.wait_for(f"{base}/lights/hall", lambda p: json.loads(p)["because"] == "bob", timeout=10)
    settle(probe, base)
    assert device_commands(probe) == START
    assert light_state(probe, base, "door") == {
        "color": "#D50000",
        "status": "busy",
        "activity": "in_a_meeting",
        "because": "bob",
        "scheduled_off": False,
    }

    # Carol takes a call: only the Tasmota bulb changes (its activity colour). The other two
    # lights keep their colour; the hall light's reason moves to Carol, first in its watch list.
    set_and_wait(sim, probe, base, "carol", CAROL.uri, "busy", availability=6500, activity="on-the-phone")
    assert device_commands(probe) == [("cmnd/desk/Color", b"FF00FF")]
    assert light_state(probe, base, "hall")["because"] == "carol"
    assert light_state(probe, base, "door")["because"] == "bob"  # a tie goes to the first id

    # A note, or a colleague no light watches: nothing for any device.
    set_and_wait(sim, probe, base, "bob", BOB.uri, "busy", note="Back at 3")
    assert device_commands(probe) == []
    set_and_wait(sim, probe, base, "dave", DAVE.uri, "available", availability=3500)
    assert device_commands(probe) == []

    # Bob signs out: Carol still holds both of his lights on the same busy colour.
    set_and_wait(sim, probe, base, "bob", BOB.uri, "offline", availability=18500, activity=None)
    assert device_commands(probe) == []
    # Carol signs out too: everything goes dark, each in its own dialect.
    set_and_wait(sim, probe, base, "carol", CAROL.uri, "offline", availability=18500, activity=None)
    assert device_commands(probe) == [
        ("wled/door", b"OFF"),
        ("cmnd/desk/Power", b"OFF"),
        (HALL, b'{"state":"OFF"}'),
    ]
    assert light_state(probe, base, "door") == {
        "color": None,
        "status": "offline",  # the busiest watched status, also when it switches the light off
        "activity": None,
        "because": None,
        "scheduled_off": False,
    }

    # Bob is back: a switched-off WLED is switched on right before its colour.
    set_and_wait(sim, probe, base, "bob", BOB.uri, "available", availability=3500)
    assert device_commands(probe) == [
        ("wled/door", b"ON"),
        ("wled/door/col", b"#00C853"),
        (HALL, esphome_on(0x00, 0xC8, 0x53)),
    ]


def test_after_a_broker_restart_every_device_is_told_its_colour_again(
    sim: Simulator,
    mosquitto: Broker,
    make_mqtt_probe: Callable[..., MqttProbe],
    base_topic: str,
    make_bridge: Callable[..., Bridge],
) -> None:
    base = base_topic
    bridge = make_bridge(sim, mosquitto.url, base, lights=LIGHTS)
    first = make_mqtt_probe(mosquitto)
    first.subscribe(f"{base}/lights/hall")
    first.wait_for(f"{base}/lights/hall", lambda p: json.loads(p)["because"] == "bob", timeout=10)

    mosquitto.stop()  # no persistence: the broker forgets everything
    wait_until(lambda: not bridge.publisher.connected)
    # Carol starts presenting while the broker is away; the bridge sees it, nobody hears it.
    sim.set_presence(CAROL.uri, availability=9500, activity="in-presentation")
    wait_until(lambda: status_in_bridge(bridge, "carol") == "do_not_disturb")
    # Hold the bridge's loop until a device-side subscriber is back: commands are not retained,
    # so whatever the bridge sends before someone listens is gone.
    gate = threading.Event()

    def hold() -> None:
        gate.wait(15)

    bridge.service.call(hold)
    mosquitto.start()
    probe = make_mqtt_probe(mosquitto)
    listen(probe, base)
    wait_until(lambda: bridge.publisher.connected, timeout=15)
    gate.set()
    probe.wait_for(f"{base}/lights/hall", lambda p: json.loads(p)["because"] == "carol", timeout=10)
    settle(probe, base)
    assert device_commands(probe) == [
        ("wled/door", b"ON"),  # the device's state is unknown after a reconnect: ON again
        ("wled/door/col", b"#8E24AA"),
        ("cmnd/desk/Color", b"8E24AA"),
        (HALL, esphome_on(0x8E, 0x24, 0xAA)),
    ]
    assert light_state(probe, base, "door")["because"] == "carol"


def test_schedule_boundaries_switch_lights_off_and_on_again(
    sim: Simulator,
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
) -> None:
    base, probe = base_topic, mqtt_probe
    # Friday 2026-11-27, 17:59:30 in Berlin (CET = UTC+1): half a minute before the window closes.
    clock = FakeClock(datetime(2026, 11, 27, 16, 59, 30, tzinfo=UTC))
    office = {"days": "mon-fri", "from": "08:00", "to": "18:00", "timezone": "Europe/Berlin"}
    lights = [{**WLED, "schedule": office}, {**TASMOTA, "schedule": office}, {**ESPHOME, "schedule": office}]
    listen(probe, base)
    make_bridge(sim, mosquitto.url, base, lights=lights, clock=clock)
    probe.wait_for(f"{base}/lights/hall", lambda p: json.loads(p)["because"] == "bob", timeout=10)
    settle(probe, base)
    assert device_commands(probe) == START

    probe.clear()
    clock.advance(seconds=29)  # 17:59:59: still inside, nothing happens
    settle(probe, base)
    assert device_commands(probe) == []
    clock.advance(seconds=1)  # 18:00:00, `to` is exclusive: off (the loop notices within a second)
    probe.wait_for(HALL, timeout=5)
    settle(probe, base)
    assert device_commands(probe) == [
        ("wled/door", b"OFF"),
        ("cmnd/desk/Power", b"OFF"),
        (HALL, b'{"state":"OFF"}'),
    ]
    assert light_state(probe, base, "door") == {
        "color": None,
        "status": "busy",  # what the light would show: Bob is still in his meeting
        "activity": None,
        "because": None,
        "scheduled_off": True,
    }

    # Presence changes over the weekend reach the state topic's reason, never the devices.
    probe.clear()
    clock.advance(days=1)
    set_and_wait(sim, probe, base, "carol", CAROL.uri, "away", availability=15500)
    assert device_commands(probe) == []
    assert light_state(probe, base, "desk")["scheduled_off"] is True

    # Monday 08:00 Berlin = 07:00 UTC: on again, with what is true now.
    clock.now = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    probe.wait_for(HALL, timeout=5)
    settle(probe, base)
    assert device_commands(probe) == [
        ("wled/door", b"ON"),
        ("wled/door/col", b"#D50000"),
        ("cmnd/desk/Color", b"FFAB00"),
        (HALL, esphome_on(255, 128, 0)),
    ]


def override(probe: MqttProbe, base: str, light: str, body: dict[str, Any]) -> dict[str, Any]:
    """Send ``body`` to ``<base>/lights/<light>/set`` and return the bridge's answer."""
    token = secrets.token_hex(4)
    probe.publish(f"{base}/lights/{light}/set", json.dumps({**body, "transaction": token}))
    raw = probe.wait_for(
        f"{base}/bridge/response/lights/{light}/set", lambda p: json.loads(p).get("transaction") == token
    )
    answer: dict[str, Any] = json.loads(raw)
    return answer


def test_overrides_pause_the_automatic_colour_until_cleared_or_expired(
    sim: Simulator,
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
) -> None:
    base, probe = base_topic, mqtt_probe
    clock = FakeClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
    listen(probe, base)
    make_bridge(sim, mosquitto.url, base, lights=[WLED, RAW], clock=clock)
    probe.wait_for(f"{base}/lights/strip", lambda p: json.loads(p)["because"] == "bob", timeout=10)
    settle(probe, base)
    assert device_commands(probe) == [
        ("wled/door", b"ON"),
        ("wled/door/col", b"#D50000"),
        ("strip/set", b'{"rgb": "D50000", "why": "busy"}'),
    ]

    probe.clear()
    answer = override(probe, base, "door", {"override": "#00ff00", "for_s": 600})
    assert answer == {
        "status": "ok",
        "data": {"light": "door", "override": "#00FF00", "until": "2026-11-23T10:10:00Z"},
        "error": None,
        "transaction": answer["transaction"],
    }
    settle(probe, base)
    assert device_commands(probe) == [("wled/door/col", b"#00FF00")]
    assert light_state(probe, base, "door") == {
        "color": "#00FF00",
        "status": None,
        "activity": None,
        "because": "override",
        "scheduled_off": False,
    }

    # While overridden, presence changes move only the lights that are not overridden.
    set_and_wait(sim, probe, base, "bob", BOB.uri, "available", availability=3500, activity=None)
    assert device_commands(probe) == [("strip/set", b'{"rgb": "00C853", "why": "available"}')]

    # Ten minutes later the override has run out: back to what is true now.
    probe.clear()
    clock.advance(seconds=600)
    probe.wait_for("wled/door/col", timeout=5)
    settle(probe, base)
    assert device_commands(probe) == [("wled/door/col", b"#00C853")]
    assert light_state(probe, base, "door")["because"] == "bob"

    # "off" without for_s holds until cleared with null; a raw light without off_topic/off_payload
    # is switched off with its own payload in #000000 (and no status).
    probe.clear()
    assert override(probe, base, "door", {"override": "off"})["data"]["until"] is None
    assert override(probe, base, "strip", {"override": "off"})["status"] == "ok"
    settle(probe, base)
    assert device_commands(probe) == [("wled/door", b"OFF"), ("strip/set", b'{"rgb": "000000", "why": ""}')]
    assert light_state(probe, base, "door")["color"] is None
    assert light_state(probe, base, "door")["because"] == "override"
    probe.clear()
    clock.advance(days=30)
    assert override(probe, base, "door", {"override": None}) == {
        "status": "ok",
        "data": {"light": "door", "override": None, "until": None},
        "error": None,
        "transaction": ANY_TRANSACTION,
    }
    settle(probe, base)
    assert device_commands(probe) == [("wled/door", b"ON"), ("wled/door/col", b"#00C853")]

    # Bad requests are answered with a precise error and change nothing.
    probe.clear()
    bad = override(probe, base, "door", {"override": "red", "for_s": 60})
    assert (bad["status"], bad["data"]) == ("error", None)
    assert "override must be" in bad["error"]
    assert "for_s" in override(probe, base, "door", {"override": "#FF0000", "for_s": -5})["error"]
    unknown = override(probe, base, "nope", {"override": "#FF0000"})
    assert (unknown["status"], unknown["error"]) == ("error", "unknown light 'nope'")
    settle(probe, base)
    assert device_commands(probe) == []
    assert light_state(probe, base, "door")["color"] == "#00C853"


class _Any:
    """Equal to anything but None (the echoed transaction is random)."""

    def __eq__(self, other: object) -> bool:
        return other is not None

    __hash__ = None  # type: ignore[assignment]


ANY_TRANSACTION = _Any()


@dataclass(frozen=True)
class Delivery:
    topic: str
    payload: bytes
    qos: int


class QosRecorder:
    """A device-side subscriber that also notes each message's QoS (what the broker delivers is
    at most the QoS the bridge published with, so subscribing at 2 reveals the bridge's)."""

    def __init__(self, broker: Broker, topic_filters: tuple[str, ...]) -> None:
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"qos-{secrets.token_hex(4)}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_args: subscribed.set()
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        self.client.subscribe([(f, 2) for f in topic_filters])
        assert subscribed.wait(5), "no SUBACK"

    def _on_message(self, _client: Any, _userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.deliveries.append(Delivery(msg.topic, bytes(msg.payload), msg.qos))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def qos_recorder(mosquitto: Broker) -> Iterator[QosRecorder]:
    recorder = QosRecorder(mosquitto, DEVICE_FILTERS)
    yield recorder
    recorder.close()


def test_discovery_color_topics_qos_and_retain(
    sim: Simulator,
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    qos_recorder: QosRecorder,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
) -> None:
    base, probe = base_topic, mqtt_probe
    listen(probe, base)
    probe.subscribe(f"{base}-ha/#")
    lights = [WLED, {**TASMOTA, "retain": True}, ESPHOME]
    make_bridge(sim, mosquitto.url, base, lights=lights, color_topics=True, mqtt={"qos": 2})
    probe.wait_for(f"{base}/lights/hall", lambda p: json.loads(p)["because"] == "bob", timeout=10)
    settle(probe, base)

    # §5: one sensor per light on the bridge device, state = the colour, attributes = the state JSON.
    config = json.loads(probe.wait_for(f"{base}-ha/sensor/cwa2mqtt_bridge/light_door/config"))
    assert config["unique_id"] == "cwa2mqtt_bridge_light_door"
    assert config["state_topic"] == config["json_attributes_topic"] == f"{base}/lights/door"
    assert config["device"]["identifiers"] == ["cwa2mqtt_bridge"]
    assert "{{ value_json.color" in config["value_template"]
    assert config["availability"] == [{"topic": f"{base}/bridge/state"}]
    for name in ("desk", "hall"):
        assert probe.retained(f"{base}-ha/sensor/cwa2mqtt_bridge/light_{name}/config") is not None

    # §8 color topics: the palette's status colour, whatever a light's own colours say.
    assert probe.retained(f"{base}/bob/color") == b"#D50000"  # the hall light shows #FF8000 for him
    assert probe.retained(f"{base}/carol/color") == b"#00C853"
    set_and_wait(sim, probe, base, "bob", BOB.uri, "offline", availability=18500, activity=None)
    assert probe.wait_for(f"{base}/bob/color", lambda p: p == b"#000000") == b"#000000"

    # Light commands go out with mqtt.qos and are retained only for a light with `retain: true`.
    wait_until(lambda: len(qos_recorder.deliveries) >= len(START))
    assert {d.qos for d in qos_recorder.deliveries} == {2}
    assert probe.retained("cmnd/desk/Color") == b"00C853"
    assert probe.retained("wled/door/col") is None
    assert probe.retained(HALL) is None

    # Home Assistant's birth message brings discovery and the lights' state again, but the devices
    # lost nothing: they get no commands.
    probe.clear()
    probe.publish(f"{base}-ha/status", b"online")
    probe.wait_for(f"{base}-ha/sensor/cwa2mqtt_bridge/light_door/config")
    probe.wait_for(f"{base}/lights/door")
    settle(probe, base)
    assert device_commands(probe) == []


CONFIG_HEAD = """\
cwa:
  url: https://cwa.example.org
  username: EXAMPLE\\alice
  uri: sip:alice@example.org
watch:
  - sip:bob@example.org
  - {uri: sip:carol.nguyen@example.org, id: carol}
"""


def check_config(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    """``cwa2mqtt check-config`` as a user runs it, the password from the environment."""
    (tmp_path / "config.yaml").write_text(CONFIG_HEAD + text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CWA2MQTT_")}
    env["CWA2MQTT_CWA__PASSWORD"] = PASSWORD
    return subprocess.run(
        [sys.executable, "-m", "bridge", "check-config", "-c", str(tmp_path / "config.yaml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_config_names_every_light_problem_with_its_key_path(tmp_path: Path) -> None:
    result = check_config(
        tmp_path,
        """\
lights:
  - {name: door, watch: [bob], preset: wled, device: door,
     colors: {busy: "#FF00"}, activity_colors: {on-the-phone: purple}}
  - {name: desk, watch: [], preset: hue}
  - name: hall
    watch: [carol]
    preset: esphome
    device: hall
    schedule: {days: mon-fry, from: "8", to: "25:00", timezone: Nowhere/City}
  - {name: strip, watch: [self], preset: raw, topic: "strip/#", payload: "{hex}"}
priority: [busy, do_not_disturb, available, away, be_right_back, offline, napping]
""",
    )
    assert result.returncode == 78
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        "cwa2mqtt: invalid configuration (10 problems):",
        "  lights[0].colors.busy: not a colour (expected #RRGGBB)",
        "  lights[0].activity_colors.on-the-phone: not a colour (expected #RRGGBB)",
        "  lights[1].watch: must list at least one id",
        "  lights[1].preset: must be 'wled', 'tasmota', 'esphome', 'zigbee2mqtt', 'http' or 'raw'",
        "  lights[2].schedule.days: unknown day 'fry' (use mon, tue, wed, thu, fri, sat, sun or daily)",
        '  lights[2].schedule.from: not a time (expected "HH:MM", quoted)',
        '  lights[2].schedule.to: not a time (expected "HH:MM", quoted)',
        "  lights[2].schedule.timezone: unknown time zone 'Nowhere/City' (an IANA name like Europe/Berlin)",
        "  lights[3].topic: must not contain +, # or NUL",
        "  priority[6]: must be one of: available, busy, do_not_disturb, be_right_back, away, offline, "
        "unknown",
    ]
    # Checks across lights and watch run once every light is valid on its own.
    result = check_config(
        tmp_path,
        "lights:\n  - {name: door, watch: [bob, zed], preset: wled, device: door}\n"
        "  - {name: door, watch: [carol], preset: raw, topic: strip/set, payload: '{hex}'}\n",
    )
    assert result.returncode == 78
    assert result.stderr.splitlines()[1:] == [
        "  lights[0].watch[1]: unknown id 'zed' (known: bob, carol, self)",
        "  lights[1].name: 'door' is already used by lights[0]",
    ]

    result = check_config(
        tmp_path,
        "lights:\n  - name: door\n    watch: [bob, self]\n    preset: wled\n    device: door\n"
        "    colors: {busy: '#ff0000'}\n    activity_colors: {On-The-Phone: '#ff00ff'}\n"
        "    schedule: {days: mon-fri, from: '08:00', to: '18:00', timezone: Europe/Berlin}\n",
    )
    assert result.returncode == 0, result.stderr
    effective = yaml.safe_load(result.stdout)
    assert effective["lights"][0]["colors"] == {"busy": "#FF0000"}
    assert effective["lights"][0]["activity_colors"] == {"on_the_phone": "#FF00FF"}
    assert effective["lights"][0]["schedule"] == {
        "days": "mon,tue,wed,thu,fri",
        "from": "08:00",
        "to": "18:00",
        "timezone": "Europe/Berlin",
    }


def test_every_bridge_config_example_in_the_lights_guide_is_valid(tmp_path: Path) -> None:
    guide = (Path(__file__).parent.parent / "docs" / "lights.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in guide.split("```yaml\n")[1:]]
    examples = [b for b in blocks if b.startswith(("lights:", "priority:", "color_topics:"))]
    assert len(examples) >= 8  # one per preset, colours, activity colours, priority, schedule, ...
    for example in examples:
        path = tmp_path / "config.yaml"
        path.write_text(CONFIG_HEAD + example)
        settings = load_settings(path, env={"CWA2MQTT_CWA__PASSWORD": PASSWORD})
        assert settings.lights or settings.color_topics or example.startswith("priority:"), example
