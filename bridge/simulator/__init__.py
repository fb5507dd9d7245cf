"""A CWA 2007 server simulator (docs/protocol.md), strict enough to prove the bridge works.

The bridge never imports this package; `cwa2mqtt simulate`, `cwa2mqtt demo` and the tests do.

    from bridge.simulator import Simulator, SimOptions, SimUser
    with Simulator(options=SimOptions(long_poll=True)) as sim:
        ...  # sim.url, sim.set_presence(...), sim.truth(...), sim.faults.drop(1, channel="data")
"""

from bridge.simulator.cli import cli_main, load_users_file
from bridge.simulator.faults import Faults
from bridge.simulator.options import SimOptions, SimUser
from bridge.simulator.recording import Recorded, SessionSnapshot
from bridge.simulator.scenario import DEMO_PASSWORD, DEMO_URI, DEMO_USERNAME, demo_users, load_users
from bridge.simulator.simulator import UNSET, Simulator

__all__ = [
    "DEMO_PASSWORD",
    "DEMO_URI",
    "DEMO_USERNAME",
    "UNSET",
    "Faults",
    "Recorded",
    "SessionSnapshot",
    "SimOptions",
    "SimUser",
    "Simulator",
    "cli_main",
    "demo_users",
    "load_users",
    "load_users_file",
]
