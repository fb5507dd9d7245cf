"""Shared helpers of the benchmarks: result rows, percentiles, a private broker, a probe client.

Every benchmark module has a ``main()`` that prints its rows and, with ``--json PATH``, writes them
for `bench.run` to fold into ``bench/RESULTS.md``. A row is one figure measured in the same run as
its baseline, so the ratio is meaningful on a shared, noisy machine; absolute values are kept too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


@dataclass
class Row:
    """One line of the results table."""

    figure: str
    value: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    met: str = ""  # "yes", "no", or "" when the row is informational
    notes: str = ""


@dataclass
class Report:
    name: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *args: Any, **kwargs: Any) -> Row:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        return row

    def print(self) -> None:
        print(f"== {self.name}")
        for r in self.rows:
            extra = f"  baseline {r.baseline}  ratio {r.ratio}" if r.baseline else ""
            target = f"  target {r.target} met={r.met}" if r.target else ""
            print(f"  {r.figure}: {r.value}{extra}{target}")
        for note in self.notes:
            print(f"  note: {note}")

    def save(self, path: str | None) -> None:
        if path:
            data = {"name": self.name, "rows": [asdict(r) for r in self.rows], "notes": self.notes}
            Path(path).write_text(json.dumps(data, indent=1))


def cli(description: str, **extra: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", help="write the result rows to this file (used by bench.run)")
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--smoke", action="store_true", help="the shortest run that still measures (tests)")
    for name, default in extra.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    return parser.parse_args()


def yes(ok: bool) -> str:
    return "yes" if ok else "no"


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of ``values`` (p in 0..100); nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if not math.isnan(seconds) else "n/a"


def machine() -> dict[str, str]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model or platform.processor() or "unknown",
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


@contextmanager
def mosquitto() -> Iterator[str]:
    """A private mosquitto on a free loopback port; yields its ``mqtt://`` URL."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="cwa2mqtt-bench-") as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false", "log_dest none"]
        lines += ["max_queued_messages 0", "max_inflight_messages 0"]  # no broker-side limit in a bench
        if os.geteuid() == 0:
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:

            def up() -> bool:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        return True
                except OSError:
                    return False

            if not wait_until(up, 10, 0.02):
                raise RuntimeError("mosquitto did not start")
            yield f"mqtt://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


class Probe:
    """A subscriber that timestamps (monotonic) every message it receives."""

    def __init__(
        self, url: str, topic_filter: str, on_message: Callable[[str, bytes, bool, float], None] | None = None
    ) -> None:
        self.messages: list[tuple[float, str, bytes, bool]] = []
        self.count = 0
        self.retained: dict[str, bytes] = {}
        self.keep = True
        self._cond = threading.Condition()
        self.lock = self._cond  # held while a message is recorded
        self._hook = on_message
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-probe-{free_port()}")
        self.client.max_inflight_messages_set(0)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.connect("127.0.0.1", port_of(url))
        self.client.loop_start()
        self.client.subscribe(topic_filter, qos=1)
        if not subscribed.wait(10):
            raise RuntimeError("probe: no SUBACK")

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        now = time.monotonic()
        payload = bytes(msg.payload)
        if self._hook is not None:
            self._hook(msg.topic, payload, bool(msg.retain), now)
        with self._cond:
            self.count += 1
            if self.keep:
                self.messages.append((now, msg.topic, payload, bool(msg.retain)))
            if payload:
                self.retained[msg.topic] = payload
            else:
                self.retained.pop(msg.topic, None)
            self._cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class LoadSampler:
    """Samples the 1-minute load average in the background (reported next to the figures)."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._every = every_s
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self._every):
                return

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
