"""What a light shows and why: decide, the palette, the state JSON and override parsing (§8)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bridge.lights.model import (
    LightState,
    Override,
    decide,
    light_state_payload,
    parse_override,
    status_color,
)
from bridge.lights.spec import ScheduleSpec
from bridge.presence import DEFAULT_PRIORITY, Status
from tests.support.lights import light, presence

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday
S = Status


@pytest.mark.parametrize(
    ("bob", "carol", "color", "status", "because"),
    [
        (S.AVAILABLE, S.BUSY, "#D50000", S.BUSY, "carol"),
        (S.BUSY, S.DO_NOT_DISTURB, "#8E24AA", S.DO_NOT_DISTURB, "carol"),
        (S.AVAILABLE, S.AWAY, "#FFAB00", S.AWAY, "carol"),  # default priority: away is busier than available
        (S.BE_RIGHT_BACK, S.AWAY, "#FFAB00", S.BE_RIGHT_BACK, "bob"),
        (S.BUSY, S.BUSY, "#D50000", S.BUSY, "bob"),  # tie: first id in watch
        (S.AVAILABLE, S.AVAILABLE, "#00C853", S.AVAILABLE, "bob"),
        (S.OFFLINE, S.AVAILABLE, "#00C853", S.AVAILABLE, "carol"),  # offline never decides over someone on
        (S.AVAILABLE, S.UNKNOWN, "#00C853", S.AVAILABLE, "bob"),
        # 0.2: the busiest status is reported also when it is offline/unknown; nobody decides.
        (S.OFFLINE, S.UNKNOWN, None, S.OFFLINE, None),
        (S.UNKNOWN, S.OFFLINE, None, S.OFFLINE, None),
        (S.UNKNOWN, S.UNKNOWN, None, S.UNKNOWN, None),
        (S.OFFLINE, S.OFFLINE, None, S.OFFLINE, None),
    ],
)
def test_busiest_status_wins_ties_to_first_watched(
    bob: Status, carol: Status, color: str | None, status: Status | None, because: str | None
) -> None:
    state = decide(light(), {"bob": presence(bob), "carol": presence(carol)}, DEFAULT_PRIORITY, NOW, None)
    assert state == LightState(
        color=color, status=status, activity=None, because=because, scheduled_off=False
    )


def test_tie_goes_to_first_in_watch_order_not_mapping_order() -> None:
    spec = light(watch=("carol", "bob"))
    presences = {"bob": presence(S.BUSY, "on_the_phone"), "carol": presence(S.BUSY, "in_a_meeting")}
    state = decide(spec, presences, DEFAULT_PRIORITY, NOW, None)
    assert (state.because, state.activity) == ("carol", "in_a_meeting")


def test_missing_and_none_presences_count_as_unknown() -> None:
    assert decide(light(), {}, DEFAULT_PRIORITY, NOW, None).color is None
    state = decide(light(), {"bob": None, "carol": presence(S.BUSY)}, DEFAULT_PRIORITY, NOW, None)
    assert (state.color, state.because) == ("#D50000", "carol")


def test_custom_priority_order_is_respected() -> None:
    priority = (S.AVAILABLE, S.BUSY, S.DO_NOT_DISTURB, S.BE_RIGHT_BACK, S.AWAY)
    state = decide(light(), {"bob": presence(S.BUSY), "carol": presence(S.AVAILABLE)}, priority, NOW, None)
    assert (state.status, state.because) == (S.AVAILABLE, "carol")


def test_status_missing_from_priority_ranks_last() -> None:
    state = decide(
        light(), {"bob": presence(S.DO_NOT_DISTURB), "carol": presence(S.AWAY)}, (S.AWAY,), NOW, None
    )
    assert state.because == "carol"


def test_colors_override_the_default_palette_but_not_offline() -> None:
    spec = light(colors={S.BUSY: "#ff0000", S.OFFLINE: "#0000FF"})
    busy = decide(spec, {"bob": presence(S.BUSY)}, DEFAULT_PRIORITY, NOW, None)
    assert busy.color == "#FF0000"
    offline = decide(spec, {"bob": presence(S.OFFLINE)}, DEFAULT_PRIORITY, NOW, None)
    assert offline.color is None
    available = decide(spec, {"bob": presence(S.AVAILABLE)}, DEFAULT_PRIORITY, NOW, None)
    assert available.color == "#00C853"


def test_activity_colour_of_the_deciding_user_wins_over_status_colour() -> None:
    spec = light(activity_colors={"on-the-phone": "#ff00ff"})
    state = decide(
        spec, {"bob": presence(S.BUSY, "on_the_phone"), "carol": presence(S.AVAILABLE)}, DEFAULT_PRIORITY, NOW
    )
    assert state == LightState("#FF00FF", S.BUSY, "on_the_phone", "bob", False)


def test_activity_colour_of_a_user_who_does_not_decide_is_ignored() -> None:
    spec = light(activity_colors={"on_the_phone": "#FF00FF"})
    presences = {"bob": presence(S.AVAILABLE, "on_the_phone"), "carol": presence(S.DO_NOT_DISTURB)}
    state = decide(spec, presences, DEFAULT_PRIORITY, NOW)
    assert (state.color, state.because, state.activity) == ("#8E24AA", "carol", None)


def test_outside_the_schedule_the_light_is_off_and_says_so() -> None:
    schedule = ScheduleSpec(frozenset(range(5)), time(8), time(18), ZoneInfo("Europe/Berlin"))
    spec = light(schedule=schedule)
    presences = {"bob": presence(S.BUSY)}
    inside = decide(spec, presences, DEFAULT_PRIORITY, datetime(2026, 11, 23, 7, 0, tzinfo=UTC))  # 08:00 CET
    assert (inside.color, inside.scheduled_off) == ("#D50000", False)
    outside = decide(spec, presences, DEFAULT_PRIORITY, datetime(2026, 11, 23, 17, 0, tzinfo=UTC))  # 18:00
    assert outside == LightState(None, S.BUSY, None, None, scheduled_off=True)  # status: what it is about
    saturday = decide(spec, presences, DEFAULT_PRIORITY, datetime(2026, 11, 28, 10, 0, tzinfo=UTC))
    assert saturday.scheduled_off


def test_override_colour_wins_with_no_status_and_because_override() -> None:
    state = decide(light(), {"bob": presence(S.BUSY)}, DEFAULT_PRIORITY, NOW, Override("#123ABC"))
    assert state == LightState("#123ABC", None, None, "override", False)


def test_override_off_switches_the_light_off() -> None:
    state = decide(light(), {"bob": presence(S.BUSY)}, DEFAULT_PRIORITY, NOW, Override(None))
    assert state == LightState(None, None, None, "override", False)


def test_override_wins_outside_the_schedule() -> None:
    schedule = ScheduleSpec(frozenset({5, 6}), time(8), time(18), UTC)  # weekends only; NOW is Monday
    state = decide(light(schedule=schedule), {}, DEFAULT_PRIORITY, NOW, Override("#FFFFFF"))
    assert (state.color, state.scheduled_off, state.because) == ("#FFFFFF", False, "override")


def test_override_expires_at_its_until() -> None:
    override = Override("#FFFFFF", until=NOW + timedelta(seconds=60))
    presences = {"bob": presence(S.AVAILABLE)}
    assert (
        decide(light(), presences, DEFAULT_PRIORITY, NOW + timedelta(seconds=59), override).color == "#FFFFFF"
    )
    after = decide(light(), presences, DEFAULT_PRIORITY, NOW + timedelta(seconds=60), override)
    assert (after.color, after.because) == ("#00C853", "bob")


@pytest.mark.parametrize(
    ("status", "color"),
    [
        (S.AVAILABLE, "#00C853"),
        (S.BUSY, "#D50000"),
        (S.DO_NOT_DISTURB, "#8E24AA"),
        (S.BE_RIGHT_BACK, "#FFAB00"),
        (S.AWAY, "#FFAB00"),
        (S.OFFLINE, "#000000"),
        (S.UNKNOWN, "#000000"),
    ],
)
def test_status_color_is_the_default_palette(status: Status, color: str) -> None:
    assert status_color(status) == color


def test_light_state_payload_carries_colour_status_because_and_schedule() -> None:
    on = json.loads(light_state_payload(LightState("#D50000", S.BUSY, "in_a_meeting", "bob", False)))
    assert on == {
        "color": "#D50000",
        "status": "busy",
        "activity": "in_a_meeting",
        "because": "bob",
        "scheduled_off": False,
    }
    off = json.loads(light_state_payload(LightState(None, None, None, None, True)))
    assert off == {"color": None, "status": None, "activity": None, "because": None, "scheduled_off": True}
    override = json.loads(light_state_payload(LightState("#FFFFFF", None, None, "override", False)))
    assert (override["color"], override["status"], override["because"]) == ("#FFFFFF", None, "override")


# --- parse_override ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"override": "#ff8800"}', Override("#FF8800", None)),
        (b'{"override": "off"}', Override(None, None)),
        (b'{"override": "OFF"}', Override(None, None)),
        (b'{"override": "#00FF00", "for_s": 90}', Override("#00FF00", NOW + timedelta(seconds=90))),
        (b'{"override": "off", "for_s": 0.5}', Override(None, NOW + timedelta(seconds=0.5))),
        (b'{"override": "#00FF00", "for_s": null}', Override("#00FF00", None)),
        (b'{"override": "#00FF00", "transaction": "t1"}', Override("#00FF00", None)),
        (b'{"override": null}', None),
    ],
)
def test_parse_override_accepts(raw: bytes, expected: Override | None) -> None:
    assert parse_override(raw, NOW) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty payload"),
        (b"   ", "empty payload"),
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not valid JSON"),
        (b'{"override": NaN}', "not valid JSON"),
        (b'"#FF0000"', "must be a JSON object, got a string"),
        (b"[1]", "must be a JSON object, got an array"),
        (b"null", "must be a JSON object, got null"),
        (b"{}", 'missing key "override"'),
        (b'{"for_s": 5}', 'missing key "override"'),
        (b'{"override": "#FF0000", "colour": 1}', "unknown key(s) colour"),
        (b'{"override": "#F00"}', "'#F00'"),
        (b'{"override": "red"}', "'red'"),
        (b'{"override": "FF0000"}', "'FF0000'"),
        (b'{"override": "#GG0000"}', "'#GG0000'"),
        (b'{"override": 16711680}', "got a number"),
        (b'{"override": true}', "got a boolean"),
        (b'{"override": "#FF0000", "for_s": -5}', "positive number of seconds, got -5"),
        (b'{"override": "#FF0000", "for_s": 0}', "positive number of seconds, got 0"),
        (b'{"override": "#FF0000", "for_s": "60"}', "for_s must be a number of seconds, got a string"),
        (b'{"override": "#FF0000", "for_s": true}', "got a boolean"),
        (b'{"override": "#FF0000", "for_s": 1e300}', "too large"),
        (b'{"override": "#FF0000", "for_s": Infinity}', "not valid JSON"),
        (b'{"override": null, "for_s": 60}', "cannot be combined"),
    ],
)
def test_parse_override_rejects_with_a_precise_message(raw: bytes, message: str) -> None:
    result = parse_override(raw, NOW)
    assert isinstance(result, str)
    assert message in result
