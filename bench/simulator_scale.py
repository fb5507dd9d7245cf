"""Scale benchmark of the CWA simulator (not part of the test suite).

10,000 users; 50 sessions each subscribed to 200 distinct users (so every user is watched once);
a driver makes ~1,000 presence changes per second for ~10 s; each session long-polls with its
own httpx client on its own thread and decodes every response with the project codec.
Latency = time from `set_presence` to the event being decoded by the watching client (the note
carries the change's monotonic timestamp). Clients and server share one process (and the GIL),
so the figures are a lower bound for the simulator alone.

    .venv/bin/python -m bench.simulator_scale [--seconds 10] [--rate 1000]
"""

from __future__ import annotations

import argparse
import random
import ssl
import statistics
import threading
import time

import httpx

from bridge.cwa import codec
from bridge.cwa.events import UserPresenceEvent
from bridge.cwa.messages import InitiateSession, Logon, SubscribePresence
from bridge.simulator import SimOptions, Simulator, load_users

USERS, SESSIONS, SUBS = 10_000, 50, 200
_TLS = ssl.create_default_context()  # one for all clients: httpx would build 50 (slow)


class Client(threading.Thread):
    def __init__(self, sim: Simulator, index: int, stop: threading.Event) -> None:
        super().__init__(daemon=True, name=f"bench-client-{index}")
        self.http = httpx.Client(base_url=sim.url, timeout=60.0, verify=_TLS)
        self.index = index
        self.stop_event = stop
        self.latencies: list[float] = []
        self.events = 0
        self.polls = 0
        self.ready = threading.Event()
        user = f"user{index + 1:05d}@example.org"
        response = self.http.post("/forms/logon.html", content=codec.encode_logon(Logon(user, "load")))
        self.ticket = response.headers["CWA-Ticket"]
        body = codec.encode_requests("0", [InitiateSession("1", auto_publish_machine_state=False)])
        accepted = codec.decode_responses(self._post(body)).responses[0]
        self.sid = str(getattr(accepted, "sid", ""))
        first = index * SUBS
        for batch in range(SUBS // 100):
            uris = tuple(f"sip:user{first + batch * 100 + k + 1:05d}@example.org" for k in range(100))
            self._post(codec.encode_requests(self.sid, [SubscribePresence(str(2 + batch), uris)]))
        self.ack = 0

    def _post(self, body: bytes) -> bytes:
        response = self.http.post(
            "/cwa/MainCommandHandler.ashx", content=body, headers={"CWA-Ticket": self.ticket}
        )
        self.ticket = response.headers.get("CWA-Ticket", self.ticket)
        return response.content

    def run(self) -> None:
        while not self.stop_event.is_set():
            params = {"Sid": self.sid, "AckId": str(self.ack), "UA": "false"}
            try:
                response = self.http.get(
                    "/cwa/AsyncDataChannel.ashx", params=params, headers={"CWA-Ticket": self.ticket}
                )
            except httpx.HTTPError:
                break  # the simulator stopped under a held poll
            now = time.monotonic()
            self.ticket = response.headers.get("CWA-Ticket", self.ticket)
            batch = codec.decode_events(response.content)
            self.polls += 1
            self.ack = batch.ack_id or self.ack
            self.ready.set()
            for event in batch.events:
                self.events += 1
                if isinstance(event, UserPresenceEvent):
                    for user in event.users:
                        for note in user.summary().notes:
                            if note.text.startswith("t="):
                                self.latencies.append(now - float(note.text[2:]))
        self.http.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    args = parser.parse_args()
    options = SimOptions(long_poll=True, max_hold_s=1.0, poll_wait_ms=0, control=False)
    started = time.monotonic()
    sim = Simulator(load_users(USERS), options)
    sim.start()
    print(f"simulator with {USERS} users up in {time.monotonic() - started:.2f} s")
    stop = threading.Event()
    t0 = time.monotonic()
    clients = [Client(sim, i, stop) for i in range(SESSIONS)]
    print(f"{SESSIONS} sessions x {SUBS} subscriptions set up in {time.monotonic() - t0:.2f} s")
    for client in clients:
        client.start()
    for client in clients:
        client.ready.wait(10)
    for client in clients:  # forget the initial snapshots
        client.latencies.clear()
        client.events = 0
    rng = random.Random(1)
    uris = [f"sip:user{i:05d}@example.org" for i in range(1, USERS + 1)]
    cpu0, wall0 = time.process_time(), time.monotonic()
    changes, interval = 0, 1.0 / args.rate
    next_at = wall0
    while time.monotonic() - wall0 < args.seconds:
        now = time.monotonic()
        if now < next_at:
            time.sleep(next_at - now)
        sim.set_presence(
            rng.choice(uris), availability=rng.choice((3500, 6500, 9500)), note=f"t={time.monotonic()}"
        )
        changes += 1
        next_at += interval
    drive_s = time.monotonic() - wall0
    expected = changes
    deadline = time.monotonic() + 10
    while sum(len(c.latencies) for c in clients) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    stop.set()
    latencies = sorted(x for c in clients for x in c.latencies)
    stats = sim.stats()
    sim.stop()
    for client in clients:
        client.join(3)

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")
        )

    print(
        f"changes made: {changes} in {drive_s:.2f} s = {changes / drive_s:.0f}/s (target {args.rate:.0f}/s)"
    )
    print(f"changes delivered: {len(latencies)} ({len(latencies) / max(1, changes):.1%})")
    print(f"events delivered: {sum(c.events for c in clients)}; polls: {sum(c.polls for c in clients)}")
    print(
        f"latency ms: p50 {pct(0.5):.1f}  p95 {pct(0.95):.1f}  p99 {pct(0.99):.1f}  max {pct(1.0):.1f}"
        + (f"  mean {statistics.fmean(latencies) * 1000:.1f}" if latencies else "")
    )
    print(f"process CPU: {cpu:.1f} s over {wall:.1f} s wall ({cpu / wall:.0%} of one core, clients included)")
    print(f"server stats: {stats['requests']} sessions={stats['sessions']} queued={stats['events_queued']}")


if __name__ == "__main__":
    main()
