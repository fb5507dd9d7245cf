"""``cwa.auth: iwa`` end to end: the client, the bridge and the CLI against the simulator playing IIS.

The simulator (``SimOptions(auth="iwa")``) answers ``/iwa/logon.html`` with a real NTLM check
against its user table, per TCP connection; its recordings carry each leg's NTLM message type
(None for the first, unauthenticated POST, then 1 and 3), never the token, so a test can see that
every sign-in — the first one and each one after an expired ticket — is the whole handshake.
"""

from __future__ import annotations

import json
import logging
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.app import Bridge
from bridge.cwa.client import CwaClient, CwaClientSettings
from bridge.cwa.iwa import IWA_MISSING, NtlmAuth
from bridge.cwa.notices import Notice, UserNotice
from bridge.errors import AuthRejected, CwaUnavailable
from bridge.simulator import Simulator, SimUser
from bridge.simulator.recording import Recorded
from tests.support.bridge import ALICE, BOB, PASSWORD, USERS, BridgeProcess, config_dict, write_config
from tests.support.mqtt import Broker, MqttProbe

pytestmark = pytest.mark.integration

CAROL_UPN = SimUser(
    uri="sip:carol.upn@example.org",
    username="carol@example.org",
    password="C4rol:pässword",  # a ':' and a non-ASCII letter: both survive NTLM hashing
    name="Carol UPN",
)
SIM_USERS = [*USERS, CAROL_UPN]
HANDSHAKE = [(None, 401), (1, 401), (3, 200)]  # (NTLM message type, status) per leg
NTLM_TOKEN = "TlRMTVNT"  # base64 of the "NTLMSSP" signature every NTLM message starts with
NEGOTIATE_TOKEN = "TlRMTVNTUAABAAAA"  # ... followed by message type 1
AUTHENTICATE_TOKEN = "TlRMTVNTUAADAAAA"  # ... type 3


class Notices:
    def __init__(self) -> None:
        self.items: list[Notice] = []

    def __call__(self, notice: Notice) -> None:
        self.items.append(notice)

    def availability(self, uri: str) -> int | None:
        seen = [
            n.summary.availability for n in list(self.items) if isinstance(n, UserNotice) and n.uri == uri
        ]
        return seen[-1] if seen else None


