"""Benchmark 1 — codec: userPresence event bodies → `Presence` objects per second.

Bridge path per body: `codec.decode_events` (hardened parse, typed events) → `UserPresence.summary()`
→ `Presence.observe(...)`, i.e. everything between the data-channel bytes and the domain object.
Baseline ("floor"): `lxml.etree.fromstring` of the same bytes, nothing else. Bodies are captured
from the simulator (state with activity, personal note, contact card, calendarData: what OCS sends).
Both are timed in alternating short chunks in one process; each path's figure is its fastest chunk.

    .venv/bin/python -m bench.codec [--quick]
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from lxml import etree

from bench.common import Report, cli, yes
from bench.cwa_session import BareSession
from bridge.cwa import codec, xmlsafe
from bridge.cwa.events import UserPresenceEvent
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


def _decode(body: bytes) -> int:
    return len(codec.decode_events(body).events)


def _decode_summarize(body: bytes) -> int:
    made = 0
    for event in codec.decode_events(body).events:
        if isinstance(event, UserPresenceEvent):
            for user in event.users:
                user.summary()
                made += 1
    return made


_DATA_NAMES = "user cwaCategory state availability activity custom note body contactCard displayName email"
_DATA_TAGS = tuple("{*}" + name for name in _DATA_NAMES.split())


def _visit(body: bytes) -> int:
    """Parse, then only *visit* the elements the codec reads (no attribute or text read): the least
    Python can do with lxml's API for these bodies."""
    seen = 0
    for el in xmlsafe.parse(body).iter(*_DATA_TAGS):
        el.tag  # noqa: B018 - the one access every dispatch needs
        seen += 1
    return seen


# Cumulative stages of the bridge path: each differs from the previous by one step.
STAGES: tuple[tuple[str, Callable[[bytes], int]], ...] = (
    ("lxml.etree.fromstring", floor_path),
    ("hardened parse (xmlsafe.parse)", lambda body: 0 if xmlsafe.parse(body) is None else 1),
    ("parse + visit the data elements (iter, tag)", _visit),
    ("decode_events (typed events)", _decode),
    ("+ summary()", _decode_summarize),
    ("+ Presence.observe (the bridge path)", bridge_path),
)


def stages(body: bytes, rounds: int, calls: int) -> list[tuple[str, float]]:
    """Minimum µs per body of each cumulative stage, interleaved so load hits all of them alike."""
    best = [float("inf")] * len(STAGES)
    for _ in range(rounds):
        for i, (_, fn) in enumerate(STAGES):
            start = time.perf_counter()
            for _ in range(calls):
                fn(body)
            best[i] = min(best[i], (time.perf_counter() - start) / calls * 1e6)
    return [(name, us) for (name, _), us in zip(STAGES, best, strict=True)]


def _calls_for(fn: Callable[[bytes], int], body: bytes, chunk_s: float) -> int:
    start = time.perf_counter()
    for _ in range(5):
        fn(body)
    return max(5, round(chunk_s / ((time.perf_counter() - start) / 5)))


def measure(body: bytes, chunks: int, chunk_s: float = 0.002) -> tuple[float, float, float]:
    """(bridge µs per body, floor µs per body, median ratio of adjacent chunks).

    Short chunks of each path alternate; the per-body time of a path is its fastest chunk. On this
    shared machine other jobs only ever *add* time, in bursts longer than a chunk, so the minimum is
    the stable figure (0.5 s rate rounds moved the ratio by ±0.1 from run to run under load).
    """
    calls = {fn: _calls_for(fn, body, chunk_s) for fn in (bridge_path, floor_path)}
    best = {bridge_path: float("inf"), floor_path: float("inf")}
    ratios = []
    for _ in range(chunks):
        took = {}
        for fn, n in calls.items():
            start = time.perf_counter()
            for _ in range(n):
                fn(body)
            took[fn] = (time.perf_counter() - start) / n * 1e6
            best[fn] = min(best[fn], took[fn])
        ratios.append(took[floor_path] / took[bridge_path])
    return best[bridge_path], best[floor_path], statistics.median(ratios)


def run(quick: bool = False) -> Report:
    report = Report("codec")
    bodies = capture()
    chunks = 40 if quick else 400
    spread = []
    for users, body in bodies.items():
        assert bridge_path(body) == users, "captured body does not hold the expected users"
        ours_us, floor_us, median_ratio = measure(body, chunks)
        ratio = floor_us / ours_us
        spread.append(f"{users} user{'s' if users > 1 else ''} {median_ratio:.2f}")
        report.add(
            f"codec, {users} user{'s' if users > 1 else ''} per event ({len(body)} B)",
            f"{users * 1e6 / ours_us:,.0f} Presence/s ({1e6 / ours_us:,.0f} bodies/s, {ours_us:.1f} µs)",
            f"{1e6 / floor_us:,.0f} bodies/s lxml.etree.fromstring ({floor_us:.1f} µs)",
            f"{ratio:.2f}",
            "≥ 0.50",
            yes(ratio >= 0.5),
        )
    report.notes.append(
        f"codec: {chunks} alternating chunks of ~2 ms per path; a path's time per body is its fastest "
        "chunk (load from other jobs only adds time); ratio = bodies/s of the bridge path over bodies/s of "
        "the bare parse of the same bytes. Median ratio of adjacent chunk pairs, for the spread: "
        + ", ".join(spread)
    )
    # Where the time goes (bench/NOTES.md explains what can and cannot be cut).
    split = stages(bodies[5], 10 if quick else 60, 20)
    report.notes.append(
        "codec stages, 5-user body, minimum µs per body (cumulative): "
        + "; ".join(f"{name} {us:.1f}" for name, us in split)
    )
    return report


def main() -> None:
    args = cli(__doc__ or "")
    report = run(args.quick or args.smoke)  # quick is already short enough for a smoke run
    report.print()
    report.save(args.json)


if __name__ == "__main__":
    main()
