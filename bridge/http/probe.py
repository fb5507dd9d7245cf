"""`cwa2mqtt health`: ask a running bridge's health endpoint."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from http import HTTPStatus


def probe(url: str, timeout: float = 5.0) -> tuple[bool, str]:
    """Ask a running bridge's health endpoint: ``(healthy, body)``.

    A bare ``http://host:port`` gets ``/healthz`` appended. Any connection problem is "not healthy".
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return False, f"unsupported URL scheme: {parts.scheme or '(none)'}"
    if parts.path in ("", "/"):
        url = urllib.parse.urlunsplit(parts._replace(path="/healthz"))
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - scheme checked above
            return answer.status == HTTPStatus.OK, answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        with exc:
            return False, exc.read().decode("utf-8", "replace")
    except (OSError, ValueError) as exc:
        return False, f"{type(exc).__name__}: {exc}"