class Wire:
    """Every request the client sent: (path, body, headers)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes, dict[str, str]]] = []

    def __call__(self, request: httpx.Request) -> None:
        self.requests.append((request.url.path, request.content, dict(request.headers)))


@pytest.fixture
def iwa_sim(make_simulator: Callable[..., Simulator]) -> Simulator:
    return make_simulator(users=SIM_USERS, auth="iwa", poll_wait_ms=50)


@pytest.fixture
def make_client() -> Iterator[Callable[..., tuple[CwaClient, Notices, Wire]]]:
    made: list[tuple[CwaClient, httpx.Client]] = []

    def make(sim: Simulator, user: SimUser = ALICE, **overrides: Any) -> tuple[CwaClient, Notices, Wire]:
        notices, wire = Notices(), Wire()
        http = httpx.Client(event_hooks={"request": [wire]})
        fields: dict[str, Any] = {
            "base_url": sim.url,
            "username": user.username,
            "password": user.password,
            "uri": user.uri,
            "auth": "iwa",
            "timeout_s": 5.0,
            "backoff_initial_s": 0.02,
            "backoff_max_s": 0.2,
        }
        client = CwaClient(CwaClientSettings(**(fields | overrides)), http, notices)
        made.append((client, http))
        return client, notices, wire

    yield make
    for client, http in made:
        client.stop()
        http.close()


def logon_legs(sim: Simulator) -> list[tuple[int | None, int]]:
    return [(r.ntlm, r.status) for r in sim.recordings if r.channel == "logon"]


def sign_ins(records: list[Recorded]) -> int:
    return sum(1 for r in records if r.channel == "logon" and r.status == 200)


# --- the client -------------------------------------------------------------------------------


@pytest.mark.parametrize("user", [ALICE, CAROL_UPN], ids=["domain-backslash-user", "user-at-domain"])
def test_right_password_signs_in_over_the_handshake_and_presence_flows(
    iwa_sim: Simulator, make_client: Callable[..., tuple[CwaClient, Notices, Wire]], user: SimUser
) -> None:
    client, notices, wire = make_client(iwa_sim, user)
    client.start()
    client.set_watched([BOB.uri])

    assert client.state == "online"
    assert logon_legs(iwa_sim) == HANDSHAKE
    iwa_sim.wait_for(lambda: notices.availability(BOB.uri) == 6500)
    iwa_sim.set_presence(BOB.uri, availability=15500)
    iwa_sim.wait_for(lambda: notices.availability(BOB.uri) == 15500)
    # The password is proven, never sent: not in any body, header or URL of any request.
    assert user.password
    logon_bodies = [body for path, body, _ in wire.requests if path == "/iwa/logon.html"]
    assert len(logon_bodies) == 3
    assert all(b"<password>" not in body for body in logon_bodies)
    assert all(f"<user>{user.username}</user>".encode() in body for body in logon_bodies)
    for path, body, headers in wire.requests:
        assert user.password not in path + body.decode("utf-8", "replace") + repr(headers)


def test_wrong_password_is_auth_rejected_without_a_ticket(
    iwa_sim: Simulator, make_client: Callable[..., tuple[CwaClient, Notices, Wire]]
) -> None:
    wrong = PASSWORD + "x"
    client, _, _ = make_client(iwa_sim, password=wrong)

    with pytest.raises(AuthRejected) as info:
        client.start()

    assert client.state == "auth_failed"
    assert logon_legs(iwa_sim) == [(None, 401), (1, 401), (3, 401)]
    assert iwa_sim.stats()["tickets"] == 0
    assert wrong not in str(info.value)
    assert "401" in str(info.value)


def test_forms_sign_in_is_refused_by_an_iwa_server(
    iwa_sim: Simulator, make_client: Callable[..., tuple[CwaClient, Notices, Wire]]
) -> None:
    client, _, _ = make_client(iwa_sim, auth="forms")

    with pytest.raises(AuthRejected, match="HTTP 403"):
        client.start()
    assert [(r.path, r.status) for r in iwa_sim.recordings] == [("/forms/logon.html", 403)]


def test_iwa_against_a_forms_only_server_finds_no_sign_in_page(
    make_simulator: Callable[..., Simulator], make_client: Callable[..., tuple[CwaClient, Notices, Wire]]
) -> None:
    sim = make_simulator(users=SIM_USERS)  # auth "forms": /iwa/logon.html does not exist
    client, _, _ = make_client(sim)

    with pytest.raises(CwaUnavailable, match="HTTP 404"):
        client.start()


def test_each_expired_ticket_brings_a_fresh_handshake_and_recovery(
    iwa_sim: Simulator, make_client: Callable[..., tuple[CwaClient, Notices, Wire]]
) -> None:
    client, notices, _ = make_client(iwa_sim)
    client.start()
    client.set_watched([BOB.uri])
    iwa_sim.wait_for(lambda: notices.availability(BOB.uri) == 6500)

    for signed_in, availability in ((2, 3500), (3, 9500)):

        def recovered(n: int = signed_in) -> bool:
            return sign_ins(iwa_sim.recordings) == n and client.state == "online"

        def seen(a: int = availability) -> bool:
            return notices.availability(BOB.uri) == a

        iwa_sim.faults.expire_tickets()
        iwa_sim.wait_for(recovered)
        iwa_sim.set_presence(BOB.uri, availability=availability)
        iwa_sim.wait_for(seen)

    assert logon_legs(iwa_sim) == HANDSHAKE * 3


# --- the bridge -------------------------------------------------------------------------------


def test_bridge_over_iwa_publishes_recovers_and_keeps_secrets_out_of_logs(
    iwa_sim: Simulator,
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    make_bridge: Callable[..., Bridge],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    mqtt_probe.subscribe(f"{base_topic}/#")

    make_bridge(iwa_sim, mosquitto.url, base_topic, cwa={"auth": "iwa"})
    mqtt_probe.wait_for(f"{base_topic}/bob", lambda p: bool(p) and json.loads(p)["availability"] == 6500)
    iwa_sim.faults.expire_tickets()
    iwa_sim.wait_for(lambda: sign_ins(iwa_sim.recordings) == 2, timeout=10)
    iwa_sim.set_presence(BOB.uri, availability=9500, activity=None, note="Back over NTLM")
    bob = mqtt_probe.wait_for(
        f"{base_topic}/bob", lambda p: bool(p) and json.loads(p)["note"] == "Back over NTLM"
    )

    assert json.loads(bob)["status"] == iwa_sim.truth(BOB.uri).status.value
    assert mqtt_probe.wait_for(f"{base_topic}/bridge/cwa", lambda p: p == b"online") == b"online"
    assert logon_legs(iwa_sim) == HANDSHAKE * 2
    # The handshake is logged (at DEBUG, as lengths); the password never, the tokens never above DEBUG.
    assert any(r.name == "bridge.cwa.iwa" for r in caplog.records)
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name == "bridge.cwa.iwa")
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert PASSWORD not in text, record
        if record.levelno > logging.DEBUG or record.name.startswith("bridge."):
            assert NTLM_TOKEN not in text, record


# --- the real program -------------------------------------------------------------------------


def test_rejected_password_over_iwa_exits_77_without_leaking(
    iwa_sim: Simulator,
    mosquitto: Broker,
    base_topic: str,
    tmp_path: Path,
    run_bridge: Callable[..., BridgeProcess],
) -> None:
    wrong = PASSWORD + "-wrong"
    config = config_dict(iwa_sim, mosquitto.url, base_topic, cwa={"auth": "iwa", "password": wrong})
    process = run_bridge("run", "-c", str(write_config(tmp_path / "config.yaml", config)))

    assert process.wait(30) == 77
    output = process.output()
    assert "cwa.credentials_rejected" in output
    assert logon_legs(iwa_sim) == [(None, 401), (1, 401), (3, 401)]
    assert wrong not in output  # the log level is debug: not at any level
    # At DEBUG httpcore shows the server's challenge among the response headers; the client's
    # messages (the AUTHENTICATE one proves the password) appear at no level, nothing above DEBUG.
    assert AUTHENTICATE_TOKEN not in output
    assert NEGOTIATE_TOKEN not in output
    assert all(" DEBUG " in line for line in output.splitlines() if NTLM_TOKEN in line)
    assert "Traceback" not in output


@pytest.fixture
def without_pyspnego(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import spnego`` fails, as on an install without the extra."""
    shadow = tmp_path / "no-pyspnego" / "spnego"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("pyspnego is not installed (test)")\n')
    return {"PYTHONPATH": str(shadow.parent)}


