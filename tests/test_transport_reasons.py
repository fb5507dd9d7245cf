"""A failed CWA exchange says why, not only which exception: "connection refused" and "reset by
peer" point at different problems (nothing listening vs. a proxy or firewall cutting the line).
Real sockets on loopback produce each failure."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import httpx
import pytest

from bridge.cwa.transport import transport_reason


def _fail(url: str) -> httpx.HTTPError:
    with httpx.Client(timeout=5.0) as client, pytest.raises(httpx.HTTPError) as info:
        client.get(url)
    return info.value


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def _serve_once(sock: socket.socket, reset: bool) -> threading.Thread:
    def run() -> None:
        conn, _ = sock.accept()
        conn.recv(65536)  # the whole request
        if reset:  # RST instead of FIN
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_nothing_listening_is_connection_refused(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    listener.close()  # the port is free now: nothing answers
    assert transport_reason(_fail(f"http://127.0.0.1:{port}/cwa")) == "ConnectError: Connection refused"


def test_a_server_that_closes_without_answering_says_so(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    served = _serve_once(listener, reset=False)
    reason = transport_reason(_fail(f"http://127.0.0.1:{port}/cwa"))
    served.join(5)
    assert reason == "RemoteProtocolError: the server closed the connection without a complete answer"


def test_a_reset_connection_is_reset_by_peer(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    served = _serve_once(listener, reset=True)
    reason = transport_reason(_fail(f"http://127.0.0.1:{port}/cwa"))
    served.join(5)
    assert reason.endswith(": Connection reset by peer"), reason


def test_the_url_never_appears_in_the_reason(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    listener.close()
    reason = transport_reason(_fail(f"http://user:s3cret@127.0.0.1:{port}/cwa?ticket=T-SECRET"))
    assert "s3cret" not in reason
    assert "T-SECRET" not in reason
    assert str(port) not in reason
