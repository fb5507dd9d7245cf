"""Presence semantics: publishing, aggregation, unknown users, §8 variant options, machine state."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.cwa import codec
from bridge.cwa.events import RequestFailedEvent, SubscriptionStateEvent, UserPresenceEvent
from bridge.presence import Status
from bridge.simulator import SimUser
from tests.support.simulator import local, sign_in

ST = 'xmlns="http://schemas.microsoft.com/2006/09/sip/state" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
NT = 'xmlns="http://schemas.microsoft.com/2006/09/sip/note"'
ALICE, BOB = "sip:alice@example.org", "sip:bob@example.org"


def user_state(availability: int, mask: str = ' instanceMask="536870912"') -> str:
    return (
        f'<cwaCategory name="state"{mask}><state {ST} xsi:type="userState" manual="true">'
        f"<availability>{availability}</availability></state></cwaCategory>"
    )


def note(text: str) -> str:
    body = f'<note {NT}><body type="personal" uri="">{text}</body></note>'
    return f'<cwaCategory name="note" instanceMask="0">{body}</cwaCategory>'


def named(events: Any, name: str) -> list[Any]:
    return [e for e in events if local(e) == name]


def watch(sim: Any, uri: str = ALICE) -> Any:
    watcher = sign_in(sim, "EXAMPLE\\bob", "bob-demo")
    watcher.command("subscribePresence", f"<uris><uri>{uri}</uri></uris>")
    watcher.poll()
    return watcher


def test_own_publish_is_visible_to_watchers_and_self(simulator: Any) -> None:
    watcher = watch(simulator)
    alice = sign_in(simulator)
    watcher.poll()
    rid, root = alice.command("publishSelfPresence", user_state(6500) + note("Heads down"))
    assert local(root[0]) == "requestAccepted"
    own = alice.poll()
    assert [e.get("rid") for e in named(own, "requestSucceeded")] == [rid]
    assert named(own, "selfPresence")
    batch = codec.decode_events(watcher.poll_raw().content)
    (event,) = [e for e in batch.events if isinstance(e, UserPresenceEvent)]
    summary = event.users[0].summary()
    assert (summary.availability, summary.notes[0].text) == (6500, "Heads down")
    truth = simulator.truth(ALICE)
    assert (truth.status, truth.note) == (Status.BUSY, "Heads down")


def test_publish_is_transactional(simulator: Any) -> None:
    alice = sign_in(simulator)
    before = simulator.truth(ALICE)
    rid, root = alice.command("publishSelfPresence", note("should not stick") + user_state(42))
    assert local(root[0]) == "requestAccepted"
    events = alice.poll()
    assert [e.get("rid") for e in named(events, "requestFailed")] == [rid]
    assert not named(events, "selfPresence")
    assert simulator.truth(ALICE) == before


def test_publish_without_instance_mask_is_invalid(simulator: Any) -> None:
    alice = sign_in(simulator)
    _, root = alice.command("publishSelfPresence", user_state(6500, mask=""))
    assert local(root[0]) == "requestInvalid"


def test_empty_note_clears_and_custom_note_form_is_accepted(simulator: Any) -> None:
    alice = sign_in(simulator)
    alice.command(
        "publishSelfPresence", f'<cwaCategory name="note" instanceMask="0"><note {NT}/></cwaCategory>'
    )
    simulator.wait_for(lambda: simulator.truth(ALICE).note is None)
    alice.command(
        "publishSelfPresence",
        '<cwaCategory name="CustomNote" instanceMask="0"><note value="Via CustomNote"/></cwaCategory>',
    )
    alice.poll()
    assert simulator.truth(ALICE).note == "Via CustomNote"


def test_published_state_wins_until_the_session_ends(simulator: Any) -> None:
    alice = sign_in(simulator)
    alice.command("publishSelfPresence", user_state(9500))
    simulator.set_presence(ALICE, availability=3500)  # the controlled state is overridden
    assert simulator.truth(ALICE).status == Status.DO_NOT_DISTURB
    alice.command("terminateSession")
    assert simulator.truth(ALICE).status == Status.OFFLINE
    simulator.set_presence(ALICE, availability=3500)
    assert simulator.truth(ALICE).status == Status.AVAILABLE


def test_initiate_with_user_state_availability_publishes_it(simulator: Any) -> None:
    sign_in(simulator, inner="<userStateAvailability>12500</userStateAvailability>")
    assert simulator.truth(ALICE).status == Status.BE_RIGHT_BACK


@pytest.mark.parametrize("mode", ["offline", "404"])
def test_unknown_user_does_not_affect_the_others(make_simulator: Any, mode: str) -> None:
    sim = make_simulator(unknown_user=mode)
    cwa = sign_in(sim, "EXAMPLE\\bob", "bob-demo")
    ghost = "sip:ghost@example.org"
    rid, _ = cwa.command("subscribePresence", f"<uris><uri>{ghost}</uri><uri>{ALICE}</uri></uris>")
    batch = codec.decode_events(cwa.poll_raw().content)
    users = {u.uri: u for e in batch.events if isinstance(e, UserPresenceEvent) for u in e.users}
    assert users[ALICE].summary().availability == 3500
    failed = [e for e in batch.events if isinstance(e, RequestFailedEvent)]
    if mode == "offline":
        assert users[ghost].summary().availability == 18000
        states = [u for e in batch.events if isinstance(e, SubscriptionStateEvent) for u in e.users]
        assert any(s.uri == ghost and s.state == "terminated" for s in states)
        assert not failed
    else:
        assert ghost not in users
        assert [(f.rid, f.error.sip_code) for f in failed] == [(rid, 404)]


@pytest.mark.parametrize(("form", "availability", "token"), [("18000", 18000, None), ("zero", 0, "Offline")])
def test_offline_form(make_simulator: Any, form: str, availability: int, token: str | None) -> None:
    sim = make_simulator(offline_form=form)
    sim.set_presence(BOB, availability=None)
    cwa = sign_in(sim)
    cwa.command("queryPresence", f"<uris><uri>{BOB}</uri></uris>")
    batch = codec.decode_events(cwa.poll_raw().content)
    (event,) = [e for e in batch.events if isinstance(e, UserPresenceEvent)]
    summary = event.users[0].summary()
    assert (summary.availability, summary.activity) == (availability, token)
    assert sim.truth(BOB).status == Status.OFFLINE


@pytest.mark.parametrize("attr", ["instance", "instanceMask"])
def test_instance_attribute_spelling(make_simulator: Any, attr: str) -> None:
    sim = make_simulator(instance_attr=attr)
    cwa = sign_in(sim)
    body = cwa.poll_raw(ack=0).content
    other = "instanceMask" if attr == "instance" else "instance"
    assert f' {attr}="0"'.encode() in body
    assert f' {other}="0"'.encode() not in body


def test_machine_state_from_ua(make_simulator: Any) -> None:
    sim = make_simulator(machine_idle_s=0.2, machine_away_s=0.3)
    alice = sign_in(sim, inner='<options autoPublishMachineState="true"/>')
    alice.poll(ua="false")
    sim.wait_for(lambda: sim.truth(ALICE).idle)  # available → available-idle (4500)
    sim.wait_for(lambda: sim.truth(ALICE).status == Status.AWAY)
    alice.poll(ua="true")
    assert sim.truth(ALICE).status == Status.AVAILABLE
    assert not sim.truth(ALICE).idle
    assert sim.sessions()[0].ua_values[-2:] == ("false", "true")


def test_quiet_observer_is_not_affected_by_ua(make_simulator: Any) -> None:
    sim = make_simulator(machine_idle_s=0.0, machine_away_s=0.0)
    alice = sign_in(sim)  # autoPublishMachineState="false", like the bridge
    alice.poll(ua="false")
    assert sim.truth(ALICE).status == Status.AVAILABLE


def test_truth_matches_what_a_codec_client_normalises(simulator: Any) -> None:
    simulator.set_presence(BOB, availability=15500, activity="out-of-office", note="Away", note_type="OOF")
    truth = simulator.truth(BOB)
    assert (truth.status, truth.out_of_office, truth.note_type) == (Status.AWAY, True, "out_of_office")


def test_added_user_can_be_watched(simulator: Any) -> None:
    simulator.add_user(SimUser("sip:new@example.org", name="New Person", availability=6500))
    watcher = watch(simulator, "sip:new@example.org")
    simulator.set_presence("sip:new@example.org", availability=3500)
    assert named(watcher.poll(), "userPresence")
    assert simulator.user("sip:new@example.org").name == "New Person"