def test_missing_pyspnego_exits_78_with_the_precise_message(
    iwa_sim: Simulator,
    mosquitto: Broker,
    base_topic: str,
    tmp_path: Path,
    run_bridge: Callable[..., BridgeProcess],
    without_pyspnego: dict[str, str],
) -> None:
    config = config_dict(iwa_sim, mosquitto.url, base_topic, cwa={"auth": "iwa"})
    path = str(write_config(tmp_path / "config.yaml", config))

    run = run_bridge("run", "-c", path, env=without_pyspnego)
    assert run.wait(30) == 78
    assert IWA_MISSING in run.output()
    assert "Traceback" not in run.output()
    assert iwa_sim.recordings == []  # refused before any request to CWA

    check = run_bridge("check-config", "-c", path, env=without_pyspnego)
    assert check.wait(30) == 78
    assert check.output().splitlines() == ["cwa2mqtt: invalid configuration (1 problem):", f"  {IWA_MISSING}"]

    forms = config_dict(iwa_sim, mosquitto.url, base_topic)  # forms never needs pyspnego
    check = run_bridge(
        "check-config", "-c", str(write_config(tmp_path / "forms.yaml", forms)), env=without_pyspnego
    )
    assert check.wait(30) == 0
    assert "auth: forms (configured)" in check.output()
    assert "pip install 'cwa2mqtt[iwa]'): NOT installed in this installation" in check.output()


def test_check_config_explains_the_auth_modes(
    iwa_sim: Simulator,
    mosquitto: Broker,
    base_topic: str,
    tmp_path: Path,
    run_bridge: Callable[..., BridgeProcess],
) -> None:
    config = config_dict(iwa_sim, mosquitto.url, base_topic, cwa={"auth": "iwa"})
    check = run_bridge("check-config", "-c", str(write_config(tmp_path / "config.yaml", config)))

    assert check.wait(30) == 0
    lines = [line for line in check.output().splitlines() if line.startswith("cwa2mqtt: auth: ")]
    assert len(lines) == 2
    forms, iwa = lines
    assert forms.startswith("cwa2mqtt: auth: forms: ")
    assert "XML body of POST /forms/logon.html" in forms
    assert iwa.startswith("cwa2mqtt: auth: iwa (configured): ")
    assert "NTLM over HTTP at /iwa/logon.html" in iwa
    assert iwa.endswith("pip install 'cwa2mqtt[iwa]'): installed in this installation")
    assert PASSWORD not in check.output()


def test_simulate_auth_iwa_serves_the_ntlm_sign_in(
    tmp_path: Path, run_bridge: Callable[..., BridgeProcess]
) -> None:
    users = tmp_path / "users.yaml"
    users.write_text(
        json.dumps([{"uri": ALICE.uri, "username": ALICE.username, "password": PASSWORD, "name": "Alice"}])
    )
    process = run_bridge("simulate", "--auth", "iwa", "--users", str(users), "--listen", "127.0.0.1:0")
    process.wait_output("control API:")
    match = re.search(r"sign-in:\s+POST (http://\S+/iwa/logon\.html)", process.output())
    assert match, process.output()

    with httpx.Client(timeout=5) as http:
        forms = http.post(match[1].replace("/iwa/", "/forms/"), content=b"<cwaRequests/>")
        good = http.post(match[1], content=b"<cwaRequests/>", auth=NtlmAuth(ALICE.username or "", PASSWORD))
        bad = http.post(match[1], content=b"<cwaRequests/>", auth=NtlmAuth(ALICE.username or "", "nope"))

    assert forms.status_code == 403
    assert (good.status_code, bool(good.headers.get("CWA-Ticket"))) == (200, True)
    assert (bad.status_code, bad.headers.get("CWA-Ticket")) == (401, None)
    assert bad.headers.get_list("WWW-Authenticate") == ["Negotiate", "NTLM"]
    process.signal(signal.SIGTERM)
    assert process.wait(10) == 0
