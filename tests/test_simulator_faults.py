"""Tickets (§2.4), expiry variants (§7.2.1), idle expiry, and every fault on demand."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from tests.support.simulator import RawCwa, local, sign_in, xml


def first_error_code(root: Any) -> str | None:
    for element in root.iter():
        if isinstance(element.tag, str) and local(element) == "error":
            return str(element.get("code"))
    return None


# ---------------------------------------------------------------- tickets


def test_ticket_is_required_on_command_and_data(simulator: Any) -> None:
    cwa = sign_in(simulator)
    cwa.ticket = None
    assert cwa.poll_raw().status_code == 401
    assert cwa.post('<terminateSession rid="7"/>').status_code == 401
    assert [r.ticket_present for r in simulator.recordings[-2:]] == [False, False]


def test_ticket_rotation_and_grace(make_simulator: Any) -> None:
    sim = make_simulator(ticket_rotate_s=0.2, ticket_grace_s=0.5)
    cwa = sign_in(sim)
    old = cwa.ticket
    deadline = time.monotonic() + 5
    while cwa.ticket == old and time.monotonic() < deadline:
        cwa.poll()  # every response carries the family's newest ticket
    assert cwa.ticket != old
    assert old is not None

    def with_old_ticket() -> httpx.Response:  # a client that missed the rotation (does not adopt)
        return cwa.http.get(
            cwa.data_path, params={"Sid": cwa.sid or "", "AckId": "0"}, headers={"CWA-Ticket": old}
        )

    response = with_old_ticket()
    assert response.status_code == 200  # previous ticket still valid in the grace window
    assert response.headers["CWA-Ticket"] != old  # … and the answer names a newer one
    sim.wait_for(lambda: with_old_ticket().status_code == 401, timeout=5)
    assert cwa.poll_raw().status_code == 200


def test_ticket_lifetime_forces_a_new_sign_in(make_simulator: Any) -> None:
    sim = make_simulator(ticket_lifetime_s=0.3)
    cwa = sign_in(sim)
    sim.wait_for(lambda: cwa.poll_raw().status_code == 401, timeout=5)
    assert "CWA-Ticket" not in cwa.poll_raw().headers
    assert cwa.logon("EXAMPLE\\alice", "alice-demo").headers.get("CWA-Ticket")
    assert cwa.poll_raw().status_code == 200  # same session, new ticket


@pytest.mark.parametrize(("mode", "status"), [("401", 401), ("403", 403), ("302", 302), ("html", 200)])
def test_expired_ticket_variants(make_simulator: Any, mode: str, status: int) -> None:
    sim = make_simulator(expired_ticket=mode)
    cwa = sign_in(sim)
    sim.faults.expire_tickets()
    for response in (cwa.poll_raw(), cwa.post('<terminateSession rid="3"/>')):
        assert response.status_code == status
        assert "CWA-Ticket" not in response.headers
        if mode == "302":
            assert response.headers["Location"].startswith("/forms/logon.html?ReturnUrl=")
        elif mode == "html":
            assert response.headers["Content-Type"].startswith("text/html")
            assert b"<html" in response.content.lower()
        else:
            assert response.content == b""


# ---------------------------------------------------------------- sessions


def test_idle_session_expires_and_watchers_see_offline(make_simulator: Any) -> None:
    sim = make_simulator(session_timeout_ms=300)
    watcher = sign_in(sim, "EXAMPLE\\bob", "bob-demo")
    watcher.command("subscribePresence", "<uris><uri>sip:carol@example.org</uri></uris>")
    carol = sign_in(sim, "EXAMPLE\\carol", "carol-demo")
    stop = threading.Event()

    def keep_watcher_alive() -> None:
        while not stop.wait(0.05):
            watcher.poll()

    keeper = threading.Thread(target=keep_watcher_alive)
    keeper.start()
    try:
        sim.wait_for(lambda: sim.truth("sip:carol@example.org").status == "offline", timeout=5)
    finally:
        stop.set()
        keeper.join()
    assert [s.user for s in sim.sessions()] == ["sip:bob@example.org"]
    _, root = carol.command("queryPresence", "<uris><uri>sip:bob@example.org</uri></uris>")
    assert first_error_code(root) == "18100"


def test_kill_sessions_gives_18100(simulator: Any) -> None:
    cwa = sign_in(simulator)
    simulator.faults.kill_sessions()
    _, root = cwa.command("queryPresence", "<uris><uri>sip:bob@example.org</uri></uris>")
    assert first_error_code(root) == "18100"
    assert first_error_code(cwa.poll()) == "18100"
    assert simulator.sessions() == []


def test_restart_forgets_sessions_tickets_and_eids_but_keeps_presence(simulator: Any) -> None:
    simulator.set_presence("sip:bob@example.org", availability=6500, note="kept")
    cwa = sign_in(simulator)
    simulator.faults.restart()
    assert cwa.poll_raw().status_code == 401
    cwa.logon("EXAMPLE\\alice", "alice-demo")
    cwa.initiate()
    root = cwa.poll(ack=0)
    assert root[0].get("eid") == "1"
    truth = simulator.truth("sip:bob@example.org")
    assert (truth.availability, truth.note) == (6500, "kept")


def test_throttle_raises_poll_wait_and_refuses_commands(simulator: Any) -> None:
    cwa = sign_in(simulator)
    simulator.faults.throttle(True, poll_wait_ms=30000)
    assert cwa.poll().get("pollWaitTime") == "30000"
    _, root = cwa.command("queryPresence", "<uris><uri>sip:bob@example.org</uri></uris>")
    assert local(root[0]) == "requestFailed"
    assert first_error_code(root) == "18101"
    simulator.faults.throttle(False)
    assert cwa.poll().get("pollWaitTime") == "1000"
    _, root = cwa.command("queryPresence", "<uris><uri>sip:bob@example.org</uri></uris>")
    assert local(root[0]) == "requestAccepted"


# ---------------------------------------------------------------- counted faults


def test_http_503_only_on_the_chosen_channel_then_normal(simulator: Any) -> None:
    cwa = sign_in(simulator)
    simulator.faults.http_503(2, channel="data")
    assert (
        cwa.post(
            '<queryPresence rid="x"><uris><uri>sip:bob@example.org</uri></uris></queryPresence>'
        ).status_code
        == 200
    )
    assert [cwa.poll_raw().status_code for _ in range(3)] == [503, 503, 200]
    assert [r.fault for r in simulator.recordings[-3:]] == ["http_503", "http_503", None]


def test_malformed_body_then_replay_recovers_the_events(simulator: Any) -> None:
    cwa = sign_in(simulator, "EXAMPLE\\bob", "bob-demo")
    simulator.set_presence("sip:alice@example.org", availability=9500)
    simulator.faults.malformed(1, channel="data")
    broken = cwa.poll_raw()
    with pytest.raises(Exception, match=r"(?i)premature|end|not closed|expected"):
        xml(broken.content)
    assert int(broken.headers["Content-Length"]) == len(broken.content)
    events = cwa.poll()  # same AckId: the events were not lost
    assert any(local(e) == "userPresence" for e in events)


@pytest.mark.parametrize("kind", ["billion_laughs", "external_entity"])
def test_hostile_bodies(simulator: Any, kind: str) -> None:
    cwa = sign_in(simulator)
    simulator.faults.hostile(1, channel="command", kind=kind)
    body = cwa.post(
        '<queryPresence rid="h"><uris><uri>sip:bob@example.org</uri></uris></queryPresence>'
    ).content
    assert b"<!DOCTYPE" in body
    assert (b"lol9" in body) if kind == "billion_laughs" else (b"SYSTEM" in body)


def test_hostile_alternates_by_default(simulator: Any) -> None:
    cwa = sign_in(simulator)
    simulator.faults.hostile(2, channel="data")
    first, second = cwa.poll_raw().content, cwa.poll_raw().content
    assert b"lol9" in first
    assert b"SYSTEM" in second


def test_oversized_body_is_valid_xml_of_the_given_size(simulator: Any) -> None:
    cwa = sign_in(simulator)
    simulator.faults.oversized(1, size=2_000_000, channel="data")
    response = cwa.poll_raw()
    assert len(response.content) >= 2_000_000
    assert local(xml(response.content)) == "cwaEvents"


def test_slow_response(simulator: Any) -> None:
    cwa = sign_in(simulator)
    simulator.faults.slow(1, delay_s=0.3, channel="data")
    started = time.monotonic()
    assert cwa.poll_raw().status_code == 200
    assert time.monotonic() - started >= 0.3  # a lower bound: the delay really happened


def test_drop_closes_the_connection_without_answer(simulator: Any) -> None:
    cwa = sign_in(simulator)
    simulator.faults.drop(1, channel="command")
    with pytest.raises(httpx.TransportError):
        cwa.post('<queryPresence rid="d"><uris><uri>sip:bob@example.org</uri></uris></queryPresence>')
    assert cwa.poll_raw().status_code == 200
    assert simulator.recordings[-2].fault == "drop"


def test_faults_on_the_logon_channel(simulator: Any) -> None:
    simulator.faults.http_503(1, channel="any")
    cwa = RawCwa(simulator.url)
    assert cwa.logon("EXAMPLE\\alice", "alice-demo").status_code == 503
    assert cwa.logon("EXAMPLE\\alice", "alice-demo").headers.get("CWA-Ticket")


def test_stop_is_prompt_with_a_held_long_poll(make_simulator: Any) -> None:
    sim = make_simulator(long_poll=True, max_hold_s=60)
    cwa = sign_in(sim, "EXAMPLE\\bob", "bob-demo")
    outcome: list[object] = []

    def hold() -> None:
        try:
            outcome.append(cwa.poll_raw().status_code)
        except httpx.TransportError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=hold)
    thread.start()
    sim.wait_for(lambda: sim.sessions()[0].polls >= 2)
    sim.stop()
    thread.join(5)
    assert outcome, "the held poll was not released by stop()"
