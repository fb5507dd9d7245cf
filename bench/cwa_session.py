"""A bare CWA session over httpx for the benchmarks: sign in, subscribe, poll (no bridge code paths
beyond the codec), used to capture realistic wire bytes and to drive the naive interval poller."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from bridge.cwa import codec
from bridge.cwa.messages import InitiateSession, Logon, Method, QueryPresence, SubscribePresence


class BareSession:
    def __init__(self, url: str, user: str = "user00001@example.org", password: str = "load") -> None:  # noqa: S107 - load_users' fixed password
        self.http = httpx.Client(base_url=url, timeout=30.0)
        self.requests = 0
        response = self.http.post("/forms/logon.html", content=codec.encode_logon(Logon(user, password)))
        self.requests += 1
        self.ticket = response.headers["CWA-Ticket"]
        self.rid = 1
        accepted = codec.decode_responses(
            self.command([InitiateSession("1", auto_publish_machine_state=False)], "0")
        )
        self.sid = str(getattr(accepted.responses[0], "sid", ""))
        self.ack = 0

    def next_rid(self) -> str:
        self.rid += 1
        return str(self.rid)

    def command(self, methods: Sequence[Method], sid: str | None = None) -> bytes:
        response = self.http.post(
            "/cwa/MainCommandHandler.ashx",
            content=codec.encode_requests(sid if sid is not None else self.sid, list(methods)),
            headers={"CWA-Ticket": self.ticket},
        )
        self.requests += 1
        self.ticket = response.headers.get("CWA-Ticket", self.ticket)
        return response.content

    def subscribe(self, uris: Sequence[str]) -> None:
        for start in range(0, len(uris), 100):
            self.command([SubscribePresence(self.next_rid(), tuple(uris[start : start + 100]))])

    def query(self, uris: Sequence[str]) -> list[bytes]:
        """queryPresence in batches of 100; returns the raw command responses."""
        out = []
        for start in range(0, len(uris), 100):
            out.append(self.command([QueryPresence(self.next_rid(), tuple(uris[start : start + 100]))]))
        return out

    def poll(self) -> bytes:
        response = self.http.get(
            "/cwa/AsyncDataChannel.ashx",
            params={"Sid": self.sid, "AckId": str(self.ack), "UA": "false"},
            headers={"CWA-Ticket": self.ticket},
        )
        self.requests += 1
        self.ticket = response.headers.get("CWA-Ticket", self.ticket)
        batch = codec.decode_events(response.content)
        self.ack = batch.ack_id or self.ack
        return response.content

    def close(self) -> None:
        self.http.close()
