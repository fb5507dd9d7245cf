"""What must still reach the broker (bridge.mqtt.outbox), and the MQTT adapter's module split.

The outbox rules decide what a Home Assistant user sees after a broker outage: the latest state
of every entity, never an older one, and no replay of non-retained events.
"""

from __future__ import annotations

import importlib

import pytest

from bridge.mqtt.outbox import Outbox
from tests.test_codec_purity import FORBIDDEN, _imports


class FakeInfo:
    """Stands in for paho's MQTTMessageInfo: acknowledged or not."""

    def __init__(self, acked: bool = False) -> None:
        self.acked = acked

    def is_published(self) -> bool:
        return self.acked


def test_while_away_only_the_latest_retained_payload_per_topic_is_kept() -> None:
    box: Outbox[FakeInfo] = Outbox(backpressure_at=10)
    assert box.keep_while_away("h/alice", b"busy", retain=True, qos=1)
    assert box.keep_while_away("h/alice", b"away", retain=True, qos=1)
    assert box.keep_while_away("h/bob", b"free", retain=True, qos=0)
    assert not box.keep_while_away("h/event", b"ring", retain=False, qos=1)
    assert box.dropped == 1
    assert box.take_pending() == {"h/alice": (b"away", 1), "h/bob": (b"free", 0)}
    assert box.take_pending() == {}


def test_an_unacknowledged_retained_publish_is_sent_again_after_a_loss() -> None:
    box: Outbox[FakeInfo] = Outbox(backpressure_at=10)
    box.sent(FakeInfo(acked=True), "h/alice", b"busy", retain=True, qos=1)
    box.sent(FakeInfo(), "h/bob", b"away", retain=True, qos=1)
    box.sent(FakeInfo(), "h/event", b"ring", retain=False, qos=1)
    box.sent(FakeInfo(), "h/carol", b"free", retain=True, qos=0)  # QoS 0: nothing to wait for
    box.connection_lost()
    assert box.take_pending() == {"h/bob": (b"away", 1)}


def test_a_newer_payload_kept_while_away_wins_over_the_unacknowledged_one() -> None:
    box: Outbox[FakeInfo] = Outbox(backpressure_at=10)
    box.sent(FakeInfo(), "h/bob", b"old", retain=True, qos=1)
    box.keep_while_away("h/bob", b"new", retain=True, qos=1)
    box.connection_lost()
    assert box.take_pending() == {"h/bob": (b"new", 1)}


def test_a_publish_resent_after_a_reconnect_is_kept_until_acknowledged() -> None:
    box: Outbox[FakeInfo] = Outbox(backpressure_at=10)
    box.resent(FakeInfo(), "h/bob", b"away", qos=1)
    box.connection_lost()
    assert box.take_pending() == {"h/bob": (b"away", 1)}


def test_a_full_window_holds_publishers_back_until_the_oldest_is_acknowledged() -> None:
    box: Outbox[FakeInfo] = Outbox(backpressure_at=2)
    first, second = FakeInfo(), FakeInfo()
    box.sent(first, "h/a", b"1", retain=True, qos=1)
    assert box.in_the_way() is None
    box.sent(second, "h/b", b"2", retain=False, qos=1)
    assert box.in_the_way() is first
    first.acked = True
    assert box.in_the_way() is None
    box.connection_lost()
    assert box.take_pending() == {}  # acknowledged and forgotten: nothing to resend


def test_skipping_or_forgetting_the_window_lets_publishers_go_on() -> None:
    box: Outbox[FakeInfo] = Outbox(backpressure_at=1)
    first, second = FakeInfo(), FakeInfo()
    box.sent(first, "h/a", b"1", retain=True, qos=1)
    box.sent(second, "h/b", b"2", retain=True, qos=1)
    box.skip(second)  # not the head: nothing changes
    assert box.in_the_way() is first
    box.skip(first)
    assert box.in_the_way() is second
    box.forget_window()
    assert box.in_the_way() is None
    box.connection_lost()  # skipped is not acknowledged: still resent
    assert box.take_pending() == {"h/a": (b"1", 1), "h/b": (b"2", 1)}


@pytest.mark.parametrize("module", ["bridge.mqtt.settings", "bridge.mqtt.outbox"])
def test_the_split_off_bookkeeping_modules_are_pure(module: str) -> None:
    bad = sorted(name for name in _imports(module) if name.split(".")[0] in FORBIDDEN)
    assert not bad, f"{module} imports {bad}"


@pytest.mark.parametrize(
    ("name", "home"),
    [
        ("MqttSettings", "bridge.mqtt.settings"),
        ("translate", "bridge.mqtt.paho_glue"),
        ("MAX_QUEUED_MESSAGES", "bridge.mqtt.paho_glue"),
        ("BACKPRESSURE_AT", "bridge.mqtt.paho_glue"),
        ("MAX_INFLIGHT_MESSAGES", "bridge.mqtt.paho_glue"),
        ("QOS2_INFLIGHT_MESSAGES", "bridge.mqtt.paho_glue"),
        ("STOP_ACK_TIMEOUT_S", "bridge.mqtt.supervisor"),
    ],
)
def test_names_moved_out_of_the_publisher_still_import_from_it(name: str, home: str) -> None:
    publisher = importlib.import_module("bridge.mqtt.publisher")
    assert getattr(publisher, name) is getattr(importlib.import_module(home), name)
    assert name in publisher.__all__
