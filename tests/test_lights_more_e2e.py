"""zigbee2mqtt and http lights end to end (docs/lights.md, "More lights").

The whole bridge runs in-process against the CWA simulator and a private mosquitto. A plain MQTT
subscriber plays a Hue bulb paired with zigbee2mqtt; `FakeHttpLight`, a real HTTP server on
127.0.0.1, plays a busy-light behind an HTTP API and records every request. MQTT steps are
checked after `settle`; HTTP requests run on the bridge's own worker, so the test waits for them
with `eventually`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.app import Bridge
from bridge.simulator import Simulator
from tests.support.bridge import BOB, CAROL, USERS
from tests.support.convergence import eventually
from tests.support.lights import FakeClock, FakeHttpLight, Seen, light_state, set_and_wait, settle
from tests.support.mqtt import Broker, MqttProbe

pytestmark = pytest.mark.integration

TOKEN = "Bearer-Zq8-t0ken-s3cret"  # must never show in a log line
KEY = "k3y-Mq7-s3cret"  # the same, in the URL's query
HUE_TOPIC = "zigbee2mqtt/Office Hue/set"
HUE = {"name": "hue", "watch": ["bob"], "preset": "zigbee2mqtt", "device": "Office Hue", "brightness": 200}
BODY = '{"on":true,"bri":{brightness},"seg":[{"col":[[{r},{g},{b}]]}]}'


def lamp(fake: FakeHttpLight, **extra: Any) -> dict[str, Any]:
    return {
        "name": "lamp",
        "watch": ["carol"],
        "preset": "http",
        "url": fake.url + "/light/{HEX}?status={status}&hex={hex}&key=" + KEY,
        "method": "PUT",
        "body": BODY,
        "off_body": '{"on":false}',
        "brightness": 128,
        "headers": {"Authorization": TOKEN},
        **extra,
    }


def hue_on(hex_color: str) -> bytes:
    return json.dumps(
        {"state": "ON", "brightness": 200, "color": {"hex": hex_color}}, separators=(",", ":")
    ).encode()


def lamp_put(hex_color: str, status: str) -> tuple[str, str, bytes]:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    body = BODY.replace("{brightness}", "128").replace("{r}", str(r)).replace("{g}", str(g))
    return (
        "PUT",
        f"/light/{hex_color[1:]}?status={status}&hex=%23{hex_color[1:]}&key={KEY}",
        body.replace("{b}", str(b)).encode(),
    )


LAMP_OFF = ("PUT", f"/light/000000?status=&hex=%23000000&key={KEY}", b'{"on":false}')


def requests(seen: list[Seen]) -> list[tuple[str, str, bytes]]:
    return [(s.method, s.target, s.body) for s in seen]


def hue_commands(probe: MqttProbe) -> list[bytes]:
    return probe.messages(HUE_TOPIC)


def wait_delivered(fake: FakeHttpLight, count: int) -> list[tuple[str, str, bytes]]:
    assert eventually(lambda: len(fake.delivered()) >= count, timeout=10), requests(fake.seen())
    return requests(fake.delivered())


def wait_state(probe: MqttProbe, base: str, name: str, **expected: Any) -> dict[str, Any]:
    """The light's retained state once it has every ``expected`` key/value."""
    found: dict[str, Any] = {}

    def matches() -> bool:
        if probe.retained(f"{base}/lights/{name}") is None:
            return False  # not (yet) on the broker, e.g. right after it restarted
        found.update(light_state(probe, base, name))
        return expected.items() <= found.items()

    assert eventually(matches, timeout=10, interval=0.1), (expected, found)
    return found


def failures(bridge: Bridge) -> float:
    text = bridge.metrics.render()[0].decode()
    match = re.search(r'cwa2mqtt_light_delivery_failures_total\{light="lamp"\} (\S+)', text)
    return float(match.group(1)) if match else 0.0


@pytest.fixture
def sim(make_simulator: Callable[..., Simulator]) -> Simulator:
    return make_simulator(users=list(USERS), poll_wait_ms=50)


