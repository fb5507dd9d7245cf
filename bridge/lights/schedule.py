"""Light schedules in local wall-clock time. Pure: ``now`` is passed in.

Theory of operation: a schedule is a series of windows. Each listed day D opens one window
``[instant(D, start), instant(D or D+1, end))``; a window whose end is not after its start crosses
midnight and ends on the next day, so the part after midnight belongs to the day it started on.
``instant(date, time)`` is the first moment the local wall clock reads that time or later:

- normal days: the obvious instant, so 08:00-18:00 stays 08:00-18:00 local across DST;
- a wall time skipped by spring-forward (02:30 in Europe/Berlin on 2026-03-29) opens/closes at the
  jump itself (03:00 CEST), the first moment the clock shows a later time;
- a wall time that happens twice at fall-back (02:30 on 2026-10-25) counts at its first occurrence.

Being inside/outside and the next boundary both come from the same windows, so the controller's
timer and the in/out answer cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import math

from bridge.lights.spec import ScheduleSpec

_UTC = dt.UTC
_ONE_DAY = dt.timedelta(days=1)


def _wall(instant: dt.datetime, tz: dt.tzinfo | None) -> dt.datetime:
    """The naive local wall-clock reading at ``instant`` (``tz`` None = the machine's zone)."""
    local = instant.astimezone(tz) if tz is not None else instant.astimezone()
    return local.replace(tzinfo=None, fold=0)


def _from_wall(wall: dt.datetime, fold: int, tz: dt.tzinfo | None) -> dt.datetime:
    naive = wall.replace(fold=fold)
    # A naive datetime's astimezone() reads it as machine-local time, honouring `fold` (PEP 495).
    local = naive.replace(tzinfo=tz) if tz is not None else naive
    return local.astimezone(_UTC)


def wall_instant(wall: dt.datetime, tz: dt.tzinfo | None) -> dt.datetime:
    """The first instant (UTC) at which the local wall clock reads ``wall`` or later."""
    first = _from_wall(wall, 0, tz)  # fold=0: the earlier of two readings in a fall-back hour
    if _wall(first, tz) == wall:
        return first
    # Skipped by a spring-forward gap: the answer is the jump, somewhere between the two
    # fold interpretations. Bisect on whole seconds (zone transitions happen on whole seconds).
    lo_dt, hi_dt = sorted((first, _from_wall(wall, 1, tz)))
    if not (_wall(lo_dt, tz) < wall <= _wall(hi_dt, tz)):
        return first  # a zone implementation without PEP 495 gap semantics: best effort
    lo, hi = math.floor(lo_dt.timestamp()), math.ceil(hi_dt.timestamp())
    while hi - lo > 1:  # invariant: wall(lo) < wall <= wall(hi)
        mid = (lo + hi) // 2
        if _wall(dt.datetime.fromtimestamp(mid, _UTC), tz) >= wall:
            hi = mid
        else:
            lo = mid
    return dt.datetime.fromtimestamp(hi, _UTC)


def _windows(
    schedule: ScheduleSpec, now: dt.datetime, back: int, ahead: int
) -> list[tuple[dt.datetime, dt.datetime]]:
    """The windows that start on the local dates ``today - back`` .. ``today + ahead``."""
    today = _wall(now, schedule.tz).date()
    crosses = schedule.end <= schedule.start
    windows = []
    for offset in range(-back, ahead + 1):
        day = today + dt.timedelta(days=offset)
        if day.weekday() not in schedule.days:
            continue
        opens = wall_instant(dt.datetime.combine(day, schedule.start), schedule.tz)
        end_day = day + _ONE_DAY if crosses else day
        closes = wall_instant(dt.datetime.combine(end_day, schedule.end), schedule.tz)
        windows.append((opens, closes))
    return windows


def in_schedule(schedule: ScheduleSpec, now: dt.datetime) -> bool:
    """True when ``now`` (timezone-aware) lies in a window: ``start`` inclusive, ``end`` exclusive."""
    # Only windows opened yesterday or today can cover now (a window is at most a day of wall
    # time); one more day back absorbs any zone-offset oddity.
    return any(opens <= now < closes for opens, closes in _windows(schedule, now, back=2, ahead=0))


def next_boundary(schedule: ScheduleSpec, now: dt.datetime) -> dt.datetime:
    """The next instant after ``now`` at which `in_schedule` can change (a window opening or closing).

    Back-to-back windows (``start == end`` daily) still report their shared edge; a tick there
    simply changes nothing. There is always one within eight days because ``days`` is not empty.
    """
    edges = [edge for window in _windows(schedule, now, back=2, ahead=8) for edge in window if edge > now]
    return min(edges)
