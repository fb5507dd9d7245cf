"""Integrated Windows Authentication: the client's NTLM auth flow against a real NTLM acceptor (§2.2).

The server here is a tiny stdlib keep-alive HTTP/1.1 server playing IIS in front of
``/iwa/logon.html``: one `NtlmConnection` per TCP connection (http.server makes one handler
instance per connection), a `CWA-Ticket` header once the handshake proves the password.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import stat
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import spnego
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.cwa.iwa import IWA_MISSING, NtlmAuth, iwa_available
from bridge.errors import ConfigError, CwaProtocolError
from bridge.simulator.ntlm import NtlmAcceptor, NtlmConnection, NtlmStep, table_lookup

ALICE_PASSWORD = "s3cret:for-tests-ä"  # a ':' and a non-ASCII letter on purpose
BOB_PASSWORD = "bob-Pa55word"
LOGON_BODY = b"<cwaRequests><logon><user>EXAMPLE\\alice</user></logon></cwaRequests>"


@dataclass
class Seen:
    connection: int
    authorization: str | None
    status: int


@dataclass
class IwaServer:
    """State of the test server; tests may change `users`, `offer`, `split` and `challenge`."""

    url: str
    users: dict[str, str | None]
    offer: str | None = None  # None: whatever the acceptor says
    split: bool = True  # one WWW-Authenticate header per challenge (IIS) or one comma-joined header
    challenge: str | None = None  # replaces the acceptor's type 2 answer (malformed-server tests)
    connections: int = 0
    seen: list[Seen] = field(default_factory=list)
    signed_in: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def logon_url(self) -> str:
        return self.url + "/iwa/logon.html"

    def tokens(self) -> list[str]:
        """Every base64 handshake token the server received."""
        return [s.authorization.split(" ", 1)[1] for s in self.seen if s.authorization]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        state = self.server.state
        with state.lock:
            state.connections += 1
            self.number = state.connections
        self.ntlm: NtlmConnection = self.server.acceptor.start_connection()

    def do_POST(self) -> None:
        state = self.server.state
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        authorization = self.headers.get("Authorization")
        step = self.ntlm.step(authorization)
        headers: list[tuple[str, str]] = []
        if step.status == 200:
            assert step.user is not None
            state.signed_in.append(step.user)
            headers.append(("CWA-Ticket", f"T-{len(state.signed_in)}"))
            body = b"<cwaResponses><requestSucceeded rid=''/></cwaResponses>"
        else:
            values = step.challenges
            if state.offer is not None and authorization is None:
                values = tuple(v.strip() for v in state.offer.split(","))
            if state.challenge is not None and str(step.www_authenticate).startswith(("NTLM ", "Negotiate ")):
                values = (state.challenge,)
            headers += (
                [("WWW-Authenticate", v) for v in values]
                if state.split
                else [("WWW-Authenticate", ", ".join(values))]
            )
            body = b"<html>401 Unauthorized</html>"
        with state.lock:
            state.seen.append(Seen(self.number, authorization, step.status))
        self.send_response(step.status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: IwaServer
    acceptor: NtlmAcceptor


@pytest.fixture
def iwa_server() -> Iterator[IwaServer]:
    server = _Server(("127.0.0.1", 0), _Handler)
    host, port = server.server_address[:2]
    state = IwaServer(
        url=f"http://{host!s}:{port}",
        users={"EXAMPLE\\alice": ALICE_PASSWORD, "bob@example.org": BOB_PASSWORD, "EXAMPLE\\carol": None},
    )
    server.state = state
    server.acceptor = NtlmAcceptor(table_lookup(lambda: list(state.users.items())))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def sign_in(server: IwaServer, username: str, password: str) -> httpx.Response:
    with httpx.Client(timeout=5) as client:
        return client.post(server.logon_url, content=LOGON_BODY, auth=NtlmAuth(username, password))


# --- the handshake over HTTP -------------------------------------------------------------------


@pytest.mark.parametrize("username", ["EXAMPLE\\alice", "example\\ALICE", "alice"])
def test_right_password_signs_in_on_one_connection(iwa_server: IwaServer, username: str) -> None:
    response = sign_in(iwa_server, username, ALICE_PASSWORD)

    assert response.status_code == 200
    assert response.headers["CWA-Ticket"] == "T-1"
    assert iwa_server.signed_in == ["EXAMPLE\\alice"]  # the user table's name, whatever the case sent
    # 401 offer → type 1 → 401 challenge → type 3 → 200, all on a single TCP connection
    assert [s.status for s in iwa_server.seen] == [401, 401, 200]
    assert {s.connection for s in iwa_server.seen} == {1}
    assert iwa_server.connections == 1
    assert iwa_server.seen[0].authorization is None
    assert all(str(s.authorization).startswith("NTLM ") for s in iwa_server.seen[1:])


def test_upn_user_signs_in(iwa_server: IwaServer) -> None:
    response = sign_in(iwa_server, "Bob@Example.org", BOB_PASSWORD)

    assert response.status_code == 200
    assert "CWA-Ticket" in response.headers
    assert iwa_server.signed_in == ["bob@example.org"]


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("EXAMPLE\\alice", "wrong"),
        ("EXAMPLE\\alice", ALICE_PASSWORD.upper()),
        ("OTHERDOM\\alice", ALICE_PASSWORD),  # NTLMv2 binds the domain into the proof
        ("bob@example.org", ALICE_PASSWORD),
        ("EXAMPLE\\mallory", ALICE_PASSWORD),  # unknown user
        ("EXAMPLE\\carol", ""),  # a user without a password cannot sign in
    ],
)
def test_refused_credentials_end_with_401_and_no_ticket(
    iwa_server: IwaServer, username: str, password: str
) -> None:
    response = sign_in(iwa_server, username, password)

    assert response.status_code == 401
    assert "CWA-Ticket" not in response.headers
    assert iwa_server.signed_in == []
    # the full handshake ran once and was refused at type 3; the client did not loop
    assert [s.status for s in iwa_server.seen] == [401, 401, 401]
    assert iwa_server.connections == 1


def test_re_sign_in_repeats_the_handshake_and_sees_password_changes(iwa_server: IwaServer) -> None:
    with httpx.Client(timeout=5) as client:
        auth = NtlmAuth("EXAMPLE\\alice", ALICE_PASSWORD)
        first = client.post(iwa_server.logon_url, content=LOGON_BODY, auth=auth)
        second = client.post(iwa_server.logon_url, content=LOGON_BODY, auth=auth)
        iwa_server.users["EXAMPLE\\alice"] = "changed-by-the-admin"
        third = client.post(iwa_server.logon_url, content=LOGON_BODY, auth=auth)

    assert (first.headers["CWA-Ticket"], second.headers["CWA-Ticket"]) == ("T-1", "T-2")
    assert third.status_code == 401
    assert [s.status for s in iwa_server.seen] == [401, 401, 200] * 2 + [401, 401, 401]
    assert iwa_server.connections == 1  # the pool reused the kept-alive connection throughout


@pytest.mark.parametrize("split", [True, False])
@pytest.mark.parametrize(
    ("offer", "scheme"), [("Negotiate, NTLM", "NTLM"), ("NTLM", "NTLM"), ("Negotiate", "Negotiate")]
)
def test_scheme_follows_the_servers_offer(
    iwa_server: IwaServer, offer: str, scheme: str, split: bool
) -> None:
    iwa_server.offer, iwa_server.split = offer, split

    response = sign_in(iwa_server, "EXAMPLE\\alice", ALICE_PASSWORD)

    assert response.status_code == 200
    assert [str(s.authorization).split(" ")[0] for s in iwa_server.seen[1:]] == [scheme, scheme]


def test_a_401_without_ntlm_or_negotiate_is_returned_untouched(iwa_server: IwaServer) -> None:
    iwa_server.offer = 'Basic realm="cwa"'

    response = sign_in(iwa_server, "EXAMPLE\\alice", ALICE_PASSWORD)

    assert response.status_code == 401
    assert [s.authorization for s in iwa_server.seen] == [None]


def test_async_client_signs_in_too(iwa_server: IwaServer) -> None:
    async def run() -> httpx.Response:
        async with httpx.AsyncClient(timeout=5) as client:
            auth = NtlmAuth("bob@example.org", BOB_PASSWORD)
            return await client.post(iwa_server.logon_url, content=LOGON_BODY, auth=auth)

    response = asyncio.run(run())

    assert response.status_code == 200
    assert iwa_server.connections == 1


def test_concurrent_sign_ins_each_get_their_own_verdict(iwa_server: IwaServer) -> None:
    attempts = [("EXAMPLE\\alice", ALICE_PASSWORD, 200), ("bob@example.org", BOB_PASSWORD, 200)] * 4
    attempts += [("EXAMPLE\\alice", BOB_PASSWORD, 401), ("bob@example.org", ALICE_PASSWORD, 401)] * 2

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda a: sign_in(iwa_server, a[0], a[1]).status_code, attempts))

    assert results == [expected for _, _, expected in attempts]
    assert sorted(iwa_server.signed_in) == ["EXAMPLE\\alice"] * 4 + ["bob@example.org"] * 4


@pytest.mark.parametrize(
    "challenge", ["NTLM !!not-base64!!", "NTLM " + base64.b64encode(b"junk" * 8).decode()]
)
def test_a_malformed_challenge_is_a_protocol_error(iwa_server: IwaServer, challenge: str) -> None:
    iwa_server.challenge = challenge

    with pytest.raises(CwaProtocolError) as info:
        sign_in(iwa_server, "EXAMPLE\\alice", ALICE_PASSWORD)

    assert ALICE_PASSWORD not in str(info.value)
    assert iwa_server.signed_in == []


# --- secrets and logging ---------------------------------------------------------------------


def test_password_and_tokens_stay_out_of_logs(
    iwa_server: IwaServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    assert sign_in(iwa_server, "EXAMPLE\\alice", ALICE_PASSWORD).status_code == 200
    assert sign_in(iwa_server, "EXAMPLE\\alice", ALICE_PASSWORD + "x").status_code == 401

    tokens = iwa_server.tokens()
    assert len(tokens) == 4
    assert any(r.name == "bridge.cwa.iwa" and r.levelno == logging.DEBUG for r in caplog.records)
    for record in caplog.records:
        text = record.getMessage()
        assert ALICE_PASSWORD not in text
        if record.levelno > logging.DEBUG or record.name.startswith("bridge."):
            assert not any(token in text for token in tokens), record
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name == "bridge.cwa.iwa")


def test_repr_and_errors_never_show_the_password() -> None:
    auth = NtlmAuth("EXAMPLE\\alice", ALICE_PASSWORD)

    assert "EXAMPLE" in repr(auth)
    assert ALICE_PASSWORD not in repr(auth)
    assert ALICE_PASSWORD not in str(auth)
    with pytest.raises(ValueError, match="protocol") as info:
        NtlmAuth("EXAMPLE\\alice", ALICE_PASSWORD, protocol="kerberos")
    assert ALICE_PASSWORD not in str(info.value)


def test_credential_store_holds_no_clear_password_and_is_private(iwa_server: IwaServer) -> None:
    assert sign_in(iwa_server, "EXAMPLE\\alice", ALICE_PASSWORD).status_code == 200

    path = os.environ["NTLM_USER_FILE"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path, encoding="utf-8") as f:
        assert f.read() == ""  # emptied after each verification


# --- pyspnego missing --------------------------------------------------------------------------


def test_missing_pyspnego_is_the_precise_config_error(
    iwa_server: IwaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "spnego", None)

    assert iwa_available() is False
    with pytest.raises(ConfigError) as info:
        sign_in(iwa_server, "EXAMPLE\\alice", ALICE_PASSWORD)
    assert info.value.problems == [IWA_MISSING]
    assert IWA_MISSING == "cwa.auth: iwa needs the optional dependency pyspnego: pip install 'cwa2mqtt[iwa]'"
    assert ALICE_PASSWORD not in str(info.value)


def test_pyspnego_is_only_needed_when_the_server_asks(
    iwa_server: IwaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    iwa_server.offer = 'Basic realm="cwa"'
    monkeypatch.setitem(sys.modules, "spnego", None)

    assert sign_in(iwa_server, "EXAMPLE\\alice", ALICE_PASSWORD).status_code == 401


def test_iwa_available_with_pyspnego_installed() -> None:
    assert iwa_available() is True


# --- the acceptor on its own -------------------------------------------------------------------


def _acceptor(users: dict[str, str | None]) -> NtlmAcceptor:
    return NtlmAcceptor(table_lookup(lambda: list(users.items())))


def _header(token: bytes | None, scheme: str = "NTLM") -> str:
    assert token is not None
    return f"{scheme} {base64.b64encode(token).decode()}"


def _handshake(connection: NtlmConnection, username: str, password: str) -> tuple[int, str | None]:
    client = spnego.client(username, password, service="http", protocol="ntlm")
    offer = connection.step(None)
    assert (offer.status, offer.challenges) == (401, ("Negotiate", "NTLM"))
    challenge = connection.step(_header(client.step()))
    assert challenge.status == 401
    assert challenge.www_authenticate is not None
    token = base64.b64decode(challenge.www_authenticate.split(" ", 1)[1])
    final = connection.step(_header(client.step(token)))
    return final.status, final.user


@settings(max_examples=25)
@given(password=st.text(min_size=1, max_size=40))
def test_acceptor_accepts_exactly_the_right_password(password: str) -> None:
    acceptor = _acceptor({"EXAMPLE\\dave": password})

    assert _handshake(acceptor.start_connection(), "EXAMPLE\\dave", password) == (200, "EXAMPLE\\dave")
    assert _handshake(acceptor.start_connection(), "EXAMPLE\\dave", password + "!") == (401, None)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic YWxpY2U6cHc=",
        "NTLM",
        "NTLM %%%",
        _header(b"NTLMSSP\x00\x03\x00\x00\x00" + b"\x00" * 64),  # a type 3 without a challenge first
        _header(b"\x60\x82\x01\x00kerberos-ish"),  # SPNEGO/Kerberos: not accepted here
        _header(b"NTLMSSP\x00\x01\x00\x00\x00"),  # truncated type 1
    ],
)
def test_acceptor_answers_anything_unexpected_with_a_fresh_offer(header: str | None) -> None:
    step = _acceptor({"EXAMPLE\\alice": ALICE_PASSWORD}).start_connection().step(header)

    assert (step.status, step.user) == (401, None)
    assert step.challenges == ("Negotiate", "NTLM")


def test_challenge_belongs_to_its_connection() -> None:
    acceptor = _acceptor({"EXAMPLE\\alice": ALICE_PASSWORD})
    first, second = acceptor.start_connection(), acceptor.start_connection()
    client = spnego.client("EXAMPLE\\alice", ALICE_PASSWORD, service="http", protocol="ntlm")
    challenge = first.step(_header(client.step()))
    assert challenge.www_authenticate is not None
    type3 = client.step(base64.b64decode(challenge.www_authenticate.split(" ", 1)[1]))

    assert second.step(_header(type3)).status == 401  # another connection never saw the challenge
    assert first.step(_header(type3)) == NtlmStep(200, None, "EXAMPLE\\alice")


def test_table_lookup_matches_names_as_clients_send_them() -> None:
    lookup = table_lookup(
        lambda: [("EXAMPLE\\alice", "a"), ("bob@example.org", "b"), ("EXAMPLE\\bob", "b2"), ("carol", None)]
    )

    assert lookup("example\\ALICE") == ("EXAMPLE\\alice", "a")
    assert lookup("alice") == ("EXAMPLE\\alice", "a")
    assert lookup("BOB@example.org") == ("bob@example.org", "b")
    assert lookup("bob") is None  # ambiguous
    assert lookup("carol") is None  # no password: cannot sign in
    assert lookup("OTHER\\alice") is None
