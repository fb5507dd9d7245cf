"""Benchmark 2 — pipeline: presence notices → presence store → MQTT publishes acknowledged (QoS 1).

The bridge's own `bridge.service.Service` (output ``both``, discovery on) with a real
`MqttPublisher` to a private mosquitto is fed `UserNotice`s (what the CWA client hands over after
decoding) for 100 users, each a real change (status, activity or note moves), so every update
publishes the JSON and at least one attribute topic. The clock stops when every publish made is
acknowledged (PUBACK). Baseline: one plain paho client publishing the very same (topic, payload)
list, retained at QoS 1, to the same broker, until every PUBACK is in. Runs alternate.

    .venv/bin/python -m bench.pipeline [--quick] [--updates 1500]
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import Report, cli, mosquitto, port_of, wait_until, yes
from bridge.cwa.messages import PresenceSummary
from bridge.cwa.notices import SessionNotice, UserNotice
from bridge.metrics import Metrics
from bridge.mqtt.publisher import MqttPublisher
from bridge.mqtt.settings import MqttSettings
from bridge.presence import Note, Status
from bridge.service import Service, ServiceOptions, WatchSpec

USERS = 100
STATES = (
    (3500, None, None),
    (6500, "in-a-meeting", None),
    (6500, "in-a-meeting", "Back at 3"),
    (9500, None, "Focus"),
)


class FakeCwa:
    state = "online"

    def set_watched(self, uris: Sequence[str]) -> None:
        pass

    def refresh(self, uri: str | None = None) -> None:
        pass

    def publish_self(self, status: Status | None = None, note: str | None = None) -> Any:
        return None


class CountingPublisher(MqttPublisher):
    """Keeps the paho message info of every publish so the bench can wait for all PUBACKs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.infos: list[paho.MQTTMessageInfo] = []
        self.sent: list[tuple[str, bytes]] = []
        self.recording = False

    def _publish(self, topic: str, data: bytes, retain: bool, qos: int) -> paho.MQTTMessageInfo | None:
        info = super()._publish(topic, data, retain, qos)
        if self.recording:
            self.sent.append((topic, data))
            if info is not None:
                self.infos.append(info)
        return info


def notices(updates: int, offset: int) -> list[UserNotice]:
    out = []
    for i in range(updates):
        user = i % USERS
        availability, activity, note = STATES[(i // USERS + offset) % len(STATES)]
        notes = (Note("personal", note),) if note else ()
        summary = PresenceSummary(availability, activity, notes, f"User {user:05d}", None)
        out.append(UserNotice(f"sip:user{user:05d}@example.org", summary))
    return out


def all_acked(infos: list[paho.MQTTMessageInfo]) -> bool:
    return all(info.is_published() for info in infos)


def run_bridge(
    url: str, base: str, updates: int, rounds: int
) -> tuple[list[float], list[list[tuple[str, bytes]]], int]:
    settings = MqttSettings.from_url(url, client_id=f"bench-{base}", will_topic=f"{base}/bridge/state")
    metrics = Metrics()
    watch = [WatchSpec(f"user{u:05d}", f"sip:user{u:05d}@example.org") for u in range(USERS)]
    options = ServiceOptions(
        base_topic=base,
        self_uri="sip:self@example.org",
        output="both",
        discovery=True,
        discovery_prefix=f"{base}-ha",
        ha_status_topic=f"{base}-ha/status",
    )
    holder: dict[str, Service] = {}
    publisher = CountingPublisher(
        settings,
        subscriptions=[f"{base}/+/set"],
        on_message=lambda t, p: holder["s"].on_mqtt_message(t, p),  # noqa: PLW0108 - late binding
        on_connect=lambda: holder["s"].on_mqtt_connect(),  # noqa: PLW0108 - late binding
    )
    service = Service(cwa=FakeCwa(), mqtt=publisher, watch=watch, options=options, metrics=metrics)
    holder["s"] = service
    service.start()
    publisher.start(wait_s=10)
    service.on_notice(SessionNotice("online"))
    assert wait_until(lambda: service.drain(5) and service._readback_done, 15)
    times, sent = [], []
    for r in range(rounds):
        batch = notices(updates, r + 1)
        publisher.infos, publisher.sent = [], []
        publisher.recording = True
        start = time.perf_counter()
        for notice in batch:
            service.on_notice(notice)
        service.drain(120)
        wait_until(lambda: all_acked(publisher.infos), 120, 0.001)
        times.append(time.perf_counter() - start)
        publisher.recording = False
        sent.append(publisher.sent)
    dropped = publisher.dropped
    service.stop()
    publisher.stop()
    return times, sent, dropped


def run_baseline(url: str, messages: list[tuple[str, bytes]]) -> float:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-baseline-{time.monotonic_ns()}")
    connected = threading.Event()
    client.on_connect = lambda *_a: connected.set()
    client.connect("127.0.0.1", port_of(url))
    client.loop_start()
    connected.wait(10)
    start = time.perf_counter()
    infos = [client.publish(topic, payload, qos=1, retain=True) for topic, payload in messages]
    wait_until(lambda: all_acked(infos), 120, 0.001)
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return elapsed


def run(quick: bool = False, updates: int = 1500) -> Report:
    report = Report("pipeline")
    rounds = 3 if quick else 5
    updates = min(updates, 1000) if quick else updates
    with mosquitto() as url:
        ours, sent, dropped = run_bridge(url, "benchpipe", updates, rounds)
        base = [run_baseline(url, msgs) for msgs in sent]
    messages = statistics.median(len(m) for m in sent)
    our_rate = updates / statistics.median(ours)
    base_rate = updates / statistics.median(base)
    ratio = our_rate / base_rate
    report.add(
        f"pipeline, {updates} presence updates → QoS 1 acked (output both)",
        f"{our_rate:,.0f} updates/s ({messages:,.0f} publishes, "
        f"{messages / statistics.median(ours):,.0f} msg/s)",
        f"{base_rate:,.0f} updates/s-equivalent: paho alone, same {messages:,.0f} messages",
        f"{ratio:.2f}",
        "≥ 0.50",
        yes(ratio >= 0.5 and dropped == 0),
        f"{dropped} publishes dropped" if dropped else "",
    )
    report.notes.append(
        f"pipeline: median of {rounds} rounds; every update changes status, activity or note of one of "
        f"{USERS} users; the baseline publishes the exact (topic, payload) list the bridge published in "
        "the same round"
    )
    return report


def main() -> None:
    args = cli(__doc__ or "", updates=1500)
    report = run(args.quick, args.updates)
    report.print()
    report.save(args.json)


if __name__ == "__main__":
    main()
