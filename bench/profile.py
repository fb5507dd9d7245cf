"""Benchmark 6 — profile of the top of the pipeline (cProfile), to find what is cheap to fix.

Profiles, in one process: the codec path of bench/codec.py (5-user events → `Presence`) and the
service path (10,000 watched users, `UserNotice` → store → publish; the MQTT port is a stub, so
only the bridge's own Python is on the profile). Prints the top functions by own time and the
cost of one presence change on the service path with 100 and 10,000 watched users (their ratio
shows whether a change costs O(1) or O(users)). Every user is reported once before the changes are
timed, and every timed notice really changes its user's status: a user's first report publishes its
discovery, a different (and larger) job that a comparison must not mix into one side only.

    .venv/bin/python -m bench.profile [--quick]
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from collections.abc import Sequence
from typing import Any

from bench.codec import bridge_path, capture
from bench.common import Report, cli, yes
from bench.pipeline import FakeCwa
from bridge.cwa.messages import PresenceSummary
from bridge.cwa.notices import SessionNotice, UserNotice
from bridge.service import Service, ServiceOptions, WatchSpec


class NullMqtt:
    connected = True

    def __init__(self) -> None:
        self.published = 0

    def publish(
        self, topic: str, payload: bytes | str, *, retain: bool = True, qos: int | None = None
    ) -> None:
        self.published += 1

    def read_retained(
        self, topic_filters: Sequence[str], quiet_s: float = 0.3, timeout_s: float = 3.0
    ) -> dict[str, bytes]:
        return {}


def service_for(users: int) -> tuple[Service, NullMqtt]:
    mqtt = NullMqtt()
    watch = [WatchSpec(f"user{u:05d}", f"sip:user{u:05d}@example.org") for u in range(users)]
    service = Service(
        cwa=FakeCwa(),
        mqtt=mqtt,
        watch=watch,
        options=ServiceOptions(base_topic="p", self_uri="sip:self@example.org"),
    )
    service.start()
    service.on_notice(SessionNotice("online"))
    service.on_mqtt_connect()
    service.drain(60)
    return service, mqtt


def notices(users: int, count: int) -> list[UserNotice]:
    """`count` presence changes spread over the users; each one really changes its user's status."""
    cycle = (6500, 9500, 3500)  # after the warm-up's 3500: every notice differs from the last one
    seen: dict[int, int] = {}
    out = []
    for i in range(count):
        u = (i * 7919) % users
        k = seen[u] = seen.get(u, -1) + 1
        summary = PresenceSummary(cycle[k % 3], None, (), f"User {u:05d}", None)
        out.append(UserNotice(f"sip:user{u:05d}@example.org", summary))
    return out


def warm_up(service: Service, users: int) -> None:
    """Every user reported once (first reports publish discovery: not what a change costs)."""
    for u in range(users):
        summary = PresenceSummary(3500, None, (), f"User {u:05d}", None)
        service.on_notice(UserNotice(f"sip:user{u:05d}@example.org", summary))
    service.drain(300)


def per_notice(users: int, count: int) -> float:
    service, _ = service_for(users)
    warm_up(service, users)
    batch = notices(users, count)
    start = time.perf_counter()
    for n in batch:
        service.on_notice(n)
    service.drain(300)
    elapsed = time.perf_counter() - start
    service.stop()
    return elapsed / count


def top(stats_source: Any, lines: int = 12) -> str:
    out = io.StringIO()
    pstats.Stats(stats_source, stream=out).sort_stats("tottime").print_stats(lines)
    text = out.getvalue()
    return text[text.find("   ncalls") :]


def run(quick: bool = False) -> Report:
    report = Report("profile")
    count = 500 if quick else 2000
    small, large = per_notice(100, count), per_notice(10_000, count)
    ratio = large / small
    report.add(
        "service: cost of one presence change, 10,000 vs 100 watched users (every user reported once before)",
        f"{large * 1e6:,.0f} µs per change at 10,000 users",
        f"{small * 1e6:,.0f} µs per change at 100 users",
        f"{ratio:.2f}",
        "≤ 2 (O(1) per change)",
        yes(ratio <= 2),
    )
    body = capture()[5]
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(300 if quick else 2000):
        bridge_path(body)
    prof.disable()
    print("codec path, top functions by own time:\n" + top(prof))
    service, _ = service_for(10_000)
    warm_up(service, 10_000)
    batch = notices(10_000, count)
    prof = cProfile.Profile()
    prof.enable()
    for n in batch:
        service._handle_notice(n, time.monotonic())
    prof.disable()
    service.stop()
    print("service path (10,000 users), top functions by own time:\n" + top(prof))
    return report


def main() -> None:
    args = cli(__doc__ or "")
    report = run(args.quick or args.smoke)  # quick is already short enough for a smoke run
    report.print()
    report.save(args.json)


if __name__ == "__main__":
    main()
