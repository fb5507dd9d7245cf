"""The endpoint's server over real sockets: idle and slow clients, bounded threads, one request
per request, the Host guard, the optional token, and a busy port."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge.http import HealthReport, HttpServer
from bridge.metrics import Metrics
from tests.support.bridge import BridgeProcess
from tests.support.config import BASE_YAML, PASSWORD_ENV
from tests.support.convergence import eventually
from tests.support.http_endpoint import fetch, make_entry

TOKEN = "Tk9-board-t0ken-Zq8x"

SERVE_SCRIPT = """
import sys
from bridge.http import HealthReport, HttpServer
from bridge.logs import setup_logging
from bridge.metrics import Metrics

setup_logging(sys.argv[1], "json")
server = HttpServer("127.0.0.1", 0, health=lambda: HealthReport(True), metrics=Metrics(), board=list,
                    channel_timeout=float(sys.argv[2]))
server.start()
print(server.url, flush=True)
sys.stdin.read()  # serve until the test closes our stdin
server.stop()
"""


def _server(**kwargs: object) -> HttpServer:
    return HttpServer(
        str(kwargs.pop("host", "127.0.0.1")),
        0,
        health=lambda: HealthReport(True, {"mqtt": "connected", "cwa": "online"}),
        metrics=Metrics(),
        board=lambda: [make_entry("bob", note="Back at 3pm")],
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def serve() -> Iterator[Callable[..., HttpServer]]:
    started: list[HttpServer] = []

    def start(**kwargs: object) -> HttpServer:
        server = _server(**kwargs)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _address(server: HttpServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return host.strip("[]"), int(port)


def _closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """True when the server closes ``sock`` (EOF or reset) within ``timeout`` seconds."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_an_idle_connection_is_closed_quietly_with_one_debug_line(tmp_path: Path) -> None:
    script = tmp_path / "serve.py"
    script.write_text(SERVE_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), "debug", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        host, port = url.removeprefix("http://").rsplit(":", 1)
        # A browser's preconnect: a connection that never sends a byte.
        with socket.create_connection((host, int(port)), timeout=5) as idle:
            assert _closed_by_server(idle, timeout=15)
        assert fetch(url + "/healthz").status == 200
    finally:
        _, stderr = proc.communicate(input="", timeout=15)

    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    records = [json.loads(line) for line in stderr.splitlines()]  # every line is the JSON format
    assert all(r["event"].startswith("http.") for r in records), records
    closed = [r for r in records if r["event"] == "http.connection_closed"]
    assert len(closed) == 1
    assert "reason=idle" in closed[0]["msg"]
    assert all(r["level"] in ("DEBUG", "INFO") for r in records), records


def test_fifty_slow_clients_do_not_grow_threads_nor_block_others(serve: Callable[..., HttpServer]) -> None:
    server = serve(threads=4)
    baseline = threading.active_count()
    slow = [socket.create_connection(_address(server), timeout=5) for _ in range(50)]
    try:
        for sock in slow:
            sock.sendall(b"GET /api/presence HTTP/1.1\r\nHost: localhost\r\n")  # never finished
        # Served while 50 half-sent requests are open: they hold no worker.
        assert fetch(server.url + "/api/presence").status == 200
        assert threading.active_count() == baseline
    finally:
        for sock in slow:
            sock.close()


