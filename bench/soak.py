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
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from bench.soak_faults import COMMAND_TIMEOUT_S, HOLD_S, POLL_TIMEOUT_S, Faults, proxy_for
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
RSS_TOLERANCE_KB, RSS_TOLERANCE = 8 * 1024, 0.10
THREADS_TOLERANCE, FDS_TOLERANCE = 2, 4


@dataclass
class Change:
    seq: int
    ident: str
    uri: str
    note: str
    at: float
    excusable: bool = False


@dataclass(frozen=True)
class Sample:
    t: float
    rss_kb: int
    threads: int
    fds: int


@dataclass
class SoakResult:
    duration_s: float
    changes: list[Change]
    arrivals: dict[str, float]
    faults: list[tuple[float, str]]
    samples: list[Sample]
    disturbed: list[tuple[float, float]]
    commands_sent: int
    commands_answered: int
    bad_commands_rejected: int
    bad_commands_sent: int
    own_status_ok: bool
    converged: bool
    process_alive: bool
    tracebacks: int
    secret_leaks: int
    quiet_latencies: list[float] = field(default_factory=list)
    all_latencies: list[float] = field(default_factory=list)

    @property
    def lost(self) -> list[Change]:
        return [c for c in self.changes if not c.excusable and c.note not in self.arrivals]

    @property
    def excused_missing(self) -> int:
        return sum(1 for c in self.changes if c.excusable and c.note not in self.arrivals)

    def flatness(self) -> dict[str, tuple[float, float, bool]]:
        """(warm-up figure, tail figure, flat?) for rss_kb, threads and fds."""
        n = len(self.samples)
        k = max(3, int(n * 0.3))
        warm, tail = self.samples[:k], self.samples[-k:]
        rss_base = max(s.rss_kb for s in warm)
        rss_tail = statistics.median(s.rss_kb for s in tail)
        thr_base, thr_tail = max(s.threads for s in warm), max(s.threads for s in tail)
        fd_base, fd_tail = max(s.fds for s in warm), max(s.fds for s in tail)
        rss_limit = rss_base + max(RSS_TOLERANCE_KB, rss_base * RSS_TOLERANCE)
        return {
            "rss_kb": (rss_base, rss_tail, rss_tail <= rss_limit),
            "threads": (thr_base, thr_tail, thr_tail <= thr_base + THREADS_TOLERANCE),
            "fds": (fd_base, fd_tail, fd_tail <= fd_base + FDS_TOLERANCE),
        }

    def problems(self) -> list[str]:
        found: list[str] = []
        if not self.process_alive:
            found.append("the bridge process died")
        if self.lost:
            found.append(f"{len(self.lost)} changes lost outside disruptive windows: {self.lost[:5]}")
        if not self.converged:
            found.append("retained state did not converge to the simulator's truth")
        if self.commands_answered != self.commands_sent:
            found.append(f"{self.commands_sent - self.commands_answered} commands unanswered")
        if self.bad_commands_rejected != self.bad_commands_sent:
            found.append("an invalid command was not rejected")
        if not self.own_status_ok:
            found.append("CWA does not hold the last commanded own status")
        if self.tracebacks:
            found.append(f"{self.tracebacks} tracebacks in the output")
        if self.secret_leaks:
            found.append("a password appeared in the output")
        for name, (base, tail, flat) in self.flatness().items():
            if not flat:
                found.append(f"{name} not flat: warm-up {base}, tail {tail}")
        return found


class Subscriber:
    """Records the first arrival time of every note on the watched users' presence topics."""

    def __init__(self, broker_url: str, base: str, ids: set[str]) -> None:
        self.base, self.ids = base, ids
        self.arrivals: dict[str, float] = {}
        self.latest: dict[str, dict[str, Any]] = {}
        self.retained_cwa: bytes | None = None
        self.responses: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        parts = urlsplit(broker_url)
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"soak-{os.getpid()}-{base}")
        self.client.on_message = self._on_message
        connected = threading.Event()
        self.client.on_connect = lambda *_a: connected.set()
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, keepalive=30)
        self.client.loop_start()
        if not connected.wait(10):
            raise RuntimeError("soak subscriber could not connect")
        self.client.subscribe(f"{base}/#", qos=1)

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        now = time.monotonic()
        topic = msg.topic[len(self.base) + 1 :]
        with self._lock:
            if topic in self.ids and msg.payload:
                data = json.loads(msg.payload)
                self.latest[topic] = data
                note = data.get("note")
                if isinstance(note, str):
                    self.arrivals.setdefault(note, now)
            elif topic == "bridge/cwa":
                self.retained_cwa = bytes(msg.payload)
            elif topic.startswith("bridge/response/") and msg.payload:
                answer = json.loads(msg.payload)
                if isinstance(answer.get("transaction"), str):
                    self.responses[answer["transaction"]] = answer

    def seen(self, note: str) -> bool:
        with self._lock:
            return note in self.arrivals

    def matches(self, sim: Simulator, users: dict[str, str]) -> bool:
        with self._lock:
            for ident, uri in users.items():
                seen, truth = self.latest.get(ident), sim.truth(uri)
                if seen is None or (seen["note"], seen["availability"]) != (truth.note, truth.availability):
                    return False
            return self.retained_cwa == b"online"

    def publish(self, topic: str, payload: str) -> None:
        self.client.publish(f"{self.base}/{topic}", payload, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _sample(pid: int) -> Sample | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return Sample(time.monotonic(), int(fields["VmRSS"].split()[0]), int(fields["Threads"].strip()), fds)


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
            sample = _sample(proc.pid)
            if sample is not None:
                samples.append(sample)
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
    quiet, every = _latencies(changes, sub.arrivals, disturbed)
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


def _latencies(
    changes: list[Change], arrivals: dict[str, float], disturbed: list[tuple[float, float]]
) -> tuple[list[float], list[float]]:
    """Latencies of every arrived change, and of the quiet ones (made outside every disturbed span:
    an injection plus QUIET_S, or a disruptive window until it closed plus QUIET_S)."""
    quiet, every = [], []
    for c in changes:
        if c.note not in arrivals:
            continue
        latency = arrivals[c.note] - c.at
        every.append(latency)
        if not any(begin <= c.at < end for begin, end in disturbed):
            quiet.append(latency)
    return quiet, every


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
