"""Soak run: the real `cwa2mqtt run` process under sustained churn, faults and commands.

For ``--minutes N`` the simulator changes one watched user's presence every ``--interval`` seconds
(each change carries a unique note), injects a fault every ``--fault-every`` seconds (alternating a
*lossless* fault and a *disruptive* one, `bench.soak_faults`: lossless ones -- drop, 503,
malformed, hostile, oversized, slow, and from the fault-injecting proxy between bridge and
simulator trickle, stall, black hole and reset on the data and the command channel -- leave the
events queued, so every change still arrives; disruptive ones -- expired tickets, killed sessions,
a server restart, throttling, a burst of mutated bodies -- start a new session, which delivers
current state only, so intermediate changes may be skipped), and sends MQTT commands (valid and
invalid ``self/set``, ``health_check``). Meanwhile it samples the process's RSS, threads and open
file descriptors.

Verdicts:
- no event lost: every change made outside a disruptive window arrives on MQTT (its unique note);
  a disruptive window lasts from 1 s before the injection until a marker change made after the
  fault has ended arrives; at the end every watched user's retained state equals the simulator's;
- every command answered (by transaction), invalid ones with an error, and the last commanded own
  status is what CWA holds at the end;
- memory, threads and fds flat: the tail of the run (last 30 % of samples) against the warm-up
  (first 30 %), with tolerances (RSS: max(8 MiB, 10 %), threads: +2, fds: +4); the report adds
  the least-squares RSS slope of the last 40 minutes (of the last two thirds in a shorter run);
- latency (informational): set_presence → presence JSON at a subscriber, for changes made in quiet
  periods (not from 1 s before a fault until 3 s after it, or after a disruptive window closed)
  and overall.

    .venv/bin/python -m bench.soak --minutes 60          # writes bench/SOAK.md
    .venv/bin/python -m bench.soak --minutes 0.5 --out -  # print only
    .venv/bin/python -m bench.soak --minutes 10 --tracemalloc /tmp/tm --out -  # what grows

`tests/test_soak.py` runs `run_soak` for ~25 s with the same checks.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from bench.soak_faults import COMMAND_TIMEOUT_S, HOLD_S, POLL_TIMEOUT_S, Faults, proxy_for
from bench.soak_model import Change, Sample, SoakResult, Subscriber, latencies, sample
from bench.soak_report import report
from bench.traced import diff
from bridge.simulator import SimOptions, Simulator, SimUser

SELF = SimUser(uri="sip:soak-self@example.org", username="EXAMPLE\\soak", password="S0ak-pa55!", name="Soak")
WATCHED = {f"w{i}": f"sip:soak{i}@example.org" for i in range(8)}
MARKER = ("marker", "sip:soak-marker@example.org")
AVAILABILITIES = (3500, 6500, 9500, 12500, 15500)
SETTABLE = ("available", "busy", "do_not_disturb", "be_right_back", "away")
TRACE_EVERY_S = 60.0  # tracemalloc snapshots of a traced run
QUIET_S = 3.0  # a change this long after a fault (or a disruptive window's end) is "quiet" for latency
EXCUSE_BEFORE_S = 1.0  # a change made this shortly before a disruptive fault may still be in flight


def _until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


@contextmanager
def _bridge_process(
    config: dict[str, Any], workdir: Path, traced: Path | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    cfg = workdir / "soak.yaml"
    cfg.write_text(yaml.safe_dump(config))
    log_path = workdir / "soak-bridge.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CWA2MQTT_")}
    if traced is not None:  # the wrapper lives in bench/, outside the installed package
        env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    runner = ["-m", "bridge"] if traced is None else ["-m", "bench.traced", str(traced), str(TRACE_EVERY_S)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, *runner, "run", "-c", str(cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=workdir,
        )
        try:
            yield proc, log_path
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


def run_soak(
    broker_url: str,
    duration_s: float,
    *,
    interval_s: float = 0.1,
    fault_every_s: float = 5.0,
    command_every_s: float = 1.0,
    sample_every_s: float = 1.0,
    seed: int = 7,
    base: str | None = None,
    workdir: Path | None = None,
    stalls: bool = True,
    tracemalloc_dir: Path | None = None,
) -> SoakResult:
    rng = random.Random(seed)
    base = base or f"soak{os.getpid()}{rng.randrange(10**6)}"
    users = [SELF, *(SimUser(uri=u, name=i, availability=3500) for i, u in [*WATCHED.items(), MARKER])]
    everyone = {**WATCHED, MARKER[0]: MARKER[1]}
    options = SimOptions(poll_wait_ms=50, session_timeout_ms=20_000, control=False)
    with Simulator(users, options) as sim, tempfile.TemporaryDirectory(prefix="cwa2mqtt-soak-") as tmp:
        work = workdir or Path(tmp)
        proxy = proxy_for(sim) if stalls else None
        cwa: dict[str, Any] = {"username": SELF.username, "password": SELF.password, "uri": SELF.uri}
        cwa |= {"url": proxy.url if proxy else sim.url, "poll_timeout_s": POLL_TIMEOUT_S}
        cwa |= {"timeout_s": COMMAND_TIMEOUT_S}
        config = {
            "cwa": cwa,
            "watch": [{"uri": u, "id": i} for i, u in everyone.items()],
            "mqtt": {"url": broker_url, "base_topic": base, "client_id": f"cwa2mqtt-{base}"},
            "homeassistant": {"prefix": f"{base}-ha", "status_topic": f"{base}-ha/status"},
            "http": {"listen": "127.0.0.1:0"},
            "log": {"level": "info"},
        }
        subscriber = Subscriber(broker_url, base, set(everyone))
        try:
            with _bridge_process(config, work, tracemalloc_dir) as (proc, log_path):
                return _drive(
                    sim,
                    Faults(sim, proxy, rng),  # bound to the rng before the run draws from it
                    proc,
                    log_path,
                    subscriber,
                    everyone,
                    rng=rng,
                    duration_s=duration_s,
                    interval_s=interval_s,
                    fault_every_s=fault_every_s,
                    command_every_s=command_every_s,
                    sample_every_s=sample_every_s,
                )
        finally:
            subscriber.close()
            if proxy is not None:
                proxy.stop()


def _drive(  # noqa: PLR0917 - the simulator, the process and its observers
    sim: Simulator,
    injector: Faults,
    proc: subprocess.Popen[bytes],
    log_path: Path,
    sub: Subscriber,
    everyone: dict[str, str],
    *,
    rng: random.Random,
    duration_s: float,
    interval_s: float,
    fault_every_s: float,
    command_every_s: float,
    sample_every_s: float,
) -> SoakResult:
    if not _until(lambda: b"bridge.ready" in log_path.read_bytes() or proc.poll() is not None, 30):
        raise RuntimeError("the bridge did not become ready")
    if not _until(lambda: sub.matches(sim, everyone), 15):
        raise RuntimeError(f"the bridge did not bridge the initial state:\n{log_path.read_text()[-3000:]}")
    lossless, disruptive = injector.lossless, injector.disruptive
    changes: list[Change] = []
    faults: list[tuple[float, str]] = []
    samples: list[Sample] = []
    sent: list[str] = []
    bad: list[str] = []
    last_status = ""
    window: dict[str, Any] | None = None  # the open disruptive window
    disturbed: list[tuple[float, float]] = []  # monotonic spans when latency is not "quiet"
    seq = n_fault = n_cmd = 0
    start = time.monotonic()
    next_change = next_fault = start
    next_fault += fault_every_s / 2
    next_cmd = next_sample = start
    while (now := time.monotonic()) - start < duration_s or window is not None:
        if now - start > duration_s + 60:
            break  # a window that never closes is reported as non-convergence below
        if now >= next_sample:
            taken = sample(proc.pid)
            if taken is not None:
                samples.append(taken)
            next_sample += sample_every_s
        if now >= next_change and now - start < duration_s:
            seq += 1
            ident = rng.choice(list(WATCHED))
            note = f"soak-{seq}"
            sim.set_presence(WATCHED[ident], availability=rng.choice(AVAILABILITIES), note=note)
            changes.append(Change(seq, ident, WATCHED[ident], note, time.monotonic(), window is not None))
            next_change += interval_s
        if now >= next_cmd and now - start < duration_s:
            n_cmd += 1
            if n_cmd % 4 == 0:
                transaction = f"bad-{n_cmd}"
                bad.append(transaction)
                sub.publish("self/set", json.dumps({"status": "lunch", "transaction": transaction}))
            elif n_cmd % 4 == 2:
                transaction = f"health-{n_cmd}"
                sub.publish("bridge/request/health_check", json.dumps({"transaction": transaction}))
            else:
                transaction = f"cmd-{n_cmd}"
                last_status = SETTABLE[n_cmd % len(SETTABLE)]
                sub.publish("self/set", json.dumps({"status": last_status, "transaction": transaction}))
            sent.append(transaction)
            next_cmd += command_every_s
        injector.tick()
        if now >= next_fault and window is None and not injector.holding and now - start < duration_s:
            n_fault += 1
            if n_fault % 2:
                name, inject = lossless[(n_fault // 2) % len(lossless)]
            else:
                name, inject = disruptive[(n_fault // 2 - 1) % len(disruptive)]
            inject()
            faults.append((time.monotonic() - start, name))
            # A change made shortly before is still in flight: its poll may be the one that fails.
            # A held proxy fault disturbs until it is lifted and the abandoned poll's deadline passed.
            held = HOLD_S + POLL_TIMEOUT_S if injector.holding else 0.0
            disturbed.append((time.monotonic() - EXCUSE_BEFORE_S, time.monotonic() + held + QUIET_S))
            if n_fault % 2 == 0:
                at = time.monotonic()
                for change in changes:
                    if change.at >= at - EXCUSE_BEFORE_S:
                        change.excusable = True
                window = {"name": name, "at": at, "marker": None}
            next_fault += fault_every_s
        if window is not None:
            at = window["at"]
            window = _advance_window(window, sim, sub)
            if window is None:
                disturbed.append((at, time.monotonic() + QUIET_S))
        time.sleep(0.01)
    # Drain: every change outside a window arrives, and the retained state converges.
    sim.faults.throttle(False)
    injector.lift_all()
    _until(lambda: all(sub.seen(c.note) for c in changes if not c.excusable), 20)
    converged = _until(lambda: sub.matches(sim, everyone), 20)
    _until(lambda: all(t in sub.responses for t in sent), 20)
    own_ok = _until(lambda: not last_status or sim.truth(SELF.uri).status.value == last_status, 20)
    output = log_path.read_text(errors="replace")
    quiet, every = latencies(changes, sub.arrivals, disturbed)
    return SoakResult(
        duration_s=time.monotonic() - start,
        changes=changes,
        arrivals=dict(sub.arrivals),
        faults=faults,
        samples=samples,
        disturbed=disturbed,
        commands_sent=len(sent),
        commands_answered=sum(1 for t in sent if t in sub.responses),
        bad_commands_sent=len(bad),
        bad_commands_rejected=sum(1 for t in bad if sub.responses.get(t, {}).get("status") == "error"),
        own_status_ok=own_ok,
        converged=converged,
        process_alive=proc.poll() is None,
        tracebacks=output.count("Traceback"),
        secret_leaks=output.count(SELF.password or "\0"),
        quiet_latencies=quiet,
        all_latencies=every,
    )


def _advance_window(window: dict[str, Any], sim: Simulator, sub: Subscriber) -> dict[str, Any] | None:
    """Close a disruptive window once a marker change made after the fault ended has arrived."""
    if window["name"] == "throttle" and time.monotonic() - window["at"] >= 2.0:
        sim.faults.throttle(False)
        window["name"] = "throttle-off"
    fault_over = window["name"] != "throttle" and not sim.stats().get("faults_pending")
    marker = window["marker"]
    if marker is None and fault_over:
        note = f"marker-{time.monotonic_ns()}"
        sim.set_presence(MARKER[1], availability=3500, note=note)
        window["marker"] = (note, time.monotonic())
    elif marker is not None and sub.seen(marker[0]):
        return None  # changes made from now on must arrive
    elif marker is not None and time.monotonic() - marker[1] > 5.0:
        window["marker"] = None  # the marker itself fell into the outage: send another
    return window


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=str(Path(__file__).with_name("SOAK.md")), help="'-' prints only")
    parser.add_argument("--mqtt-url", default=None, help="use this broker instead of a private mosquitto")
    parser.add_argument("--tracemalloc", default=None, help="run the bridge traced, snapshots in this dir")
    args = parser.parse_args()
    traced = Path(args.tracemalloc) if args.tracemalloc else None
    if args.mqtt_url:
        result = run_soak(args.mqtt_url, args.minutes * 60, seed=args.seed, tracemalloc_dir=traced)
    else:
        from bench.common import mosquitto

        with mosquitto() as url:
            result = run_soak(url, args.minutes * 60, seed=args.seed, tracemalloc_dir=traced)
    grew = None
    if traced is not None:
        snaps = sorted(traced.glob("snap-*.tm"))
        if len(snaps) >= 2:
            # The first snapshot is taken after one TRACE_EVERY_S: start-up is over by then.
            grew = diff(snaps[0], snaps[-1])
    text = report(result, args.minutes, args.seed, grew)
    print(text)
    if args.out != "-":
        Path(args.out).write_text(text)
    return 0 if not result.problems() else 1


if __name__ == "__main__":
    raise SystemExit(main())
