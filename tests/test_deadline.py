"""Overall deadlines of CWA exchanges against a real socket server that trickles, stalls or answers.

httpx's timeouts apply to each socket read: a server that sends one byte every 0.1 s never trips
them, in the body or in the headers. These tests bound the whole exchange instead. The margins are
generous (a busy 2-core machine), yet far below what the trickled answers would take to finish.
"""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from bridge.cwa.session import CwaSession, Poll
from bridge.cwa.settings import CwaClientSettings
from bridge.cwa.transport import CwaTransport
from bridge.errors import CwaUnavailable
from bridge.logs import clear_secrets, setup_logging

TICKET = "T1cket-Zq8-secret-value=="
EVENTS = b'<cwaEvents xmlns="http://schemas.microsoft.com/2006/09/rtc/cwa" ackId="1" pollWaitTime="100"/>'
DEADLINE_S = 1.0
# The deadline plus room for a loaded machine; every trickled answer below needs >= 20 s to finish.
BOUND_S = DEADLINE_S + 2.0


@dataclass(frozen=True)
class Reply:
    """How the server answers one request: ``chunk`` bytes every ``every_s`` (0: all at once);
    ``head_too``: trickle the status line and headers as well; ``silent``: never answer."""

    body: bytes = EVENTS
    chunk: int = 0
    every_s: float = 0.0
    head_too: bool = False
    silent: bool = False
    ticket: str | None = TICKET


class TrickleServer:
    """HTTP/1.1 on 127.0.0.1, keep-alive, answering the n-th request with ``script[n]``."""

    def __init__(self, script: list[Reply]) -> None:
        self.script = script
        self.connections = 0
        self.requests = 0
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(3)
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        buffer = b""
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                while b"\r\n\r\n" in buffer:
                    head, _, rest = buffer.partition(b"\r\n\r\n")
                    length = next(
                        (
                            int(line.split(b":")[1])
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length:")
                        ),
                        0,
                    )
                    if len(rest) < length:
                        break
                    buffer = rest[length:]
                    reply = self.script[min(self.requests, len(self.script) - 1)]
                    self.requests += 1
                    if not self._answer(conn, reply):
                        return

    def _answer(self, conn: socket.socket, reply: Reply) -> bool:
        if reply.silent:
            self._stop.wait(30)
            return False
        ticket = f"CWA-Ticket: {reply.ticket}\r\n" if reply.ticket else ""
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n{ticket}Content-Length: {len(reply.body)}\r\n\r\n"
        ).encode()
        prefix, slow = (b"", head + reply.body) if reply.head_too else (head, reply.body)
        try:
            conn.sendall(prefix)
            if not reply.chunk:
                conn.sendall(slow)
                return True
            for start in range(0, len(slow), reply.chunk):
                if self._stop.wait(reply.every_s):
                    return False
                conn.sendall(slow[start : start + reply.chunk])
        except OSError:
            return False  # the client gave up: what the deadline is for
        return True


Server = Callable[[list["Reply"]], "TrickleServer"]
Transport = Callable[[str], CwaTransport]


@pytest.fixture
def server() -> Iterator[Callable[[list[Reply]], TrickleServer]]:
    servers: list[TrickleServer] = []

    def make(script: list[Reply]) -> TrickleServer:
        servers.append(TrickleServer(script))
        return servers[-1]

    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def transport() -> Iterator[Callable[[str], CwaTransport]]:
    clients: list[httpx.Client] = []
    session = CwaSession()

    def make(url: str) -> CwaTransport:
        clients.append(httpx.Client())
        settings = CwaClientSettings(
            base_url=url, username="EXAMPLE\\alice", password="pw", uri="sip:alice@example.org",
            timeout_s=DEADLINE_S, poll_timeout_s=DEADLINE_S,
        )  # fmt: skip
        return CwaTransport(
            settings, clients[-1], ticket=lambda: session.ticket, adopt_ticket=session.adopt_ticket
        )

    yield make
    for client in clients:
        client.close()
    clear_secrets()


