"""Scenarios: the demo office (a compressed working day) and the load generator for benchmarks."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bridge.simulator.options import SimUser

log = logging.getLogger(__name__)

DEMO_URI = "sip:alice@example.org"
DEMO_USERNAME = "EXAMPLE\\alice"
DEMO_PASSWORD = "alice-demo"

_COLLEAGUES = (
    ("sip:bob@example.org", "Bob Example"),
    ("sip:carol@example.org", "Carol Nguyen"),
    ("sip:dave@example.org", "Dave Okafor"),
    ("sip:erin@example.org", "Erin Rossi"),
    ("sip:frank@example.org", "Frank Li"),
    ("sip:grace@example.org", "Grace Hopper"),
)


def demo_users() -> list[SimUser]:
    """Alice (the demo account, with every colleague as a contact) and six colleagues."""
    contacts = tuple(uri for uri, _ in _COLLEAGUES)
    alice = SimUser(
        DEMO_URI, DEMO_USERNAME, DEMO_PASSWORD, "Alice Demo", 3500, None, "Trying out cwa2mqtt", contacts
    )
    users = [alice]
    for i, (uri, name) in enumerate(_COLLEAGUES):
        local = uri[4:].split("@")[0]
        users.append(
            SimUser(
                uri,
                f"EXAMPLE\\{local}",
                f"{local}-demo",
                name,
                3500,
                contacts=(DEMO_URI, contacts[(i + 1) % len(contacts)]),
            )
        )
    return users


@dataclass(frozen=True)
class Step:
    """One scenario change: the user and the fields that change (others stay)."""

    uri: str
    availability: int | None
    activity: str | None = None
    note: str | None = None
    note_type: str = "personal"


_B, _C, _D, _E, _F, _G = (uri for uri, _ in _COLLEAGUES)
_A = DEMO_URI

# A compressed working day; each step is one change, applied every `scenario_interval_s`.
DAY: tuple[Step, ...] = (
    Step(_B, 3500, None, "In early today"),
    Step(_E, 15500, "out-of-office", "On holiday until Monday", "OOF"),
    Step(_C, 6500, "in-a-meeting", "Daily stand-up"),
    Step(_A, 6500, "in-a-meeting", "Stand-up"),
    Step(_D, 6500, "on-the-phone"),
    Step(_C, 3500, None, None),
    Step(_A, 3500, None, None),
    Step(_F, 9500, "in-presentation", "Presenting the Q3 review"),
    Step(_D, 3500, None, None),
    Step(_G, 12500, None, "Coffee, back in 5"),
    Step(_B, 6500, "in-a-conference", "Design review"),
    Step(_G, 3500, None, None),
    Step(_F, 3500, None, None),
    Step(_A, 15500, None, "Lunch"),
    Step(_C, 15500, None, "Lunch"),
    Step(_D, 4500, None, None),
    Step(_A, 3500, None, None),
    Step(_C, 3500, None, None),
    Step(_B, 3500, None, None),
    Step(_D, 6500, "in-a-meeting", "1:1 with Grace"),
    Step(_G, 6500, "in-a-meeting", "1:1 with Dave"),
    Step(_A, 9500, None, "Focus time"),
    Step(_D, 3500, None, None),
    Step(_G, 3500, None, None),
    Step(_A, 3500, None, None),
    Step(_F, 12500, None, None),
    Step(_C, 6500, "on-the-phone"),
    Step(_F, None, None, "Gone home"),
    Step(_C, 3500, None, None),
    Step(_B, None, None, None),
    Step(_F, 3500, None, None),
    Step(_B, 3500, None, "In early today"),
)

Apply = Callable[[Step], None]


class Ticker:
    """A background thread calling ``action`` ``rate`` times per second until stopped (stop is prompt)."""

    def __init__(self, rate: float, action: Callable[[], None], name: str) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._action = action
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)
        self.done = 0

    def _run(self) -> None:
        if self._interval <= 0:
            return
        clock = time.monotonic
        next_at = clock() + self._interval
        while not self._stop.is_set():
            delay = next_at - clock()
            if delay > 0 and self._stop.wait(delay):
                return
            try:
                self._action()
            except Exception:  # a scenario bug must not kill the server
                log.exception("sim.scenario.error")
            self.done += 1
            next_at += self._interval
            if next_at < clock() - 1.0:  # fell far behind: do not burst to catch up
                next_at = clock()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(1.0)


def demo_driver(apply: Apply, interval_s: float, seed: int | None) -> Ticker:
    """Walk through `DAY`; with a seed, sometimes skip a step (still deterministic for that seed)."""
    rng = random.Random(seed)
    position = [0]

    def step() -> None:
        index = position[0] % len(DAY)
        if seed is not None and rng.random() < 0.2:
            index = (index + 1) % len(DAY)
        position[0] = index + 1
        apply(DAY[index])

    return Ticker(1.0 / interval_s if interval_s > 0 else 0.0, step, "sim-demo")


def load_users(n: int, contacts_each: int = 0) -> list[SimUser]:
    """``sip:user00001@example.org``…; username ``userNNNNN@example.org``, password ``load``."""
    users = []
    for i in range(1, n + 1):
        uri = f"sip:user{i:05d}@example.org"
        contacts = tuple(
            f"sip:user{(i + k - 1) % n + 1:05d}@example.org" for k in range(1, contacts_each + 1)
        )
        users.append(SimUser(uri, uri[4:], "load", f"User {i:05d}", 3500, contacts=contacts))
    return users


LOAD_STATES = (3500, 6500, 9500, 12500, 15500, 4500, 7500)


def load_driver(apply: Apply, uris: Sequence[str], rate: float, seed: int | None) -> Ticker:
    """``rate`` random presence changes per second over ``uris`` (benchmarks)."""
    rng = random.Random(seed)
    pool = list(uris)

    def step() -> None:
        if pool:
            apply(Step(rng.choice(pool), rng.choice(LOAD_STATES), None, None))

    return Ticker(rate, step, "sim-load")
