"""Resync end to end: the simulator drops a session's subscriptions silently (a front-end failover);
without resync a change is never delivered, with it the change arrives, marked as a resync answer."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from bridge.cwa.client import CwaClient, CwaClientSettings
from bridge.cwa.notices import Notice, UserNotice
from bridge.simulator import Simulator, SimUser
from tests.support.convergence import eventually

pytestmark = pytest.mark.integration

ALICE = "sip:alice@example.org"
BOB = "sip:bob@example.org"
USERS = [
    SimUser(ALICE, "EXAMPLE\\alice", "alice-pw", "Alice", 3500),
    SimUser(BOB, name="Bob", availability=3500),
]


class Seen:
    def __init__(self) -> None:
        self.notices: list[Notice] = []

    def __call__(self, notice: Notice) -> None:
        self.notices.append(notice)

    def of_bob(self, availability: int) -> list[UserNotice]:
        return [
            n
            for n in list(self.notices)
            if isinstance(n, UserNotice) and n.uri.lower() == BOB and n.summary.availability == availability
        ]


@pytest.fixture
def bridged(
    make_simulator: Callable[..., Simulator],
) -> Iterator[Callable[[float], tuple[Simulator, httpx.Client, Seen]]]:
    clients: list[CwaClient] = []
    https: list[httpx.Client] = []

    def factory(resync_s: float) -> tuple[Simulator, httpx.Client, Seen]:
        sim = make_simulator(users=USERS, poll_wait_ms=50)
        assert sim.control_url
        control = httpx.Client(base_url=sim.control_url, timeout=10)
        seen = Seen()
        http = httpx.Client()
        settings = CwaClientSettings(
            base_url=sim.url, username="EXAMPLE\\alice", password="alice-pw", uri=ALICE, resync_s=resync_s
        )
        client = CwaClient(settings, http, seen)
        clients.append(client)
        https.extend([http, control])
        client.set_watched([BOB])
        client.start()
        assert eventually(lambda: bool(seen.of_bob(3500)), 10)
        return sim, control, seen

    yield factory
    for client in clients:
        client.stop()
    for http in https:
        http.close()


def drop_subscriptions_then_change_bob(sim: Simulator, control: httpx.Client) -> None:
    assert control.post("/faults/drop_subscriptions").status_code == 200
    assert control.patch(f"/users/{BOB}", json={"availability": 6500}).status_code == 200


def test_without_resync_a_silently_dropped_subscription_freezes_the_user(
    bridged: Callable[[float], tuple[Simulator, httpx.Client, Seen]],
) -> None:
    sim, control, seen = bridged(0.0)
    drop_subscriptions_then_change_bob(sim, control)
    polls = sim.stats()["events_delivered"]
    assert not eventually(lambda: bool(seen.of_bob(6500)), 2.0)  # the simulator is really deaf
    assert sim.stats()["events_delivered"] == polls


def test_resync_heals_a_silently_dropped_subscription(
    bridged: Callable[[float], tuple[Simulator, httpx.Client, Seen]],
) -> None:
    sim, control, seen = bridged(1.0)
    drop_subscriptions_then_change_bob(sim, control)
    assert eventually(lambda: bool(seen.of_bob(6500)), 10)
    assert all(n.resync for n in seen.of_bob(6500))  # it came from a resync query
