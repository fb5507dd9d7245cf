"""The CWA client against the simulator: every §8 variant and every fault keeps the view accurate."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bridge.cwa.client import CwaClient, CwaClientSettings
from bridge.cwa.notices import CommandNotice, Notice, SessionNotice, UserNotice
from bridge.presence import Presence, Status
from bridge.simulator import Simulator, SimUser

pytestmark = pytest.mark.integration

ALICE = "sip:alice@example.org"
WATCHED = ("sip:bob@example.org", "sip:carol@example.org", "sip:dave@example.org")
POLL_WAIT_MS = 60
TOLERANCE_S = 0.005

USERS = [
    SimUser(ALICE, "EXAMPLE\\alice", "alice-pw", "Alice", 3500),
    SimUser(WATCHED[0], name="Bob", availability=6500, activity="in-a-meeting", note="Back at 3pm"),
    SimUser(WATCHED[1], name="Carol", availability=15500),
    SimUser(WATCHED[2], name="Dave", availability=None),
]


class View:
    """What a bridge would show: the last `UserNotice` per URI, normalised like the service does."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.notices: list[Notice] = []
        self.users: dict[str, Presence] = {}

    def __call__(self, notice: Notice) -> None:
        with self.lock:
            self.notices.append(notice)
            if isinstance(notice, UserNotice):
                s = notice.summary
                self.users[notice.uri.lower()] = Presence.observe(
                    notice.uri, None, s.availability, s.activity, s.notes
                )

    def of(self, kind: type[Any]) -> list[Any]:
        with self.lock:
            return [n for n in self.notices if isinstance(n, kind)]


def _key(p: Presence) -> tuple[object, ...]:
    return (p.status, p.idle, p.activity, p.note, p.note_type, p.out_of_office)


def accurate(view: View, sim: Simulator, uris: tuple[str, ...] = WATCHED) -> bool:
    with view.lock:
        return all(
            uri.lower() in view.users and _key(view.users[uri.lower()]) == _key(sim.truth(uri))
            for uri in uris
        )


@pytest.fixture
def bridge_to(
    make_simulator: Callable[..., Simulator],
) -> Iterator[Callable[..., tuple[Simulator, CwaClient, View]]]:
    made: list[tuple[CwaClient, httpx.Client]] = []

    def factory(**options: Any) -> tuple[Simulator, CwaClient, View]:
        options.setdefault("poll_wait_ms", POLL_WAIT_MS)
        sim = make_simulator(users=USERS, **options)
        view = View()
        http = httpx.Client()
        settings = CwaClientSettings(
            base_url=sim.url,
            username="EXAMPLE\\alice",
            password="alice-pw",
            uri=ALICE,
            timeout_s=5.0,
            command_timeout_s=5.0,
            backoff_initial_s=0.02,
            backoff_max_s=0.2,
        )
        client = CwaClient(settings, http, view)
        made.append((client, http))
        client.set_watched(WATCHED)
        client.start()
        sim.wait_for(lambda: accurate(view, sim), timeout=10)
        return sim, client, view

    yield factory
    for client, http in made:
        client.stop()
        http.close()


def check_recordings(sim: Simulator) -> None:
    """Never faster than pollWaitTime, never UA=true (interface.md §7.1, §7.3)."""
    for record in sim.recordings:
        assert record.ua in (None, "false")
    for session in sim.sessions():
        assert all(gap >= POLL_WAIT_MS / 1000 - TOLERANCE_S for gap in session.poll_gaps), session.poll_gaps
        assert set(session.ua_values) <= {"false"}
        assert not session.auto_publish_machine_state


def exercise(sim: Simulator, client: CwaClient, view: View, status: Status = Status.BUSY) -> None:
    """Presence changes reach the view; an own-state command reaches the server."""
    sim.set_presence(WATCHED[0], availability=3500, activity=None, note="changed")
    sim.set_presence(WATCHED[2], availability=12500)
    sim.wait_for(lambda: accurate(view, sim), timeout=10)
    outcome = client.publish_self(status, "from the bridge")
    if outcome.queued:  # reached the server later; reported by a CommandNotice
        sim.wait_for(lambda: any(n.ok for n in view.of(CommandNotice)), timeout=10)
    sim.wait_for(lambda: sim.truth(ALICE).status is status, timeout=10)
    assert sim.truth(ALICE).note == "from the bridge"
    sim.set_presence(WATCHED[1], availability=9500, note="do not disturb please")
    sim.wait_for(lambda: accurate(view, sim), timeout=10)


VARIANTS = [
    pytest.param({}, id="defaults"),
    pytest.param({"long_poll": True, "max_hold_s": 1.0}, id="long-poll"),
    pytest.param({"initiate_form": "attributes"}, id="initiate-attributes"),
    pytest.param({"offline_form": "zero"}, id="offline-zero"),
    pytest.param({"instance_attr": "instanceMask"}, id="instance-mask"),
    pytest.param({"ack_mode": "next"}, id="ack-next"),
    pytest.param({"ticket_rotate_s": 0.2, "ticket_grace_s": 0.3}, id="ticket-rotation"),
]


