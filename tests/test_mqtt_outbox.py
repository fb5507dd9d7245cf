"""The publisher's backpressure window (bridge.mqtt.outbox).

What a Home Assistant user sees after a broker outage is the service's business: it republishes
its whole retained state after every connect (tests/test_publisher.py and the fault tests show
it end to end). The outbox only keeps a burst from overflowing paho's queue, and drops
non-retained events made while away (a stale light command must not fire later).
"""

from __future__ import annotations

from bridge.mqtt.outbox import Outbox


class FakeInfo:
    """Stands in for paho's MQTTMessageInfo: acknowledged or not."""

    def __init__(self, acked: bool = False) -> None:
        self.acked = acked

    def is_published(self) -> bool:
        return self.acked


def test_while_away_non_retained_publishes_are_counted_as_dropped() -> None:
    box: Outbox[FakeInfo] = Outbox(backpressure_at=10)
    box.away(retain=True)  # the owner replays retained state after the connect
    box.away(retain=False)
    box.away(retain=False)
    assert box.dropped == 2


def test_a_full_window_holds_publishers_back_until_the_oldest_is_acknowledged() -> None:
    box: Outbox[FakeInfo] = Outbox(backpressure_at=2)
    first, second = FakeInfo(), FakeInfo()
    box.sent(first, qos=1)
    box.sent(FakeInfo(acked=True), qos=0)  # QoS 0: nothing to wait for
    assert box.in_the_way() is None
    box.sent(second, qos=1)
    assert box.in_the_way() is first
    first.acked = True
    assert box.in_the_way() is None
    box.sent(FakeInfo(), qos=1)
    assert box.in_the_way() is second
    box.connection_lost()
    assert box.in_the_way() is None  # a new connection starts with an empty window


def test_skipping_or_forgetting_the_window_lets_publishers_go_on() -> None:
    box: Outbox[FakeInfo] = Outbox(backpressure_at=1)
    first, second = FakeInfo(), FakeInfo()
    box.sent(first, qos=1)
    box.sent(second, qos=1)
    box.skip(second)  # not the head: nothing changes
    assert box.in_the_way() is first
    box.skip(first)
    assert box.in_the_way() is second
    box.forget_window()
    assert box.in_the_way() is None
