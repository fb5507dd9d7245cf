"""Subscriptions are paced: one slice per data-channel answer (issue 8: 10,000 watched users).

CWA answers a new subscription with the user's presence in the next data-channel answer (§3.6,
§4.5); subscribing everyone at once made one ~9.5 MB answer for 10,000 users, whose parse set the
bridge's memory high-water mark. The scripted server of test_client.py shows what went out when.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx

from bridge.cwa.messages import SubscribePresence
from bridge.cwa.notices import UserNotice
from tests.support.cwa_client import Harness
from tests.support.outputs import wait_until

PER_POLL = 100


def presence_seen(h: Harness) -> set[str]:
    return {n.uri for n in h.of(UserNotice)}


def subscribed_between_answers(h: Harness) -> list[int]:
    """URIs subscribed before each data-channel request (and after the last one)."""
    counts = [0]
    with h.fake.cond:
        seen = list(h.fake.seen)
    for request in seen:
        if request.channel == "data":
            counts.append(0)
        for method in request.methods:
            if isinstance(method, SubscribePresence):
                counts[-1] += len(method.uris)
    return counts


def test_each_data_channel_answer_carries_at_most_one_slice_and_everyone_gets_presence(
    make_client: Callable[..., Harness],
) -> None:
    h = make_client(subscribe_per_poll=PER_POLL)
    uris = [f"sip:user{i}@x" for i in range(350)]
    h.client.set_watched(uris)
    wait_until(lambda: presence_seen(h) >= set(uris))
    counts = subscribed_between_answers(h)
    assert max(counts) <= PER_POLL
    assert sum(counts) == len(uris)  # each once, none lost to the pacing
    subscribed = [u for m in h.fake.methods(SubscribePresence) for u in m.uris]
    assert subscribed == uris  # in watch-list order


def test_the_first_answer_of_a_session_carries_the_first_slice(make_client: Callable[..., Harness]) -> None:
    h = make_client(start=False, subscribe_per_poll=PER_POLL)
    h.fake.poll_wait_ms = 10_000  # the first GET's wait is bounded by one pollWaitTime (real time)
    uris = [f"sip:user{i}@x" for i in range(250)]
    h.client.set_watched(uris)
    h.client.start()
    wait_until(lambda: presence_seen(h) >= set(uris))
    # The session's first GET waited for the first slice to go out: its answer brought those users'
    # presence, instead of coming back without it and costing them a whole pollWaitTime.
    assert subscribed_between_answers(h)[0] == PER_POLL


def test_small_watch_lists_are_subscribed_at_once(make_client: Callable[..., Harness]) -> None:
    h = make_client(start=False)
    uris = [f"sip:user{i}@x" for i in range(250)]
    h.client.set_watched(uris)
    h.client.start()
    # The default slice (2,500) holds them all: subscribed at once, without waiting for an answer.
    wait_until(lambda: len(h.fake.methods(SubscribePresence)) == 3)
    assert [len(m.uris) for m in h.fake.methods(SubscribePresence)] == [100, 100, 50]
    wait_until(lambda: presence_seen(h) >= set(uris))


def test_a_user_dropped_from_the_watch_list_before_its_slice_is_never_subscribed(
    make_client: Callable[..., Harness],
) -> None:
    h = make_client(start=False, subscribe_per_poll=PER_POLL)
    release = threading.Event()

    def held(request: httpx.Request) -> httpx.Response:  # the first answer waits for the test
        release.wait(10)
        return h.fake._poll(request)

    h.fake.data_script.append(held)
    uris = [f"sip:user{i}@x" for i in range(250)]
    h.client.set_watched(uris)
    h.client.start()  # subscribes the first slice; the rest waits for the first answer
    wait_until(lambda: len(h.fake.methods(SubscribePresence)) == 1)
    assert [len(m.uris) for m in h.fake.methods(SubscribePresence)] == [PER_POLL]
    kept = uris[:150]
    h.client.set_watched(kept)
    release.set()
    wait_until(lambda: presence_seen(h) >= set(kept))
    polls = len(h.polls())
    wait_until(lambda: len(h.polls()) >= polls + 3)  # more answers: nothing else is due
    subscribed = [u for m in h.fake.methods(SubscribePresence) for u in m.uris]
    assert subscribed == kept