def test_hue_and_http_lights_on_start_change_broker_restart_and_off(
    sim: Simulator,
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    make_mqtt_probe: Callable[..., MqttProbe],
    base_topic: str,
    make_bridge: Callable[..., Bridge],
    http_light: FakeHttpLight,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    base, probe, fake = base_topic, mqtt_probe, http_light
    probe.subscribe("zigbee2mqtt/#")
    probe.subscribe(f"{base}/#")
    bridge = make_bridge(sim, mosquitto.url, base, lights=[HUE, lamp(fake)])

    # Start: Bob is busy (the Hue bulb), Carol available (the lamp), each in its own dialect.
    assert wait_delivered(fake, 1) == [lamp_put("#00C853", "available")]
    assert fake.delivered()[0].headers["Authorization"] == TOKEN
    wait_state(probe, base, "lamp", delivered=True)
    settle(probe, base)
    assert hue_commands(probe) == [hue_on("#D50000")]
    assert light_state(probe, base, "lamp") == {
        "color": "#00C853",
        "status": "available",
        "activity": None,
        "because": "carol",
        "scheduled_off": False,
        "delivered": True,
    }
    assert "delivered" not in light_state(probe, base, "hue")  # only an http light can say

    # Carol's change reaches the lamp only; the state says "not yet delivered" until it is.
    probe.clear()
    set_and_wait(sim, probe, base, "carol", CAROL.uri, "busy", availability=6500)
    assert wait_delivered(fake, 2)[1:] == [lamp_put("#D50000", "busy")]
    states = [json.loads(p) for p in probe.messages(f"{base}/lights/lamp")]
    assert [s["delivered"] for s in states][:1] == [False]
    wait_state(probe, base, "lamp", color="#D50000", delivered=True)
    assert hue_commands(probe) == []

    # The broker goes away. The lamp is not behind it: Carol's next change still reaches it.
    mosquitto.stop()
    assert eventually(lambda: not bridge.publisher.connected, timeout=10)
    sim.set_presence(CAROL.uri, availability=9500, activity="in-presentation")
    assert wait_delivered(fake, 3)[2:] == [lamp_put("#8E24AA", "do_not_disturb")]
    gate = threading.Event()
    bridge.service.call(lambda: gate.wait(15))  # hold the loop until a device listens again
    mosquitto.start()
    probe = make_mqtt_probe(mosquitto)
    probe.subscribe("zigbee2mqtt/#")
    probe.subscribe(f"{base}/#")
    assert eventually(lambda: bridge.publisher.connected, timeout=15)
    gate.set()
    wait_state(probe, base, "lamp", color="#8E24AA", delivered=True)
    settle(probe, base)
    # The bulb's state is unknown after a reconnect: told again. The lamp lost nothing: no request.
    assert hue_commands(probe) == [hue_on("#D50000")]
    assert len(fake.seen()) == 3

    # Everyone signs out: both lights off, the lamp with its off_body at the colour URL in black.
    set_and_wait(sim, probe, base, "carol", CAROL.uri, "offline", availability=18500, activity=None)
    set_and_wait(sim, probe, base, "bob", BOB.uri, "offline", availability=18500, activity=None)
    assert wait_delivered(fake, 4)[3:] == [LAMP_OFF]
    assert hue_commands(probe) == [b'{"state":"OFF"}']  # set_and_wait cleared the earlier ones
    assert wait_state(probe, base, "lamp", delivered=True) == {
        "color": None,
        "status": "offline",
        "activity": None,
        "because": None,
        "scheduled_off": False,
        "delivered": True,
    }
    assert TOKEN not in caplog.text
    assert KEY not in caplog.text
    assert len(fake.seen()) == 4


def test_schedule_boundaries_switch_hue_and_http_lights(
    sim: Simulator,
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
    http_light: FakeHttpLight,
) -> None:
    base, probe, fake = base_topic, mqtt_probe, http_light
    clock = FakeClock(datetime(2026, 11, 27, 16, 59, 30, tzinfo=UTC))  # Friday 17:59:30 in Berlin
    office = {"days": "mon-fri", "from": "08:00", "to": "18:00", "timezone": "Europe/Berlin"}
    probe.subscribe("zigbee2mqtt/#")
    probe.subscribe(f"{base}/#")
    make_bridge(
        sim,
        mosquitto.url,
        base,
        lights=[{**HUE, "schedule": office}, lamp(fake, schedule=office)],
        clock=clock,
    )
    assert wait_delivered(fake, 1) == [lamp_put("#00C853", "available")]
    settle(probe, base)
    assert hue_commands(probe) == [hue_on("#D50000")]

    probe.clear()
    clock.advance(seconds=30)  # 18:00, `to` is exclusive: both off
    probe.wait_for(HUE_TOPIC, timeout=5)
    assert wait_delivered(fake, 2)[1:] == [LAMP_OFF]
    assert hue_commands(probe) == [b'{"state":"OFF"}']
    assert wait_state(probe, base, "lamp", delivered=True)["scheduled_off"] is True

    probe.clear()
    clock.now = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # Monday 08:00 Berlin: on again
    probe.wait_for(HUE_TOPIC, timeout=5)
    assert wait_delivered(fake, 3)[2:] == [lamp_put("#00C853", "available")]
    assert hue_commands(probe) == [hue_on("#D50000")]
    assert len(fake.seen()) == 3


def test_a_down_or_hung_http_light_costs_the_others_nothing_and_gets_only_the_newest_colour(
    sim: Simulator,
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
    http_light: FakeHttpLight,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    base, probe, fake = base_topic, mqtt_probe, http_light
    probe.subscribe("zigbee2mqtt/#")
    probe.subscribe(f"{base}/#")
    bridge = make_bridge(sim, mosquitto.url, base, lights=[HUE, lamp(fake)])
    wait_delivered(fake, 1)
    wait_state(probe, base, "lamp", delivered=True)

    # The lamp's service answers 503: Carol's changes are not delivered, and say so.
    fake.mode = "down"
    set_and_wait(sim, probe, base, "carol", CAROL.uri, "busy", availability=6500)
    assert eventually(lambda: len(fake.seen()) >= 3, timeout=10)  # retried with back-off
    wait_state(probe, base, "lamp", color="#D50000", delivered=False)

    # Now it hangs. While the lamp's worker waits on it, Bob's change reaches his bulb and his
    # topic at once: the lamp's 3 s deadline has not even passed (no failure counted yet).
    fake.mode = "slow"
    assert eventually(lambda: fake.held >= 1, timeout=10)
    failed = failures(bridge)
    probe.clear()
    set_and_wait(sim, probe, base, "bob", BOB.uri, "available", availability=3500, activity=None)
    assert hue_commands(probe) == [hue_on("#00C853")]
    assert failures(bridge) == failed
    # Carol changes twice more while the lamp is unreachable: only the newest may ever arrive.
    set_and_wait(sim, probe, base, "carol", CAROL.uri, "do_not_disturb", availability=9500)
    set_and_wait(sim, probe, base, "carol", CAROL.uri, "away", availability=15500)
    assert eventually(lambda: failures(bridge) > failed, timeout=10)

    fake.mode = "ok"
    fake.release()
    assert wait_delivered(fake, 2)[1:] == [lamp_put("#FFAB00", "away")]
    wait_state(probe, base, "lamp", color="#FFAB00", delivered=True)
    assert requests(fake.delivered()) == [lamp_put("#00C853", "available"), lamp_put("#FFAB00", "away")]
    # One warning for the whole failure streak, one line for the recovery; no secret in either.
    lamp_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("lights.http.")]
    assert [line.split()[0] for line in lamp_lines] == ["lights.http.failed", "lights.http.recovered"]
    assert lamp_lines[0] == f"lights.http.failed light=lamp url={fake.url} error=status=503"
    assert TOKEN not in caplog.text
    assert KEY not in caplog.text
    assert failures(bridge) >= 3
