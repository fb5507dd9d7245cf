"""The simulator speaks cwa-protocol.md: sign-in, command channel, data channel (plain httpx)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from bridge.simulator import SimUser
from tests.support.simulator import NS, RawCwa, local, sign_in, xml

B, C = "sip:bob@example.org", "sip:carol@example.org"


def find(events: Any, name: str) -> list[Any]:
    return [e for e in events if local(e) == name]


def child_text(element: Any, name: str) -> str | None:
    for child in element.iter():
        if isinstance(child.tag, str) and local(child) == name:
            return str(child.text) if child.text is not None else None
    return None


def availability_of(user: Any) -> int:
    return int(child_text(user, "availability") or -1)


# ---------------------------------------------------------------- sign-in (§2)


def test_logon_success_returns_ticket_sign_in_data_and_uri(simulator: Any) -> None:
    cwa = RawCwa(simulator.url)
    response = cwa.logon("example\\ALICE", "alice-demo")  # user name is case-insensitive
    assert response.status_code == 200
    assert response.headers["CWA-Ticket"]
    root = xml(response.content)
    assert local(root) == "cwaResponses"
    succeeded = root[0]
    assert local(succeeded) == "requestSucceeded"
    assert succeeded.get("rid") == ""
    assert b"signInData" in base64.b64decode(child_text(succeeded, "signInData") or "")
    assert child_text(succeeded, "uri") == "sip:alice@example.org"


def test_logon_accepts_user_at_domain_form_and_optional_uri(make_simulator: Any) -> None:
    sim = make_simulator(users=[SimUser("sip:zoe@example.org", "zoe@example.org", "pw")])
    assert RawCwa(sim.url).logon("ZOE@example.org", "pw", uri="sip:zoe@example.org").headers.get("CWA-Ticket")


@pytest.mark.parametrize(
    ("user", "password"), [("EXAMPLE\\alice", "wrong"), ("EXAMPLE\\nobody", "no-such-secret")]
)
def test_logon_failure_has_no_ticket_and_request_failed(simulator: Any, user: str, password: str) -> None:
    response = RawCwa(simulator.url).logon(user, password)
    assert response.status_code == 200
    assert "CWA-Ticket" not in response.headers
    assert local(xml(response.content)[0]) == "requestFailed"
    assert password.encode() not in response.content


def test_users_without_credentials_cannot_sign_in(make_simulator: Any) -> None:
    sim = make_simulator(users=[SimUser("sip:watch-only@example.org")])
    assert "CWA-Ticket" not in RawCwa(sim.url).logon("watch-only", "").headers


# ---------------------------------------------------------------- initiateSession and burst (§3.3, §5.10)


@pytest.mark.parametrize("form", ["elements", "attributes"])
def test_initiate_session_answer_forms(make_simulator: Any, form: str) -> None:
    sim = make_simulator(initiate_form=form, poll_wait_ms=1234)
    cwa = RawCwa(sim.url)
    cwa.logon("EXAMPLE\\alice", "alice-demo")
    root = cwa.initiate()
    answer = root[0]
    if form == "elements":
        assert local(answer) == "requestAccepted"
        assert answer.findtext(f"{{{NS}}}pollWaitTime") or child_text(answer, "pollWaitTime") == "1234"
    else:
        assert local(answer) == "initiateSessionAccepted"
        assert answer.get("pollWaitTime") == "1234"
    assert cwa.sid
    assert cwa.sid.isdigit()
    assert cwa.sid != "0"


def test_initial_burst_in_order_with_consecutive_eids(simulator: Any) -> None:
    cwa = RawCwa(simulator.url)
    cwa.logon("EXAMPLE\\alice", "alice-demo")
    cwa.initiate()
    root = cwa.poll(ack=0)
    names = [local(e) for e in root]
    assert names == ["configuration", "contactGroup", "selfPresence", "subscribers", "userPresence"]
    assert [int(e.get("eid")) for e in root] == [1, 2, 3, 4, 5]
    assert root.get("ackId") == "5"
    assert root.get("sid") == cwa.sid
    assert int(root.get("sessionTimeout")) == 600_000
    contacts = [c for c in root[1] if local(c) == "contact"]
    assert root[1].get("fullList") == "true"
    assert len(contacts) == 6
    users = [u.get("uri") for u in root[4]]
    assert B in users
    assert C in users
    assert child_text(root[2], "displayName") == "Alice Demo"


def test_sid_zero_is_only_allowed_for_initiate_session(simulator: Any) -> None:
    cwa = sign_in(simulator)
    root = xml(
        cwa.post(
            '<queryPresence rid="9"><uris><uri>sip:bob@example.org</uri></uris></queryPresence>', sid="0"
        ).content
    )
    assert local(root[0]) == "requestFailed"
    assert child_text_attr(root[0], "error", "code") == "18100"


def child_text_attr(element: Any, name: str, attr: str) -> str | None:
    for child in element.iter():
        if isinstance(child.tag, str) and local(child) == name:
            value = child.get(attr)
            return str(value) if value is not None else None
    return None


# ---------------------------------------------------------------- command channel (§3)


def test_missing_rid_unknown_method_and_missing_element_are_invalid(simulator: Any) -> None:
    cwa = sign_in(simulator)
    root = xml(cwa.post("<queryPresence><uris><uri>sip:bob@example.org</uri></uris></queryPresence>").content)
    assert local(root[0]) == "requestInvalid"
    root = xml(cwa.post('<frobnicate rid="5"/>').content)
    assert local(root[0]) == "requestInvalid"
    assert child_text_attr(root[0], "error", "code") in (
        "18000",
        "18001",
    )
    root = xml(cwa.post('<subscribePresence rid="6"/>').content)
    assert local(root[0]) == "requestInvalid"


def test_unknown_sid_and_other_users_sid_fail_with_18100(simulator: Any) -> None:
    alice = sign_in(simulator)
    bob = sign_in(simulator, "EXAMPLE\\bob", "bob-demo")
    root = xml(
        bob.post(
            '<queryPresence rid="1"><uris><uri>sip:carol@example.org</uri></uris></queryPresence>',
            sid=alice.sid,
        ).content
    )
    assert local(root[0]) == "requestFailed"
    assert child_text_attr(root[0], "error", "code") == "18100"
    root = xml(bob.post('<terminateSession rid="2"/>', sid="999999").content)
    assert child_text_attr(root[0], "error", "code") == "18100"


def test_batched_methods_get_one_answer_each_in_order(simulator: Any) -> None:
    cwa = sign_in(simulator)
    uris = "<uris><uri>sip:bob@example.org</uri></uris>"
    root = xml(
        cwa.post(
            f'<queryPresence rid="a">{uris}</queryPresence><frob rid="b"/>'
            f'<subscribePresence rid="c">{uris}</subscribePresence>'
        ).content
    )
    assert [(local(r), r.get("rid")) for r in root] == [
        ("requestAccepted", "a"),
        ("requestInvalid", "b"),
        ("requestAccepted", "c"),
    ]


def test_query_presence_returns_snapshot_and_request_succeeded(simulator: Any) -> None:
    simulator.set_presence(B, availability=6500, activity="in-a-meeting", note="Back at 3pm")
    cwa = sign_in(simulator)
    rid, root = cwa.command("queryPresence", f"<uris><uri>{B}</uri><uri>{C}</uri></uris>")
    assert local(root[0]) == "requestAccepted"
    assert root[0].get("rid") == rid
    events = cwa.poll()
    (presence,) = find(events, "userPresence")
    users = {u.get("uri"): u for u in presence}
    assert availability_of(users[B]) == 6500
    assert child_text(users[B], "body") == "Back at 3pm"
    assert child_text_attr(users[B], "activity", "token") == "in-a-meeting"
    assert child_text(users[B], "email") == "bob@example.org"
    assert [e.get("rid") for e in find(events, "requestSucceeded")] == [rid]


def test_subscription_delivers_every_change_as_full_snapshot(simulator: Any) -> None:
    cwa = sign_in(simulator, "EXAMPLE\\bob", "bob-demo")
    cwa.command("subscribePresence", "<uris><uri>sip:grace@example.org</uri></uris>")
    cwa.poll()
    simulator.set_presence("sip:grace@example.org", note="Lunch")
    simulator.set_presence("sip:grace@example.org", availability=15500)
    events = find(cwa.poll(), "userPresence")
    assert len(events) == 2
    last = events[-1][0]
    assert availability_of(last) == 15500
    assert child_text(last, "body") == "Lunch"  # snapshot, not delta
    assert "sip:grace@example.org" in simulator.sessions()[-1].subscriptions


def test_contacts_add_and_delete_give_deltas(simulator: Any) -> None:
    cwa = sign_in(simulator, "EXAMPLE\\grace", "grace-demo")
    rid, root = cwa.command(
        "addContact",
        '<contact uri="sip:dave@example.org" name="Dave" subscribed="true" tag="false" groups="1"/>',
    )
    assert local(root[0]) == "requestAccepted"
    events = cwa.poll()
    (delta,) = find(events, "contactGroup")
    assert delta.get("fullList") == "false"
    assert [(c.get("uri"), c.get("action")) for c in delta] == [("sip:dave@example.org", "added")]
    assert any(u.get("uri") == "sip:dave@example.org" for e in find(events, "userPresence") for u in e)
    rid, _ = cwa.command("deleteContact", "<uri>sip:dave@example.org</uri>")
    events = cwa.poll()
    (delta,) = find(events, "contactGroup")
    assert [c.get("action") for c in delta] == ["deleted"]
    assert [e.get("rid") for e in find(events, "requestSucceeded")] == [rid]
    simulator.set_presence("sip:dave@example.org", availability=9500)
    assert not find(cwa.poll(), "userPresence")  # the subscription ended with the contact


def test_add_contact_without_name_fails_synchronously(simulator: Any) -> None:
    cwa = sign_in(simulator)
    _, root = cwa.command(
        "addContact", '<contact uri="sip:x@example.org" name="" subscribed="true" tag="false"/>'
    )
    assert local(root[0]) in ("requestFailed", "requestInvalid")


def test_terminate_session_makes_user_offline_and_sid_unknown(simulator: Any) -> None:
    watcher = sign_in(simulator, "EXAMPLE\\bob", "bob-demo")
    watcher.command("subscribePresence", "<uris><uri>sip:alice@example.org</uri></uris>")
    watcher.poll()
    alice = sign_in(simulator)
    _, root = alice.command("terminateSession")
    assert local(root[0]) == "requestAccepted"
    (event,) = find(watcher.poll(), "userPresence")
    assert availability_of(event[0]) == 18000
    assert simulator.truth("sip:alice@example.org").status == "offline"
    _, root = alice.command("queryPresence", f"<uris><uri>{B}</uri></uris>")
    assert child_text_attr(root[0], "error", "code") == "18100"
    root = xml(alice.post('<initiateSession rid="99"/>', sid="0").content)  # the ticket outlives the session
    assert local(root[0]) == "requestAccepted"


# ---------------------------------------------------------------- data channel (§4)


def test_ack_replay_after_lost_response_and_prune_on_ack(simulator: Any) -> None:
    cwa = sign_in(simulator, "EXAMPLE\\bob", "bob-demo")
    start = cwa.ack
    simulator.set_presence("sip:alice@example.org", availability=6500)
    first = cwa.poll()
    replay = cwa.poll(ack=start)  # the first response "was lost": same AckId again
    assert [e.get("eid") for e in first] == [e.get("eid") for e in replay] != []
    assert simulator.sessions()[0].queued == len(first)
    cwa.poll()  # acknowledges everything
    (snapshot,) = simulator.sessions()
    assert snapshot.queued == 0
    assert snapshot.ack_id == cwa.ack
    assert len(cwa.poll(ack=start)) == 0  # pruned: acknowledged events are gone


def test_empty_poll_reports_current_counter(simulator: Any) -> None:
    cwa = sign_in(simulator, "EXAMPLE\\bob", "bob-demo")
    counter = cwa.ack
    root = cwa.poll()
    assert len(root) == 0
    assert int(root.get("ackId")) == counter
    assert int(root.get("pollWaitTime")) == 1000


def test_ack_mode_next_echoes_next_eid_and_acknowledges_below_it(make_simulator: Any) -> None:
    sim = make_simulator(ack_mode="next")
    cwa = RawCwa(sim.url)
    cwa.logon("EXAMPLE\\bob", "bob-demo")
    cwa.initiate()
    root = cwa.poll(ack=0)
    last = int(root[-1].get("eid"))
    assert int(root.get("ackId")) == last + 1
    sim.set_presence("sip:alice@example.org", availability=9500)
    root = cwa.poll()
    assert [int(e.get("eid")) for e in root] == [last + 1]
    assert sim.sessions()[0].queued == 1  # not acknowledged yet
    assert len(cwa.poll()) == 0
    assert sim.sessions()[0].queued == 0


@pytest.mark.parametrize("names", [("sid", "ackid", "ua"), ("SID", "AckID", "Ua")])
def test_data_channel_parameter_names_are_case_insensitive(
    simulator: Any, names: tuple[str, str, str]
) -> None:
    cwa = sign_in(simulator)
    response = cwa.poll_raw(names=names, ua="true")
    assert response.status_code == 200
    assert xml(response.content).get("sid") == cwa.sid
    assert simulator.sessions()[0].ua_values[-1] == "true"


@pytest.mark.parametrize("mode", ["events", "404"])
def test_unknown_sid_on_data_channel(make_simulator: Any, mode: str) -> None:
    sim = make_simulator(unknown_sid_data=mode)
    cwa = RawCwa(sim.url)
    cwa.logon("EXAMPLE\\alice", "alice-demo")
    cwa.sid = "123456"
    response = cwa.poll_raw()
    if mode == "404":
        assert response.status_code == 404
        return
    root = xml(response.content)
    (failed,) = root
    assert local(failed) == "requestFailed"
    assert failed.get("rid") == ""
    assert child_text_attr(failed, "error", "code") == "18100"


def test_long_poll_is_released_by_an_event(make_simulator: Any) -> None:
    import threading

    sim = make_simulator(long_poll=True, max_hold_s=20.0)
    cwa = sign_in(sim, "EXAMPLE\\bob", "bob-demo")
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(cwa.poll()))
    thread.start()
    sim.wait_for(lambda: sim.sessions()[0].polls >= 2)
    sim.set_presence("sip:alice@example.org", availability=12500)
    thread.join(10)
    assert result
    assert availability_of(find(result[0], "userPresence")[0][0]) == 12500


def test_long_poll_answers_empty_after_max_hold(make_simulator: Any) -> None:
    sim = make_simulator(long_poll=True, max_hold_s=0.2)
    cwa = sign_in(sim, "EXAMPLE\\bob", "bob-demo")
    assert len(cwa.poll()) == 0


def test_configurable_paths(make_simulator: Any) -> None:
    sim = make_simulator(command_path="/x/cmd", data_path="/x/data")
    cwa = sign_in(sim)
    assert cwa.sid
    assert RawCwa(sim.url).http.post("/cwa/MainCommandHandler.ashx").status_code == 404


def test_every_response_has_content_length_and_keeps_the_connection(simulator: Any) -> None:
    cwa = sign_in(simulator)
    response = cwa.poll_raw()
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert response.http_version == "HTTP/1.1"
    assert response.headers.get("Connection", "").lower() != "close"
