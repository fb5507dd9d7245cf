"""The CWA endpoints: sign-in, command and data channel, with tickets, faults and recordings.

Order per request: drop / 503 faults (the request is not processed), ticket check (§2.4), the
channel's work, then the body faults (malformed / hostile / oversized / mutate) and ``slow``.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import parse_qsl, quote, urlsplit

from bridge.cwa import codec
from bridge.cwa.events import EventBatch, RequestFailedEvent
from bridge.cwa.messages import ErrorInfo, Refused, ResponseBatch, Succeeded
from bridge.errors import CwaProtocolError
from bridge.simulator import commands, faults
from bridge.simulator.ntlm import NtlmAcceptor, NtlmConnection, message_type, table_lookup
from bridge.simulator.recording import Recorded, Recorder
from bridge.simulator.records import UserRec
from bridge.simulator.server import Reply, Request
from bridge.simulator.tickets import TicketStore
from bridge.simulator.world import World

log = logging.getLogger(__name__)

LOGON_PATH = "/forms/logon.html"
IWA_LOGON_PATH = "/iwa/logon.html"
LOGON_PAGE = (
    b"<!DOCTYPE html><html><head><title>Communicator Web Access</title></head><body>"
    b"<h1>Communicator Web Access</h1><form method='post' action='/forms/logon.html'>"
    b"<p>Sign in (cwa2mqtt simulator)</p></form></body></html>"
)
IWA_DENIED = b"<html><body><h1>401 - Unauthorized: Access is denied.</h1></body></html>"
FORMS_DISABLED = b"forms sign-in is disabled here: sign in at /iwa/logon.html (Windows authentication)"
SIGN_IN_DATA = base64.b64encode(b"<signInData><workPhone>+1 555 0100</workPhone></signInData>").decode()


class CwaFront:
    def __init__(
        self,
        world: World,
        tickets: TicketStore,
        board: faults.FaultBoard,
        recorder: Recorder,
        wall: Callable[[], float],
    ) -> None:
        self.world = world
        self.options = world.options
        self.tickets = tickets
        self.board = board
        self.recorder = recorder
        self.wall = wall
        self.style = codec.WireStyle(
            initiate_form=self.options.initiate_form, instance_attr=self.options.instance_attr
        )
        self.requests: dict[str, int] = {"logon": 0, "command": 0, "data": 0, "other": 0}
        # auth "iwa": IIS's part (§2.2), a real NTLM check against the user table, read at each check.
        self.ntlm = NtlmAcceptor(table_lookup(self._credentials)) if self.options.auth == "iwa" else None
        self.logon_path = IWA_LOGON_PATH if self.ntlm is not None else LOGON_PATH
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ dispatch

    def channel_of(self, request: Request) -> str:
        path = urlsplit(request.path).path
        if path.lower() == LOGON_PATH or (self.ntlm is not None and path.lower() == IWA_LOGON_PATH):
            return "logon"
        if path.lower() == self.options.command_path.lower():
            return "command"
        if path.lower() == self.options.data_path.lower():
            return "data"
        return "other"

    def __call__(self, request: Request) -> Reply:
        channel = self.channel_of(request)
        with self._lock:
            self.requests[channel] += 1
        record = Recorded(
            time=self.wall(),
            channel=channel,
            http_method=request.method,
            path=urlsplit(request.path).path,
            status=0,
            ticket_present=bool(request.headers.get("cwa-ticket")),
            ntlm=message_type(request.headers.get("authorization")) if channel == "logon" else None,
        )
        fault: str | None = None
        if self.board.take("drop", channel):
            reply, fault = Reply(0, drop=True), "drop"
        elif self.board.take("http_503", channel):
            reply, fault = Reply(503, content_type="text/plain"), "http_503"
        else:
            reply, record = self._channel(channel, request, record)
            reply, fault = self._body_faults(channel, reply)
        slow = self.board.take("slow", channel)
        if slow is not None and not reply.drop:
            reply.delay_s = slow.delay_s
            fault = f"{fault}+slow" if fault else "slow"
        # Recorded before the answer is written: a test that saw the answer also sees the record.
        self.recorder.add(replace(record, status=reply.status, fault=fault))
        return reply

    def _channel(self, channel: str, request: Request, record: Recorded) -> tuple[Reply, Recorded]:
        if channel == "logon":
            return self.logon(request), record
        if channel == "other":
            return Reply(404, content_type="text/plain"), record
        auth = self.tickets.check(request.headers.get("cwa-ticket"))
        if auth is None:
            return self.expired(request), record
        user_uri, ticket = auth
        record = replace(record, user=user_uri)
        if channel == "command" and request.method == "POST":
            reply, record = self.command(request, user_uri, record)
        elif channel == "data" and request.method == "GET":
            reply, record = self.data(request, user_uri, record)
        else:
            reply = Reply(
                405, content_type="text/plain", headers={"Allow": "POST" if channel == "command" else "GET"}
            )
        reply.headers["CWA-Ticket"] = ticket
        return reply, record

    def _body_faults(self, channel: str, reply: Reply) -> tuple[Reply, str | None]:
        if not reply.xml:
            return reply, None
        if self.board.take("malformed", channel):
            reply.body = faults.malformed_body(reply.body)
            return reply, "malformed"
        hostile = self.board.take("hostile", channel)
        if hostile is not None:
            reply.body = faults.hostile_body(hostile.kind)
            return reply, f"hostile:{hostile.kind}"
        oversized = self.board.take("oversized", channel)
        if oversized is not None:
            reply.body = faults.oversized_body(reply.body, oversized.size)
            return reply, "oversized"
        mutate = self.board.take("mutate", channel)
        if mutate is not None:
            reply.body, kind = faults.mutated_body(reply.body, mutate.seed)
            return reply, f"mutate:{kind}"
        return reply, None

    # ------------------------------------------------------------------ channels

    def expired(self, request: Request) -> Reply:
        """§7.2.1 / §7.3: the configured answer to a missing, unknown or expired ticket."""
        mode = self.options.expired_ticket
        if mode == "403":
            return Reply(403, content_type="text/plain")
        if mode == "302":
            location = f"{self.logon_path}?ReturnUrl={quote(urlsplit(request.path).path, safe='')}"
            return Reply(302, content_type="text/plain", headers={"Location": location})
        if mode == "html":
            return Reply(200, LOGON_PAGE, content_type="text/html; charset=utf-8")
        return Reply(401, content_type="text/plain")

    def logon(self, request: Request) -> Reply:
        """§2.1/§2.3: success carries ``CWA-Ticket``; failure is ``requestFailed`` without it."""
        if self.ntlm is not None:
            if urlsplit(request.path).path.lower() == LOGON_PATH:
                return Reply(403, FORMS_DISABLED, content_type="text/plain; charset=utf-8")
            return self.iwa_logon(request, self.ntlm)
        if request.method == "GET":
            return Reply(200, LOGON_PAGE, content_type="text/html; charset=utf-8")
        if request.method != "POST":
            return Reply(405, content_type="text/plain", headers={"Allow": "GET, POST"})
        try:
            logon = codec.decode_requests(request.body).logon
        except CwaProtocolError:
            logon = None
        user = self.world.authenticate(logon.user, logon.password) if logon is not None else None
        if user is None:
            log.info("sim.logon.rejected")
            error = ErrorInfo(
                code=18201, sub_code=0, reason="Logon failed", detail="unknown user or bad password"
            )
            body = codec.encode_responses(ResponseBatch((Refused("", "failed", error),)), self.style)
            return Reply(200, body, xml=True)
        return self.signed_in(user)

    def iwa_logon(self, request: Request, acceptor: NtlmAcceptor) -> Reply:
        """§2.2: IIS runs the NTLM handshake on this TCP connection; then CWA answers as for forms.

        The logon body is not consulted: the connection's Windows identity is the user (IIS has
        checked the password; the body may name the user and the uri, and carries no password).
        """
        ntlm = request.connection.get("ntlm")
        if not isinstance(ntlm, NtlmConnection):
            ntlm = request.connection["ntlm"] = acceptor.start_connection()
        step = ntlm.step(request.headers.get("authorization"))
        user = self._by_username(step.user) if step.status == 200 and step.user else None
        if user is None:
            # One header per scheme, as IIS sends them; the connection stays open for the next leg.
            challenges = tuple(("WWW-Authenticate", value) for value in step.challenges)
            return Reply(401, IWA_DENIED, content_type="text/html", repeated=challenges)
        if request.method == "GET":
            return Reply(200, LOGON_PAGE, content_type="text/html; charset=utf-8")
        if request.method != "POST":
            return Reply(405, content_type="text/plain", headers={"Allow": "GET, POST"})
        return self.signed_in(user)

    def signed_in(self, user: UserRec) -> Reply:
        """§2.3: the ticket in the ``CWA-Ticket`` header, ``signInData`` and ``uri`` in the body."""
        ticket = self.tickets.issue(user.uri)
        log.info("sim.logon.ok uri=%s", user.uri)
        answer = Succeeded("", sign_in_data=SIGN_IN_DATA, uri=user.uri)
        body = codec.encode_responses(ResponseBatch((answer,)), self.style)
        return Reply(200, body, headers={"CWA-Ticket": ticket}, xml=True)

    def _credentials(self) -> list[tuple[str | None, str | None]]:
        """The user table's (username, password) rows, for the NTLM acceptor."""
        with self.world.lock:
            return [(u.spec.username, u.spec.password) for u in self.world.users.values()]

    def _by_username(self, username: str) -> UserRec | None:
        with self.world.lock:
            return next((u for u in self.world.users.values() if u.spec.username == username), None)

    def command(self, request: Request, user_uri: str, record: Recorded) -> tuple[Reply, Recorded]:
        try:
            env = codec.decode_requests(request.body)
        except CwaProtocolError as exc:
            log.info("sim.command.malformed error=%s", type(exc).__name__)
            answer = commands.invalid(
                None, commands.INVALID_FORMAT, "the body is not a well-formed cwaRequests"
            )
            body = codec.encode_responses(ResponseBatch((answer,)), self.style)
            return Reply(200, body, xml=True), record
        record = replace(
            record,
            sid=env.sid,
            methods=tuple(_method_name(m) for m in env.methods) + env.missing_rid,
            rids=tuple(m.rid for m in env.methods) + tuple(None for _ in env.missing_rid),
        )
        user = self.world.find_user(user_uri)
        if user is None:  # the user was removed after sign-in
            return self.expired(request), record
        if env.logon is not None and not env.methods:
            answer = commands.invalid(None, commands.INVALID_REQUEST, "logon belongs on the sign-in URL")
            return Reply(200, codec.encode_responses(ResponseBatch((answer,)), self.style), xml=True), record
        answers, _ = commands.handle(self.world, user, env)
        body = codec.encode_responses(ResponseBatch(tuple(answers)), self.style)
        return Reply(200, body, xml=True), record

    def data(self, request: Request, user_uri: str, record: Recorded) -> tuple[Reply, Recorded]:
        """§4: parameters are case-insensitive (§8.28); AckId defaults to 0 (§8.8)."""
        params = {k.lower(): v for k, v in parse_qsl(urlsplit(request.path).query, keep_blank_values=True)}
        sid, ack_text, ua = params.get("sid"), params.get("ackid"), params.get("ua")
        record = replace(record, sid=sid, ack_id=ack_text, ua=ua)
        try:
            ack = int(ack_text) if ack_text else 0
        except ValueError:
            return Reply(400, content_type="text/plain"), record
        session = self.world.session(sid, user_uri)
        result = self.world.poll(session, ack, ua) if session is not None else None
        if result is None:
            if self.options.unknown_sid_data == "404":
                return Reply(404, content_type="text/plain"), record
            error = ErrorInfo(code=commands.SESSION_NOT_FOUND, sub_code=0, reason="Session Not Found")
            # eid one past the client's AckId: a client that skips eids it has seen still reads it.
            batch = EventBatch(
                sid or "",
                ack + 1,
                self.poll_wait_ms(),
                self.options.session_timeout_ms,
                (RequestFailedEvent(ack + 1, "", error),),
            )
            return Reply(200, codec.encode_events(batch, self.style), xml=True), record
        batch = EventBatch(
            result.sid, result.ack_id, self.poll_wait_ms(), self.options.session_timeout_ms, result.events
        )
        return Reply(200, codec.encode_events(batch, self.style), xml=True), record

    def poll_wait_ms(self) -> int:
        return self.world.throttle_poll_ms if self.world.throttled else self.options.poll_wait_ms


def _method_name(method: object) -> str:
    name = getattr(method, "name", None)
    if isinstance(name, str) and type(method).__name__ == "UnknownRequest":
        return name
    cls = type(method).__name__
    return cls[0].lower() + cls[1:]
