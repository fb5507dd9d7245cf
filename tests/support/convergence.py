"""Helpers for fault tests: "has the bridge converged?" and "how long may that take?".

Converged means what a user would check after an outage: every watched user's *retained* state
equals the simulator's truth, ``<base>/bridge/state`` and ``<base>/bridge/cwa`` are ``online``.
`retained_snapshot` reads every retained message under ``<base>/`` with one fresh client (the
broker sends retained messages while handling SUBSCRIBE, so once a marker published after the
SUBACK is back, the snapshot is complete).
"""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from bridge.simulator import Simulator

if TYPE_CHECKING:  # imported lazily: plugins load alphabetically and mqtt must be rewritten first
    from tests.support.mqtt import Broker


def matches_truth(raw: bytes | None, sim: Simulator, uri: str) -> bool:
    """The presence JSON a watcher holds shows what the simulator says is true right now."""
    if not raw:
        return False
    seen, truth = json.loads(raw), sim.truth(uri)
    return bool(
        seen["status"] == truth.status.value
        and seen["activity"] == truth.activity
        and seen["note"] == truth.note
        and seen["availability"] == truth.availability
    )


def retained_snapshot(broker: Broker, base: str, **auth: Any) -> dict[str, bytes]:
    """Every retained message under ``<base>/`` now, by topic."""
    from tests.support.mqtt import MqttProbe  # lazily: see the import note above

    probe = MqttProbe(broker, **auth)
    try:
        probe.subscribe(f"{base}/#")
        marker_topic = f"probe-marker/{secrets.token_hex(6)}"
        probe.subscribe(marker_topic)
        token = secrets.token_hex(4).encode()
        probe.publish(marker_topic, token)
        probe.wait_for(marker_topic, lambda p: p == token, timeout=5.0)
        return {r.topic: r.payload for r in probe.records() if r.retain and r.topic.startswith(f"{base}/")}
    finally:
        probe.close()


def converged(snapshot: Mapping[str, bytes], sim: Simulator, base: str, users: Mapping[str, str]) -> bool:
    return (
        snapshot.get(f"{base}/bridge/state") == b"online"
        and snapshot.get(f"{base}/bridge/cwa") == b"online"
        and all(matches_truth(snapshot.get(f"{base}/{ident}"), sim, uri) for ident, uri in users.items())
    )


def wait_converged(
    broker: Broker, sim: Simulator, base: str, users: Mapping[str, str], timeout: float, **auth: Any
) -> float:
    """Wait until the broker's retained state has converged; returns the seconds it took."""
    started = time.monotonic()
    deadline = started + timeout
    snapshot: dict[str, bytes] = {}
    while True:
        try:
            snapshot = retained_snapshot(broker, base, **auth)
        except (OSError, RuntimeError, AssertionError):
            snapshot = {}  # the broker is still coming up
        if converged(snapshot, sim, base, users):
            return time.monotonic() - started
        if time.monotonic() >= deadline:
            truth = {ident: sim.truth(uri) for ident, uri in users.items()}
            raise AssertionError(
                f"not converged within {timeout:.1f} s (bound derived in the test)\n"
                f"retained: {_show(snapshot, base, users)}\ntruth: {truth}"
            )
        time.sleep(0.1)


def _show(snapshot: Mapping[str, bytes], base: str, users: Mapping[str, str]) -> dict[str, Any]:
    keys = ["bridge/state", "bridge/cwa", *users]
    return {key: snapshot.get(f"{base}/{key}") for key in keys}


def recovery_bound_s(
    failures: int, *, backoff_initial_s: float, backoff_max_s: float, poll_wait_s: float, slack_s: float
) -> float:
    """Worst case to converge after ``failures`` consecutive failed CWA requests.

    Each failure is followed by a back-off of at most ``min(max, initial·2^(n-1))`` (full jitter,
    `BackoffPolicy.cap`), each retry by at most one pollWaitTime before the next GET; ``slack_s``
    covers the sign-in/subscribe round trips and a busy 2-core machine.
    """
    backoffs = sum(min(backoff_max_s, backoff_initial_s * 2.0 ** (n - 1)) for n in range(1, failures + 1))
    return backoffs + (failures + 1) * poll_wait_s + slack_s


def eventually(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` passes (False): for conditions that
    offer no event to wait on. `tests.support.outputs.wait_until` is the asserting form."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def http_url_from_output(output: str) -> str:
    """The board/health URL a `cwa2mqtt run` logged (``http.listen: 127.0.0.1:0`` picks a free port)."""
    found = re.search(r"http\.listening url=(\S+)", output)
    assert found, "the bridge did not log its HTTP address"
    return found.group(1)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str, str]:
    """(status, headers as text, body) of a GET; error statuses are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback test URL
            return response.status, str(response.headers), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, str(exc.headers), exc.read().decode("utf-8", "replace")
