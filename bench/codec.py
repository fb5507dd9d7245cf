"""Benchmark 1 — codec: userPresence event bodies → `Presence` objects per second.

Bridge path per body: `codec.decode_events` (hardened parse, typed events) → `UserPresence.summary()`
→ `Presence.observe(...)`, i.e. everything between the data-channel bytes and the domain object.
Baseline ("floor"): `lxml.etree.fromstring` of the same bytes, nothing else. Bodies are captured
from the simulator (state with activity, personal note, contact card, calendarData: what OCS sends).
Both are timed in alternating rounds in one process; the ratio uses the median round of each.

    .venv/bin/python -m bench.codec [--quick]
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from lxml import etree

from bench.common import Report, cli, yes
from bench.cwa_session import BareSession
from bridge.cwa import codec
from bridge.cwa.messages import UserPresenceEvent
from bridge.presence import Presence
from bridge.simulator import SimOptions, Simulator, load_users


def capture() -> dict[int, bytes]:
    """Real wire bytes: one userPresence event with 1 user, and one with 5 users."""
    options = SimOptions(long_poll=False, poll_wait_ms=0, control=False)
    with Simulator(load_users(10), options) as sim:
        uris = [f"sip:user{k:05d}@example.org" for k in range(2, 7)]
        notes = ["Back at 3", "Lab day", "In Oslo until Friday", "Focus time: chat only", "Lunch"]
        activities = ["in-a-meeting", "on-the-phone", None, "in-a-conference", None]
        for uri, note, activity, availability in zip(
            uris, notes, activities, (6500, 6500, 3500, 9500, 15500), strict=True
        ):
            sim.set_presence(uri, availability=availability, activity=activity, note=note)
        session = BareSession(sim.url)
        session.subscribe(uris)
        initial = session.poll()
        sim.set_presence(uris[0], availability=9500, activity="in-a-conference", note="Presenting")
        one = session.poll()
        session.close()
    root = etree.fromstring(initial)
    for child in list(root):
        if etree.QName(child).localname != "userPresence":
            root.remove(child)
    five = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    return {1: one, 5: five}


def bridge_path(body: bytes) -> int:
    made = 0
    for event in codec.decode_events(body).events:
        if isinstance(event, UserPresenceEvent):
            for user in event.users:
                s = user.summary()
                Presence.observe(user.uri, s.display_name, s.availability, s.activity, s.notes)
                made += 1
    return made


def floor_path(body: bytes) -> int:
    etree.fromstring(body)
    return 1


def rate(fn: Callable[[bytes], int], body: bytes, seconds: float) -> float:
    """Bodies per second over about ``seconds``."""
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            fn(body)
        n += 50
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def measure(body: bytes, rounds: int, seconds: float) -> tuple[float, float]:
    ours, floor = [], []
    for _ in range(rounds):
        ours.append(rate(bridge_path, body, seconds))
        floor.append(rate(floor_path, body, seconds))
    return statistics.median(ours), statistics.median(floor)


def run(quick: bool = False) -> Report:
    report = Report("codec")
    bodies = capture()
    rounds, seconds = (3, 0.2) if quick else (7, 0.5)
    for users, body in bodies.items():
        assert bridge_path(body) == users, "captured body does not hold the expected users"
        ours, floor = measure(body, rounds, seconds)
        ratio = ours / floor
        report.add(
            f"codec, {users} user{'s' if users > 1 else ''} per event ({len(body)} B)",
            f"{ours * users:,.0f} Presence/s ({ours:,.0f} bodies/s)",
            f"{floor:,.0f} bodies/s lxml.etree.fromstring",
            f"{ratio:.2f}",
            "≥ 0.50",
            yes(ratio >= 0.5),
        )
    report.notes.append(
        f"codec: median of {rounds} alternating rounds of {seconds} s each; ratio = bodies/s of the bridge "
        "path over bodies/s of the bare parse of the same bytes"
    )
    return report


def main() -> None:
    args = cli(__doc__ or "")
    report = run(args.quick)
    report.print()
    report.save(args.json)


if __name__ == "__main__":
    main()
