"""Integrated Windows Authentication (``cwa.auth: iwa``) as an httpx auth flow: NTLM over HTTP (§2.2).

IIS, not CWA, authenticates ``/iwa/logon.html`` (§2.2): the first POST gets ``401`` with
``WWW-Authenticate: NTLM`` and/or ``Negotiate``; the client answers with an NTLM NEGOTIATE (type 1)
message, IIS replies ``401`` carrying the CHALLENGE (type 2), the client sends the AUTHENTICATE
(type 3) message and IIS lets the request through to CWA, which answers as for forms sign-in
(``CWA-Ticket`` header, §2.3). NTLM authenticates the *TCP connection*, so all three legs must
travel on one kept-alive connection: httpx does that by itself, because an auth flow's follow-up
requests go back through the same pool and the previous (fully read) response released its
connection to it — ``tests/test_iwa.py`` counts the server's connections to prove it.

The NTLM messages are built by pyspnego (an optional dependency, extra ``iwa``), never by hand.
It is imported lazily so that forms-only installations don't need it; a missing pyspnego is a
configuration problem (``ConfigError``), raised the first time a sign-in needs it.

Wiring (for the CWA client, ``cwa.auth: iwa``)::

    from bridge.cwa.iwa import NtlmAuth, iwa_available

    # at start-up, when cfg.cwa.auth == "iwa": fail fast with exit 78 instead of at first sign-in
    if not iwa_available():
        raise ConfigError([IWA_MISSING])
    auth = NtlmAuth(settings.username, settings.password)   # "DOMAIN\\user" or "user@domain"
    response = http.post(base_url + "/iwa/logon.html", content=logon_body, auth=auth, ...)
    # then exactly as forms: a CWA-Ticket header means success (§2.3); a final 401 (the flow
    # returns the server's answer to the type 3 message) means the credentials were refused →
    # AuthRejected. Every re-sign-in repeats the whole handshake (the flow keeps no state).

The logon body may carry ``user`` and ``uri`` but should leave ``password`` out (§2.2: IIS has
already checked it; there is no reason to send it in clear as well). Pass ``auth=`` only on the
logon POST: command and data requests authenticate with the ``CWA-Ticket`` alone.

Secrets: the password is only handed to pyspnego; it is never logged or shown in ``repr``. The
handshake messages are logged only at DEBUG and only as lengths, never their content.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Generator, Iterable
from typing import Any

import httpx

from bridge.errors import ConfigError, CwaProtocolError

log = logging.getLogger(__name__)

#: The exact problem line of the ConfigError raised when pyspnego is missing.
IWA_MISSING = "cwa.auth: iwa needs the optional dependency pyspnego: pip install 'cwa2mqtt[iwa]'"

_SCHEMES = ("NTLM", "Negotiate")  # in order of preference: our tokens are raw NTLM (see _offered_scheme)
_PROTOCOLS = ("ntlm",)


def iwa_available() -> bool:
    """True when pyspnego can be imported, i.e. ``cwa.auth: iwa`` can work on this installation."""
    try:
        _import_spnego()
    except ConfigError:
        return False
    return True


def _import_spnego() -> Any:
    """Import pyspnego on demand; its absence is a configuration problem, not a crash."""
    try:
        import spnego  # noqa: PLC0415  # optional extra: forms-only installs lack it
    except ImportError as exc:  # also raised when sys.modules["spnego"] is None
        raise ConfigError([IWA_MISSING]) from exc
    return spnego


class NtlmAuth(httpx.Auth):
    """httpx auth flow performing the HTTP NTLM handshake once per request that the server challenges.

    ``username`` is ``DOMAIN\\user`` or ``user@domain`` and is passed to pyspnego as given.
    A request that is not answered with an NTLM/Negotiate ``401`` goes through unchanged; a
    refused type 3 message ends the flow with the server's final ``401``, which the caller maps
    to ``AuthRejected``.
    """

    requires_request_body = True  # the logon POST is sent up to three times
    requires_response_body = True  # read the 401s fully so their connection is free for the next leg

    def __init__(self, username: str, password: str, *, protocol: str = "ntlm") -> None:
        if protocol not in _PROTOCOLS:
            raise ValueError(f"NtlmAuth protocol must be one of {_PROTOCOLS}, not {protocol!r}")
        self._username = username
        self._password = password
        self._protocol = protocol

    @property
    def username(self) -> str:
        return self._username

    def __repr__(self) -> str:
        return f"NtlmAuth(username={self._username!r}, protocol={self._protocol!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        response = yield request
        if response.status_code != 401:
            return
        scheme = _offered_scheme(response.headers.get_list("www-authenticate"))
        if scheme is None:
            log.debug("cwa.iwa.not_offered status=401")
            return
        spnego = _import_spnego()
        # Pure-Python NTLM on every platform (no SSPI/GSSAPI): the same, tested behaviour everywhere.
        context = spnego.client(
            self._username,
            self._password,
            hostname=request.url.host,
            service="http",
            protocol=self._protocol,
            options=spnego.NegotiateOptions.use_ntlm,
        )
        negotiate = context.step()
        log.debug("cwa.iwa.negotiate scheme=%s len=%d", scheme, len(negotiate))
        request.headers["Authorization"] = f"{scheme} {base64.b64encode(negotiate).decode('ascii')}"
        response = yield request
        if response.status_code != 401:
            log.debug("cwa.iwa.unchallenged status=%d", response.status_code)
            return
        challenge = _challenge_token(response.headers.get_list("www-authenticate"), scheme)
        if challenge is None:
            log.debug("cwa.iwa.no_challenge status=401")  # the server gave up: a refusal
            return
        try:
            authenticate = context.step(challenge)
        except Exception as exc:  # pyspnego raises its own tree and struct/ValueError on junk
            raise CwaProtocolError("IWA sign-in: the server's NTLM challenge is not usable") from exc
        log.debug("cwa.iwa.authenticate challenge_len=%d len=%d", len(challenge), len(authenticate))
        request.headers["Authorization"] = f"{scheme} {base64.b64encode(authenticate).decode('ascii')}"
        response = yield request
        log.debug("cwa.iwa.done status=%d", response.status_code)


def _challenges(header_values: Iterable[str]) -> Iterable[tuple[str, str]]:
    """(scheme, rest) per challenge; one header may list several, comma-separated (RFC 7235 §4.1)."""
    for value in header_values:
        for part in value.split(","):
            scheme, _, rest = part.strip().partition(" ")
            if scheme:
                yield scheme, rest.strip()


def _offered_scheme(header_values: Iterable[str]) -> str | None:
    """NTLM when offered, else Negotiate (IIS accepts a raw NTLM token under Negotiate too)."""
    offered = {scheme.casefold() for scheme, _ in _challenges(header_values)}
    return next((s for s in _SCHEMES if s.casefold() in offered), None)


def _challenge_token(header_values: Iterable[str], scheme: str) -> bytes | None:
    for name, rest in _challenges(header_values):
        if name.casefold() == scheme.casefold() and rest:
            try:
                return base64.b64decode(rest, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise CwaProtocolError("IWA sign-in: the NTLM challenge is not base64") from exc
    return None
