"""Light schedules: edges, days, windows across midnight and DST in Europe/Berlin (§8 `schedule`)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.config.parsers import parse_days
from bridge.lights.schedule import in_schedule, next_boundary
from bridge.lights.spec import ScheduleSpec

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = frozenset(range(5))
DAILY = frozenset(range(7))


def berlin(year: int, month: int, day: int, *hms: int) -> datetime:
    hour, minute, second = (*hms, 0, 0, 0)[:3]
    return datetime(year, month, day, hour, minute, second, tzinfo=BERLIN)


def utc(year: int, month: int, day: int, *hms: int) -> datetime:
    hour, minute, second = (*hms, 0, 0, 0)[:3]
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


OFFICE = ScheduleSpec(WEEKDAYS, time(8), time(18), BERLIN)
NIGHT = ScheduleSpec(frozenset({4}), time(22), time(6), BERLIN)  # Friday night only


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (berlin(2026, 11, 23, 7, 59, 59), False),
        (berlin(2026, 11, 23, 8, 0), True),  # from is inclusive
        (berlin(2026, 11, 23, 17, 59, 59), True),
        (berlin(2026, 11, 23, 18, 0), False),  # to is exclusive
        (berlin(2026, 11, 27, 12, 0), True),  # Friday
        (berlin(2026, 11, 28, 12, 0), False),  # Saturday
        (berlin(2026, 11, 29, 12, 0), False),  # Sunday
        (utc(2026, 11, 23, 7, 0), True),  # 08:00 CET expressed in UTC
        (utc(2026, 11, 23, 6, 59), False),
    ],
)
def test_office_hours_edges_and_days(moment: datetime, inside: bool) -> None:
    assert in_schedule(OFFICE, moment) is inside


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (berlin(2026, 11, 27, 21, 59), False),  # Friday evening before
        (berlin(2026, 11, 27, 22, 0), True),
        (berlin(2026, 11, 27, 23, 59, 59), True),
        (berlin(2026, 11, 28, 0, 0), True),  # after midnight belongs to Friday's window
        (berlin(2026, 11, 28, 5, 59, 59), True),
        (berlin(2026, 11, 28, 6, 0), False),
        (berlin(2026, 11, 28, 22, 30), False),  # Saturday night is not listed
        (berlin(2026, 11, 27, 3, 0), False),  # early Friday belongs to Thursday, not listed
    ],
)
def test_window_across_midnight_belongs_to_the_day_it_starts(moment: datetime, inside: bool) -> None:
    assert in_schedule(NIGHT, moment) is inside


def test_equal_from_and_to_is_a_whole_day() -> None:
    monday_only = ScheduleSpec(frozenset({0}), time(0), time(0), BERLIN)
    assert in_schedule(monday_only, berlin(2026, 11, 23, 0, 0))
    assert in_schedule(monday_only, berlin(2026, 11, 23, 23, 59, 59))
    assert not in_schedule(monday_only, berlin(2026, 11, 24, 0, 0))
    assert next_boundary(monday_only, berlin(2026, 11, 23, 12, 0)) == berlin(2026, 11, 24, 0, 0)


@pytest.mark.parametrize(
    ("now", "boundary"),
    [
        (berlin(2026, 11, 23, 7, 0), berlin(2026, 11, 23, 8, 0)),
        (berlin(2026, 11, 23, 8, 0), berlin(2026, 11, 23, 18, 0)),  # strictly after now
        (berlin(2026, 11, 23, 12, 0), berlin(2026, 11, 23, 18, 0)),
        (berlin(2026, 11, 23, 18, 0), berlin(2026, 11, 24, 8, 0)),
        (berlin(2026, 11, 27, 18, 0), berlin(2026, 11, 30, 8, 0)),  # Friday evening → Monday
        (berlin(2026, 11, 28, 9, 0), berlin(2026, 11, 30, 8, 0)),
    ],
)
def test_next_boundary_office(now: datetime, boundary: datetime) -> None:
    assert next_boundary(OFFICE, now) == boundary


def test_next_boundary_across_midnight() -> None:
    assert next_boundary(NIGHT, berlin(2026, 11, 27, 12, 0)) == berlin(2026, 11, 27, 22, 0)
    assert next_boundary(NIGHT, berlin(2026, 11, 27, 23, 0)) == berlin(2026, 11, 28, 6, 0)
    assert next_boundary(NIGHT, berlin(2026, 11, 28, 6, 0)) == berlin(2026, 12, 4, 22, 0)


# Europe/Berlin: 2026-03-29 02:00 CET → 03:00 CEST; 2026-10-25 03:00 CEST → 02:00 CET (both Sundays).


def test_spring_forward_keeps_office_hours_local() -> None:
    daily = ScheduleSpec(DAILY, time(8), time(18), BERLIN)
    # Saturday 18:00 CET = 17:00 UTC; Sunday 08:00 CEST = 06:00 UTC: the night is an hour shorter.
    assert next_boundary(daily, utc(2026, 3, 28, 17, 0)) == utc(2026, 3, 29, 6, 0)
    assert next_boundary(daily, utc(2026, 3, 29, 6, 0)) == utc(2026, 3, 29, 16, 0)
    assert in_schedule(daily, utc(2026, 3, 29, 6, 0))
    assert not in_schedule(daily, utc(2026, 3, 29, 5, 59, 59))  # 07:59:59 CEST
    assert not in_schedule(daily, utc(2026, 3, 29, 16, 0))  # 18:00 CEST


def test_fall_back_keeps_office_hours_local() -> None:
    daily = ScheduleSpec(DAILY, time(8), time(18), BERLIN)
    # Saturday 18:00 CEST = 16:00 UTC; Sunday 08:00 CET = 07:00 UTC: the night is an hour longer.
    assert next_boundary(daily, utc(2026, 10, 24, 16, 0)) == utc(2026, 10, 25, 7, 0)
    assert next_boundary(daily, utc(2026, 10, 25, 7, 0)) == utc(2026, 10, 25, 17, 0)
    assert not in_schedule(daily, utc(2026, 10, 25, 6, 59, 59))  # 07:59:59 CET
    assert in_schedule(daily, utc(2026, 10, 25, 16, 59, 59))  # 17:59:59 CET


def test_night_window_over_spring_forward_is_an_hour_shorter() -> None:
    night = ScheduleSpec(frozenset({5}), time(22), time(6), BERLIN)  # Saturday night
    opens = next_boundary(night, utc(2026, 3, 28, 12, 0))
    closes = next_boundary(night, opens)
    assert (opens, closes) == (utc(2026, 3, 28, 21, 0), utc(2026, 3, 29, 4, 0))
    assert closes - opens == timedelta(hours=7)
    assert in_schedule(night, utc(2026, 3, 29, 1, 30))  # 03:30 CEST, just after the jump


def test_night_window_over_fall_back_is_an_hour_longer() -> None:
    night = ScheduleSpec(frozenset({5}), time(22), time(6), BERLIN)
    opens = next_boundary(night, utc(2026, 10, 24, 12, 0))
    closes = next_boundary(night, opens)
    assert (opens, closes) == (utc(2026, 10, 24, 20, 0), utc(2026, 10, 25, 5, 0))
    assert closes - opens == timedelta(hours=9)
    assert in_schedule(night, utc(2026, 10, 25, 1, 30))  # 02:30 CET, the repeated hour


def test_window_edge_in_the_skipped_hour_opens_at_the_jump() -> None:
    # 02:30 does not exist on 2026-03-29 in Berlin: the window opens when the clock jumps to 03:00.
    early = ScheduleSpec(frozenset({6}), time(2, 30), time(9), BERLIN)
    assert next_boundary(early, utc(2026, 3, 28, 12, 0)) == utc(2026, 3, 29, 1, 0)
    assert not in_schedule(early, utc(2026, 3, 29, 0, 59, 59))  # 01:59:59 CET
    assert in_schedule(early, utc(2026, 3, 29, 1, 0))  # 03:00 CEST


def test_window_edge_in_the_repeated_hour_counts_its_first_occurrence() -> None:
    early = ScheduleSpec(frozenset({6}), time(2, 30), time(9), BERLIN)
    assert next_boundary(early, utc(2026, 10, 24, 12, 0)) == utc(2026, 10, 25, 0, 30)  # 02:30 CEST
    assert in_schedule(early, utc(2026, 10, 25, 1, 15))  # 02:15 CET, second pass: still inside


def test_machine_local_time_when_no_timezone() -> None:
    local = ScheduleSpec(DAILY, time(8), time(18), None)
    eight = datetime(2026, 11, 23, 8, 0).astimezone()  # machine-local 08:00
    assert in_schedule(local, eight)
    assert not in_schedule(local, eight - timedelta(seconds=1))
    assert next_boundary(local, eight - timedelta(minutes=5)) == eight


@given(
    moment=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    days=st.frozensets(st.integers(0, 6), min_size=1),
    start=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    end=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
)
def test_in_schedule_only_changes_at_reported_boundaries(
    moment: datetime, days: frozenset[int], start: time, end: time
) -> None:
    schedule = ScheduleSpec(days, start, end, BERLIN)
    boundary = next_boundary(schedule, moment)
    assert moment < boundary <= moment + timedelta(days=8)
    before = in_schedule(schedule, moment)
    # Nothing changes strictly before the boundary (sampled at the midpoint and just before it).
    for probe in (moment + (boundary - moment) / 2, boundary - timedelta(microseconds=1)):
        if probe > moment:
            assert in_schedule(schedule, probe) is before


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("mon-sun", set(range(7))),
        ("daily", set(range(7))),
        ("sat,sun", {5, 6}),
        ("Sat, Sunday", {5, 6}),
        ("fri-mon", {4, 5, 6, 0}),
        (["mon", "wed-thu"], {0, 2, 3}),
    ],
)
def test_parse_days(text: str | list[str], days: set[int]) -> None:
    assert parse_days(text) == frozenset(days)


@pytest.mark.parametrize("text", ["", "weekdays", "mo", "mon-", "mon,,tue", "funday"])
def test_parse_days_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="day"):
        parse_days(text)


def test_schedule_needs_a_day() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        ScheduleSpec(frozenset(), time(8), time(18), BERLIN)
    with pytest.raises(ValueError, match="non-empty"):
        ScheduleSpec(frozenset({7}), time(8), time(18), BERLIN)
