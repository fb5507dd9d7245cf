"""The liveness registry behind WATCHDOG and /healthz: a loop is stuck once it overstays what it announced."""

from __future__ import annotations

import threading

import pytest

from bridge.liveness import Liveness


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_loop_is_stuck_once_its_last_progress_is_older_than_its_stall_time() -> None:
    clock = Clock()
    live = Liveness(clock=clock)
    poll = live.register("cwa-poll", 10.0)
    worker = live.register("cwa-command", 5.0)
    assert live.all_live()
    clock.now += 6.0
    assert live.stuck() == ["cwa-command"]
    assert not live.all_live()
    worker.progress()
    assert live.all_live()
    clock.now += 6.0
    assert live.stuck() == ["cwa-command", "cwa-poll"]
    poll.progress()
    worker.progress()
    assert live.all_live()


def test_a_loop_blocked_in_an_exchange_is_live_while_within_the_deadline_it_announced() -> None:
    clock = Clock()
    live = Liveness(clock=clock)
    poll = live.register("cwa-poll", 5.0)
    poll.progress(within_s=105.0)  # a held long poll may take this long
    clock.now += 100.0
    assert live.all_live()
    clock.now += 6.0
    assert live.stuck() == ["cwa-poll"]
    poll.progress()  # the next wake-up goes back to the loop's own stall time
    clock.now += 5.0
    assert live.all_live()
    clock.now += 0.5
    assert live.stuck() == ["cwa-poll"]


def test_a_retired_loop_is_no_longer_watched_and_bad_stall_times_are_refused() -> None:
    clock = Clock()
    live = Liveness(clock=clock)
    beat = live.register("lights", 1.0)
    beat.retire()
    clock.now += 60.0
    assert live.all_live()
    assert live.names() == []
    with pytest.raises(ValueError, match="stall_after_s of 'x' must be > 0"):
        live.register("x", 0)


def test_beats_from_many_threads_are_safe() -> None:
    live = Liveness()
    beats = [live.register(f"loop{i}", 60.0) for i in range(8)]

    def hammer(index: int) -> None:
        for _ in range(2000):
            beats[index].progress()
            live.stuck()

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert live.all_live()
    assert live.names() == [f"loop{i}" for i in range(8)]
