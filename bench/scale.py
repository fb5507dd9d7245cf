"""Benchmark 4 — scale: 1,000 and 10,000 watched users, the real ``python -m bridge run`` process.

Against an immediate-mode simulator (pollWaitTime 1000 ms) in this process and a private
mosquitto per discovery format (``component`` and ``device``), with a subscriber on ``#`` that
records every message. Measured:

- the start: process spawned → every user's retained presence present, and → the last message
  of the start's burst (the "sync"); what the start published (`bench.traffic`: messages that
  carry nothing new are counted as defects); the floor: bare paho publishing that exact message
  list (`bench.floor`, best of rounds) against the sync time;
- a batch: 1,000 changes delivered in one data-channel answer → their last presence message at
  the subscriber, against the floor publishing the messages the bridge published for them;
- resident memory after the sync; CPU over a window with 1 % of the users changing per minute and
  over a window with no change at all (baseline: one core).

    .venv/bin/python -m bench.scale [--quick|--smoke] [--window 20] [--users 10000]
"""

from __future__ import annotations

import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench.common import Probe, Report, cli, mosquitto, wait_until, yes
from bench.floor import paho_floor_seen
from bench.harness import config, ident, spawn_bridge, uri, write
from bench.traffic import Traffic, burst_end
from bridge.simulator import SimOptions, Simulator, load_users

TARGETS = {10_000: (15.0, 150.0, 1.0), 1_000: (3.0, 100.0, 1.0)}  # presence s, RSS MB, idle CPU %
BUSY_CPU_TARGET = 5.0  # % of one core with 1 % of the users changing per minute
FORMATS = ("component", "device")
FLOOR_ROUNDS = 3
QUIET_S = 3.0  # the start's burst has ended once nothing arrived for this long
BATCH_TRIES = 5
# pollWaitTime of the start and the batch. The client subscribes 2,500 users per data-channel
# answer, so a 10,000-user start waits ~4 polls. (100 ms was tried when the bench's own waits were
# O(n) per message: it stretched a start to 40-170 s; see bench/NOTES.md.)
POLL_WAIT_MS = 1000
IDLE_POLL_WAIT_MS = 1000  # the CPU windows (see `idle_polls`)


def cpu_window(proc: psutil.Process, seconds: float, work: threading.Thread | None = None) -> float:
    before = proc.cpu_times()
    start = time.monotonic()
    if work is not None:
        work.start()
    time.sleep(seconds)
    if work is not None:
        work.join()
    after = proc.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    return 100 * used / (time.monotonic() - start)


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's resident high-water mark (what the start-up burst cost at its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


def data_polls(sim: Simulator) -> int:
    return sum(n for k, n in sim.stats()["requests"].items() if "data" in str(k).lower())


class Seen:
    """What the subscriber has seen, updated per message (the probe's hook), so that what a wait
    asks is O(1): a predicate that scanned the recorded messages each time a message woke it made
    the bench, not the bridge, the bottleneck (90,000 messages of a 10,000-user start, each waking a
    scan of up to 90,000 topics: the start's sync timed out after 180 s on a quiet machine)."""

    def __init__(self, base: str) -> None:
        self._prefix = f"{base}/"
        self._cwa = f"{base}/bridge/cwa"
        self.presence: set[str] = set()  # <base>/user... topics holding a payload
        self.cwa_online = False  # <base>/bridge/cwa said online (reset by the caller)
        self.targets: frozenset[str] = frozenset()  # a batch's presence topics ...
        self.marker = b""  # ... and the note that marks its changes
        self.marked: set[str] = set()  # targets seen with the marker

    def __call__(self, topic: str, payload: bytes, _retain: bool, _at: float) -> None:
        if not topic.startswith(self._prefix):
            return
        if topic == self._cwa:
            self.cwa_online = payload == b"online"
        elif topic.count("/") == 1 and topic.startswith(f"{self._prefix}user"):
            if payload:
                self.presence.add(topic)
            else:
                self.presence.discard(topic)
            if self.marker and topic in self.targets and self.marker in payload:
                self.marked.add(topic)

    def expect(self, targets: set[str], marker: bytes) -> None:
        self.marked = set()
        self.targets = frozenset(targets)
        self.marker = marker


def idle_polls(sim: Simulator) -> None:
    """Switch the simulator to pollWaitTime `IDLE_POLL_WAIT_MS` (its "throttled" state, which only
    matters to commands otherwise, and none are sent) and wait until the bridge polls at that pace."""
    sim.faults.throttle(True, IDLE_POLL_WAIT_MS)
    for _ in range(2):  # the answer to the first poll after the switch carries the new wait
        before = data_polls(sim)
        if not wait_until(lambda b=before: data_polls(sim) > b, 10):  # type: ignore[misc]
            raise RuntimeError("idle: the bridge stopped polling")


