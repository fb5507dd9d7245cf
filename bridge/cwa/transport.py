"""The HTTP exchanges with CWA and the translation of their failures (README: "How it behaves toward CWA").

Translating httpx exceptions, HTTP status codes, logon pages and CWA error codes into
`bridge.errors` happens here and nowhere else (keeping the cause: ``raise ... from exc``). The
transport knows the wire, not the session: the ticket it sends and every ticket it sees go through
two callables of its owner (`CwaClient` guards its session machine with a lock), and what comes
back is typed messages or an `Answer`, never an httpx object.

Every exchange has an overall deadline, connect to last byte (`bridge.cwa.deadline`):
``poll_timeout_s`` for a data-channel poll, ``timeout_s`` for sign-in and the command channel. A
deadline is a transport failure like any other (`CwaUnavailable`). Every CWA-Ticket seen is
registered with the log redaction filter before anything else happens to it.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bridge.cwa import codec, deadline
from bridge.cwa.events import EventBatch, RequestFailedEvent
from bridge.cwa.iwa import NtlmAuth
from bridge.cwa.messages import (
    Accepted,
    ErrorInfo,
    InitiateSession,
    Logon,
    Method,
    Refused,
    ResponseBatch,
    Succeeded,
    TerminateSession,
)
from bridge.cwa.settings import CwaClientSettings
from bridge.errors import (
    AuthRejected,
    CommandFailed,
    CwaError,
    CwaProtocolError,
    CwaUnavailable,
    SessionGone,
    Throttled,
    TicketExpired,
)
from bridge.logs import register_secret

log = logging.getLogger("bridge.cwa.transport")

TICKET_HEADER = "CWA-Ticket"
LOGON_PATHS = {"forms": "/forms/logon.html", "iwa": "/iwa/logon.html"}  # §2.2
SESSION_NOT_FOUND = 18100
REQUEST_THROTTLED = 18101


@dataclass(frozen=True)
class Answer:
    """What the client needs of one HTTP response: its status, the two headers read, the body."""

    status: int
    content_type: str
    ticket: str | None
    body: bytes


@dataclass(frozen=True)
class SignedIn:
    ticket: str
    sign_in_data: str | None


class CwaTransport:
    """One method per exchange of the protocol; each raises only `CwaError` or `CwaProtocolError`."""

    def __init__(
        self,
        settings: CwaClientSettings,
        http: httpx.Client,
        *,
        ticket: Callable[[], str | None],
        adopt_ticket: Callable[[str | None], None],
    ) -> None:
        self._s = settings
        self._http = http
        self._ticket = ticket
        self._adopt_ticket = adopt_ticket
        self._base = settings.base_url.rstrip("/")
        # Without it a trickling server holds an exchange for as long as it likes (per-read timeouts).
        self.deadlines_enforced = deadline.install(http)
        if not self.deadlines_enforced:
            log.warning("cwa.transport.no_deadlines the HTTP client's transport cannot be wrapped")

    def sign_in(self) -> SignedIn:
        """Sign-in (§2): success is a CWA-Ticket header, whatever the body says (§8.3).

        Forms sends the password in the logon body. IWA leaves it out (IIS checks it, §2.2) and
        runs the NTLM handshake on the logon POST; every sign-in repeats the whole handshake, and a
        401 after the type 3 message (no ticket) is a refusal like forms' requestFailed.
        """
        s = self._s
        iwa = s.auth == "iwa"
        password = None if iwa else s.password
        body = codec.encode_logon(Logon(user=s.username, password=password, uri=s.uri))
        auth = NtlmAuth(s.username, s.password) if iwa else None
        path = s.logon_path or LOGON_PATHS[s.auth]
        answer = self.exchange("POST", path, body, s.timeout_s, "logon", auth=auth)
        reply = _decode_logon(answer.body, s.max_body_bytes)
        if answer.ticket:
            sign_in_data = reply.sign_in_data if isinstance(reply, Succeeded) else None
            return SignedIn(answer.ticket, sign_in_data)
        if answer.status >= 500:
            raise CwaUnavailable(f"sign-in: HTTP {answer.status}")
        if isinstance(reply, Refused) or answer.status in (200, 401, 403):
            raise AuthRejected(f"CWA refused the credentials of {s.username} (HTTP {answer.status})")
        raise CwaUnavailable(f"sign-in: HTTP {answer.status} without a ticket")

    def initiate_session(self, method: InitiateSession) -> Accepted:
        """initiateSession; both answer forms are accepted (§8.2). Returns an answer with a sid."""
        batch = self.post_commands("0", [method])  # sid "0" before a session exists (§3.1)
        reply = batch.for_rid(method.rid) or next(
            (r for r in batch.responses if isinstance(r, Accepted | Refused)), None
        )
        if isinstance(reply, Refused):
            if reply.error.code == REQUEST_THROTTLED:
                raise Throttled("initiateSession throttled")
            raise SessionGone(f"initiateSession refused: {reply.error.describe()}")
        if not isinstance(reply, Accepted) or not reply.sid:
            raise CwaProtocolError("initiateSession answer without a sid")
        return reply

    def post_commands(self, sid: str, methods: Sequence[Method]) -> ResponseBatch:
        """POST methods on the command channel; session-level error codes become exceptions."""
        body = codec.encode_requests(sid, list(methods))
        answer = self.exchange("POST", self._s.command_path, body, self._s.timeout_s, "command")
        raise_for_status(answer, "command")
        require_xml(answer, "command")
        batch = codec.decode_responses(answer.body, max_bytes=self._s.max_body_bytes)
        codes = {r.error.code for r in batch.responses if isinstance(r, Refused)}
        if SESSION_NOT_FOUND in codes and sid != "0":
            raise SessionGone("command channel: session not found (18100)")
        if REQUEST_THROTTLED in codes:
            raise Throttled("command channel: request throttled (18101)")
        return batch

    def terminate_session(self, sid: str, rid: str, timeout_s: float) -> None:
        """terminateSession; its answer does not matter, only that it was sent (best effort)."""
        body = codec.encode_requests(sid, [TerminateSession(rid=rid)])
        self.exchange("POST", self._s.command_path, body, timeout_s, "command")

    def fetch_events(self, sid: str, ack_id: int, timeout_s: float | None = None) -> Answer:
        """One data-channel GET (§4), held by the server up to its long-poll time; abandoned (raising
        `CwaUnavailable`) when not complete within ``timeout_s`` (default: ``poll_timeout_s``)."""
        params = {"Sid": sid, "AckId": str(ack_id), "UA": "false"}  # UA=false: a quiet observer
        limit = self._s.poll_timeout_s if timeout_s is None else timeout_s
        return self.exchange("GET", self._s.data_path, None, limit, "data", params=params)

    def read_events(self, answer: Answer) -> tuple[EventBatch, ErrorInfo | None]:
        """The events of a data-channel answer, and its channel-level error if any (§4.3).

        A session-not-found error is raised at once; any other channel error is returned, so the
        events that came with it are applied before the caller raises it.
        """
        raise_for_status(answer, "data")
        require_xml(answer, "data")
        batch = codec.decode_events(answer.body, max_bytes=self._s.max_body_bytes)
        channel_error = next(
            (e.error for e in batch.events if isinstance(e, RequestFailedEvent) and not e.rid), None
        )
        if channel_error is not None and channel_error.code == SESSION_NOT_FOUND:
            raise SessionGone("data channel: session not found (18100)")
        return batch, channel_error

    def exchange(
        self,
        method: str,
        path: str,
        body: bytes | None,
        timeout_s: float,
        channel: str,
        *,
        params: dict[str, str] | None = None,
        auth: httpx.Auth | None = None,
    ) -> Answer:
        """One request, complete within ``timeout_s`` from connect to the last byte; the body is read
        up to ``max_body_bytes``. Raises `CwaUnavailable` for transport failures (the deadline
        included), `CwaProtocolError` for an oversized body, whatever the status."""
        headers = {"Content-Type": "text/xml; charset=utf-8"} if body is not None else {}
        extra: dict[str, Any] = {"auth": auth} if auth is not None else {}
        ticket = self._ticket()
        if ticket and channel != "logon":
            headers[TICKET_HEADER] = ticket
        at = time.monotonic() + timeout_s
        try:
            with (
                deadline.deadline(timeout_s),
                self._http.stream(
                    method,
                    self._base + path,
                    content=body,
                    params=params,
                    headers=headers,
                    timeout=httpx.Timeout(timeout_s),
                    **extra,
                ) as response,
            ):
                seen = response.headers.get(TICKET_HEADER)
                register_secret(seen, rotating=True)
                # the newest ticket of ANY response wins
                self._adopt_ticket(seen)
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self._s.max_body_bytes:
                        raise CwaProtocolError(f"{channel}: body larger than {self._s.max_body_bytes} bytes")
                    chunks.append(chunk)
                    if time.monotonic() > at:  # also where the socket layer could not be wrapped
                        raise _past_deadline(channel, timeout_s)
        except httpx.TimeoutException as exc:
            if isinstance(exc.__cause__, deadline.DeadlineExceeded) or time.monotonic() >= at:
                raise _past_deadline(channel, timeout_s) from exc
            raise CwaUnavailable(f"{channel}: timed out") from exc
        except httpx.HTTPError as exc:
            raise CwaUnavailable(f"{channel}: {transport_reason(exc)}") from exc
        return Answer(
            status=response.status_code,
            content_type=response.headers.get("content-type", ""),
            ticket=seen,
            body=b"".join(chunks),
        )


def _past_deadline(channel: str, timeout_s: float) -> CwaUnavailable:
    return CwaUnavailable(f"{channel}: no complete answer within the {timeout_s:g} s overall deadline")


# ====================================================================== translation


def raise_for_status(answer: Answer, channel: str) -> None:
    status = answer.status
    if status in (401, 403) or 300 <= status < 400:
        raise TicketExpired(f"{channel}: HTTP {status}")  # §7.2.1 (a 3xx goes to a logon page)
    if status == 404 and channel == "data":
        raise SessionGone("data channel: HTTP 404 (unknown sid)")  # §7.3
    if status == 503:
        raise Throttled(f"{channel}: HTTP 503")
    if status >= 400:
        raise CwaUnavailable(f"{channel}: HTTP {status}")


def require_xml(answer: Answer, channel: str) -> None:
    """A logon page instead of XML means the ticket expired (§7.2.1); broken XML is a protocol error."""
    head = answer.body.lstrip()[:32].lower()
    html = "html" in answer.content_type.lower()
    if html or not head.startswith(b"<") or head.startswith((b"<!doctype html", b"<html")):
        raise TicketExpired(f"{channel}: non-XML body")


# Why a transport error happened, by httpx's type, when the cause carries no errno.
_TRANSPORT_WHY: tuple[tuple[type[httpx.HTTPError], str], ...] = (
    (httpx.RemoteProtocolError, "the server closed the connection without a complete answer"),
    (httpx.ConnectError, "could not connect"),
    (httpx.ReadError, "the connection broke while reading the answer"),
    (httpx.WriteError, "the connection broke while sending the request"),
    (httpx.ProxyError, "the HTTP proxy refused or failed"),
)


def transport_reason(exc: httpx.HTTPError) -> str:
    """The exception type and why: "wrong CA" or "connection reset" must be visible without a
    traceback.

    OpenSSL's verify message ("unable to get local issuer certificate", "certificate has expired",
    "IP address mismatch"…) and the system's text for an errno ("Connection refused",
    "Connection reset by peer", "Name or service not known") name no secret; the exceptions' own
    messages are left out as they may echo a URL.
    """
    name = type(exc).__name__
    seen: BaseException | None = exc
    for _ in range(8):  # httpx.ConnectError <- httpcore.ConnectError <- ssl.SSLCertVerificationError
        if seen is None:
            break
        if isinstance(seen, ssl.SSLCertVerificationError):
            why = seen.verify_message or seen.reason or "verification failed"
            return f"{name}: TLS certificate of the CWA server not trusted ({why})"
        if isinstance(seen, ssl.SSLError):
            return f"{name}: TLS handshake failed ({seen.reason or 'unknown reason'})"
        if isinstance(seen, socket.gaierror) and seen.errno is not None:
            return f"{name}: host name not resolved ({_strerror(seen)})"
        if isinstance(seen, OSError) and seen.errno is not None:
            return f"{name}: {_strerror(seen)}"
        seen = seen.__cause__ or seen.__context__
    for kind, why in _TRANSPORT_WHY:
        if isinstance(exc, kind):
            return f"{name}: {why}"
    return name


def _strerror(exc: OSError) -> str:
    """The system's text for the error (a resolver error carries its own; os.strerror knows errnos)."""
    return exc.strerror or os.strerror(exc.errno or 0)


def command_failed(error: ErrorInfo) -> CommandFailed:
    return CommandFailed(error.describe(), code=error.code, sip_code=error.sip_code)


def error_kind(exc: CwaError | CwaProtocolError) -> str:
    return "protocol" if isinstance(exc, CwaProtocolError) else exc.kind


def describe(exc: BaseException) -> str:
    """Our own messages are secret-free by construction; keep them short for one log line."""
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _decode_logon(data: bytes, max_bytes: int) -> Succeeded | Refused | None:
    try:
        return codec.decode_logon_response(data, max_bytes=max_bytes)
    except CwaProtocolError:
        return None  # the ticket header decides (§8.3)
