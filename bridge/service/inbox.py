"""MQTT messages to the bridge: commands, requests, light overrides and Home Assistant's birth.

Runs on the service's loop thread. Validation (`bridge.commands`) answers malformed input at once;
what must wait for CWA goes to the `CommandWorker`; every request gets exactly one response on
``<base>/bridge/response/<op>``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from bridge import commands
from bridge.errors import CwaError, CwaProtocolError
from bridge.mqtt.topics import response_payload
from bridge.service.requests import CommandWorker

if TYPE_CHECKING:
    from bridge.service.loop import Service

log = logging.getLogger(__name__)


class Inbox:
    def __init__(self, service: Service) -> None:
        self._svc = service
        self._opt = service._opt
        self._topics = service._topics
        self._mqtt = service._mqtt
        self._metrics = service._metrics
        # publish_self may wait for CWA up to about twice its command deadline.
        beat = service._liveness.register("commands", 150.0) if service._liveness is not None else None
        self.worker = CommandWorker(
            service._cwa,
            self.respond,
            ttl_s=self._opt.command_ttl_s,
            progress=beat.progress if beat is not None else None,
        )

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()

    def handle(self, topic: str, payload: bytes) -> None:
        if self._opt.discovery and topic == self._opt.ha_status_topic:
            if payload.strip().lower() == b"online":
                self._svc.ha_birth()
            return
        command = self._topics.classify(topic)
        if command is None:
            return
        kind = command.kind
        parsed: commands.SelfSet | commands.Rejected
        if kind == "self_set":
            parsed = commands.parse_self_set(payload, self._opt.note_max_length)
        elif kind == "self_set_status":
            parsed = commands.parse_set_status(payload)
        elif kind == "self_set_note":
            parsed = commands.parse_set_note(payload, self._opt.note_max_length)
        elif kind == "refresh":
            self._refresh(commands.parse_refresh(payload, self._svc._store.ids()))
            return
        elif kind == "health_check":
            txn = commands.parse_transaction(payload)
            if isinstance(txn, commands.Rejected):
                self.respond("health_check", "error", error=txn.error)
            else:
                self.respond("health_check", "ok", data=self._svc.health().body(), transaction=txn)
            return
        elif kind == "light_set" and command.light is not None:
            self._light_override(command.light, command.op, payload)
            return
        else:
            self._unknown(command.op, payload)
            return
        if isinstance(parsed, commands.Rejected):
            log.info("service.command_rejected topic=%s error=%s", topic, parsed.error)
            self.respond("self/set", "error", error=parsed.error, transaction=parsed.transaction)
            return
        self.worker.submit_self_set(parsed)

    def _unknown(self, op: str, payload: bytes) -> None:
        txn = commands.parse_transaction(payload)
        error = f"unknown request {op!r}; known: refresh, health_check"
        self.respond(
            op, "error", error=error, transaction=None if isinstance(txn, commands.Rejected) else txn
        )

    def _refresh(self, refresh: commands.Refresh | commands.Rejected) -> None:
        if isinstance(refresh, commands.Rejected):
            self.respond("refresh", "error", error=refresh.error, transaction=refresh.transaction)
            return
        store = self._svc._store
        uri = store[refresh.id].uri if refresh.id is not None else None
        data: dict[str, object] = {"id": refresh.id} if refresh.id else {"ids": store.watched_ids()}
        txn = refresh.transaction

        def done(error: CwaError | None) -> None:  # on the CWA client's worker, exactly once
            if error is None:
                self.respond("refresh", "ok", data=data, transaction=txn)
            else:
                self.respond("refresh", "error", error=str(error), transaction=txn)

        try:
            self._svc._cwa.refresh(uri, on_done=done)  # never waits for CWA
        except (CwaError, CwaProtocolError) as exc:
            self.respond("refresh", "error", error=str(exc), transaction=txn)

    def _light_override(self, light: str, op: str, payload: bytes) -> None:
        response = self._svc._lights.override(light, payload)
        if response is None:
            txn = commands.parse_transaction(payload)
            error = f"unknown light {light!r}"
            self.respond(
                op, "error", error=error, transaction=None if isinstance(txn, commands.Rejected) else txn
            )
            return
        ok = response.get("status") == "ok"
        self.respond(
            op,
            "ok" if ok else "error",
            data=response.get("data"),
            error=_text(response.get("error")),
            transaction=response.get("transaction"),
        )

    def respond(
        self,
        op: str,
        status: Literal["ok", "error"],
        *,
        data: object = None,
        error: str | None = None,
        transaction: object = None,
    ) -> None:
        if self._metrics is not None:
            self._metrics.command_result(_metric_op(op), status)
        payload = response_payload(status, data=data, error=error, transaction=transaction)
        self._mqtt.publish(self._topics.response(op), payload, retain=False)


def _metric_op(op: str) -> str:
    return "lights" if op.startswith("lights/") else op


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _echo(payload: bytes) -> object:
    """The transaction to echo in an error response (none when it is too long to echo)."""
    txn = commands.parse_transaction(payload)
    return None if isinstance(txn, commands.Rejected) else txn
