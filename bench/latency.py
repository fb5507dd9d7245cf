"""Benchmark 3 — latency: simulator presence change → message at an MQTT subscriber.

The real bridge (in-process `bridge.app.Bridge`, output ``both``, discovery on) against the
simulator in long-poll mode (pollWaitTime 0, the server holds the GET) and in immediate mode
(pollWaitTime 500 ms, the server answers at once). One change at a time; end to end = the
monotonic time from `Simulator.set_presence` to the subscriber's receipt of the presence JSON.
The bridge's own share = data-channel response received (an httpx response event hook) → the
presence message at the subscriber: observed through public seams only, and an upper bound (the
broker's forwarding is in it). The bridge's own metric ``cwa2mqtt_event_to_publish_seconds``
(notice decoded → publish handed to paho) is read from its registry as well.

    .venv/bin/python -m bench.latency [--quick]
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path

from bench.common import Probe, Report, cli, mosquitto, ms, pct, yes
from bench.harness import TimedBridge, config, ident, uri, write
from bridge.simulator import SimOptions, Simulator, load_users

WATCHED = 10
CYCLE = ((6500, "busy"), (9500, "do_not_disturb"), (3500, "available"))


def measure(mode: str, samples: int, broker_url: str, tmp: Path) -> dict[str, object]:
    if mode == "long-poll":
        options = SimOptions(long_poll=True, max_hold_s=25, poll_wait_ms=0, control=False)
    else:
        options = SimOptions(long_poll=False, poll_wait_ms=500, control=False)
    base = f"benchlat{mode[:4]}"
    with Simulator(load_users(WATCHED + 1), options) as sim:
        cfg = write(tmp / f"{base}.yaml", config(sim, broker_url, base, WATCHED))
        timed = TimedBridge(cfg)
        timed.start()
        probe = Probe(broker_url, f"{base}/+")
        rng = random.Random(7)
        e2e: list[float] = []
        share: list[float] = []
        try:
            for k in range(samples):
                n = 2 + k % WATCHED
                availability, status = CYCLE[(k // WATCHED) % len(CYCLE)]
                topic = f"{base}/{ident(n)}"
                if mode != "long-poll":  # land anywhere in the poll cycle
                    time.sleep(rng.uniform(0, options.poll_wait_ms / 1000))
                start = time.monotonic()
                sim.set_presence(uri(n), availability=availability)

                def arrived(topic: str = topic, start: float = start, status: str = status) -> bool:
                    return any(
                        t >= start and top == topic and json.loads(p).get("status") == status
                        for t, top, p, _r in probe.messages[-20:]
                    )

                if not probe.wait(arrived, 10):
                    raise RuntimeError(f"{mode}: change {k} not delivered")
                got = next(
                    t
                    for t, top, p, _r in probe.messages[-20:]
                    if t >= start and top == topic and json.loads(p).get("status") == status
                )
                e2e.append(got - start)
                own = timed.own_share(got, start)
                if own is not None:
                    share.append(own)
                if len(probe.messages) > 1000:
                    del probe.messages[:-100]
            count, under5 = timed.histogram()
        finally:
            probe.close()
            timed.stop()
    return {"e2e": e2e, "share": share, "poll_wait_s": options.poll_wait_ms / 1000, "hist": (count, under5)}


def run(quick: bool = False, smoke: bool = False) -> Report:
    report = Report("latency")
    with tempfile.TemporaryDirectory() as tmp, mosquitto() as url:
        counts = (20, 5) if smoke else (60, 15) if quick else (300, 60)
        for mode, samples in zip(("long-poll", "immediate"), counts, strict=True):
            r = measure(mode, samples, url, Path(tmp))
            e2e, share = r["e2e"], r["share"]
            assert isinstance(e2e, list)
            assert isinstance(share, list)
            wait = float(r["poll_wait_s"])  # type: ignore[arg-type]
            count, under5 = r["hist"]  # type: ignore[misc]
            p99_share = pct(share, 99)
            bound = wait + max(share) if share else float("nan")
            report.add(
                f"latency {mode}: end to end p50 / p95 / p99 / max ({len(e2e)} changes)",
                f"{ms(pct(e2e, 50))} / {ms(pct(e2e, 95))} / {ms(pct(e2e, 99))} / {ms(max(e2e))}",
                f"pollWaitTime {wait * 1000:.0f} ms + max own share = {ms(bound)}",
                f"{max(e2e) / bound:.2f}" if bound else "",
                "max ≤ pollWaitTime + own share",
                yes(max(e2e) <= bound),
            )
            report.add(
                f"latency {mode}: bridge's own share p50 / p95 / p99 (response in → at the subscriber, "
                f"{len(share)} of {len(e2e)} changes)",
                f"{ms(pct(share, 50))} / {ms(pct(share, 95))} / {ms(pct(share, 99))}",
                f"end to end p50 {ms(pct(e2e, 50))}",
                f"{pct(share, 50) / pct(e2e, 50):.2f}",
                "p99 ≤ 5 ms",
                yes(p99_share <= 0.005 and len(share) == len(e2e)),
                f"bridge metric event_to_publish: {under5:.1%} of {count:.0f} observations ≤ 5 ms",
            )
    report.notes.append(
        "latency: end-to-end bound = pollWaitTime + the largest own share seen; in long-poll mode the "
        "simulator answers the held GET as soon as the change is queued"
    )
    return report


def main() -> None:
    args = cli(__doc__ or "")
    report = run(args.quick, args.smoke)
    report.print()
    report.save(args.json)


if __name__ == "__main__":
    main()
