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

import paho.mqtt.client as paho
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
        "log": {"level": "warning"},
    }
    cfg.update(overrides)
    return cfg


def write(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


class TimedBridge:
    """An in-process `Bridge` whose data-channel responses and presence PUBACKs are timestamped.

    ``responses``: monotonic times at which a data-channel response arrived (httpx response hook,
    i.e. headers in; the small body follows in the same read). ``acks``: topic → list of
    (publish call time, PUBACK time) for presence JSON topics. The hooks sit outside the bridge's
    code paths: they only observe.
    """

    def __init__(self, cfg_path: Path) -> None:
        logging.getLogger("bridge").setLevel(logging.ERROR)
        self.bridge = Bridge(load_settings(cfg_path, env={}), backoff_scale=0.05)
        self.responses: list[float] = []
        self.requests = 0  # every HTTP request the bridge made to CWA
        self.calls: dict[int, tuple[str, float]] = {}
        self.acks: dict[str, list[tuple[float, float]]] = {}
        self._lock = threading.Lock()
        data_path = self.bridge.settings.cwa.data_path
        base = self.bridge.settings.mqtt.base_topic

        def on_response(response: Any) -> None:
            self.requests += 1
            if response.request.url.path == data_path:
                self.responses.append(time.monotonic())

        self.bridge.http_client.event_hooks["response"].append(on_response)
        publisher = self.bridge.publisher
        original_publish = publisher._publish
        original_new_client = publisher._new_client
        presence_depth = base.count("/") + 1

        def publish(topic: str, data: bytes, retain: bool, qos: int) -> paho.MQTTMessageInfo | None:
            called = time.monotonic()
            info = original_publish(topic, data, retain, qos)
            if info is not None and topic.count("/") == presence_depth and topic.startswith(base + "/"):
                with self._lock:
                    self.calls[info.mid] = (topic, called)
            return info

        def on_publish(_c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
            now = time.monotonic()
            with self._lock:
                call = self.calls.pop(mid, None)
                if call is not None:
                    self.acks.setdefault(call[0], []).append((call[1], now))

        def new_client() -> paho.Client:
            client = original_new_client()
            client.on_publish = on_publish
            return client

        publisher._publish = publish  # type: ignore[method-assign]
        publisher._new_client = new_client  # type: ignore[method-assign]

    def start(self, timeout: float = 30) -> None:
        self.bridge.start()
        if not self.bridge.wait_ready(timeout):
            raise RuntimeError("bridge not ready")

    def own_share(self, topic: str, after: float) -> float | None:
        """Data-channel response in → PUBACK of the first presence publish on ``topic`` after ``after``."""
        with self._lock:
            pairs = [p for p in self.acks.get(topic, []) if p[0] >= after]
        if not pairs:
            return None
        called, acked = pairs[0]
        responses = self.responses
        i = bisect_right(responses, called)
        if i == 0:
            return None
        return acked - responses[i - 1]

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
