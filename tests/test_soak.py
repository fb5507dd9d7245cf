"""The soak run, short: `bench.soak.run_soak` for ~25 s against the real process.

Same churn, faults, commands and checks as `.venv/bin/python -m bench.soak` (see its docstring and
bench/SOAK.md): no change lost outside the disruptive windows, the retained state converges, every
command is answered, and RSS, threads and open fds stay flat against the warm-up. Latency is only
reported by the script, never asserted here.
"""

from __future__ import annotations

import pytest

from bench.soak import run_soak
from tests.support.mqtt import Broker

pytestmark = pytest.mark.integration

DURATION_S = 25.0


def test_short_soak_loses_nothing_answers_everything_and_stays_flat(mosquitto: Broker) -> None:
    result = run_soak(mosquitto.url, DURATION_S, fault_every_s=4.0)
    assert result.problems() == []
    # The run really exercised what it claims: churn, both kinds of fault, commands, samples.
    names = {name for _, name in result.faults}
    assert len(result.changes) >= 100
    # A stall from the fault-injecting proxy (a poll that never answers) is survived too.
    assert {"drop", "stall_data", "mutate", "http_503", "kill_sessions"} <= names, names
    assert len(result.changes) - sum(c.excusable for c in result.changes) >= 50
    assert result.commands_sent >= 15
    assert result.bad_commands_sent >= 3
    assert len(result.samples) >= 15
