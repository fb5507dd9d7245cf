"""The faults the soak injects: the simulator's own, and stalls from the fault-injecting TCP proxy.

Lossless faults leave the events queued at the server: the bridge re-polls with the same AckId
and every change still arrives. Simulator faults are one-shot; proxy faults (trickle, stall and
black hole on the data or the command channel, reset on the command channel) last `HOLD_S` and
are then lifted by `Faults.tick`. Disruptive faults start a new session, which delivers the
current state only: the simulator's, and resets of the data channel (see `Faults.disruptive`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from bridge.simulator import Simulator
from tests.support.proxy import BLACK_HOLE, PASS, RESET, STALL, Fault, FaultProxy, trickle

HOLD_S = 3.0  # how long a proxy fault lasts (shorter than the soak's fault period)
# The bridge's deadlines in the soak: a stalled exchange is abandoned after this long.
POLL_TIMEOUT_S = 3.0
COMMAND_TIMEOUT_S = 3.0

Inject = Callable[[], None]


def proxy_for(sim: Simulator) -> FaultProxy:
    """A started `FaultProxy` in front of ``sim`` (the bridge is pointed at ``proxy.url``)."""
    host, port = sim.url.split("://", 1)[1].rstrip("/").rsplit(":", 1)
    return FaultProxy((host, int(port)), sim.options.data_path, sim.options.command_path).start()


class Faults:
    def __init__(self, sim: Simulator, proxy: FaultProxy | None, rng: random.Random) -> None:
        self._proxy = proxy
        self._lift_at: float | None = None
        self.lossless: list[tuple[str, Inject]] = [
            ("drop", lambda: sim.faults.drop(2, channel="data")),
            ("http_503", lambda: sim.faults.http_503(2, channel="data")),
            ("malformed", lambda: sim.faults.malformed(2, channel="data")),
            ("hostile", lambda: sim.faults.hostile(2, channel="data")),
            ("oversized", lambda: sim.faults.oversized(1, size=12_000_000, channel="data")),
            ("slow", lambda: sim.faults.slow(1, 1.0, channel="data")),
        ]
        if proxy is not None:
            held = [
                (f"{name}_{channel}", self._held(channel, fault))
                for name, fault in (
                    ("stall", STALL),
                    ("trickle", trickle(1, 0.5)),
                    ("black_hole", BLACK_HOLE),
                )
                for channel in ("data", "command")
            ]
            held.append(("reset_command", self._held("command", RESET)))
            # Interleaved, so a short run (the test suite's) meets stalls early.
            mixed = [f for pair in zip(self.lossless, held[:6], strict=True) for f in pair]
            self.lossless = mixed + held[6:]
        self.disruptive: list[tuple[str, Inject]] = [
            ("mutate", lambda: sim.faults.mutate(2, channel="data", seed=rng.randrange(2**31))),
            ("kill_sessions", sim.faults.kill_sessions),
            ("expire_tickets", sim.faults.expire_tickets),
            ("restart", sim.faults.restart),
            ("throttle", lambda: sim.faults.throttle(True, 1000)),
        ]
        if proxy is not None:
            # Resets on every data-channel attempt for HOLD_S: after three in a row the client
            # gives the session up and starts a new one, which delivers current state only (a
            # 60-minute run with it counted lossless "lost" the changes of each reset window).
            self.disruptive.append(("reset_data", self._held("data", RESET)))

    def _held(self, channel: str, fault: Fault) -> Inject:
        def inject() -> None:
            assert self._proxy is not None
            self._proxy.set_fault(channel, fault)
            self._lift_at = time.monotonic() + HOLD_S

        return inject

    @property
    def holding(self) -> bool:
        """A proxy fault is in force."""
        return self._lift_at is not None

    def tick(self) -> None:
        """Lift a proxy fault whose time is up."""
        if self._lift_at is not None and time.monotonic() >= self._lift_at and self._proxy is not None:
            self._proxy.set_fault("all", PASS)
            self._lift_at = None

    def lift_all(self) -> None:
        if self._proxy is not None:
            self._proxy.set_fault("all", PASS)
        self._lift_at = None
