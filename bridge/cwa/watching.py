"""Who the client watches and what this session has subscribed (README: "How it behaves toward CWA").

The desired watch set (configured users, plus the contact list when ``watch_contacts``), the URIs
subscribed on the current session, subscribePresence batches waiting for their asynchronous result,
the URIs waiting to be subscribed (the backlog, and the singles of a refused batch), the contact
list from contactGroup events, and the pacing of new subscriptions: at most ``per_poll`` URIs
between two data-channel answers, because the presence of every new subscription comes back in
the next answer.

Users CWA cannot watch. From the first refusal (unknown user, subscription ``terminated`` or
``retrying``) until CWA accepts a subscription again, a user is unwatchable and re-subscribed with
back-off. Servers send an offline snapshot along with a refusal, so a snapshot alone proves
nothing: acceptance is a ``subscribed`` state, a requestSucceeded for the retry, or the retry's
presence arriving in a data-channel answer that carries no refusal for that user. Only the
transitions become a `WatchabilityNotice`; retries are logged at debug.

Pure bookkeeping: no I/O, no clock (``retry_at`` gives the due time of a retry), not thread-safe
(the client calls it holding its lock). Notices go to ``emit`` in the order they arise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from bridge.cwa.events import ContactGroupEvent
from bridge.cwa.messages import ErrorInfo
from bridge.cwa.notices import ContactsNotice, Notice, WatchabilityNotice

log = logging.getLogger("bridge.cwa.client")  # the client's log name, whichever module logs

REFUSING_STATES = ("terminated", "retrying")


def refusal_reason(error: ErrorInfo) -> str:
    return "unknown user" if error.sip_code == 404 else error.describe()


class WatchState:
    def __init__(
        self,
        *,
        watch_contacts: bool,
        per_poll: int,
        retry_at: Callable[[int], float],
        emit: Callable[[Notice], None],
    ) -> None:
        self._watch_contacts = watch_contacts
        self._per_poll = per_poll
        self._retry_at = retry_at
        self._emit = emit
        self._watched: tuple[str, ...] = ()
        self._subscribed: set[str] = set()
        self._pending: dict[str, tuple[str, ...]] = {}  # rid -> URIs of a subscribePresence
        self.backlog: list[str] = []  # to subscribe, a slice per data-channel answer
        self.singles: list[str] = []  # of refused batches: re-subscribed one URI per request
        self._budget = per_poll
        # Paced slices begun / fully sent: an answer refills the budget only when its GET went out
        # after every slice was sent (else a slice's presence may still be on its way).
        self._slices_begun = 0
        self._slices_sent = 0
        self._unwatchable: dict[str, str] = {}  # uri -> reason
        self._trial: dict[str, str] = {}  # unwatchable uri -> rid of its retry subscription
        self._seen: set[str] = set()  # presence of trial URIs in the batch being applied
        self._refused_now: set[str] = set()  # refusals in the batch being applied
        self._retry: dict[str, tuple[int, float]] = {}  # uri -> (attempt, due)
        self._contacts: dict[str, str | None] = {}
        self._target_set: frozenset[str] = frozenset()

    @property
    def unwatchable(self) -> dict[str, str]:
        return dict(self._unwatchable)

    def set_watched(self, uris: Sequence[str]) -> list[str]:
        """Replace the configured watch set; returns the targets not subscribed yet."""
        self._watched = tuple(dict.fromkeys(u for u in uris if u))
        targets = self._target_set = frozenset(self.targets())
        for uri in list(self._retry):
            if uri not in targets:
                del self._retry[uri]
        self.backlog = [u for u in self.backlog if u in targets]
        self.singles = [u for u in self.singles if u in targets]
        return [u for u in self.targets() if u not in self._subscribed]

    def targets(self) -> tuple[str, ...]:
        """Every URI to watch: the configured ones, then the contacts when they are watched too."""
        if not self._watch_contacts:
            return self._watched
        return tuple(dict.fromkeys((*self._watched, *self._contacts)))

    def new_session(self) -> None:
        """Nothing is subscribed on a new session; the pacing budget is full again."""
        self._subscribed = set()
        self._pending = {}
        self._trial = {}
        self.backlog = []
        self.singles = []
        self._budget = self._per_poll

    # ------------------------------------------------------------------ subscribing

    def enqueue(self, uris: Sequence[str]) -> bool:
        """Queue URIs for the paced subscriptions; returns whether anything new was queued."""
        queued = set(self.backlog)
        fresh = [u for u in dict.fromkeys(uris) if u not in self._subscribed and u not in queued]
        self.backlog.extend(fresh)
        return bool(fresh)

    def has_work(self) -> bool:
        return bool(self.singles) or (bool(self.backlog) and self._budget > 0)

    def take(self) -> tuple[list[str], int]:
        """The backlog URIs to subscribe now (within the budget), marked subscribed, and the paced
        slices this begins (0 or 1)."""
        todo = [u for u in self.backlog if u not in self._subscribed]
        take = max(0, self._budget)
        todo, self.backlog = todo[:take], todo[take:]
        self._budget -= len(todo)
        slice_ = 1 if todo else 0
        self._slices_begun += slice_
        self._subscribed.update(todo)
        return todo, slice_

    def take_singles(self) -> list[str]:
        todo = [u for u in dict.fromkeys(self.singles) if u not in self._subscribed]
        self.singles = []
        self._subscribed.update(todo)
        return todo

    def first_slice_pending(self) -> bool:
        """Whether the session's first paced slice is still to be sent (queued, or on its way)."""
        if self._slices_begun == 0:
            return bool(self.backlog) and self._budget > 0
        return self._slices_sent == 0

    def slice_sent(self, slices: int) -> None:
        self._slices_sent += slices

    def settled(self) -> int | None:
        """Taken before a data-channel GET: which slices its answer is sure to complete."""
        return self._slices_sent if self._slices_begun == self._slices_sent else None

    def answered(self, settled: int | None) -> bool:
        """A data-channel answer arrived (``settled`` as `settled` said before its GET); returns
        whether a new slice may go out now."""
        if settled == self._slices_begun:  # the last slice's presence is in this answer
            self._budget = self._per_poll
        return self.has_work()

    def sending(self, rid: str, uris: tuple[str, ...]) -> None:
        self._pending[rid] = uris
        for uri in uris:
            if uri in self._unwatchable:
                self._trial[uri] = rid
                attempt = self._retry.get(uri, (0, 0.0))[0]
                log.debug("cwa.subscribe.retry uri=%s attempt=%d rid=%s", uri, attempt, rid)

    def send_failed(self, rid: str, uris: tuple[str, ...]) -> None:
        """The request itself failed: retried after a back-off, no notice (the user is not at fault)."""
        self._pending.pop(rid, None)
        self._subscribed.difference_update(uris)
        for uri in uris:
            self._trial.pop(uri, None)
            self._schedule_retry(uri)

    def refused(self, rid: str, uris: tuple[str, ...], error: ErrorInfo) -> None:
        """CWA refused the request at once; a batch is re-tried one URI each."""
        self._pending.pop(rid, None)
        self._subscription_refused(uris, error)

    def resolve(self, rid: str, error: ErrorInfo | None) -> None:
        """The asynchronous result of ``rid`` (if it was a subscribePresence)."""
        uris = self._pending.pop(rid, None)
        if uris is None:
            return
        if error is not None:
            self._subscription_refused(uris, error)
            return
        for uri in uris:
            if self._trial.get(uri) == rid:
                self._accept(uri)

    def due(self, now: float) -> list[str]:
        """Refused or failed users whose retry is due."""
        return [u for u, (_, at) in self._retry.items() if at <= now and u not in self._subscribed]

    def next_due(self) -> float | None:
        pending = [at for u, (_, at) in self._retry.items() if u not in self._subscribed]
        return min(pending, default=None)

    def _subscription_refused(self, uris: tuple[str, ...], error: ErrorInfo) -> None:
        """A refused batch is retried one URI each, so an unknown user never affects the others."""
        self._subscribed.difference_update(uris)
        if len(uris) > 1:
            self.singles.extend(uris)
            return
        self.refuse(uris[0], refusal_reason(error))

    # ------------------------------------------------------------------ events of one answer

    def refuse(self, uri: str, reason: str) -> None:
        """CWA will not watch ``uri`` now: unwatchable (announced once), re-subscribed with back-off."""
        if uri not in self._target_set:
            return  # not ours to retry (a contact that is not watched, a user no longer wanted)
        self._trial.pop(uri, None)
        self._refused_now.add(uri)
        self._subscribed.discard(uri)
        attempt = self._schedule_retry(uri)
        if uri in self._unwatchable:
            log.debug("cwa.subscribe.refused_again uri=%s reason=%s attempt=%d", uri, reason, attempt)
            return
        self._unwatchable[uri] = reason
        log.warning("cwa.user.unwatchable uri=%s reason=%s", uri, reason)
        self._emit(WatchabilityNotice(uri, False, reason))

    def subscription_state(self, uri: str, state: str) -> None:
        if state in REFUSING_STATES:
            self.refuse(uri, f"subscription {state}")
        elif state == "subscribed":
            self._accept(uri)

    def presence(self, uri: str) -> None:
        """A userPresence for ``uri``: acceptance of a retry only when its answer refuses nothing."""
        if uri in self._trial:
            self._seen.add(uri)

    def batch_done(self) -> None:
        """The answer is applied: a retry whose presence came without a refusal was accepted."""
        for uri in self._seen - self._refused_now:
            if uri in self._trial:
                self._accept(uri)
        self._seen = set()
        self._refused_now = set()

    def _accept(self, uri: str) -> None:
        self._retry.pop(uri, None)
        self._trial.pop(uri, None)
        if self._unwatchable.pop(uri, None) is not None:
            log.info("cwa.user.watchable uri=%s", uri)
            self._emit(WatchabilityNotice(uri, True, None))

    def _schedule_retry(self, uri: str) -> int:
        attempt = self._retry.get(uri, (0, 0.0))[0] + 1
        self._retry[uri] = (attempt, self._retry_at(attempt))
        return attempt

    def apply_contacts(self, event: ContactGroupEvent, *, online: bool) -> list[str]:
        """A full contact list or a delta; returns contacts to subscribe (when they are watched)."""
        if event.full_list:
            self._contacts = {}
        for contact in event.contacts:
            if contact.action == "deleted":
                self._contacts.pop(contact.uri, None)
            else:
                self._contacts[contact.uri] = contact.name or self._contacts.get(contact.uri)
        self._target_set = frozenset(self.targets())
        self._emit(ContactsNotice(tuple(self._contacts.items())))
        if not self._watch_contacts or not online:
            return []
        return [u for u in self._contacts if u not in self._subscribed]
