"""What the CWA client reports to its owner: notices, session-state changes, error counts, metrics.

Notices are queued while the client's lock is held (``emit``) and handed to ``on_notice`` by
``flush`` outside it, so a slow or failing callback never holds the lock. Two threads flush (the
poll thread and the command worker); one delivery lock makes them take turns, so notices reach the
owner in the order they were queued. Neither callback can stop the client: their exceptions are
logged and dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from bridge.cwa.notices import Notice, SessionNotice
from bridge.cwa.session import CwaSession

# The client's log name: operators filter on it, whichever module of the client logs.
log = logging.getLogger("bridge.cwa.client")


class Reporter:
    def __init__(
        self,
        on_notice: Callable[[Notice], None],
        on_metric: Callable[[str, float | str], None] | None,
        lock: threading.RLock,
    ) -> None:
        self._on_notice = on_notice
        self._on_metric = on_metric
        self._lock = lock
        self._delivery = threading.RLock()  # re-entrant: a callback may call back into the client
        self._outbox: list[Notice] = []
        self._reported: str | None = None
        self.stats: dict[str, int] = {}  # error kind -> count

    def emit(self, notice: Notice) -> None:
        """Queue a notice; the caller holds the lock."""
        self._outbox.append(notice)

    def emit_state(self, session: CwaSession) -> None:
        """A `SessionNotice` when the public state changed since the last one."""
        with self._lock:
            state = session.public_state
            if state == self._reported:
                return
            self._reported = state
            error = session.last_failure if state in ("reconnecting", "auth_failed") else None
            self._outbox.append(SessionNotice(state, error))
        if state == "online":
            log.info("cwa.session.online")
        elif state in ("reconnecting", "auth_failed"):
            log.warning("cwa.session.lost state=%s reason=%s", state, error)
        else:
            log.info("cwa.session.%s", state)

    def flush(self) -> None:
        with self._delivery:
            with self._lock:
                notices, self._outbox = self._outbox, []
            for notice in notices:
                try:
                    self._on_notice(notice)
                except Exception:  # the owner's bug must not stop the bridge
                    log.exception("cwa.notice.callback_failed notice=%s", type(notice).__name__)

    def count(self, kind: str) -> None:
        with self._lock:
            self.stats[kind] = self.stats.get(kind, 0) + 1
        self.metric("error", kind)

    def metric(self, name: str, value: float | str) -> None:
        """Observations for the metrics adapter: ``poll_latency`` (seconds of one data-channel
        request), ``events`` (events newly applied from one batch), ``session_restart`` (1.0 per
        session started after the first), ``error`` (the kind, as counted in `stats`)."""
        if self._on_metric is not None:
            try:
                self._on_metric(name, value)
            except Exception:
                log.exception("cwa.metric.callback_failed name=%s", name)
