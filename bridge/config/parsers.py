"""Small parsers of configuration values, also used by the CLI (``--http``) and the demo.

Each takes what a user wrote and returns the parsed value or raises `ValueError` with a message
meant for the ``key.path: message`` line; none of them echoes a secret.
"""

from __future__ import annotations

import json
import re
from datetime import time
from pathlib import Path

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_SIP = re.compile(r"sip:([^@\s:;?<>\"]+)@([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)", re.IGNORECASE)
_COLOR = re.compile(r"#[0-9A-Fa-f]{6}")
_HHMM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def normalize_sip_uri(value: str) -> str:
    """``SIP:bob@example.org`` → ``sip:bob@example.org``; `ValueError` for anything else."""
    text = value.strip()
    if not _SIP.fullmatch(text):
        raise ValueError("not a SIP URI (expected sip:user@domain)")
    return "sip:" + text[4:]


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8099`` for IPv6) → ``(host, port)``; `ValueError` otherwise."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:8099")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError("port must be a number from 0 to 65535")
    return host, int(port_text)


def parse_color(value: object) -> str:
    """``#rrggbb`` in any case → ``#RRGGBB``."""
    if not isinstance(value, str) or not _COLOR.fullmatch(value.strip()):
        raise ValueError("not a colour (expected #RRGGBB)")
    return value.strip().upper()


def parse_days(value: object) -> frozenset[int]:
    """``daily``, ``mon-fri``, ``sat,sun`` or a list of such → weekday numbers (0 = Monday)."""
    if (
        isinstance(value, frozenset | set)
        and value
        and all(isinstance(d, int) and 0 <= d <= 6 for d in value)
    ):
        return frozenset(value)  # already parsed (the default, or a model built in code)
    items = value if isinstance(value, list) else str(value).split(",") if isinstance(value, str) else None
    if items is None:
        raise ValueError("expected daily, a range like mon-fri, or a list like sat,sun")
    days: set[int] = set()
    for item in items:
        word = str(item).strip().lower()
        if word == "daily":
            days.update(range(7))
            continue
        first, dash, last = word.partition("-")
        start, end = _day(first), _day(last if dash else first)
        days.update((start + i) % 7 for i in range((end - start) % 7 + 1))
    if not days:
        raise ValueError("no days given")
    return frozenset(days)


def _day(token: str) -> int:
    word = token.strip()
    for number, (short, full) in enumerate(zip(DAY_NAMES, _FULL_DAY_NAMES, strict=True)):
        if word == short or (len(word) >= 3 and full.startswith(word)):
            return number
    raise ValueError(f"unknown day {word!r} (use {', '.join(DAY_NAMES)} or daily)")


def parse_hhmm(value: object) -> time:
    if isinstance(value, time):
        return value
    match = _HHMM.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError('not a time (expected "HH:MM", quoted)')
    return time(int(match.group(1)), int(match.group(2)))


def check_topic(value: str) -> str:
    """An MQTT topic (or prefix) the bridge publishes to: no wildcards, no empty levels at the ends."""
    if not value:
        raise ValueError("must not be empty")
    if any(c in value for c in "+#\0"):
        raise ValueError("must not contain +, # or NUL")
    if value.startswith("/") or value.endswith("/"):
        raise ValueError("must not start or end with /")
    return value


def check_file(value: Path | None) -> Path | None:
    if value is not None and not value.is_file():
        raise ValueError(f"no such file: {value}")
    return value


def parse_host_list(value: object) -> object:
    """``http.allowed_hosts``: a list, or from the environment JSON or ``a,b``; each entry a bare
    host name or address as the browser's address bar shows it (a port is allowed and ignored)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    if not isinstance(value, list | tuple):
        return value
    for entry in value:
        if isinstance(entry, str) and (not entry.strip() or re.search(r"[\s/@]", entry)):
            raise ValueError(
                f"{entry!r} is not a host name (no scheme, path or spaces, e.g. board.example.org)"
            )
    return [entry.strip().lower() if isinstance(entry, str) else entry for entry in value]
