"""Own-state commands under load: coalescing, expiry, the bound, one response each."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from bridge.commands import SelfSet
from bridge.errors import CwaProtocolError, CwaUnavailable
from bridge.presence import Status
from bridge.service.requests import CommandWorker
from tests.support.outputs import wait_until


class GatedCwa:
    """A CWA client whose calls wait until the test opens the gate (a slow server)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls: list[tuple[Any, ...]] = []
        self.fail: Exception | None = None

    @property
    def state(self) -> str:
        return "online"

    def set_watched(self, uris: Any) -> None:
        pass

    def _call(self, *call: Any) -> None:
        self.entered.set()
        assert self.gate.wait(10), "test never opened the gate"
        self.calls.append(call)
        if self.fail is not None:
            raise self.fail

    def publish_self(self, status: Status | None = None, note: str | None = None) -> Any:
        self._call("publish", status, note)
        return None


class Answers:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[dict[str, Any]] = []

    def __call__(
        self,
        op: str,
        status: str,
        *,
        data: object = None,
        error: str | None = None,
        transaction: object = None,
    ) -> None:
        with self.lock:
            self.seen.append({"op": op, "status": status, "data": data, "error": error, "txn": transaction})

    def by_txn(self) -> dict[object, dict[str, Any]]:
        with self.lock:
            return {a["txn"]: a for a in self.seen}


@pytest.fixture
def rig() -> Any:
    cwa, answers = GatedCwa(), Answers()
    now = [0.0]
    worker = CommandWorker(cwa, answers, ttl_s=120.0, max_waiting=5, clock=lambda: now[0])
    worker.start()
    yield cwa, answers, worker, now
    cwa.gate.set()
    worker.stop(2)


def test_newest_status_wins_and_superseded_commands_are_answered(rig: Any) -> None:
    cwa, answers, worker, _ = rig
    worker.submit_self_set(SelfSet(note="first", transaction="t0"))
    assert cwa.entered.wait(5)  # the worker is stuck in CWA with t0
    for n, status in enumerate([Status.BUSY, Status.AWAY, Status.AVAILABLE], start=1):
        worker.submit_self_set(SelfSet(status=status, transaction=f"t{n}"))
    worker.submit_self_set(SelfSet(status=Status.DO_NOT_DISTURB, note="later", transaction="t4"))
    cwa.gate.set()
    wait_until(lambda: len(answers.seen) == 5, 5, "five answers")
    got = answers.by_txn()
    for txn in ("t1", "t2", "t3"):
        assert got[txn]["status"] == "error"
        assert got[txn]["error"] == "superseded by a newer command"
    assert got["t0"]["status"] == "ok"
    assert got["t4"]["status"] == "ok"
    # CWA saw the first note and then only the newest status and note.
    assert cwa.calls == [("publish", None, "first"), ("publish", Status.DO_NOT_DISTURB, "later")]


def test_an_older_command_keeps_the_field_nobody_replaced(rig: Any) -> None:
    cwa, answers, worker, _ = rig
    worker.submit_self_set(SelfSet(note="blocker", transaction="b"))
    assert cwa.entered.wait(5)
    worker.submit_self_set(SelfSet(status=Status.BUSY, note="keep me", transaction="old"))
    worker.submit_self_set(SelfSet(status=Status.AWAY, transaction="new"))
    cwa.gate.set()
    wait_until(lambda: len(answers.seen) == 3, 5, "three answers")
    assert cwa.calls[1:] == [("publish", None, "keep me"), ("publish", Status.AWAY, None)]
    assert answers.by_txn()["old"]["data"] == {"note": "keep me", "applied": True}


def test_commands_beyond_the_bound_are_refused_busy_at_once(rig: Any) -> None:
    cwa, answers, worker, _ = rig
    worker.submit_self_set(SelfSet(note="stuck", transaction="stuck"))
    assert cwa.entered.wait(5)
    for n in range(5):  # each sets both fields, but a superseded one is answered, not kept
        worker.submit_self_set(SelfSet(status=Status.BUSY, transaction=f"s{n}"))
        worker.submit_self_set(SelfSet(note=f"n{n}", transaction=f"n{n}"))
    assert worker.waiting() == 2
    small = CommandWorker(cwa, answers, max_waiting=1)  # not started: nothing is taken off
    small.submit_self_set(SelfSet(status=Status.BUSY, transaction="first"))
    small.submit_self_set(SelfSet(note="x", transaction="over"))
    assert answers.by_txn()["over"]["error"].startswith("busy:")
    assert small.waiting() == 1


def test_a_command_cwa_never_took_expires(rig: Any) -> None:
    cwa, answers, worker, now = rig
    worker.submit_self_set(SelfSet(note="blocker", transaction="b"))
    assert cwa.entered.wait(5)
    worker.submit_self_set(SelfSet(status=Status.BUSY, transaction="late"))
    now[0] = 121.0
    cwa.gate.set()
    wait_until(lambda: "late" in answers.by_txn(), 5, "the late command's answer")
    assert answers.by_txn()["late"]["error"].startswith("expired:")
    assert cwa.calls == [("publish", None, "blocker")]


@pytest.mark.parametrize(
    "failure",
    [
        CwaProtocolError("malformed XML in the answer"),
        CwaUnavailable("connection reset"),
        RuntimeError("bug"),
    ],
)
def test_every_command_gets_exactly_one_answer_whatever_cwa_does(rig: Any, failure: Exception) -> None:
    cwa, answers, worker, _ = rig
    cwa.fail = failure
    cwa.gate.set()
    worker.submit_self_set(SelfSet(status=Status.BUSY, transaction="s"))
    wait_until(lambda: len(answers.seen) == 1, 5, "one answer")
    assert answers.seen[0]["status"] == "error"
    assert answers.seen[0]["error"]
