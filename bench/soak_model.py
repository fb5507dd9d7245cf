"""What the soak observes and concludes: changes, samples, the verdicts, and the subscriber.

`SoakResult.problems` is the verdict (see `bench.soak`); `Subscriber` records, on the bridge's
own topics, the first arrival of every change's unique note, the latest state per user, and the
command responses by transaction.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bridge.simulator import Simulator

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


def sample(pid: int) -> Sample | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return Sample(time.monotonic(), int(fields["VmRSS"].split()[0]), int(fields["Threads"].strip()), fds)


def latencies(
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
