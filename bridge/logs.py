"""Logging: one line per event, text or JSON, with secrets redacted as a last line of defence.

Messages start with a stable event name (``cwa.session.online sid=4711``); the JSON format lifts
that first word into ``event`` so log pipelines can group on it. Code must never log a password
or ticket in the first place; `register_secret` is the net under that rule: every registered
value is replaced by ``**********`` in the message and the exception text of every record that
passes through the handler `setup_logging` installs.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Literal, TextIO

REDACTED = "**********"
LEVELS = ("debug", "info", "warning", "error")
# Tickets rotate for as long as the bridge runs; keep the newest few hundred, not all of them.
# Fixed secrets (passwords) are kept apart and never pushed out by tickets.
MAX_SECRETS = 256
# Libraries whose INFO lines (every HTTP request) would drown the bridge's own events.
_CHATTY = ("httpx", "httpcore", "amqtt", "transitions")
# Libraries that log secrets at DEBUG: pyspnego logs every NTLM token it makes in full, and an
# AUTHENTICATE message is an offline-crackable proof of the password. httpcore's DEBUG trace
# prints every response's headers, CWA-Ticket included (test_security greps a debug run for it).
# Never below WARNING.
_SECRET_BEARING = ("spnego", "httpcore")
# Libraries whose INFO lines ("HTTP Request: POST ...") do not start with an event name; what
# they say, the bridge logs itself as events. Never below WARNING either.
_NOT_EVENTS = ("httpx",)

_fixed: set[str] = set()
_rotating: dict[str, None] = {}  # oldest first
_secrets_lock = threading.Lock()
_ordered: tuple[str, ...] = ()
_newest: str | None = None  # the rotating secret registered last (read without the lock)


def register_secret(secret: str | None, *, rotating: bool = False) -> None:
    """Redact ``secret`` from every later log record (no-op for ``None`` or empty).

    ``rotating`` marks a value that is replaced over time (a CWA-Ticket, seen on every response):
    only the newest `MAX_SECRETS` of those are kept. Registering the newest one again is cheap.
    """
    global _ordered, _newest  # noqa: PLW0603  # one process-wide set, swapped atomically for readers
    if not secret or secret in _fixed or (rotating and secret == _newest):
        return  # the same ticket on every poll: nothing changes
    with _secrets_lock:
        if rotating:
            _rotating.pop(secret, None)
            _rotating[secret] = None
            while len(_rotating) > MAX_SECRETS:
                del _rotating[next(iter(_rotating))]
        else:
            _rotating.pop(secret, None)
            _fixed.add(secret)
        # Longest first, so a secret that contains another is replaced whole.
        _ordered = tuple(sorted({*_fixed, *_rotating}, key=len, reverse=True))
        if rotating:
            _newest = secret  # only once it is redacted: the fast path above trusts it


def clear_secrets() -> None:
    """Forget every registered secret (tests)."""
    global _ordered, _newest  # noqa: PLW0603
    with _secrets_lock:
        _newest = None
        _fixed.clear()
        _rotating.clear()
        _ordered = ()


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``**********``."""
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class RedactionFilter(logging.Filter):
    """Freezes the record's message and exception text, redacted, before any formatter sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception as exc:  # a bad %-format must not lose the event (nor crash the caller)
            message = f"{record.msg!s} (unformattable arguments: {type(exc).__name__})"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TextFormatter(logging.Formatter):
    """``2026-11-22T09:14:03Z INFO cwa.session.online sid=4711``"""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.getMessage()}"
        extra = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else "")
        if record.stack_info:
            extra = f"{extra}\n{record.stack_info}".strip()
        return redact(f"{line}\n{extra}" if extra else line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``event``, ``msg`` and ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        message = redact(record.getMessage())
        entry: dict[str, str] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "event": message.split(maxsplit=1)[0] if message.strip() else "",
            "msg": message,
        }
        exc = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else "")
        if exc:
            entry["exc"] = redact(exc)
        if record.stack_info:
            entry["stack"] = redact(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


class _BridgeHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler `setup_logging` owns, so a second call replaces it instead of adding one."""


def setup_logging(
    level: str = "info",
    fmt: Literal["text", "json"] = "text",
    stream: TextIO | None = None,
    *,
    changes: bool = True,
) -> logging.Handler:
    """Route the root logger to ``stream`` (default: the current stderr) in the given format.
    ``changes`` False keeps the per-change ``presence.changed`` lines out (``log.changes``).

    Idempotent: calling it again replaces the handler it installed before. Returns the handler.
    """
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
    handler = _BridgeHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(RedactionFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _BridgeHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = getattr(logging, level.upper())
    root.setLevel(numeric)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(
            max(numeric, logging.WARNING) if numeric > logging.DEBUG else numeric
        )
    for name in (*_SECRET_BEARING, *_NOT_EVENTS):
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    logging.getLogger("bridge.changes").setLevel(logging.NOTSET if changes else logging.WARNING)
    return handler
