"""What the events of one data-channel answer mean for the client's state and its owner.

Presence becomes `UserNotice`/`SelfNotice` (marked when it answers a resync query), results of
requests resolve pending publishes and subscriptions, subscription states and contact lists update
the watch state. Pure: the caller holds the client's lock and flushes the notices afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bridge.cwa.events import (
    ContactGroupEvent,
    Event,
    RequestFailedEvent,
    RequestSucceededEvent,
    SelfPresenceEvent,
    SubscriptionStateEvent,
    UserPresenceEvent,
)
from bridge.cwa.notices import Notice, SelfNotice, UserNotice
from bridge.cwa.ownstate import OwnState
from bridge.cwa.resync import ResyncPlan
from bridge.cwa.watching import WatchState


def apply_events(
    events: Sequence[Event],
    *,
    now: float,
    online: bool,
    own: OwnState,
    watch: WatchState,
    resync: ResyncPlan,
    emit: Callable[[Notice], None],
) -> bool:
    """Apply ``events`` in order; returns whether subscriptions are waiting to go out."""
    for event in events:
        if isinstance(event, RequestSucceededEvent | RequestFailedEvent):
            error = event.error if isinstance(event, RequestFailedEvent) else None
            own.resolve(event.rid or "", error is None, error)
            watch.resolve(event.rid or "", error)
        elif isinstance(event, UserPresenceEvent):
            for user in event.users:
                emit(UserNotice(user.uri, user.summary(), resync=resync.is_answer(user.uri, now)))
                watch.presence(user.uri)
        elif isinstance(event, SelfPresenceEvent):
            emit(SelfNotice(event.summary()))
        elif isinstance(event, SubscriptionStateEvent):
            for sub in event.users:
                watch.subscription_state(sub.uri, sub.state)
        elif isinstance(event, ContactGroupEvent):
            watch.enqueue(watch.apply_contacts(event, online=online))
        # IM invitations and every other event are ignored without error.
    watch.batch_done()
    return watch.has_work()
