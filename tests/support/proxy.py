"""A fault-injecting TCP proxy between the bridge and the simulator, per channel.

    def test_x(make_simulator, fault_proxy):
        sim = make_simulator(...)
        proxy = fault_proxy(sim)                 # point cwa.url at proxy.url
        proxy.set_fault("data", trickle(1, 0.5)) # the data channel's answers: 1 byte every 0.5 s
        proxy.set_fault("data", PASS)            # the fault ends

The proxy reads each HTTP request the bridge sends (head plus ``Content-Length`` body; the bridge
sends no chunked requests), classifies it by the path of its request line (``data``, ``command``
or ``logon``) and handles it and its answer by that channel's fault, looked up again whenever
bytes move, so a fault set while an exchange is in flight (a held poll) applies to it at once:

- `PASS`: forward both ways.
- `trickle(n, every_s)`: forward the request; the server's answer goes out ``n`` bytes every ``every_s``.
- `STALL`: accept the request, never forward it, never answer (the connection stays open, silent).
- `BLACK_HOLE`: the open connection stops forwarding both ways, for good: what was in flight is lost.
- `RESET`: the connection is closed with a TCP RST.

A connection once stalled or black-holed stays dead when its fault ends (as a half-open connection
behind a failed NAT would); the bridge has to give up on it. Bounded: at most `MAX_CONNECTIONS`
connections at once (more are closed on accept), at most `MAX_PENDING` bytes of a trickled answer
held (the server is not read beyond that), one daemon thread per connection, all stopped by
`stop()` within a fraction of a second.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from bridge.simulator import Simulator

MAX_CONNECTIONS = 64
MAX_PENDING = 4 * 1024 * 1024
MAX_REQUEST_HEAD = 64 * 1024
TICK_S = 0.02  # how often a connection thread looks at its fault and the stop flag


@dataclass(frozen=True)
class Fault:
    mode: str  # "pass" | "trickle" | "stall" | "black_hole" | "reset"
    chunk: int = 0
    every_s: float = 0.0


PASS = Fault("pass")
STALL = Fault("stall")
BLACK_HOLE = Fault("black_hole")
RESET = Fault("reset")


def trickle(chunk: int, every_s: float) -> Fault:
    return Fault("trickle", chunk, every_s)


_REQUEST_LINE = re.compile(rb"^[A-Z]+ (\S+) HTTP/1\.[01]\r\n")
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


class FaultProxy:
    """See the module docstring."""

    def __init__(self, upstream: tuple[str, int], data_path: str, command_path: str) -> None:
        self.upstream = upstream
        self._paths = {"data": data_path, "command": command_path}
        self._faults: dict[str, Fault] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(TICK_S * 5)
        self.port: int = self._server.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self.requests: dict[str, int] = {"data": 0, "command": 0, "logon": 0}
        self._accept = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_fault(self, channel: str, fault: Fault) -> None:
        """``channel``: ``data``, ``command``, ``logon`` or ``all``."""
        with self._lock:
            for name in ("data", "command", "logon") if channel == "all" else (channel,):
                self._faults[name] = fault

    def fault(self, channel: str) -> Fault:
        with self._lock:
            return self._faults.get(channel, PASS)

    def start(self) -> FaultProxy:
        self._accept.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._accept.join(2)
        for thread in list(self._threads):
            thread.join(2)
        self._server.close()

    # ------------------------------------------------------------------ internals

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._threads = [t for t in self._threads if t.is_alive()]
            if len(self._threads) >= MAX_CONNECTIONS:
                client.close()  # the bound: refuse rather than queue
                continue
            thread = threading.Thread(
                target=self._serve, args=(client,), name="fault-proxy-conn", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _channel(self, path: str) -> str:
        for name, prefix in self._paths.items():
            if path.startswith(prefix):
                return name
        return "logon"

    def _serve(self, client: socket.socket) -> None:
        conn = _Connection(self, client)
        try:
            conn.run()
        except OSError:
            pass
        finally:
            conn.close()


class _Connection:
    """One client connection and, from its first forwarded request, one upstream connection."""

    def __init__(self, proxy: FaultProxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.inbox = b""  # request bytes not yet forwarded
        self.pending = b""  # answer bytes not yet sent to the client
        self.channel = "logon"
        self.dead = False  # stalled or black-holed: silent until closed
        self.upstream_done = False  # the server closed its side
        self.next_send = 0.0

    def run(self) -> None:
        proxy = self.proxy
        while not proxy._stop.is_set():
            fault = proxy.fault(self.channel)
            if fault.mode == "reset" and self.upstream is not None:
                self.reset()
                return
            if fault.mode == "black_hole" and self.upstream is not None:
                self.dead = True
            readable = [self.client]
            if (
                self.upstream is not None
                and not (self.dead or self.upstream_done)
                and len(self.pending) < MAX_PENDING
            ):
                readable.append(self.upstream)
            ready, _, _ = select.select(readable, [], [], TICK_S)
            if self.client in ready:
                data = self.client.recv(65536)
                if not data:
                    return  # the bridge gave up on (or finished with) this connection
                if not self.dead:
                    self.inbox += data
                    if len(self.inbox) > MAX_REQUEST_HEAD + 1_048_576:
                        return
                    if not self.forward_requests():
                        return
            if self.upstream is not None and self.upstream in ready:
                data = self.upstream.recv(65536)
                self.upstream_done = not data
                self.pending += data
            if not self.dead:
                self.send_pending(proxy.fault(self.channel))
                if self.upstream_done and not self.pending:
                    return

    def forward_requests(self) -> bool:
        """Forward every complete request in ``inbox``; False when the connection must end."""
        while True:
            head_end = self.inbox.find(b"\r\n\r\n")
            if head_end < 0:
                return len(self.inbox) <= MAX_REQUEST_HEAD
            head = self.inbox[: head_end + 4]
            line = _REQUEST_LINE.match(head)
            if line is None:
                return False
            length = _LENGTH.search(head)
            total = head_end + 4 + (int(length.group(1)) if length else 0)
            if len(self.inbox) < total:
                return True
            request, self.inbox = self.inbox[:total], self.inbox[total:]
            self.channel = self.proxy._channel(line.group(1).decode("latin-1"))
            with self.proxy._lock:
                self.proxy.requests[self.channel] += 1
            fault = self.proxy.fault(self.channel)
            if fault.mode == "reset":
                self.reset()
                return False
            if fault.mode in ("stall", "black_hole"):
                self.dead = True  # accepted, never forwarded, never answered
                return True
            if self.upstream is None:
                self.upstream = socket.create_connection(self.proxy.upstream, timeout=5)
                self.upstream.settimeout(None)
            self.upstream.sendall(request)

    def send_pending(self, fault: Fault) -> None:
        if not self.pending:
            return
        if fault.mode != "trickle":
            self.client.sendall(self.pending)
            self.pending = b""
            return
        now = time.monotonic()
        if now >= self.next_send:
            piece, self.pending = self.pending[: fault.chunk], self.pending[fault.chunk :]
            self.client.sendall(piece)
            self.next_send = now + fault.every_s

    def reset(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        self.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()


@pytest.fixture
def fault_proxy() -> Iterator[Callable[[Simulator], FaultProxy]]:
    """``fault_proxy(sim)`` → a started `FaultProxy` in front of ``sim``, stopped at teardown."""
    started: list[FaultProxy] = []

    def make(sim: Simulator) -> FaultProxy:
        host_port = sim.url.split("://", 1)[1].rstrip("/")
        host, port = host_port.rsplit(":", 1)
        proxy = FaultProxy((host, int(port)), sim.options.data_path, sim.options.command_path).start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()