@pytest.mark.parametrize("options", VARIANTS)
def test_view_stays_accurate_for_each_protocol_variant(
    bridge_to: Callable[..., tuple[Simulator, CwaClient, View]], options: dict[str, Any]
) -> None:
    sim, client, view = bridge_to(**options)
    assert client.state == "online"
    exercise(sim, client, view)
    check_recordings(sim)


@pytest.mark.parametrize("mode", ["401", "403", "302", "html"])
def test_expired_ticket_in_every_form_is_recovered(
    bridge_to: Callable[..., tuple[Simulator, CwaClient, View]], mode: str
) -> None:
    sim, client, view = bridge_to(expired_ticket=mode)
    client.publish_self(Status.AWAY)
    sim.faults.expire_tickets()
    sim.set_presence(WATCHED[1], availability=3500)
    sim.wait_for(lambda: sum(r.channel == "logon" for r in sim.recordings) == 2, timeout=10)
    sim.wait_for(lambda: accurate(view, sim) and client.state == "online", timeout=10)
    exercise(sim, client, view, Status.BE_RIGHT_BACK)
    check_recordings(sim)


FAULTS: list[Any] = [
    pytest.param(lambda sim: sim.faults.kill_sessions(), {}, "session_gone", id="kill-sessions"),
    pytest.param(
        lambda sim: sim.faults.kill_sessions(),
        {"unknown_sid_data": "404"},
        "session_gone",
        id="kill-sessions-404",
    ),
    pytest.param(lambda sim: sim.faults.restart(), {}, "ticket_expired", id="restart"),
    pytest.param(lambda sim: sim.faults.http_503(3, channel="data"), {}, "throttled", id="http-503"),
    pytest.param(lambda sim: sim.faults.malformed(2, channel="data"), {}, "protocol", id="malformed"),
    pytest.param(lambda sim: sim.faults.hostile(2, channel="data"), {}, "protocol", id="hostile"),
    pytest.param(
        lambda sim: sim.faults.oversized(1, size=5_000_000, channel="data"), {}, "protocol", id="oversized"
    ),
    pytest.param(lambda sim: sim.faults.slow(2, 0.3), {}, None, id="slow"),
    pytest.param(lambda sim: sim.faults.drop(2, channel="data"), {}, "unavailable", id="drop-data"),
    pytest.param(lambda sim: sim.faults.drop(1, channel="command"), {}, "unavailable", id="drop-command"),
]


@pytest.mark.parametrize(("fault", "options", "kind"), FAULTS)
def test_view_stays_accurate_through_each_fault(
    bridge_to: Callable[..., tuple[Simulator, CwaClient, View]],
    fault: Callable[[Simulator], None],
    options: dict[str, Any],
    kind: str | None,
) -> None:
    sim, client, view = bridge_to(**options)
    fault(sim)
    sim.set_presence(WATCHED[0], availability=18500, activity=None, note=None)
    sim.wait_for(lambda: accurate(view, sim) and client.state == "online", timeout=10)
    exercise(sim, client, view)
    if kind is not None:
        assert client.stats.get(kind, 0) >= 1, client.stats
    check_recordings(sim)


def test_throttling_queues_commands_and_applies_them_afterwards(
    bridge_to: Callable[..., tuple[Simulator, CwaClient, View]],
) -> None:
    sim, client, view = bridge_to()
    sim.faults.throttle(True, poll_wait_ms=150)
    sim.set_presence(WATCHED[0], availability=15500)
    sim.wait_for(lambda: accurate(view, sim), timeout=10)
    outcome = client.publish_self(Status.DO_NOT_DISTURB)
    assert outcome.queued
    sim.faults.throttle(False)
    sim.wait_for(lambda: CommandNotice(Status.DO_NOT_DISTURB, None, True, None) in view.of(CommandNotice), 10)
    assert sim.truth(ALICE).status is Status.DO_NOT_DISTURB
    check_recordings(sim)


def test_unknown_user_does_not_affect_the_others(
    bridge_to: Callable[..., tuple[Simulator, CwaClient, View]],
) -> None:
    sim, client, view = bridge_to(unknown_user="404")
    client.set_watched([*WATCHED, "sip:ghost@example.org"])
    sim.set_presence(WATCHED[1], availability=6500)
    sim.wait_for(lambda: accurate(view, sim), timeout=10)
    exercise(sim, client, view)


def test_stop_ends_the_session_quickly_even_during_a_long_poll(
    bridge_to: Callable[..., tuple[Simulator, CwaClient, View]], caplog: pytest.LogCaptureFixture
) -> None:
    sim, client, view = bridge_to(long_poll=True, max_hold_s=20.0)
    sim.wait_for(lambda: any(s.polls >= 2 for s in sim.sessions()), timeout=5)  # a GET is being held
    began = time.monotonic()
    with caplog.at_level(logging.INFO, logger="bridge.cwa.client"):
        client.stop()
    assert time.monotonic() - began < 3.0  # the held GET would last 20 s; stop(timeout=1.0) plus slack
    assert "cwa.client.stop_timeout" not in caplog.text
    assert client.state == "stopped"
    assert view.of(SessionNotice)[-1] == SessionNotice("stopped")
    assert any("terminateSession" in r.methods for r in sim.recordings)
    sim.wait_for(lambda: not sim.sessions(), timeout=5)
