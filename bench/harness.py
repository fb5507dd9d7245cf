"""Running the real bridge against the simulator for the benchmarks: config, in-process `Bridge`
with timing hooks, or the real ``python -m bridge run`` process."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from bisect import bisect_right
from pathlib import Path
from typing import Any

import yaml

from bridge.app import Bridge
from bridge.config import load_settings
from bridge.simulator import Simulator

SELF = "sip:user00001@example.org"


def uri(i: int) -> str:
    return f"sip:user{i:05d}@example.org"


def ident(i: int) -> str:
    return f"user{i:05d}"


def config(sim: Simulator, broker_url: str, base: str, watched: int, **overrides: Any) -> dict[str, Any]:
    """Watch users 2 … watched+1 (ids ``userNNNNN``), signed in as user 1."""
    cfg: dict[str, Any] = {
        "cwa": {"url": sim.url, "username": SELF[4:], "password": "load", "uri": SELF, "timeout_s": 30},
        "watch": [{"uri": uri(i), "id": ident(i)} for i in range(2, watched + 2)],
        "mqtt": {"url": broker_url, "base_topic": base, "client_id": f"cwa2mqtt-{base}", "output": "both"},
        "homeassistant": {"prefix": f"{base}-ha", "status_topic": f"{base}-ha/status"},
        "http": {"listen": "127.0.0.1:0"},  # a free port: never clash with a bridge already running here
        "log": {"level": "warning"},
    }
    cfg.update(overrides)
    return cfg


def write(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


class TimedBridge:
    """An in-process `Bridge` observed through public seams only.

    ``responses``: monotonic times at which a data-channel response arrived (an httpx response
    event hook on the bridge's HTTP client: headers in; the small body follows in the same read).
    The bridge's own share of a change = that response → the presence message at a subscriber
    (`own_share`): an upper bound, as it includes the broker's forwarding to the subscriber. The
    bridge's histogram ``cwa2mqtt_event_to_publish_seconds`` (notice decoded → publish handed to
    paho) is read from its metrics registry (`histogram`, `last_event_to_publish`).
    """

    def __init__(self, cfg_path: Path) -> None:
        logging.getLogger("bridge").setLevel(logging.ERROR)
        self.bridge = Bridge(load_settings(cfg_path, env={}), backoff_scale=0.05)
        self.responses: list[float] = []
        self.requests = 0  # every HTTP request the bridge made to CWA
        self._lock = threading.Lock()
        data_path = self.bridge.settings.cwa.data_path

        def on_response(response: Any) -> None:
            now = time.monotonic()
            with self._lock:
                self.requests += 1
                if response.request.url.path == data_path:
                    self.responses.append(now)
                    if len(self.responses) > 10_000:  # bounded: only recent responses are looked up
                        del self.responses[:5_000]

        self.bridge.http_client.event_hooks["response"].append(on_response)

    def start(self, timeout: float = 30) -> None:
        self.bridge.start()
        if not self.bridge.wait_ready(timeout):
            raise RuntimeError("bridge not ready")

    def own_share(self, arrived: float, after: float) -> float | None:
        """The last data-channel response in ``[after, arrived]`` → ``arrived``; None if none."""
        with self._lock:
            i = bisect_right(self.responses, arrived)
            if i == 0 or self.responses[i - 1] < after:
                return None
            return arrived - self.responses[i - 1]

    def event_to_publish(self) -> tuple[float, float]:
        """(count, sum) of the bridge's ``cwa2mqtt_event_to_publish_seconds`` so far."""
        reg = self.bridge.metrics.registry
        count = reg.get_sample_value("cwa2mqtt_event_to_publish_seconds_count") or 0.0
        total = reg.get_sample_value("cwa2mqtt_event_to_publish_seconds_sum") or 0.0
        return count, total

    def histogram(self) -> tuple[float, float]:
        """(observations, share ≤ 5 ms) of the bridge's own ``cwa2mqtt_event_to_publish_seconds``."""
        reg = self.bridge.metrics.registry
        count = reg.get_sample_value("cwa2mqtt_event_to_publish_seconds_count") or 0.0
        le5 = reg.get_sample_value("cwa2mqtt_event_to_publish_seconds_bucket", {"le": "0.005"}) or 0.0
        return count, (le5 / count if count else float("nan"))

    def stop(self) -> None:
        self.bridge.stop()


def spawn_bridge(cfg_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CWA2MQTT_")}
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "bridge", "run", "--config", str(cfg_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
