"""The presence domain: the availability table, activity/note normalisation, last_change rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bridge.presence import (
    REPRESENTATIVE_AVAILABILITY,
    SETTABLE_STATUSES,
    Note,
    Presence,
    Status,
    format_timestamp,
    normalize_activity,
    parse_timestamp,
    select_note,
    status_for,
)

A, B, D, R, W, OFF, U = (
    Status.AVAILABLE,
    Status.BUSY,
    Status.DO_NOT_DISTURB,
    Status.BE_RIGHT_BACK,
    Status.AWAY,
    Status.OFFLINE,
    Status.UNKNOWN,
)


@pytest.mark.parametrize(
    ("availability", "status", "idle"),
    [
        (None, U, False),
        (0, OFF, False),
        (1, OFF, False),
        (2999, OFF, False),
        (3000, A, False),
        (4499, A, False),
        (4500, A, True),
        (5999, A, True),
        (6000, B, False),
        (7499, B, False),
        (7500, B, True),
        (8999, B, True),
        (9000, D, False),
        (11999, D, False),
        (12000, R, False),
        (14999, R, False),
        (15000, W, False),
        (17999, W, False),
        (18000, OFF, False),
        (18500, OFF, False),
        (10**12, OFF, False),
    ],
)
def test_availability_table_at_every_boundary(availability: int | None, status: Status, idle: bool) -> None:
    assert status_for(availability) == (status, idle)


@pytest.mark.parametrize("status", SETTABLE_STATUSES)
def test_representative_availabilities_map_back_to_their_status(status: Status) -> None:
    assert status_for(REPRESENTATIVE_AVAILABILITY[status]) == (status, False)


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("in-a-meeting", "in_a_meeting"),
        ("InAMeeting", "in_a_meeting"),
        ("IN-A-MEETING", "in_a_meeting"),
        ("on-the-phone", "on_the_phone"),
        ("Offline", "offline"),
        ("out-of-office", "out_of_office"),
        ("  ", None),
        ("", None),
        (None, None),
    ],
)
def test_activity_normalisation(token: str | None, expected: str | None) -> None:
    assert normalize_activity(token) == expected


@pytest.mark.parametrize(
    ("notes", "expected"),
    [
        ([Note("OOF", "On holiday"), Note("personal", "Back at 3pm")], ("Back at 3pm", "personal")),
        ([Note("personal", "Back at 3pm"), Note("OOF", "On holiday")], ("Back at 3pm", "personal")),
        ([Note("OOF", "On holiday")], ("On holiday", "out_of_office")),
        ([Note("oof", "On holiday")], ("On holiday", "out_of_office")),
        ([Note("personal", ""), Note("personal", "  ")], (None, None)),
        ([Note("personal", ""), Note("OOF", "On holiday")], ("On holiday", "out_of_office")),
        ([Note("custom", "typed by hand")], ("typed by hand", "personal")),
        ([], (None, None)),
    ],
)
def test_note_selection(notes: list[Note], expected: tuple[str | None, str | None]) -> None:
    assert select_note(notes) == expected


def observe(
    availability: int | None = 3500, activity: str | None = None, notes: tuple[Note, ...] = ()
) -> Presence:
    return Presence.observe("sip:bob@example.org", "Bob", availability, activity, notes)


def test_observe_builds_every_field() -> None:
    presence = observe(7600, "On-The-Phone", (Note("personal", "call me later"),))
    assert (presence.status, presence.idle, presence.activity, presence.availability) == (
        B,
        True,
        "on_the_phone",
        7600,
    )
    assert (presence.note, presence.note_type, presence.out_of_office) == ("call me later", "personal", False)
    assert presence.last_change is None


@pytest.mark.parametrize(
    ("activity", "notes", "oof"),
    [
        ("out-of-office", (), True),
        (None, (Note("OOF", "On holiday"),), True),
        (None, (Note("OOF", ""),), False),
        (None, (Note("personal", "Back soon"), Note("OOF", "On holiday")), True),
        ("in-a-meeting", (Note("personal", "x"),), False),
    ],
)
def test_out_of_office_flag(activity: str | None, notes: tuple[Note, ...], oof: bool) -> None:
    assert observe(15500, activity, notes).out_of_office is oof


def test_unknown_presence() -> None:
    presence = Presence.unknown("sip:x@y")
    assert (presence.status, presence.availability, presence.last_change) == (U, None, None)


T0 = datetime(2026, 11, 22, 9, 14, 3, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_first_observation_sets_last_change_to_now_in_whole_utc_seconds() -> None:
    now = datetime(2026, 11, 22, 10, 14, 3, 999_999, tzinfo=timezone(timedelta(hours=1)))
    assert observe().advance(None, now).last_change == T0


def test_movement_within_the_band_keeps_last_change() -> None:
    first = observe(3500).advance(None, T0)
    second = observe(4400).advance(first, T1)
    assert second.availability == 4400
    assert second.last_change == T0


@pytest.mark.parametrize(
    "changed",
    [
        observe(6500),  # status
        observe(3500, "in-a-meeting"),  # activity
        observe(3500, None, (Note("personal", "hi"),)),  # note
    ],
    ids=["status", "activity", "note"],
)
def test_a_change_of_status_activity_or_note_sets_now(changed: Presence) -> None:
    first = observe(3500).advance(None, T0)
    assert changed.advance(first, T1).last_change == T1


def test_idle_flag_alone_is_not_a_change() -> None:
    # interface.md §4: last_change moves with status/activity/note; idle is part of status "available".
    first = observe(3500).advance(None, T0)
    assert observe(4500).advance(first, T1).last_change == T0


def test_previous_without_last_change_gets_now() -> None:
    assert observe().advance(observe(), T1).last_change == T1


def test_timestamp_format_and_parse() -> None:
    assert format_timestamp(T0) == "2026-11-22T09:14:03Z"
    assert format_timestamp(None) is None
    assert format_timestamp(datetime(2026, 11, 22, 10, 14, 3, tzinfo=timezone(timedelta(hours=1)))) == (
        "2026-11-22T09:14:03Z"
    )
    assert parse_timestamp("2026-11-22T09:14:03Z") == T0
    assert parse_timestamp(format_timestamp(T0)) == T0
    assert parse_timestamp("2026-11-22T09:14:03") == T0  # naive: taken as UTC
    assert parse_timestamp("2026-11-22T10:14:03+01:00") == T0
    for junk in ("", "yesterday", None, 12, ["2026"]):
        assert parse_timestamp(junk) is None


def test_with_name() -> None:
    presence = observe()
    assert presence.with_name("Bob") is presence
    assert presence.with_name("Robert").name == "Robert"
