"""Overall deadlines for HTTP exchanges: connect to last byte, however slowly the bytes arrive.

httpx applies its timeouts to each socket operation, so a server that trickles one byte every few
seconds keeps an exchange alive for as long as it likes: every ``recv`` returns something before
its timeout. That holds for the response headers too, which httpcore reads in one loop with no
hook for the caller, and on a kept-alive connection the caller never sees the socket before the
headers are complete.

So the limit is put where every blocking call passes: a wrapper around httpcore's network backend.
`deadline(seconds)` sets an absolute (monotonic) deadline for the current thread; while it is set,
every connect, TLS handshake, read and write of the thread's connections gets a timeout no longer
than the time left, and one started after the deadline fails at once. A silent socket then times
out at the deadline, a trickling one at its first read past it. The thread is the right key: an
exchange runs on one thread from request to last body byte, while a pooled connection moves
between threads from one exchange to the next. Outside `deadline` the wrapper changes nothing.

Limits: the host name lookup inside connect is not bounded (the standard library offers no
timeout for it), and one ``send`` of a large body to a server that reads it slowly may overshoot
by up to the time left; CWA request bodies are a few KiB and go out in one call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

log = logging.getLogger("bridge.cwa.deadline")

_local = threading.local()


class DeadlineExceeded(httpcore.ReadTimeout):
    """A socket operation asked for after the exchange's overall deadline (httpx: a ReadTimeout)."""


def remaining() -> float | None:
    """Seconds left before the current thread's deadline (may be <= 0); None when none is set."""
    at: float | None = getattr(_local, "at", None)
    return None if at is None else at - time.monotonic()


@contextmanager
def deadline(seconds: float) -> Iterator[float]:
    """Bound every socket operation of this thread for ``seconds`` from now; yields the deadline.

    Nested scopes keep the earlier deadline: an inner exchange never extends an outer one.
    """
    outer: float | None = getattr(_local, "at", None)
    at = time.monotonic() + seconds
    _local.at = at if outer is None else min(at, outer)
    try:
        yield _local.at
    finally:
        _local.at = outer


def _clamp(timeout: float | None, what: str) -> float | None:
    left = remaining()
    if left is None:
        return timeout
    if left <= 0:
        raise DeadlineExceeded(f"overall deadline passed before {what}")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every blocking call respects the calling thread's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout, "a read"))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, "a write"))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        tls = self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout, "the TLS handshake"))
        return DeadlineStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """Wraps a backend (normally httpcore's `SyncBackend`) so its streams are `DeadlineStream`s."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self.inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self.inner.connect_tcp(
            host, port, _clamp(timeout, "connecting"), local_address, socket_options
        )
        return DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        stream = self.inner.connect_unix_socket(path, _clamp(timeout, "connecting"), socket_options)
        return DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        left = remaining()
        self.inner.sleep(seconds if left is None else max(0.0, min(seconds, left)))


def install(client: httpx.Client) -> bool:
    """Put `DeadlineBackend` under every connection pool of ``client``; True when all have it.

    httpx has no public way to choose httpcore's network backend, so this reaches into the
    client's transports (httpx's `HTTPTransport` keeps its pool in ``_pool``, the pool its backend
    in ``_network_backend``). Call it before the client's first request: connections opened
    earlier keep their unwrapped streams. A transport of another kind (a test's `MockTransport`)
    is left alone and reported with False; its exchanges then have per-operation timeouts only.
    """
    transports: list[Any] = [client._transport, *client._mounts.values()]
    complete = True
    for transport in transports:
        if transport is None:
            continue
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, DeadlineBackend):
            continue
        if not isinstance(backend, httpcore.NetworkBackend):
            complete = False
            continue
        pool._network_backend = DeadlineBackend(backend)  # type: ignore[union-attr]
    return complete
