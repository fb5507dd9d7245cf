"""Benchmark 2 — pipeline: presence notices → presence store → MQTT publishes acknowledged (QoS 1).

The bridge's own `bridge.service.Service` (output ``both``, discovery on) with a real
`MqttPublisher` to a private mosquitto is fed `UserNotice`s (what the CWA client hands over after
decoding) for 100 users, each a real change (status, activity or note moves), so every update
publishes the JSON and at least one attribute topic. The clock stops when every publish made is
acknowledged (PUBACK). Floor: bare paho publishing the very same (topic, payload) list, pipelined
(`bench.floor`), retained at QoS 1, to the same broker, until every PUBACK is in. Rounds alternate;
the best of each side is compared.

    .venv/bin/python -m bench.pipeline [--quick] [--updates 1500]
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from bench.common import Report, cli, mosquitto, wait_until, yes
from bench.floor import paho_floor
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


class RecordingPort:
    """The service's MQTT port: forwards to the real publisher and records what the service
    published (a public seam: the service is handed this instead of the publisher)."""

    def __init__(self, publisher: MqttPublisher) -> None:
        self._publisher = publisher
        self.sent: list[tuple[str, bytes]] = []

    @property
    def connected(self) -> bool:
        return self._publisher.connected

    def publish(
        self, topic: str, payload: bytes | str, *, retain: bool = True, qos: int | None = None
    ) -> None:
        self._publisher.publish(topic, payload, retain=retain, qos=qos)
        if retain:
            self.sent.append((topic, payload.encode() if isinstance(payload, str) else bytes(payload)))

    def read_retained(
        self, topic_filters: Sequence[str], quiet_s: float = 0.3, timeout_s: float = 3.0
    ) -> dict[str, bytes]:
        return self._publisher.read_retained(topic_filters, quiet_s, timeout_s)


def notices(updates: int, offset: int) -> list[UserNotice]:
    out = []
    for i in range(updates):
        user = i % USERS
        availability, activity, note = STATES[(i // USERS + offset) % len(STATES)]
        notes = (Note("personal", note),) if note else ()
        summary = PresenceSummary(availability, activity, notes, f"User {user:05d}", None)
        out.append(UserNotice(f"sip:user{user:05d}@example.org", summary))
    return out


class BridgeRounds:
    """The bridge's service and publisher, kept running between rounds (as in production)."""

    def __init__(self, url: str, base: str) -> None:
        settings = MqttSettings.from_url(url, client_id=f"bench-{base}", will_topic=f"{base}/bridge/state")
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
        self.publisher = MqttPublisher(
            settings,
            subscriptions=[f"{base}/+/set"],
            on_message=lambda t, p: holder["s"].on_mqtt_message(t, p),  # noqa: PLW0108 - late binding
            on_connect=lambda: holder["s"].on_mqtt_connect(),  # noqa: PLW0108 - late binding
        )
        self.port = RecordingPort(self.publisher)
        self.service = Service(cwa=FakeCwa(), mqtt=self.port, watch=watch, options=options, metrics=Metrics())
        holder["s"] = self.service
        self.service.start()
        self.publisher.start(wait_s=10)
        self.service.on_notice(SessionNotice("online"))
        if not wait_until(lambda: self.publisher.connected and self.service.drain(5), 15):
            raise RuntimeError("pipeline: the service did not start")
        self.barrier = f"{base}/bench/barrier"

    def round(self, batch: list[UserNotice]) -> tuple[float, list[tuple[str, bytes]]]:
        """Seconds from the first notice to the PUBACK of everything it published, and the list."""
        self.port.sent = []
        start = time.perf_counter()
        for notice in batch:
            self.service.on_notice(notice)
        if not self.service.drain(120):
            raise RuntimeError("pipeline: the service did not drain")
        # One connection, acknowledged in order: the barrier's PUBACK follows every earlier one.
        if not self.publisher.publish_and_wait(self.barrier, b"", retain=False, timeout=120):
            raise RuntimeError("pipeline: the broker did not acknowledge")
        return time.perf_counter() - start, self.port.sent

    def stop(self) -> int:
        dropped = self.publisher.dropped
        self.service.stop()
        self.publisher.stop()
        return dropped


def run(quick: bool = False, updates: int = 1500) -> Report:
    report = Report("pipeline")
    rounds = 3 if quick else 5
    updates = min(updates, 500) if quick else updates
    ours: list[float] = []
    floor: list[float] = []
    sizes: list[int] = []
    with mosquitto() as url:
        bridge = BridgeRounds(url, "benchpipe")
        try:
            for r in range(rounds):  # alternated: a load spike hits both sides alike
                took, sent = bridge.round(notices(updates, r + 1))
                ours.append(took)
                sizes.append(len(sent))
                floor.append(paho_floor(url, sent))
        finally:
            dropped = bridge.stop()
    messages = statistics.median(sizes)
    best, best_floor = min(ours), min(floor)
    ratio = best_floor / best
    report.add(
        f"pipeline, {updates} presence updates → QoS 1 acked (output both)",
        f"{updates / best:,.0f} updates/s ({messages:,.0f} publishes, {messages / best:,.0f} msg/s)",
        f"{updates / best_floor:,.0f} updates/s-equivalent: bare paho, pipelined, the same "
        f"{messages:,.0f} messages",
        f"{ratio:.2f}",
        "≥ 0.50",
        yes(ratio >= 0.5 and dropped == 0),
        f"{dropped} publishes dropped" if dropped else "",
    )
    report.notes.append(
        f"pipeline: best of {rounds} rounds each side, alternated; every update changes status, activity "
        f"or note of one of {USERS} users; the floor (bench/floor.py) publishes the exact (topic, "
        "payload) list the bridge published in that round, retained at QoS 1, pipelined with the "
        "bridge's own in-flight window, every PUBACK awaited; ratio = floor time / bridge time"
    )
    return report


def main() -> None:
    args = cli(__doc__ or "", updates=1500)
    report = run(args.quick or args.smoke, args.updates)  # quick is short enough for a smoke run
    report.print()
    report.save(args.json)


if __name__ == "__main__":
    main()