def test_a_request_trickling_in_is_dropped_at_the_read_deadline(serve: Callable[..., HttpServer]) -> None:
    server = serve(channel_timeout=60.0, read_timeout=1.0)
    with socket.create_connection(_address(server), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")

        def trickle_until_dropped() -> bool:
            try:
                sock.sendall(b"X")  # keeps the connection "active" for an idle timer
            except OSError:
                return True
            return _closed_by_server(sock, timeout=0.2)

        assert eventually(trickle_until_dropped, timeout=15, interval=0.1)


def test_a_get_with_a_body_is_one_request(serve: Callable[..., HttpServer]) -> None:
    server = serve()
    host, port = _address(server)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        smuggled = b"GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n"
        conn.request("GET", "/healthz", body=smuggled, headers={"Host": "localhost"})
        first = conn.getresponse()
        first.read()
        conn.request("GET", "/api/presence", headers={"Host": "localhost"})
        second = conn.getresponse()
        body = second.read()
    finally:
        conn.close()

    assert first.status == 200
    assert second.status == 200  # the next answer is for the next request, not the body
    assert json.loads(body)["users"][0]["id"] == "bob"


def test_a_large_body_is_refused_without_reaching_the_app(serve: Callable[..., HttpServer]) -> None:
    server = serve()

    answer = fetch(server.url + "/healthz", method="POST", body=b"x" * 64 * 1024)

    assert answer.status == 413


# --- the Host guard ---------------------------------------------------------------------------


def _get(server: HttpServer, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(*_address(server), timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True)
        for name, value in headers.items():
            conn.putheader(name.replace("_", "-"), value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_a_foreign_host_is_misdirected_and_sees_no_presence(serve: Callable[..., HttpServer]) -> None:
    server = serve()
    port = _address(server)[1]

    for path in ("/", "/api/presence", "/metrics", "/healthz"):
        status, _, body = _get(server, path, Host=f"rebind.attacker.example:{port}")
        assert status == 421, path
        assert b"Back at 3pm" not in body
        assert b"http.allowed_hosts" in body
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "127.0.0.1", f"[::1]:{port}", "LOCALHOST"):
        assert _get(server, "/api/presence", Host=host)[0] == 200, host


def test_allowed_hosts_are_accepted_with_any_port(serve: Callable[..., HttpServer]) -> None:
    server = serve(allowed_hosts=["board.example.org"])

    assert _get(server, "/api/presence", Host="board.example.org:8099")[0] == 200
    assert _get(server, "/api/presence", Host="Board.Example.org.")[0] == 200
    assert _get(server, "/api/presence", Host="other.example.org")[0] == 421


def test_a_wildcard_listen_accepts_the_machines_own_names_and_addresses(
    serve: Callable[..., HttpServer],
) -> None:
    server = serve(host="0.0.0.0")  # noqa: S104 - the case under test

    assert _get(server, "/api/presence", Host=socket.gethostname())[0] == 200
    assert _get(server, "/api/presence", Host="192.0.2.10:8099")[0] == 200
    assert _get(server, "/api/presence", Host="rebind.attacker.example")[0] == 421


# --- the token ------------------------------------------------------------------------------


def test_with_a_token_every_path_but_healthz_needs_it(serve: Callable[..., HttpServer]) -> None:
    server = serve(token=TOKEN)

    for path in ("/", "/api/presence", "/metrics", "/nope"):
        answer = fetch(server.url + path)
        assert answer.status == 401, path
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert b"Back at 3pm" not in answer.body
        assert (
            fetch(server.url + path, headers={"Authorization": "Bearer wrong-token-wrong-token"}).status
            == 401
        )
    assert fetch(server.url + "/healthz").status == 200
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert fetch(server.url + "/api/presence", headers=bearer).status == 200
    assert fetch(server.url + "/metrics", headers=bearer).status == 200
    assert fetch(server.url + "/", headers=bearer).status == 200


def test_a_browser_opening_the_token_link_gets_a_cookie_and_a_clean_address(
    serve: Callable[..., HttpServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(token=TOKEN)

    with caplog.at_level(logging.DEBUG):
        answer = fetch(server.url + f"/?token={TOKEN}")
        wrong = fetch(server.url + "/?token=not-the-token-at-all")

    assert answer.status == 303
    assert answer.headers["location"] == "./"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert TOKEN not in cookie  # the cookie proves the token without carrying it
    pair = cookie.split(";", 1)[0]
    assert fetch(server.url + "/api/presence", headers={"Cookie": pair}).status == 200
    assert fetch(server.url + "/", headers={"Cookie": pair}).status == 200
    assert fetch(server.url + "/api/presence", headers={"Cookie": pair[:-4] + "0000"}).status == 401
    assert wrong.status == 401
    assert "set-cookie" not in wrong.headers
    assert TOKEN not in caplog.text


# --- a busy port ------------------------------------------------------------------------------


def test_run_on_a_busy_port_exits_78_with_a_reason(
    run_bridge: Callable[..., BridgeProcess], tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "config.yaml"
        config.write_text(
            BASE_YAML + f"mqtt: {{url: 'mqtt://127.0.0.1:1'}}\nhttp: {{listen: '127.0.0.1:{port}'}}\n"
        )

        process = run_bridge("run", "--config", str(config), env=PASSWORD_ENV)
        code = process.wait(30)

    assert code == 78, process.output()
    assert (
        f"http.listen: cannot listen on 127.0.0.1:{port}: address already in use; "
        'pick another port or set http.listen: "" to disable'
    ) in process.output()
    assert "Traceback" not in process.output()


def test_waitress_lines_follow_the_event_name_rule_when_connections_run_out(
    serve: Callable[..., HttpServer], caplog: pytest.LogCaptureFixture
) -> None:
    from bridge.http.server import CONNECTION_LIMIT

    server = serve()
    with caplog.at_level(logging.INFO):
        held = [socket.create_connection(_address(server), timeout=5) for _ in range(CONNECTION_LIMIT + 5)]
        try:
            assert eventually(lambda: "http.connection_limit_reached" in caplog.text, timeout=10)
        finally:
            for sock in held:
                sock.close()
        assert eventually(lambda: "http.connection_limit_cleared" in caplog.text, timeout=10)
    waitress = [r for r in caplog.records if r.name.startswith("waitress")]
    assert waitress
    assert all(r.getMessage().startswith("http.") for r in waitress)