def _timed(call: Callable[[], object]) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    try:
        call()
    except Exception as exc:
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


def test_a_poll_whose_body_trickles_is_abandoned_at_its_deadline(
    server: Server, transport: Transport
) -> None:
    srv = server([Reply(body=EVENTS + b" " * 400, chunk=1, every_s=0.05)])  # ~25 s to finish
    cwa = transport(srv.url)
    error, took = _timed(lambda: cwa.fetch_events("7", 0))
    assert isinstance(error, CwaUnavailable)
    assert str(error) == "data: no complete answer within the 1 s overall deadline"
    assert DEADLINE_S * 0.9 <= took < BOUND_S


def test_a_command_whose_headers_trickle_on_a_kept_alive_connection_is_abandoned(
    server: Server, transport: Transport
) -> None:
    """The second exchange reuses the connection, so the socket is never handed out before the
    headers are complete; the deadline must bound the header read itself."""
    body = b'<cwaResponses xmlns="http://schemas.microsoft.com/2006/09/rtc/cwa"/>'
    srv = server([Reply(body=body), Reply(body=body, chunk=1, every_s=0.1, head_too=True)])
    cwa = transport(srv.url)
    assert cwa.post_commands("7", []).responses == ()
    error, took = _timed(lambda: cwa.post_commands("7", []))
    assert srv.connections == 1
    assert isinstance(error, CwaUnavailable)
    assert str(error) == "command: no complete answer within the 1 s overall deadline"
    assert took < BOUND_S


def test_a_sign_in_that_trickles_is_abandoned_and_a_silent_server_times_out_at_the_deadline(
    server: Server, transport: Transport
) -> None:
    srv = server([Reply(chunk=1, every_s=0.1, head_too=True), Reply(silent=True)])
    cwa = transport(srv.url)
    error, took = _timed(cwa.sign_in)
    assert isinstance(error, CwaUnavailable)
    assert str(error).startswith("logon: no complete answer within")
    assert took < BOUND_S
    error, took = _timed(lambda: cwa.fetch_events("7", 0))
    assert isinstance(error, CwaUnavailable)
    assert "overall deadline" in str(error)
    assert DEADLINE_S * 0.9 <= took < BOUND_S


def test_the_exchange_after_an_abandoned_one_succeeds_on_a_new_connection(
    server: Server, transport: Transport
) -> None:
    srv = server([Reply(chunk=1, every_s=0.2), Reply()])
    cwa = transport(srv.url)
    error, _ = _timed(lambda: cwa.fetch_events("7", 0))
    assert isinstance(error, CwaUnavailable)
    answer = cwa.fetch_events("7", 0)
    assert answer.body == EVENTS
    assert srv.connections == 2  # the abandoned connection is not reused


def test_an_abandoned_poll_is_resent_with_the_same_ack_id() -> None:
    """A deadline is a transport failure ("unavailable"): back-off, then the same AckId again."""
    s = CwaSession()
    s.next_action()
    s.signed_in("t", None)
    s.next_action()
    s.session_started("7", 100)
    first = s.next_action()
    assert isinstance(first, Poll)
    s.failed("unavailable")
    s.next_action()  # the back-off
    again = s.next_action()
    assert again == first
    assert s.state == "online"  # one abandoned poll is tolerated


def test_every_ticket_seen_is_redacted_from_log_lines(server: Server, transport: Transport) -> None:
    """Code must never log a ticket; if it does anyway, the line shows stars, not the ticket."""
    rotated = TICKET.replace("T1", "T2")
    srv = server([Reply(), Reply(ticket=rotated)])
    cwa = transport(srv.url)
    cwa.fetch_events("7", 0)
    cwa.fetch_events("7", 1)
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = setup_logging("info", "text", stream=stream)  # info: library loggers stay at WARNING
    try:
        logging.getLogger("bridge.test").warning("cwa.oops ticket=%s then=%s", TICKET, rotated)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert "cwa.oops ticket=********** then=**********" in stream.getvalue()
