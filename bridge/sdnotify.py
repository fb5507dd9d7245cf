"""A tiny systemd notify client (``sd_notify(3)``) over the ``$NOTIFY_SOCKET`` datagram socket.

Theory of operation, after zigbee2mqtt's ``lib/util/sd-notify.ts``:

- Without ``NOTIFY_SOCKET`` (not started by systemd, Docker, a terminal, the tests) every call is a
  no-op, so callers never need to ask whether they run under systemd.
- ``ready()`` is sent only when the bridge really bridges (CWA session up, MQTT connected), so that
  ``Type=notify`` makes ``systemctl start`` wait for a working bridge, not a started process.
- ``watchdog()`` must be called from the loop that can hang (the data-channel poll loop), at half
  of ``watchdog_interval()``; a timer thread pinging on its own would keep a hung bridge alive.
- ``stopping()`` at the start of a clean stop, so systemd shows "deactivating" and does not count
  a missing watchdog ping during shutdown as a hang.
- Sending never raises: notify is advisory, and a broken notify socket must not stop the bridge.
  The first failure is logged at debug level, later ones are silent.

The socket address is a filesystem path, or an abstract-namespace name written with a leading
``@`` (sd_notify(3)); other address kinds (``vsock:``) are not supported and make this a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

log = logging.getLogger(__name__)

# A blocked send must not hang the loop that pings the watchdog; systemd drains its socket
# quickly, so one second is generous and still bounded.
_SEND_TIMEOUT_S = 1.0


def _socket_address(value: str) -> str | None:
    """Translate ``$NOTIFY_SOCKET`` into an AF_UNIX address, or None when unsupported."""
    if value.startswith("@"):
        # Abstract namespace: the kernel wants a leading NUL byte instead of the "@".
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def _one_line(text: str) -> str:
    # The notify protocol separates assignments by newlines; a newline inside a status text
    # would inject a second assignment (e.g. a stray "READY=1"), so flatten it.
    return " ".join(text.splitlines())


class Notifier:
    """Sends READY/WATCHDOG/STOPPING/STATUS to systemd; does nothing without ``NOTIFY_SOCKET``.

    Safe to call from several threads. ``env`` defaults to ``os.environ`` and exists for tests.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        environ = os.environ if env is None else env
        raw = environ.get("NOTIFY_SOCKET", "")
        self._address = _socket_address(raw) if raw else None
        if raw and self._address is None:
            log.debug("sdnotify.unsupported_socket address=%s", raw)
        self._watchdog_usec = environ.get("WATCHDOG_USEC", "")
        self._watchdog_pid = environ.get("WATCHDOG_PID", "")
        self._lock = threading.Lock()  # guards only the log-once flag
        self._failure_logged = False

    def __repr__(self) -> str:
        return f"Notifier(enabled={self.enabled})"

    @property
    def enabled(self) -> bool:
        """True when a usable ``NOTIFY_SOCKET`` was given."""
        return self._address is not None

    def ready(self, status: str = "") -> None:
        """Tell systemd the service is up (``READY=1``), optionally with a status line."""
        self._send("READY=1" + (f"\nSTATUS={_one_line(status)}" if status else ""))

    def watchdog(self) -> None:
        """Keep-alive ping (``WATCHDOG=1``); call at half of :meth:`watchdog_interval`."""
        self._send("WATCHDOG=1")

    def stopping(self) -> None:
        """Tell systemd a clean stop has begun (``STOPPING=1``)."""
        self._send("STOPPING=1")

    def status(self, text: str) -> None:
        """Free-form status shown by ``systemctl status`` (``STATUS=...``)."""
        self._send(f"STATUS={_one_line(text)}")

    def watchdog_interval(self) -> float | None:
        """The watchdog timeout in seconds, or None when no watchdog is expected of this process.

        From ``WATCHDOG_USEC``; when ``WATCHDOG_PID`` is set it must be this process (sd_watchdog_enabled(3)),
        otherwise the variables were inherited from a parent and the watchdog is not ours.
        """
        if self._address is None:
            return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        if usec <= 0:
            return None
        if self._watchdog_pid:
            try:
                pid = int(self._watchdog_pid)
            except ValueError:
                return None
            if pid != os.getpid():
                return None
        return usec / 1_000_000

    def _send(self, message: str) -> None:
        address = self._address
        if address is None:
            return
        data = message.encode("utf-8", errors="replace")
        try:
            # A fresh socket per message, as sd_notify(3) does: nothing to close or leak, and a
            # re-executed systemd (new socket inode) is reached on the next call.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(_SEND_TIMEOUT_S)
                sock.sendto(data, address)
        except OSError as exc:
            with self._lock:
                first, self._failure_logged = not self._failure_logged, True
            if first:
                log.debug("sdnotify.send_failed socket=%s error=%s", address.lstrip("\0"), exc)
