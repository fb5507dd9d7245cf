"""Validation of the MQTT command payloads of the README's "MQTT topics" (pure).

Every malformed command gets a precise, human-readable error and nothing is sent to CWA. The
transaction of a JSON command is echoed in its response even when the command is rejected, so a
caller can always match the answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from bridge.presence import SETTABLE_STATUSES, Status

_SETTABLE = ", ".join(s.value for s in SETTABLE_STATUSES)
_SELF_SET_KEYS = frozenset({"status", "note", "transaction"})
# A caller's `transaction` is echoed back in the response: a longer one is refused, not echoed.
MAX_TRANSACTION_CHARS = 256
# Characters XML 1.0 cannot carry (C0 controls other than tab/LF/CR, lone surrogates, U+FFFE/U+FFFF).
_NOT_XML_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True, slots=True)
class SelfSet:
    """Publish the account's own status and/or note. ``note == ""`` clears the note."""

    status: Status | None = None
    note: str | None = None
    transaction: Any = None


@dataclass(frozen=True, slots=True)
class Refresh:
    """Re-query one watched id, or all when ``id`` is None."""

    id: str | None = None
    transaction: Any = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A command that failed validation: ``error`` says what is wrong."""

    error: str
    transaction: Any = None


def _text(raw: bytes) -> str | Rejected:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return Rejected("payload is not valid UTF-8 text")


def _json(raw: bytes) -> Any | Rejected:
    text = _text(raw)
    if isinstance(text, Rejected):
        return text
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        return Rejected(f"payload is not valid JSON ({detail})")


def _transaction(data: dict[str, Any]) -> Any | Rejected:
    """The ``transaction`` of a parsed JSON object (None when absent), or why it is refused."""
    value = data.get("transaction")
    if value is None:
        return None
    size = len(json.dumps(value, ensure_ascii=False))
    if size > MAX_TRANSACTION_CHARS:
        return Rejected(f"transaction is {size} characters long; at most {MAX_TRANSACTION_CHARS} are allowed")
    return value


def _status(value: object) -> Status | str:
    """A settable status, or the error text for ``value``."""
    if not isinstance(value, str):
        return f"status must be a string, one of: {_SETTABLE}"
    candidate = value.strip().lower()
    for status in SETTABLE_STATUSES:
        if candidate == status.value:
            return status
    shown = value if len(value) <= 40 else value[:40] + "…"
    return f"unknown status {shown!r}; allowed: {_SETTABLE}"


def _note(value: object, max_length: int) -> str | Rejected:
    if value is None:
        return ""
    if not isinstance(value, str):
        return Rejected("note must be a string (empty clears the note)")
    bad = _NOT_XML_CHAR.search(value)
    if bad is not None:
        # CWA carries notes in XML 1.0, which cannot hold these: refuse rather than send another note.
        return Rejected(f"note must not contain the control character U+{ord(bad.group()):04X}")
    if len(value) > max_length:
        return Rejected(f"note is {len(value)} characters long; at most {max_length} are allowed")
    return value


def parse_self_set(raw: bytes, note_max_length: int) -> SelfSet | Rejected:
    """``<base>/self/set``: a JSON object with any subset of ``status``, ``note``, ``transaction``."""
    data = _json(raw)
    if isinstance(data, Rejected):
        return data
    if not isinstance(data, dict):
        return Rejected('payload must be a JSON object like {"status": "busy", "note": "..."}')
    transaction = _transaction(data)
    if isinstance(transaction, Rejected):
        return transaction
    unknown = sorted(str(k) for k in data if k not in _SELF_SET_KEYS)
    if unknown:
        allowed = "allowed: status, note, transaction"
        return Rejected(f"unknown keys: {', '.join(unknown)}; {allowed}", transaction)
    if "status" not in data and "note" not in data:
        return Rejected("nothing to set: give status and/or note", transaction)
    status: Status | None = None
    if "status" in data:
        parsed = _status(data["status"])
        if not isinstance(parsed, Status):
            return Rejected(parsed, transaction)
        status = parsed
    note: str | None = None
    if "note" in data:
        checked = _note(data["note"], note_max_length)
        if isinstance(checked, Rejected):
            return Rejected(checked.error, transaction)
        note = checked
    return SelfSet(status=status, note=note, transaction=transaction)


def parse_set_status(raw: bytes) -> SelfSet | Rejected:
    """``<base>/self/set/status``: the plain status name."""
    text = _text(raw)
    if isinstance(text, Rejected):
        return text
    parsed = _status(text)
    return SelfSet(status=parsed) if isinstance(parsed, Status) else Rejected(parsed)


def parse_set_note(raw: bytes, note_max_length: int) -> SelfSet | Rejected:
    """``<base>/self/set/note``: plain text; empty clears the note."""
    text = _text(raw)
    if isinstance(text, Rejected):
        return text
    checked = _note(text, note_max_length)
    return checked if isinstance(checked, Rejected) else SelfSet(note=checked)


def parse_refresh(raw: bytes, known_ids: frozenset[str]) -> Refresh | Rejected:
    """``<base>/bridge/request/refresh``: empty for all, or ``{"id": ...}``."""
    if not raw.strip():
        return Refresh()
    data = _json(raw)
    if isinstance(data, Rejected):
        return data
    if not isinstance(data, dict):
        return Rejected('payload must be empty or a JSON object like {"id": "bob"}')
    transaction = _transaction(data)
    if isinstance(transaction, Rejected):
        return transaction
    unknown = sorted(str(k) for k in data if k not in {"id", "transaction"})
    if unknown:
        return Rejected(f"unknown keys: {', '.join(unknown)}; allowed: id, transaction", transaction)
    ident = data.get("id")
    if ident is None:
        return Refresh(transaction=transaction)
    if not isinstance(ident, str):
        return Rejected("id must be a string", transaction)
    if ident not in known_ids:
        known = ", ".join(sorted(known_ids)) or "none"
        return Rejected(f"unknown id {ident[:40]!r}; known: {known}", transaction)
    return Refresh(id=ident, transaction=transaction)


def parse_transaction(raw: bytes) -> Any | Rejected:
    """The ``transaction`` of a request that takes any payload: None unless the payload is a JSON
    object with one; refused when it is too long to echo."""
    data = _json(raw) if raw.strip() else None
    return _transaction(data) if isinstance(data, dict) else None