def batch(sim: Simulator, probe: Probe, users: int, size: int, base: str, *, seen: Seen) -> dict[str, Any]:
    """``size`` changes queued between two polls (so one answer carries them all) → the last of
    their presence messages at the subscriber; the messages published for them."""
    for attempt in range(BATCH_TRIES):
        before = data_polls(sim)
        if not wait_until(lambda b=before: data_polls(sim) > b, 10):  # type: ignore[misc]
            raise RuntimeError("batch: the bridge stopped polling")
        polled = data_polls(sim)
        nonce = f"batch-{attempt}-{time.monotonic_ns()}"
        targets = {f"{base}/{ident(2 + (k * 7) % users)}" for k in range(size)}
        mark = len(probe.messages)
        marker = nonce.encode()
        seen.expect(targets, marker)
        for k in range(size):
            sim.set_presence(uri(2 + (k * 7) % users), availability=6500, note=nonce)
        if data_polls(sim) != polled:
            continue  # a poll came in the middle: the changes were split over two answers, again
        if not wait_until(lambda p=polled: data_polls(sim) > p, 10, 0.001):  # type: ignore[misc]
            raise RuntimeError("batch: no poll after the changes")
        answered = time.monotonic()

        def done(targets: set[str] = targets) -> bool:
            return len(seen.marked) >= len(targets)

        if not probe.wait(done, 60):
            raise RuntimeError("batch: not every change arrived")
        burst_end(probe, 1.0, 30)
        sent = [(t, p) for at, t, p, _r in probe.messages[mark:] if at >= answered]
        last = max(at for at, t, _p, _r in probe.messages[mark:] if t in targets)
        return {"took": last - answered, "sent": sent, "changes": len(targets)}
    raise RuntimeError(f"batch: {BATCH_TRIES} tries, every one split over two answers")


def one(  # noqa: PLR0917 - the knobs of one run
    users: int, fmt: str, window: float, tmp: Path, batch_size: int, quiet_s: float = QUIET_S
) -> dict[str, Any]:
    base = f"benchscale{users}{fmt[:3]}"
    options = SimOptions(long_poll=False, poll_wait_ms=POLL_WAIT_MS, control=False)
    with mosquitto() as broker, Simulator(load_users(users + 1), options) as sim:
        cfg = config(sim, broker, base, users)
        cfg["homeassistant"] |= {"discovery": True, "discovery_format": fmt}
        path = write(tmp / f"{base}.yaml", cfg)
        seen = Seen(base)
        probe = Probe(broker, "#", on_message=seen)

        def synced() -> bool:
            return len(seen.presence) >= users

        started = time.monotonic()
        process = spawn_bridge(path, tmp / f"{base}.log")
        try:
            proc = psutil.Process(process.pid)
            if not probe.wait(synced, 180):
                tail = (tmp / f"{base}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{users} users: sync incomplete ({len(probe.retained)} topics)\n{tail}")
            presence_s = time.monotonic() - started
            end = burst_end(probe, quiet_s, 120)
            sync_s = end - started
            start_msgs = [(t, p) for _at, t, p, _r in probe.messages]
            prefix = cfg["homeassistant"]["prefix"]
            traffic = Traffic.of(start_msgs, base, prefix)
            rss_mb = proc.memory_info().rss / 1e6
            floor_start = paho_floor_seen(broker, start_msgs, probe, FLOOR_ROUNDS)
            b = batch(sim, probe, users, batch_size, base, seen=seen)
            floor_batch = paho_floor_seen(broker, b["sent"], probe, FLOOR_ROUNDS)
            probe.keep = False
            probe.messages.clear()
            idle_polls(sim)
            changes = max(1, round(users / 100 * window / 60))

            def change() -> None:
                for k in range(changes):
                    sim.set_presence(uri(2 + (k * 7919) % users), availability=6500 if k % 2 == 0 else 9500)
                    time.sleep(window / changes * 0.9)

            busy = cpu_window(proc, window, threading.Thread(target=change))
            idle = cpu_window(proc, window)
            rss_after = proc.memory_info().rss / 1e6
            hwm_mb = peak_rss_mb(process.pid)
            stop(process)
            # A restart against the broker that holds this run's state: what carries news?
            sim.faults.throttle(False)
            with probe.lock:
                held = dict(probe.retained)
                probe.keep = True
                probe.messages.clear()
                seen.cwa_online = False  # the stop published offline; this is a fresh look
            process = spawn_bridge(path, tmp / f"{base}-restart.log")
            # The start's read-back of a 10,000-user state is a quiet spell: wait for the service.
            if not probe.wait(lambda: seen.cwa_online, 120):
                raise RuntimeError("restart: bridge/cwa never came online")
            burst_end(probe, quiet_s, 120)
            restart = Traffic.of([(t, p) for _at, t, p, _r in probe.messages], base, prefix, held)
        finally:
            stop(process)
            probe.close()
    return {
        "presence_s": presence_s,
        "sync_s": sync_s,
        "floor_start": floor_start,
        "traffic": traffic,
        "batch": b,
        "floor_batch": floor_batch,
        "rss_mb": max(rss_mb, rss_after),
        "hwm_mb": hwm_mb,
        "busy": busy,
        "idle": idle,
        "changes": changes,
        "restart": restart,
    }


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def rows(report: Report, users: int, fmt: str, r: dict[str, Any], window: float) -> None:
    t_sync, t_rss, t_idle = TARGETS.get(users, TARGETS[1_000])
    tr: Traffic = r["traffic"]
    label = f"scale {users:,} users, {fmt} discovery"
    report.add(
        f"{label}: start → every retained presence present",
        f"{r['presence_s']:.1f} s",
        "",
        "",
        f"≤ {t_sync:.0f} s",
        yes(r["presence_s"] <= t_sync),
    )
    ratio = r["floor_start"] / r["sync_s"]
    report.add(
        f"{label}: sync (start → last message of the start, {tr.total:,} messages)",
        f"{r['sync_s']:.1f} s",
        f"{r['floor_start']:.1f} s: bare paho, the same {tr.total:,} messages",
        f"{ratio:.2f}",
        "≥ 0.70",
        yes(ratio >= 0.7),
    )
    report.add(
        f"{label}: messages of the start that carry nothing new",
        f"{tr.noop}",
        f"{tr.total:,} messages",
        f"{tr.noop / tr.total:.3f}" if tr.total else "",
        "0",
        yes(tr.noop == 0),
        tr.describe(),
    )
    rs: Traffic = r["restart"]
    report.add(
        f"{label}: a restart (same broker): messages that carry nothing new",
        f"{rs.noop:,}",
        f"{rs.total:,} messages",
        f"{rs.noop / rs.total:.3f}" if rs.total else "",
        "0",
        yes(rs.noop == 0),
        rs.describe(),
    )
    b = r["batch"]
    ratio = r["floor_batch"] / b["took"] if b["took"] > 0 else float("nan")
    report.add(
        f"{label}: {b['changes']:,} changes in one CWA answer → their last presence message",
        f"{b['took'] * 1000:.0f} ms ({len(b['sent']):,} messages)",
        f"{r['floor_batch'] * 1000:.0f} ms: bare paho, the same messages",
        f"{ratio:.2f}",
        "≥ 0.50",
        yes(ratio >= 0.5),
    )
    report.add(
        f"{label}: resident memory (max of after sync / after windows)",
        f"{r['rss_mb']:.0f} MB (peak VmHWM {r['hwm_mb']:.0f} MB)",
        "",
        "",
        f"≤ {t_rss:.0f} MB",
        yes(r["rss_mb"] <= t_rss),
    )
    report.add(
        f"{label}: CPU, 1 % of users changing per minute ({r['changes']:.0f} changes in {window:.0f} s)",
        f"{r['busy']:.2f} % of one core",
        "one core",
        f"{r['busy'] / 100:.4f}",
        f"≤ {BUSY_CPU_TARGET:.0f} %",
        yes(r["busy"] <= BUSY_CPU_TARGET),
    )
    report.add(
        f"{label}: CPU, nothing changes ({window:.0f} s)",
        f"{r['idle']:.2f} % of one core",
        "one core",
        f"{r['idle'] / 100:.4f}",
        f"≤ {t_idle:.0f} %",
        yes(r["idle"] <= t_idle),
    )


