"""Benchmark 5 — the bridge against what a user would otherwise do: a naive interval poller.

One simulator (long-poll mode, as OCS runs), 100 watched users, one driver changing a random
user's availability every 0.5 s for the whole window. Side by side, in the same window and for the
same changes: the bridge (change → presence JSON at an MQTT subscriber) and two naive pollers that
run ``queryPresence`` for all 100 users every N seconds (N = 5, 30) on their own CWA sessions and
read the answers from the data channel (change → answer decoded). Reported: latency distribution,
changes never seen (overwritten before the next poll) and HTTP requests per minute to CWA.

    .venv/bin/python -m bench.poller [--quick] [--seconds 65]
"""

from __future__ import annotations

import json
import random
import tempfile
import threading
import time
from pathlib import Path

from bench.common import Probe, Report, cli, mosquitto, pct, yes
from bench.cwa_session import BareSession
from bench.harness import TimedBridge, config, uri, write
from bridge.cwa import codec
from bridge.cwa.events import UserPresenceEvent
from bridge.simulator import SimOptions, Simulator, load_users

WATCHED = 100
LEVELS = (3500, 6500, 9500, 12500, 15500, 4500, 7500)


class Changes:
    """Every change made: (uri, availability) → monotonic time, plus which ones were seen."""

    def __init__(self) -> None:
        self.made: dict[tuple[str, int], float] = {}
        self.count = 0
        self.lock = threading.Lock()

    def latency(self, key: tuple[str, int], now: float, seen: set[tuple[str, int]]) -> float | None:
        with self.lock:
            made = self.made.get(key)
        if made is None or key in seen:
            return None
        seen.add(key)
        return now - made


def driver(sim: Simulator, changes: Changes, stop: threading.Event, every_s: float) -> None:
    rng = random.Random(3)
    current = dict.fromkeys(range(2, WATCHED + 2), 3500)
    serial = 0
    while not stop.wait(every_s):
        n = rng.randrange(2, WATCHED + 2)
        serial += 1
        # a unique availability per change (same band as LEVELS), so each change is recognisable
        level = LEVELS[serial % len(LEVELS)] + serial % 400
        current[n] = level
        with changes.lock:
            changes.made[(uri(n), level)] = time.monotonic()
            changes.count += 1
        sim.set_presence(uri(n), availability=level)


def poller(  # noqa: PLR0917 - a thread target
    url: str, user: int, every_s: float, changes: Changes, stop: threading.Event, out: dict[str, object]
) -> None:
    session = BareSession(url, f"user{user:05d}@example.org")
    uris = [uri(i) for i in range(2, WATCHED + 2)]
    latencies: list[float] = []
    seen: set[tuple[str, int]] = set()
    next_at = time.monotonic()
    while not stop.is_set():
        if stop.wait(max(0.0, next_at - time.monotonic())):
            break
        next_at += every_s
        session.query(uris)
        pending = set(uris)
        deadline = time.monotonic() + 10
        while pending and time.monotonic() < deadline:
            body = session.poll()
            now = time.monotonic()
            for event in codec.decode_events(body).events:
                if isinstance(event, UserPresenceEvent):
                    for u in event.users:
                        pending.discard(u.uri)
                        availability = u.summary().availability
                        if availability is not None:
                            lat = changes.latency((u.uri, availability), now, seen)
                            if lat is not None:
                                latencies.append(lat)
    out["latencies"] = latencies
    out["seen"] = len(seen)
    out["requests"] = session.requests
    session.close()


def run(quick: bool = False, seconds: float = 65.0, smoke: bool = False) -> Report:
    seconds = 6.0 if smoke else min(seconds, 20.0) if quick else seconds
    report = Report("poller")
    options = SimOptions(long_poll=True, max_hold_s=25, poll_wait_ms=0, control=False)
    base = "benchpoll"
    with (
        tempfile.TemporaryDirectory() as tmp,
        mosquitto() as broker,
        Simulator(load_users(WATCHED + 10), options) as sim,
    ):
        timed = TimedBridge(write(Path(tmp) / "c.yaml", config(sim, broker, base, WATCHED)))
        timed.start()
        changes = Changes()
        bridge_lat: list[float] = []
        bridge_seen: set[tuple[str, int]] = set()

        def on_message(topic: str, payload: bytes, _retained: bool, now: float) -> None:
            if payload[:1] == b"{":
                data = json.loads(payload)
                if isinstance(data.get("availability"), int):
                    lat = changes.latency((data["uri"], data["availability"]), now, bridge_seen)
                    if lat is not None:
                        bridge_lat.append(lat)

        probe = Probe(broker, f"{base}/+", on_message)
        probe.keep = False
        stop = threading.Event()
        # A short run's window is too short for a 30 s poller to see anything: shorter periods then.
        results: dict[int, dict[str, object]] = {
            n: {} for n in ((1, 2) if smoke else (2, 5) if quick else (5, 30))
        }
        threads = [
            threading.Thread(
                target=poller, args=(sim.url, WATCHED + 2 + k, float(n), changes, stop, results[n])
            )
            for k, n in enumerate(results)
        ]
        requests0 = timed.requests
        for t in threads:
            t.start()
        drive = threading.Thread(target=driver, args=(sim, changes, stop, 0.5))
        started = time.monotonic()
        drive.start()
        stop.wait(seconds)
        stop.set()
        drive.join()
        for t in threads:
            t.join(15)
        minutes = (time.monotonic() - started) / 60
        bridge_requests = timed.requests - requests0
        time.sleep(0.5)
        probe.close()
        timed.stop()
    total = changes.count
    rows = [("bridge (long poll)", bridge_lat, len(bridge_seen), bridge_requests)]
    for n, r in results.items():
        lat = r.get("latencies", [])
        assert isinstance(lat, list)
        rows.append((f"naive poller N={n} s", lat, int(r.get("seen", 0)), int(r.get("requests", 0))))  # type: ignore[call-overload]
    bridge_p50 = pct(bridge_lat, 50)
    for name, lat, seen, requests in rows:
        report.add(
            f"vs poller: {name}: change → seen p50 / p95 / max",
            f"{pct(lat, 50):.3f} s / {pct(lat, 95):.3f} s / {max(lat, default=float('nan')):.3f} s",
            "bridge p50" if not name.startswith("bridge") else "",
            f"{pct(lat, 50) / bridge_p50:,.0f}x slower" if not name.startswith("bridge") else "",
            "p95 ≤ 0.1 s" if name.startswith("bridge") else "slower than the bridge",
            yes(pct(lat, 95) <= 0.1) if name.startswith("bridge") else yes(pct(lat, 50) > bridge_p50),
            notes=f"{seen}/{total} changes seen ({total - seen} overwritten unseen); "
            f"{requests / minutes:,.0f} CWA requests/min",
        )
    report.notes.append(
        f"poller: {seconds:.0f} s window, {total} changes (one every 0.5 s over {WATCHED} users); "
        "requests/min counts every HTTP request to CWA (logon excluded for the bridge; the bridge's "
        "held data-channel GETs are answered per event batch)"
    )
    return report


def main() -> None:
    args = cli(__doc__ or "", seconds=65.0)
    report = run(args.quick, args.seconds, args.smoke)
    report.print()
    report.save(args.json)


if __name__ == "__main__":
    main()
