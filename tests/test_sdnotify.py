"""systemd notify: what systemd receives on NOTIFY_SOCKET, and silence without it."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.sdnotify import Notifier


class Receiver:
    """Plays systemd's side: a bound unix datagram socket that collects notify messages."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value

    def next(self) -> str:
        return self.sock.recv(4096).decode()

    def nothing_pending(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(4096)
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(5)
        return False


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    # A short private directory: AF_UNIX paths are limited to 108 bytes, pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="sdn") as tmp:
        path = os.path.join(tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(5)
        try:
            yield Receiver(sock, path)
        finally:
            sock.close()


def test_ready_reaches_systemd(receiver: Receiver) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": receiver.env_value})
    assert notifier.enabled
    notifier.ready()
    assert receiver.next() == "READY=1"


def test_ready_carries_a_status_line(receiver: Receiver) -> None:
    Notifier({"NOTIFY_SOCKET": receiver.env_value}).ready("bridging 3 users")
    assert receiver.next() == "READY=1\nSTATUS=bridging 3 users"


def test_watchdog_stopping_and_status_messages(receiver: Receiver) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": receiver.env_value})
    notifier.watchdog()
    notifier.status("CWA session reconnecting")
    notifier.stopping()
    assert [receiver.next() for _ in range(3)] == [
        "WATCHDOG=1",
        "STATUS=CWA session reconnecting",
        "STOPPING=1",
    ]


def test_a_newline_in_a_status_cannot_inject_an_assignment(receiver: Receiver) -> None:
    # A note or error text with a newline must not turn into e.g. a premature READY=1.
    Notifier({"NOTIFY_SOCKET": receiver.env_value}).status("last error:\nREADY=1")
    message = receiver.next()
    assert message == "STATUS=last error: READY=1"
    assert message.count("\n") == 0


def test_abstract_namespace_socket() -> None:
    name = f"cwa2mqtt-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(4096) == b"READY=1"


def test_reads_the_process_environment_by_default(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", receiver.env_value)
    Notifier().watchdog()
    assert receiver.next() == "WATCHDOG=1"


def test_without_notify_socket_everything_is_a_quiet_no_op(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    caplog.set_level(logging.DEBUG, logger="bridge.sdnotify")
    notifier = Notifier()
    assert not notifier.enabled
    notifier.ready("x")
    notifier.watchdog()
    notifier.status("y")
    notifier.stopping()
    # Not under systemd: no watchdog to feed even if the variable leaked in, and nothing logged.
    assert notifier.watchdog_interval() is None
    assert caplog.records == []


def test_unsupported_socket_kind_is_a_no_op() -> None:
    notifier = Notifier({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.enabled
    notifier.ready()


def test_send_failure_never_raises_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge.sdnotify")
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    for _ in range(3):
        notifier.ready("secret-free status")
        notifier.watchdog()
    failures = [r for r in caplog.records if r.getMessage().startswith("sdnotify.send_failed")]
    assert len(failures) == 1
    assert failures[0].levelno == logging.DEBUG
    assert "secret-free status" not in caplog.text


def test_delivery_resumes_once_the_socket_exists(receiver: Receiver) -> None:
    # E.g. systemd re-executed itself: a failed send must not leave the notifier broken.
    path = receiver.env_value
    receiver.sock.close()
    os.unlink(path)
    notifier = Notifier({"NOTIFY_SOCKET": path})
    notifier.watchdog()  # fails: nobody listens
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        notifier.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_concurrent_senders_each_deliver_whole_messages(receiver: Receiver) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": receiver.env_value})
    threads = [threading.Thread(target=notifier.status, args=(f"worker {i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    received = sorted(receiver.next() for _ in threads)
    assert received == sorted(f"STATUS=worker {i}" for i in range(8))
    assert receiver.nothing_pending()


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("60000000", None, 60.0),
        ("60000000", "self", 60.0),
        ("500000", None, 0.5),
        ("60000000", "other", None),  # inherited from a parent: not our watchdog
        ("0", None, None),
        ("-5", None, None),
        ("sixty", None, None),
        ("60000000", "not-a-pid", None),
        (None, None, None),
    ],
)
def test_watchdog_interval(
    receiver: Receiver, usec: str | None, pid: str | None, expected: float | None
) -> None:
    env = {"NOTIFY_SOCKET": receiver.env_value}
    if usec is not None:
        env["WATCHDOG_USEC"] = usec
    if pid == "self":
        env["WATCHDOG_PID"] = str(os.getpid())
    elif pid == "other":
        env["WATCHDOG_PID"] = str(os.getpid() + 1)
    elif pid is not None:
        env["WATCHDOG_PID"] = pid
    assert Notifier(env).watchdog_interval() == expected


def test_repr_shows_no_socket_details(receiver: Receiver) -> None:
    assert repr(Notifier({"NOTIFY_SOCKET": receiver.env_value})) == "Notifier(enabled=True)"
