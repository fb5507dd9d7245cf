"""Benchmark 4 — scale: 1,000 and 10,000 watched users, the real ``python -m bridge run`` process.

Against an immediate-mode simulator (pollWaitTime 1000 ms) in this process and a private
mosquitto. Measured: start of the process → every user's retained presence JSON present at a
subscriber; resident memory (RSS) after the sync; CPU of the bridge process over a window with 1 %
of the users changing per minute, and over a window with no change at all. The baseline of the
CPU figures is one core; the baseline of the sync time is the same users' presence held by the
simulator (no other figure can be had in the same run).

    .venv/bin/python -m bench.scale [--quick] [--window 20] [--users 10000]
"""

from __future__ import annotations

import signal
import tempfile
import threading
import time
from pathlib import Path

import psutil

from bench.common import Probe, Report, cli, mosquitto, yes
from bench.harness import config, spawn_bridge, uri, write
from bridge.simulator import SimOptions, Simulator, load_users

TARGETS = {10_000: (15.0, 150.0, 1.0)}  # sync s, RSS MB, idle CPU %


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


def one(users: int, window: float, broker: str, tmp: Path) -> dict[str, float]:
    base = f"benchscale{users}"
    options = SimOptions(long_poll=False, poll_wait_ms=1000, control=False)
    with Simulator(load_users(users + 1), options) as sim:
        cfg = config(sim, broker, base, users)
        cfg["homeassistant"]["discovery"] = True
        path = write(tmp / f"{base}.yaml", cfg)
        probe = Probe(broker, f"{base}/+")
        probe.keep = False

        def synced() -> bool:
            return sum(1 for t in probe.retained if t.startswith(f"{base}/user")) >= users

        started = time.monotonic()
        process = spawn_bridge(path, tmp / f"{base}.log")
        try:
            proc = psutil.Process(process.pid)
            if not probe.wait(synced, 120):
                tail = (tmp / f"{base}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{users} users: sync incomplete ({len(probe.retained)} topics)\n{tail}")
            sync_s = time.monotonic() - started
            time.sleep(2)  # let the start-up burst (discovery, attributes) settle before measuring
            rss_mb = proc.memory_info().rss / 1e6
            changes = max(1, round(users / 100 * window / 60))

            def change() -> None:
                for k in range(changes):
                    n = 2 + (k * 7919) % users
                    sim.set_presence(uri(n), availability=6500 if k % 2 == 0 else 9500)
                    time.sleep(window / changes * 0.9)

            busy = cpu_window(proc, window, threading.Thread(target=change))
            idle = cpu_window(proc, window)
            rss_after = proc.memory_info().rss / 1e6
            hwm_mb = peak_rss_mb(process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except Exception:
                process.kill()
            probe.close()
    return {
        "sync_s": sync_s,
        "rss_mb": max(rss_mb, rss_after),
        "hwm_mb": hwm_mb,
        "busy": busy,
        "idle": idle,
        "changes": changes,
    }


def run(quick: bool = False, window: float = 20.0, only: int = 0) -> Report:
    report = Report("scale")
    sizes = (only,) if only else (1_000,) if quick else (1_000, 10_000)
    window = min(window, 8.0) if quick else window
    with tempfile.TemporaryDirectory() as tmp, mosquitto() as broker:
        for users in sizes:
            r = one(users, window, broker, Path(tmp))
            t_sync, t_rss, t_idle = TARGETS.get(users, (None, None, None))
            report.add(
                f"scale {users:,} users: start → every retained presence present",
                f"{r['sync_s']:.1f} s",
                "",
                "",
                f"≤ {t_sync:.0f} s" if t_sync else "",
                yes(r["sync_s"] <= t_sync) if t_sync else "",
            )
            report.add(
                f"scale {users:,} users: resident memory (max of after sync / after windows)",
                f"{r['rss_mb']:.0f} MB (peak VmHWM {r['hwm_mb']:.0f} MB)",
                "",
                "",
                f"≤ {t_rss:.0f} MB" if t_rss else "",
                yes(r["rss_mb"] <= t_rss) if t_rss else "",
            )
            report.add(
                f"scale {users:,} users: CPU, 1 % of users changing per minute "
                f"({r['changes']:.0f} changes in {window:.0f} s)",
                f"{r['busy']:.2f} % of one core",
                "one core",
                f"{r['busy'] / 100:.4f}",
            )
            report.add(
                f"scale {users:,} users: CPU, nothing changes ({window:.0f} s)",
                f"{r['idle']:.2f} % of one core",
                "one core",
                f"{r['idle'] / 100:.4f}",
                f"≤ {t_idle:.0f} %" if t_idle else "",
                yes(r["idle"] <= t_idle) if t_idle else "",
            )
    report.notes.append(
        "scale: the bridge runs as its own process (`python -m bridge run`, output both, discovery on, "
        "log level warning); simulator and subscriber run in the bench process; pollWaitTime 1000 ms, "
        "so an idle bridge still makes one data-channel request per second"
    )
    return report


def main() -> None:
    args = cli(__doc__ or "", window=20.0, users=0)
    report = run(args.quick, args.window, args.users)
    report.print()
    report.save(args.json)


if __name__ == "__main__":
    main()
