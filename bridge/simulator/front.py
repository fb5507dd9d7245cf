"""The CWA endpoints: sign-in, command and data channel, with tickets, faults and recordings.

Order per request: drop / 503 faults (the request is not processed), ticket check (§2.4), the
channel's work, then the body faults (malformed / hostile / oversized) and ``slow``.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import parse_qsl, quote, urlsplit

from bridge.cwa import codec
from bridge.cwa.messages import (
    ErrorInfo,
    EventBatch,
    Refused,
    RequestFailedEvent,
    ResponseBatch,
    Succeeded,
)
from bridge.errors import CwaProtocolError
from bridge.simulator import commands, faults
from bridge.simulator.recording import Recorded, Recorder
from bridge.simulator.server import Reply, Request
from bridge.simulator.tickets import TicketStore
from bridge.simulator.world import World

log = logging.getLogger(__name__)

LOGON_PATH = "/forms/logon.html"
LOGON_PAGE = (
    b"<!DOCTYPE html><html><head><title>Communicator Web Access</title></head><body>"
    b"<h1>Communicator Web Access</h1><form method='post' action='/forms/logon.html'>"
    b"<p>Sign in (cwa2mqtt simulator)</p></form></body></html>"
)
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
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ dispatch

    def channel_of(self, request: Request) -> str:
        path = urlsplit(request.path).path
        if path.lower() == LOGON_PATH:
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
        return reply, None

    # ------------------------------------------------------------------ channels

    def expired(self, request: Request) -> Reply:
        """§7.2.1 / §7.3: the configured answer to a missing, unknown or expired ticket."""
        mode = self.options.expired_ticket
        if mode == "403":
            return Reply(403, content_type="text/plain")
        if mode == "302":
            location = f"{LOGON_PATH}?ReturnUrl={quote(urlsplit(request.path).path, safe='')}"
            return Reply(302, content_type="text/plain", headers={"Location": location})
        if mode == "html":
            return Reply(200, LOGON_PAGE, content_type="text/html; charset=utf-8")
        return Reply(401, content_type="text/plain")

    def logon(self, request: Request) -> Reply:
        """§2.1/§2.3: success carries ``CWA-Ticket``; failure is ``requestFailed`` without it."""
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
        ticket = self.tickets.issue(user.uri)
        log.info("sim.logon.ok uri=%s", user.uri)
        answer = Succeeded("", sign_in_data=SIGN_IN_DATA, uri=user.uri)
        body = codec.encode_responses(ResponseBatch((answer,)), self.style)
        return Reply(200, body, headers={"CWA-Ticket": ticket}, xml=True)

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
