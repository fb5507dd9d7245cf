"""The light controller: what gets published when, with an injected clock (§8)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bridge.lights.controller import LightController, Outgoing
from bridge.lights.spec import ScheduleSpec
from bridge.presence import DEFAULT_PRIORITY, Status
from tests.support.lights import FakeClock, light, presence

S = Status
BERLIN = ZoneInfo("Europe/Berlin")


def commands(out: list[Outgoing]) -> list[tuple[str | None, bytes]]:
    return [(o.topic, o.payload) for o in out if o.kind == "command"]


def states(out: list[Outgoing]) -> dict[str, dict[str, object]]:
    return {o.light: json.loads(o.payload) for o in out if o.kind == "state"}


def test_start_sends_every_light_with_on_before_colour_and_retained_state(light_clock: FakeClock) -> None:
    lights = [light("door", device="door"), light("desk", preset="tasmota", device="desk", watch=("self",))]
    ctl = LightController(lights, DEFAULT_PRIORITY, light_clock)
    ctl.on_presence({"bob": presence(S.BUSY)})  # before start: evaluated, start resends anyway
    out = ctl.on_start()
    assert commands(out) == [
        ("wled/door", b"ON"),
        ("wled/door/col", b"#D50000"),
        ("cmnd/desk/Power", b"OFF"),
    ]
    assert states(out) == {
        "door": {
            "color": "#D50000",
            "status": "busy",
            "activity": None,
            "because": "bob",
            "scheduled_off": False,
        },
        "desk": {
            "color": None,
            "status": "unknown",
            "activity": None,
            "because": None,
            "scheduled_off": False,
        },
    }
    assert all(o.retain for o in out if o.kind == "state")
    assert all(o.topic is None for o in out if o.kind == "state")
    assert not any(o.retain for o in out if o.kind == "command")


def test_only_changed_lights_are_sent(light_clock: FakeClock) -> None:
    door, desk = light("door", watch=("bob",)), light("desk", device="desk", watch=("carol",))
    ctl = LightController([door, desk], DEFAULT_PRIORITY, light_clock)
    ctl.on_start()
    out = ctl.on_presence({"bob": presence(S.AVAILABLE)})
    assert commands(out) == [("wled/door", b"ON"), ("wled/door/col", b"#00C853")]  # was off
    assert set(states(out)) == {"door"}
    out = ctl.on_presence({"bob": presence(S.BUSY)})
    assert commands(out) == [("wled/door/col", b"#D50000")]  # was on: no ON
    assert ctl.on_presence({"bob": presence(S.BUSY)}) == []  # nothing changed, nothing sent
    out = ctl.on_presence({"carol": presence(S.OFFLINE)})  # desk stays off, its state says why
    assert (commands(out), states(out)["desk"]["status"]) == ([], "offline")
    assert ctl.on_presence({"carol": presence(S.OFFLINE)}) == []
    out = ctl.on_presence({"bob": presence(S.OFFLINE)})
    assert commands(out) == [("wled/door", b"OFF")]


def test_same_colour_different_status_updates_state_but_not_the_device(light_clock: FakeClock) -> None:
    ctl = LightController([light(watch=("bob",))], DEFAULT_PRIORITY, light_clock)
    ctl.on_presence({"bob": presence(S.AWAY)})
    out = ctl.on_presence({"bob": presence(S.BE_RIGHT_BACK)})  # both #FFAB00
    assert commands(out) == []
    assert states(out)["door"]["status"] == "be_right_back"


def test_raw_light_resends_when_its_payload_carries_a_changed_status(light_clock: FakeClock) -> None:
    spec = light(preset="raw", topic="sign", payload="{hex} {status}", watch=("bob",))
    ctl = LightController([spec], DEFAULT_PRIORITY, light_clock)
    ctl.on_presence({"bob": presence(S.AWAY)})
    out = ctl.on_presence({"bob": presence(S.BE_RIGHT_BACK)})
    assert commands(out) == [("sign", b"#FFAB00 be_right_back")]


def test_reconnect_resends_everything(light_clock: FakeClock) -> None:
    ctl = LightController([light(watch=("bob",))], DEFAULT_PRIORITY, light_clock)
    first = ctl.on_presence({"bob": presence(S.BUSY)})
    again = ctl.on_reconnect()
    assert again == first
    assert commands(again) == [("wled/door", b"ON"), ("wled/door/col", b"#D50000")]


def test_schedule_boundaries_via_next_wakeup_and_on_tick() -> None:
    clock = FakeClock(datetime(2026, 11, 23, 6, 0, tzinfo=UTC))  # Monday 07:00 CET
    office = ScheduleSpec(frozenset(range(5)), time(8), time(18), BERLIN)
    ctl = LightController([light(watch=("bob",), schedule=office)], DEFAULT_PRIORITY, clock)
    out = ctl.on_presence({"bob": presence(S.BUSY)})
    assert commands(out) == [("wled/door", b"OFF")]
    assert states(out)["door"]["scheduled_off"] is True
    wake = ctl.next_wakeup()
    assert wake == datetime(2026, 11, 23, 8, 0, tzinfo=BERLIN)
    clock.now = wake - timedelta(seconds=1)
    assert ctl.on_tick() == []  # early tick: nothing yet
    clock.now = wake
    out = ctl.on_tick()
    assert commands(out) == [("wled/door", b"ON"), ("wled/door/col", b"#D50000")]
    assert states(out)["door"]["scheduled_off"] is False
    assert ctl.next_wakeup() == datetime(2026, 11, 23, 18, 0, tzinfo=BERLIN)
    clock.now = datetime(2026, 11, 23, 18, 0, tzinfo=BERLIN)
    assert commands(ctl.on_tick()) == [("wled/door", b"OFF")]


def test_no_schedule_and_no_override_means_no_wakeup(light_clock: FakeClock) -> None:
    ctl = LightController([light()], DEFAULT_PRIORITY, light_clock)
    assert ctl.next_wakeup() is None


def test_override_set_timed_expiry_and_response(light_clock: FakeClock) -> None:
    ctl = LightController([light(watch=("bob",))], DEFAULT_PRIORITY, light_clock)
    ctl.on_presence({"bob": presence(S.BUSY)})
    out, response = ctl.set_override("door", b'{"override": "#00ff00", "for_s": 600, "transaction": 7}')
    assert response == {
        "status": "ok",
        "data": {"light": "door", "override": "#00FF00", "until": "2026-11-23T10:10:00Z"},
        "transaction": 7,
    }
    assert commands(out) == [("wled/door/col", b"#00FF00")]
    assert states(out)["door"] == {
        "color": "#00FF00",
        "status": None,
        "activity": None,
        "because": "override",
        "scheduled_off": False,
    }
    assert ctl.on_presence({"bob": presence(S.AVAILABLE)}) == []  # presence is paused while overridden
    assert ctl.next_wakeup() == light_clock.now + timedelta(seconds=600)
    light_clock.advance(seconds=600)
    out = ctl.on_tick()
    assert commands(out) == [("wled/door/col", b"#00C853")]  # back to the automatic colour
    assert states(out)["door"]["because"] == "bob"
    assert ctl.next_wakeup() is None


def test_override_off_then_clear(light_clock: FakeClock) -> None:
    ctl = LightController([light(watch=("bob",))], DEFAULT_PRIORITY, light_clock)
    ctl.on_presence({"bob": presence(S.BUSY)})
    out, response = ctl.set_override("door", b'{"override": "off"}')
    assert response == {"status": "ok", "data": {"light": "door", "override": "off", "until": None}}
    assert commands(out) == [("wled/door", b"OFF")]
    assert states(out)["door"]["color"] is None
    assert ctl.next_wakeup() is None  # no for_s: until cleared
    light_clock.advance(days=30)
    assert ctl.on_tick() == []
    out, response = ctl.set_override("door", b'{"override": null}')
    assert response == {"status": "ok", "data": {"light": "door", "override": None, "until": None}}
    assert commands(out) == [("wled/door", b"ON"), ("wled/door/col", b"#D50000")]


def test_override_survives_reconnect(light_clock: FakeClock) -> None:
    ctl = LightController([light(watch=("bob",))], DEFAULT_PRIORITY, light_clock)
    ctl.set_override("door", b'{"override": "#ABCDEF"}')
    assert commands(ctl.on_reconnect()) == [("wled/door", b"ON"), ("wled/door/col", b"#ABCDEF")]


@pytest.mark.parametrize(
    ("name", "raw", "error"),
    [
        ("door", b"nope", "not valid JSON"),
        ("door", b'{"override": "#FF0000", "for_s": -1, "transaction": "x"}', "positive"),
        ("attic", b'{"override": "off"}', "unknown light 'attic'"),
    ],
)
def test_bad_override_is_answered_with_an_error_and_changes_nothing(
    light_clock: FakeClock, name: str, raw: bytes, error: str
) -> None:
    ctl = LightController([light(watch=("bob",))], DEFAULT_PRIORITY, light_clock)
    ctl.on_presence({"bob": presence(S.BUSY)})
    out, response = ctl.set_override(name, raw)
    assert out == []
    assert response["status"] == "error"
    assert error in response["error"]
    assert ("transaction" in response) is (b"transaction" in raw)
    assert ctl.on_reconnect()[1].payload == b"#D50000"


def test_duplicate_light_names_are_rejected(light_clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="unique: door"):
        LightController([light("door"), light("door")], DEFAULT_PRIORITY, light_clock)


def test_light_package_stays_pure() -> None:
    """The light model imports no MQTT, network, threading or clock modules (ARCHITECTURE.md)."""
    import ast
    from pathlib import Path

    import bridge.lights

    forbidden = {"paho", "httpx", "socket", "threading", "time", "asyncio", "bridge.mqtt", "bridge.cwa"}
    for path in Path(bridge.lights.__file__).parent.glob("*.py"):
        if path.name == "http_sender.py":
            continue  # the http lights' I/O, on purpose: it owns a worker thread and an httpx client
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert not any(name == f or name.startswith(f + ".") for f in forbidden), (path.name, name)


def test_defaults_give_a_device_command_and_a_state_for_the_owner_to_place() -> None:
    ctl = LightController([light(watch=("bob",))])  # default priority, system clock
    out = ctl.on_start()
    assert [(o.kind, o.topic) for o in out] == [("command", "wled/door"), ("state", None)]
    _, response = ctl.set_override("door", b'{"override": "#FFFFFF", "for_s": 60}')
    wake = ctl.next_wakeup()
    assert wake is not None
    assert wake.tzinfo is not None
    assert response["data"]["until"] is not None
