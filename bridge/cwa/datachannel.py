"""The data channel's steps: sign in, start the session, poll (the I/O of the poll thread).

Each step does its HTTP through `transport` and hands the result to the protocol core; the poll
loop in `client` decides nothing and only runs them in the order the core asks for. Pacing: the
next GET goes out ``pollWaitTime`` after the previous answer, never sooner.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from bridge.backoff import Sleeper
from bridge.cwa.guarded import Guarded
from bridge.cwa.messages import InitiateSession
from bridge.cwa.protocol import CwaProtocol
from bridge.cwa.reporting import Reporter
from bridge.cwa.session import Poll, StartSession
from bridge.cwa.settings import CwaClientSettings
from bridge.cwa.transport import REQUEST_THROTTLED, CwaTransport
from bridge.errors import CwaUnavailable, Throttled

log = logging.getLogger("bridge.cwa.client")  # the client's log name


class DataChannel:
    def __init__(
        self,
        settings: CwaClientSettings,
        core: Guarded[CwaProtocol],
        transport: CwaTransport,
        report: Reporter,
        *,
        clock: Callable[[], float],
        sleep: Sleeper,
        stop: threading.Event,
        wake: Callable[[], None],
    ) -> None:
        self._s, self._core, self._transport, self._report = settings, core, transport, report
        self._clock, self._sleep, self._stop, self._wake = clock, sleep, stop, wake
        self._last_poll_end: float | None = None
        # Monotonic time of the last poll answer applied (construction until the first one).
        self.last_poll_completed: float = clock()

    def sign_in(self, epoch: int) -> None:
        signed_in = self._transport.sign_in()
        with self._core as core:
            core.signed_in(epoch, signed_in.ticket, signed_in.sign_in_data)
        log.info("cwa.sign_in.ok user=%s auth=%s", self._s.username, self._s.auth)

    def start_session(self, action: StartSession, epoch: int) -> bool:
        """initiateSession as a quiet observer; True when this started the current session. It is
        the session step itself, so it runs on the poll thread: there is nothing to poll before
        it, and no command can go out without it."""
        method = InitiateSession(
            rid=action.rid,
            availability=self._s.initial_availability,
            auto_publish_machine_state=False,
            sign_in_data=action.sign_in_data,
        )
        reply = self._transport.initiate_session(method)
        sid = reply.sid or ""  # never empty: the transport raises for an answer without a sid
        now = self._clock()
        with self._core as core:
            restarted = core.session_started(epoch, sid, reply.poll_wait_time, now)
        if restarted is None:
            return False
        self._last_poll_end = None
        log.info("cwa.session.started sid=%s poll_wait_ms=%s", sid, reply.poll_wait_time)
        if restarted:
            self._report.metric("session_restart", 1.0)
        self._wake()
        return True

    def _await_first_slice(self, bound_s: float, progress: Callable[[float], None]) -> None:
        """The session's first GET waits (at most ``bound_s``, one pollWaitTime) until the command
        worker has sent the first subscription slice: its answer then carries that slice's presence
        with the session's first events. Sent at once, it came back without them, and the first
        users' presence waited a whole pollWaitTime more (a 10,000-user start: ~1 s). A slow
        command channel costs the first GET what the next one would have waited anyway."""
        progress(bound_s)
        self._core.wait_for(lambda core: self._stop.is_set() or not core.first_slice_pending(), bound_s)

    def poll(self, action: Poll, epoch: int, progress: Callable[[float], None]) -> None:
        """One data-channel GET, paced by pollWaitTime after the previous response (``progress``
        announces how long the next step may take)."""
        if self._last_poll_end is not None:
            remaining = self._last_poll_end + action.wait_ms / 1000 - self._clock()
            if remaining > 0:
                progress(remaining)
                if self._sleep(remaining, self._stop):
                    return
        else:
            self._await_first_slice(action.wait_ms / 1000, progress)
        with self._core as core:
            current, settled = core.poll_begin(epoch)
        if not current:
            return  # a command found the session gone while we waited
        started = self._clock()
        progress(self._s.poll_timeout_s)
        try:
            answer = self._transport.fetch_events(action.sid, action.ack_id)
        finally:
            self._last_poll_end = self._clock()
        self._report.metric("poll_latency", self._last_poll_end - started)
        batch, channel_error = self._transport.read_events(answer)
        now = self._clock()
        with self._core as core:
            answered = core.poll_answered(epoch, batch, settled, now)
        if answered is None:
            return
        self.last_poll_completed = now
        if answered.restarted:
            log.warning("cwa.session.lost reason=server_restart ack_id_went_back=%s", batch.ack_id)
            self._report.metric("error", "server_restart")
            return
        self._report.metric("events", float(answered.events))
        self._report.flush()
        if answered.wake:
            self._wake()
        if channel_error is not None and channel_error.code == REQUEST_THROTTLED:
            raise Throttled("data channel: request throttled (18101)")
        if channel_error is not None:
            raise CwaUnavailable(f"data channel: {channel_error.describe()}")
