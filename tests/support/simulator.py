"""Fixtures for the CWA simulator, plus `RawCwa`, a plain-httpx client that speaks the wire format
by hand (so simulator tests do not depend on the bridge's own client).

    def test_x(simulator):                      # started with the demo users, stopped afterwards
        ...
    def test_y(make_simulator):
        sim = make_simulator(users=[SimUser(...)], long_poll=True)   # any SimOptions field
        cwa = RawCwa(sim.url); cwa.logon("EXAMPLE\\alice", "alice-demo"); cwa.initiate()
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest
from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from bridge.simulator import SimOptions, Simulator, SimUser

NS = "http://schemas.microsoft.com/2006/09/rtc/cwa"
COMMAND = "/cwa/MainCommandHandler.ashx"
DATA = "/cwa/AsyncDataChannel.ashx"


def xml(body: bytes) -> Any:
    """Parse a response body (hardened: no entities, no network)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(body, parser)


def local(element: Any) -> str:
    return str(etree.QName(element).localname)


_TLS = ssl.create_default_context()  # built once: httpx builds one per client otherwise (slow)
_OPEN: list[RawCwa] = []  # closed by the simulator fixtures' teardown


def _close_clients() -> None:
    while _OPEN:
        _OPEN.pop().close()


class RawCwa:
    """A minimal, honest CWA client: adopts every new ticket, remembers the sid and the ackId."""

    def __init__(self, base_url: str, command_path: str = COMMAND, data_path: str = DATA) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=10.0, follow_redirects=False, verify=_TLS)
        _OPEN.append(self)
        self.command_path = command_path
        self.data_path = data_path
        self.ticket: str | None = None
        self.sid: str | None = None
        self.ack = 0
        self.rid = 0

    def close(self) -> None:
        self.http.close()

    def _adopt(self, response: httpx.Response) -> httpx.Response:
        new = response.headers.get("CWA-Ticket")
        if new:
            self.ticket = new
        return response

    def logon(self, user: str, password: str, uri: str | None = None) -> httpx.Response:
        extra = f"<uri>{uri}</uri>" if uri else ""
        inner = f"<user>{user}</user><password>{password}</password>{extra}"
        body = f"<cwaRequests><logon>{inner}</logon></cwaRequests>"
        return self._adopt(self.http.post("/forms/logon.html", content=body.encode()))

    def post(
        self, methods: str, sid: str | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        sid_attr = f' sid="{sid if sid is not None else self.sid or 0}"'
        body = f'<cwaRequests xmlns="{NS}"{sid_attr}>{methods}</cwaRequests>'
        hdrs = {"CWA-Ticket": self.ticket or "", "Content-Type": "text/xml"} | (headers or {})
        return self._adopt(self.http.post(self.command_path, content=body.encode(), headers=hdrs))

    def next_rid(self) -> str:
        self.rid += 1
        return str(self.rid)

    def initiate(self, inner: str = '<options autoPublishMachineState="false"/>') -> Any:
        response = self.post(f'<initiateSession rid="{self.next_rid()}">{inner}</initiateSession>', sid="0")
        root = xml(response.content)
        accepted = root[0]
        sid = accepted.get("sid") or accepted.findtext(f"{{{NS}}}sid") or accepted.findtext("sid")
        self.sid = sid
        self.ack = 0
        return root

    def command(self, method: str, body: str = "", **attrs: str) -> tuple[str, Any]:
        rid = self.next_rid()
        extra = "".join(f' {k}="{v}"' for k, v in attrs.items())
        response = self.post(f'<{method} rid="{rid}"{extra}>{body}</{method}>')
        assert response.status_code == 200, response.status_code
        return rid, xml(response.content)

    def poll_raw(
        self, ack: int | None = None, ua: str = "false", names: Sequence[str] = ("Sid", "AckId", "UA")
    ) -> httpx.Response:
        ack_value = self.ack if ack is None else ack
        params = {names[0]: self.sid or "", names[1]: str(ack_value), names[2]: ua}
        return self._adopt(
            self.http.get(self.data_path, params=params, headers={"CWA-Ticket": self.ticket or ""})
        )

    def poll(self, ack: int | None = None, ua: str = "false") -> Any:
        """One GET; adopts the response's ackId; returns the ``cwaEvents`` root."""
        response = self.poll_raw(ack, ua)
        assert response.status_code == 200, response.status_code
        root = xml(response.content)
        self.ack = int(root.get("ackId"))
        return root

    def events_until(self, predicate: Callable[[Any], bool], tries: int = 100) -> list[Any]:
        """Poll (without waiting: the simulator answers at once) until an event matches."""
        seen: list[Any] = []
        for _ in range(tries):
            root = self.poll()
            seen.extend(root)
            if any(predicate(e) for e in root):
                return seen
        raise AssertionError(f"no matching event in {[local(e) for e in seen]}")


DEMO_USER, DEMO_PASSWORD = "EXAMPLE\\alice", "alice-demo"


def sign_in(sim: Simulator, user: str = DEMO_USER, password: str = DEMO_PASSWORD, **kw: str) -> RawCwa:
    """Sign in and start a session with the bridge's quiet options; the initial burst is drained."""
    cwa = RawCwa(sim.url, sim.options.command_path, sim.options.data_path)
    assert cwa.logon(user, password).headers.get("CWA-Ticket")
    cwa.initiate(**kw)
    cwa.poll()
    return cwa


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    """A started simulator with the demo users (static: nobody changes by themselves)."""
    with Simulator() as sim:
        yield sim
        _close_clients()


@pytest.fixture
def make_simulator() -> Iterator[Callable[..., Simulator]]:
    """``make_simulator(users=None, **SimOptions fields)`` → a started simulator, stopped at teardown."""
    started: list[Simulator] = []

    def factory(users: Sequence[SimUser] | None = None, **overrides: Any) -> Simulator:
        sim = Simulator(users, SimOptions(**overrides))
        sim.start()
        started.append(sim)
        return sim

    yield factory
    _close_clients()
    for sim in started:
        sim.stop()