def run(quick: bool = False, window: float = 20.0, only: int = 0, smoke: bool = False) -> Report:
    report = Report("scale")
    sizes = (only,) if only else (100,) if smoke else (1_000,) if quick else (1_000, 10_000)
    window = 1.0 if smoke else min(window, 8.0) if quick else window
    with tempfile.TemporaryDirectory() as tmp:
        for users in sizes:
            for fmt in FORMATS:
                r = one(users, fmt, window, Path(tmp), min(1_000, users // 2), 1.0 if smoke else QUIET_S)
                rows(report, users, fmt, r, window)
    report.notes.append(
        "scale: the bridge runs as its own process (`python -m bridge run`, output both, discovery "
        "on, log level warning); simulator and subscriber (on `#`) run in the bench process, one "
        "private mosquitto per discovery format; pollWaitTime 1000 ms, so an idle bridge still makes "
        "one data-channel request per second, and a 10,000-user start (the client subscribes 2,500 "
        "users per data-channel answer) waits ~4 polls. Sync ratio = bare paho's time for the "
        f"start's exact message list (best of {FLOOR_ROUNDS}, pipelined, bench/floor.py) / the "
        "bridge's sync time, which includes the process start, the CWA sign-in and the read-back "
        "of retained state; both are timed to the last message at the same subscriber (the "
        "bridge's PUBACKs are in another process), so both include that subscriber's lag. Batch: "
        "the changes are made between two polls, so one data-channel answer carries them all; "
        "measured from that poll to their last presence message at the subscriber, against bare "
        "paho's first publish → last message there. Restart: the same bridge started again against "
        "the broker its first run left, counted until bridge/cwa is online and 3 s passed quietly"
    )
    return report


def main() -> None:
    args = cli(__doc__ or "", window=20.0, users=0)
    report = run(args.quick, args.window, args.users, args.smoke)
    report.print()
    report.save(args.json)


if __name__ == "__main__":
    main()
