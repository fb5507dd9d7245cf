"""Who may read the endpoint: the Host guard (against DNS rebinding) and the optional token.

DNS rebinding: a web page on ``evil.example`` re-points its own name at 127.0.0.1 and then reads
the board with the visitor's browser. Such a request always carries ``Host: evil.example``, so
the guard accepts only names that mean this machine: ``localhost``, loopback addresses, the
listen address and ``http.allowed_hosts``. Under a wildcard listen address (``0.0.0.0``, ``::``)
it also accepts the machine's own names and any IP address literal: a rebinding attack needs a
name the attacker controls, never an address, and behind a published container port the bridge
cannot know which address the user types.

The token: ``Authorization: Bearer <token>``, or the cookie a browser gets by opening
``/?token=<token>`` once. The cookie holds an HMAC of the token, not the token itself, and every
comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable
from http.cookies import CookieError, SimpleCookie

COOKIE_NAME = "cwa2mqtt_board"
# Browsers cap cookie lifetimes at 400 days; the board is opened on a kiosk once and left there.
COOKIE_MAX_AGE_S = 400 * 24 * 3600
WILDCARDS = frozenset({"", "0.0.0.0", "::", "*"})  # noqa: S104 - names, not a bind


def host_name(header: str) -> str:
    """The name part of a ``Host`` header, lower case, without port, brackets or trailing dot."""
    value = header.strip().lower()
    if value.startswith("["):
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _is_loopback(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostGuard:
    """Decides whether a request's ``Host`` header names this machine."""

    def __init__(self, listen_host: str, allowed_hosts: Iterable[str] = (), own_names: Iterable[str] = ()):
        listen = host_name(listen_host) if listen_host not in WILDCARDS else ""
        self.wildcard = listen_host in WILDCARDS
        names = {"localhost", *(host_name(h) for h in allowed_hosts)}
        if listen:
            names.add(listen)
        if self.wildcard:
            names.update(host_name(n) for n in own_names if n)
        self._names = frozenset(n for n in names if n)

    def allows(self, host_header: str | None) -> bool:
        if host_header is None:
            # No Host at all is an HTTP/1.0 tool, never a browser: rebinding cannot send it.
            return True
        name = host_name(host_header)
        if name in self._names or name.endswith(".localhost") or _is_loopback(name):
            return True
        return self.wildcard and _is_ip(name)


class TokenAuth:
    """Checks a bearer header or the board cookie against ``http.token``."""

    def __init__(self, token: str) -> None:
        self._token = token.encode("utf-8")
        self.cookie_value = hmac.new(self._token, b"cwa2mqtt board cookie v1", hashlib.sha256).hexdigest()

    def matches(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode("utf-8"), self._token)

    def allows(self, authorization: str | None, cookie_header: str | None) -> bool:
        if authorization:
            scheme, _, credentials = authorization.strip().partition(" ")
            if scheme.lower() == "bearer" and self.matches(credentials.strip()):
                return True
        if cookie_header:
            try:
                jar = SimpleCookie(cookie_header)
            except CookieError:
                return False
            morsel = jar.get(COOKIE_NAME)
            if morsel is not None:
                return hmac.compare_digest(
                    morsel.value.encode("ascii", "replace"), self.cookie_value.encode()
                )
        return False

    def set_cookie_header(self) -> str:
        # No Path: it defaults to the board's own directory, which also works behind a proxy prefix.
        return f"{COOKIE_NAME}={self.cookie_value}; Max-Age={COOKIE_MAX_AGE_S}; HttpOnly; SameSite=Strict"
