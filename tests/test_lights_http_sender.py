"""The http lights' worker against a real HTTP server on 127.0.0.1: newest state only, bounded."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from bridge.lights.http_sender import HttpLightSender
from bridge.lights.presets import HttpRequest
from tests.support.convergence import eventually
from tests.support.lights import FakeHttpLight, light


class Results:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.results: list[tuple[str, bool]] = []
        self.failures: list[str] = []
        self.beats = 0

    def on_result(self, name: str, ok: bool) -> None:
        with self.lock:
            self.results.append((name, ok))

    def on_failure(self, name: str) -> None:
        with self.lock:
            self.failures.append(name)

    def progress(self) -> None:
        with self.lock:
            self.beats += 1


@pytest.fixture
def results() -> Results:
    return Results()


@pytest.fixture
def sender(http_light: FakeHttpLight, results: Results) -> Iterator[HttpLightSender]:
    specs = [light("lamp", preset="http", url=http_light.url + "/x"), light("door")]  # door: not http
    sender = HttpLightSender(
        specs,
        results.on_result,
        progress=results.progress,
        on_failure=results.on_failure,
        deadline_s=0.5,  # the product's 3 s, shortened: the rule is the same
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
    )
    sender.start()
    yield sender
    sender.stop()


def req(url: str) -> HttpRequest:
    return HttpRequest("POST", url, (("X-Key", "k"),), b"body:" + url.rpartition("/")[2].encode())


def test_only_the_newest_wanted_state_is_sent_after_a_hung_request(
    sender: HttpLightSender, http_light: FakeHttpLight, results: Results
) -> None:
    assert sender.lights() == ("lamp",)
    http_light.mode = "slow"
    sender.submit("lamp", req(http_light.url + "/red"))
    assert eventually(lambda: http_light.held == 1, timeout=5)
    # While the device hangs, two newer states are wanted: the older of them is replaced unsent.
    sender.submit("lamp", req(http_light.url + "/green"))
    sender.submit("lamp", req(http_light.url + "/blue"))
    http_light.mode = "ok"  # for the requests to come; /red stays held
    assert eventually(lambda: results.failures == ["lamp"], timeout=5)  # the deadline ended /red
    http_light.release()
    assert eventually(lambda: ("lamp", True) in results.results, timeout=5)
    assert [(s.target, s.body) for s in http_light.delivered()] == [("/blue", b"body:blue")]
    assert all(s.target != "/green" for s in http_light.seen())
    assert http_light.delivered()[0].headers["X-Key"] == "k"
    # /red's failure was not reported: a newer request was already waiting.
    assert results.results == [("lamp", True)]


def test_a_failing_device_is_retried_with_back_off_and_recovers(
    sender: HttpLightSender, http_light: FakeHttpLight, results: Results
) -> None:
    http_light.mode = "down"
    sender.submit("lamp", req(http_light.url + "/red"))
    assert eventually(lambda: len(http_light.seen()) >= 3, timeout=5)
    assert results.results[:2] == [("lamp", False), ("lamp", False)]
    http_light.mode = "ok"
    assert eventually(lambda: results.results[-1:] == [("lamp", True)], timeout=5)
    assert [s.target for s in http_light.delivered()] == ["/red"]
    count = len(http_light.seen())
    sender.stop()
    sender.submit("lamp", req(http_light.url + "/late"))
    assert not eventually(lambda: len(http_light.seen()) > count, timeout=0.5)  # stopped: nothing goes out
    assert results.beats > 0  # the liveness hook ran


def test_unknown_lights_are_ignored(sender: HttpLightSender, http_light: FakeHttpLight) -> None:
    sender.submit("door", req(http_light.url + "/x"))
    sender.submit("lamp", req(http_light.url + "/ok"))
    assert eventually(lambda: len(http_light.delivered()) == 1, timeout=5)
    assert [s.target for s in http_light.seen()] == ["/ok"]
