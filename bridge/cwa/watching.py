"""Who the client watches and what this session has subscribed (interface.md §7.2, §7.5).

The desired watch set (configured users, plus the contact list when ``watch_contacts``), the URIs
subscribed on the current session, subscribePresence batches waiting for their asynchronous result,
users CWA refused (retried with back-off, announced once by a `WatchabilityNotice`), the contact
list from contactGroup events, and the pacing of new subscriptions: at most ``per_poll`` URIs
between two data-channel answers, because the presence of every new subscription comes back in
the next answer (§3.6, §4.5).

Pure bookkeeping: no I/O, no clock (``retry_at`` gives the due time of a retry), not thread-safe
(the client calls it holding its lock). Notices go to ``emit`` in the order they arise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bridge.cwa.messages import ContactGroupEvent, ErrorInfo
from bridge.cwa.notices import ContactsNotice, Notice, WatchabilityNotice


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
        self._budget = per_poll
        # Paced slices begun / fully sent: an answer refills the budget only when its GET went out
        # after every slice was sent (else a slice's presence may still be on its way).
        self._slices_begun = 0
        self._slices_sent = 0
        self._unwatchable: set[str] = set()
        self._retry: dict[str, tuple[int, float]] = {}  # uri -> (attempt, due)
        self._contacts: dict[str, str | None] = {}

    @property
    def contacts(self) -> tuple[tuple[str, str | None], ...]:
        return tuple(self._contacts.items())

    def set_watched(self, uris: Sequence[str]) -> None:
        """Replace the configured watch set; retries and backlog of users no longer wanted end."""
        self._watched = tuple(dict.fromkeys(u for u in uris if u))
        targets = set(self.targets())
        for uri in list(self._retry):
            if uri not in targets:
                del self._retry[uri]
        self.backlog = [u for u in self.backlog if u in targets]

    def unsubscribed_watched(self) -> list[str]:
        return [u for u in self._watched if u not in self._subscribed]

    def targets(self) -> tuple[str, ...]:
        """Every URI to watch: the configured ones, then the contacts when they are watched too."""
        if not self._watch_contacts:
            return self._watched
        return tuple(dict.fromkeys((*self._watched, *self._contacts)))

    def new_session(self) -> None:
        """Nothing is subscribed on a new session; the pacing budget is full again."""
        self._subscribed = set()
        self._pending = {}
        self.backlog = []
        self._budget = self._per_poll

    # ------------------------------------------------------------------ subscribing

    def take(self, uris: Sequence[str], *, paced: bool) -> tuple[list[str], int]:
        """The URIs to subscribe now, marked subscribed, and the paced slices this begins (0 or 1).

        Paced: the backlog first, then ``uris``, within the budget; the rest joins the backlog.
        """
        wanted = (*self.backlog, *uris) if paced else uris
        todo = [u for u in dict.fromkeys(wanted) if u not in self._subscribed]
        if paced:
            take = max(0, self._budget)
            todo, self.backlog = todo[:take], todo[take:]
            self._budget -= len(todo)
        slice_ = 1 if paced and todo else 0
        self._slices_begun += slice_
        self._subscribed.update(todo)
        return todo, slice_

    def slice_sent(self, slices: int) -> None:
        self._slices_sent += slices

    def settled(self) -> int | None:
        """Taken before a data-channel GET: which slices its answer is sure to complete."""
        return self._slices_sent if self._slices_begun == self._slices_sent else None

    def answered(self, settled: int | None) -> None:
        """A data-channel answer arrived; ``settled`` is what `settled` said before its GET."""
        if settled == self._slices_begun:  # the last slice's presence is in this answer
            self._budget = self._per_poll

    def sending(self, rid: str, uris: tuple[str, ...]) -> None:
        self._pending[rid] = uris

    def send_failed(self, rid: str, uris: tuple[str, ...]) -> None:
        """The request itself failed: retried after a back-off, no notice (the user is not at fault)."""
        self._pending.pop(rid, None)
        self._subscribed.difference_update(uris)
        for uri in uris:
            attempt = self._retry.get(uri, (0, 0.0))[0] + 1
            self._retry[uri] = (attempt, self._retry_at(attempt))

    def refused(self, rid: str, uris: tuple[str, ...], error: ErrorInfo) -> list[str]:
        """CWA refused the request at once; returns URIs to subscribe one by one."""
        self._pending.pop(rid, None)
        return self._subscription_refused(uris, error)

    def resolve(self, rid: str, error: ErrorInfo | None) -> list[str]:
        """The asynchronous result of ``rid``; returns URIs to subscribe one by one."""
        uris = self._pending.pop(rid, None)
        if uris is not None and error is not None:
            return self._subscription_refused(uris, error)
        return []

    def due(self, now: float) -> list[str]:
        """Refused or failed users whose retry is due."""
        return [u for u, (_, at) in self._retry.items() if at <= now and u not in self._subscribed]

    def _subscription_refused(self, uris: tuple[str, ...], error: ErrorInfo) -> list[str]:
        """A refused batch is retried one URI each, so an unknown user never affects the others."""
        self._subscribed.difference_update(uris)
        if len(uris) > 1:
            return list(uris)
        reason = "unknown user" if error.sip_code == 404 else error.describe()
        self.set_watchable(uris[0], False, reason)
        return []

    # ------------------------------------------------------------------ events

    def set_watchable(self, uri: str, watchable: bool, reason: str) -> None:
        if watchable:
            self._retry.pop(uri, None)
            if uri in self._unwatchable:
                self._unwatchable.discard(uri)
                self._emit(WatchabilityNotice(uri, True, reason))
            return
        attempt = self._retry.get(uri, (0, 0.0))[0] + 1
        self._retry[uri] = (attempt, self._retry_at(attempt))
        self._subscribed.discard(uri)
        if uri not in self._unwatchable:
            self._unwatchable.add(uri)
            self._emit(WatchabilityNotice(uri, False, reason))

    def apply_contacts(self, event: ContactGroupEvent, *, online: bool) -> list[str]:
        """A full contact list or a delta; returns contacts to subscribe (when they are watched)."""
        if event.full_list:
            self._contacts = {}
        for contact in event.contacts:
            if contact.action == "deleted":
                self._contacts.pop(contact.uri, None)
            else:
                self._contacts[contact.uri] = contact.name or self._contacts.get(contact.uri)
        self._emit(ContactsNotice(tuple(self._contacts.items())))
        if not self._watch_contacts or not online:
            return []
        return [u for u in self._contacts if u not in self._subscribed]
