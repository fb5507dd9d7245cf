"""Helpers for the status-light tests: presences, specs and a settable clock."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.lights.spec import LightSpec
from bridge.presence import Presence, Status


def presence(status: Status | str, activity: str | None = None, uri: str = "sip:x@example.org") -> Presence:
    """A presence with just the fields the lights look at."""
    return replace(Presence.unknown(uri), status=Status(status), activity=activity)


def light(name: str = "door", watch: tuple[str, ...] = ("bob", "carol"), **kwargs: Any) -> LightSpec:
    """A wled light by default; pass preset/device/topic/... to change it."""
    kwargs.setdefault("preset", "wled")
    if kwargs["preset"] not in ("raw", "http"):
        kwargs.setdefault("device", "door")
    return LightSpec(name=name, watch=watch, **kwargs)


@dataclass
class FakeClock:
    """A clock the test moves by hand; call it to read it."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def light_clock() -> FakeClock:
    """A FakeClock at Monday 2026-11-23 10:00 UTC."""
    return FakeClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
