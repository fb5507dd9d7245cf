"""What the CWA client hands its owner: the core's notices, error counts, metrics.

The protocol core queues notices while its lock is held; ``flush`` takes them and hands them to
``on_notice`` outside the lock, so a slow or failing callback never holds it. Two threads flush
(the poll thread and the command worker); one delivery lock makes them take turns, so notices
reach the owner in the order they were queued. Neither callback can stop the client: their
exceptions are logged and dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from bridge.cwa.guarded import Guarded
from bridge.cwa.notices import Notice
from bridge.cwa.protocol import CwaProtocol

# The client's log name: operators filter on it, whichever module of the client logs.
log = logging.getLogger("bridge.cwa.client")


class Reporter:
    def __init__(
        self,
        core: Guarded[CwaProtocol],
        on_notice: Callable[[Notice], None],
        on_metric: Callable[[str, float | str], None] | None,
    ) -> None:
        self._core = core
        self._on_notice = on_notice
        self._on_metric = on_metric
        self._delivery = threading.RLock()  # re-entrant: a callback may call back into the client

    def flush(self) -> None:
        with self._delivery:
            with self._core as core:
                notices = core.take_notices()
            for notice in notices:
                try:
                    self._on_notice(notice)
                except Exception:  # the owner's bug must not stop the bridge
                    log.exception("cwa.notice.callback_failed notice=%s", type(notice).__name__)

    def count(self, kind: str) -> None:
        with self._core as core:
            core.count(kind)
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
