"""Server side of Integrated Windows Authentication for the simulator: a real NTLM acceptor (§2.2).

A real CWA leaves ``/iwa/logon.html`` to IIS, which runs the NTLM handshake before CWA sees the
request. This module plays IIS's part: it issues the ``401 WWW-Authenticate`` offers and the NTLM
challenge, and verifies the client's AUTHENTICATE (type 3) message with pyspnego acting as the
server — a real check of the NTLMv2 response against the user table, so a wrong password fails.

NTLM is connection-oriented: the challenge belongs to the TCP connection it was sent on. Keep one
:class:`NtlmConnection` per connection, not per request. Authentication does not persist on the
connection after success (IIS's ``authPersistSingleRequest``): every ``/iwa/logon.html`` request
runs the whole handshake again, which keeps password changes in the user table effective at once.

Wiring (for the simulator's request handler, ``SimOptions.auth == "iwa"``)::

    acceptor = NtlmAcceptor(lookup)           # once per simulator, e.g. lookup=table_lookup(rows)

    # http.server creates one handler instance per TCP connection (handle() loops over the
    # keep-alive requests), so per-connection state can live on the handler: in setup() or lazily
    #     self._ntlm = acceptor.start_connection()
    # (a socket object takes no attributes; if the state must live elsewhere, key a
    # weakref.WeakKeyDictionary by self.connection). Then, for POST /iwa/logon.html (read the
    # whole body first so the connection stays usable):
    step = self._ntlm.step(self.headers.get("Authorization"))
    if step.status != 200:
        # answer step.status, one WWW-Authenticate header per value in step.challenges, a small
        # body with Content-Length, and keep the connection open for the next leg
    else:
        # sign in step.user (the user table's username) exactly like forms: issue a CWA-Ticket
        # and the logon response body (§2.3)

The simulator's ``server.Request`` carries no connection identity today: the lead needs to add
one (e.g. the handler's NtlmConnection, or ``id``/weakref of the socket) for ``/iwa/logon.html``.

How pyspnego gets the credentials: its NTLM acceptor has no parameter for them; it reads the
file named by the environment variable ``NTLM_USER_FILE`` (``spnego/_ntlm.py``,
``_get_credential_file``). So this module sets ``NTLM_USER_FILE`` **once per process** to a private
file (mode 0600, in a 0700 temporary directory removed at exit) and, for each type 3 message,
writes the one credential being checked into it (as NT/LM hashes in smbpasswd form, never the
clear password), verifies, and empties it again. Thread-safety consequence: all NTLM verifications
in the process are serialised by one lock (each takes well under a millisecond), and anything else
in the process that relies on ``NTLM_USER_FILE`` (another pyspnego or gss-ntlmssp acceptor) sees
this module's file. The user table is asked at verification time, so it may change at run time.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import logging
import os
import shutil
import struct
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bridge.errors import ConfigError

log = logging.getLogger(__name__)

#: Maps a user name as the client sent it (``DOMAIN\\user``, ``user@domain`` or ``user``) to the
#: user table's (username, password), or None when there is no such user.
Lookup = Callable[[str], tuple[str, str] | None]

_SIGNATURE = b"NTLMSSP\x00"
_SCHEMES = {"ntlm": "NTLM", "negotiate": "Negotiate"}
_OFFER = "Negotiate, NTLM"  # IIS's default provider order


@dataclass(frozen=True, slots=True)
class NtlmStep:
    """What to answer: ``status`` 401 (with ``www_authenticate``) or 200 with the signed-in ``user``."""

    status: int
    www_authenticate: str | None
    user: str | None = None

    @property
    def challenges(self) -> tuple[str, ...]:
        """``www_authenticate`` split into one value per header, as IIS sends them."""
        if not self.www_authenticate:
            return ()
        return tuple(part.strip() for part in self.www_authenticate.split(",") if part.strip())


_OFFER_STEP = NtlmStep(401, _OFFER)


class NtlmAcceptor:
    """Verifies NTLM handshakes against a user table; one per simulator instance."""

    def __init__(self, lookup: Lookup) -> None:
        self._lookup = lookup
        self._spnego = _import_spnego()
        _STORE.ensure()

    def start_connection(self) -> NtlmConnection:
        """Fresh handshake state for a new TCP connection."""
        return NtlmConnection(self)

    def _new_context(self) -> Any:
        spnego = self._spnego
        # use_ntlm: pyspnego's own NTLM code, whose credential store is the NTLM_USER_FILE we control.
        return spnego.server(
            service="http",
            protocol="ntlm",
            options=spnego.NegotiateOptions.use_ntlm,
        )

    def _verify(self, context: Any, token: bytes) -> str | None:
        """The user table's username when the type 3 message proves the user's password."""
        names = _authenticate_names(token)
        if names is None:
            log.info("sim.ntlm.rejected reason=malformed")
            return None
        domain, user = names
        sent = f"{domain}\\{user}" if domain else user
        entry = self._lookup(sent)
        if entry is None:
            log.info("sim.ntlm.rejected user=%s reason=unknown_user", sent)
            return None
        username, password = entry
        line = _store_line(domain, user, password)
        with _STORE.lock:
            path = _STORE.ensure_locked()
            _write_private(path, line)
            try:
                context.step(token)
                ok = bool(context.complete)
            except Exception:  # pyspnego's error tree; the reason is always "proof did not match"
                ok = False
            finally:
                _write_private(path, "")
        if not ok:
            log.info("sim.ntlm.rejected user=%s reason=bad_password", sent)
            return None
        log.info("sim.ntlm.accepted user=%s", username)
        return username


class NtlmConnection:
    """The handshake state of one TCP connection: none, or challenge sent (waiting for type 3)."""

    def __init__(self, acceptor: NtlmAcceptor) -> None:
        self._acceptor = acceptor
        self._context: Any = None

    def step(self, authorization_header: str | None) -> NtlmStep:
        """Advance the handshake with the request's ``Authorization`` header (None if absent)."""
        context, self._context = self._context, None  # any unexpected message restarts
        parsed = _parse_authorization(authorization_header)
        if parsed is None:
            return _OFFER_STEP
        scheme, token = parsed
        kind = _message_type(token)
        if kind == 1:
            context = self._acceptor._new_context()
            try:
                challenge = context.step(token)
            except Exception:  # a NEGOTIATE pyspnego cannot use: offer again, like IIS
                log.info("sim.ntlm.rejected reason=bad_negotiate")
                return _OFFER_STEP
            log.debug("sim.ntlm.challenge scheme=%s len=%d", scheme, len(challenge))
            self._context = context
            return NtlmStep(401, f"{scheme} {base64.b64encode(challenge).decode('ascii')}")
        if kind == 3 and context is not None:
            user = self._acceptor._verify(context, token)
            return NtlmStep(200, None, user) if user is not None else _OFFER_STEP
        log.info("sim.ntlm.rejected reason=unexpected_message type=%s", kind)
        return _OFFER_STEP


def table_lookup(rows: Callable[[], Iterable[tuple[str | None, str | None]]]) -> Lookup:
    """A :data:`Lookup` over ``rows()`` = (username, password) pairs of the user table.

    The name the client sent matches a username case-insensitively; a bare ``user`` also matches
    the user part of a single ``DOMAIN\\user`` / ``user@domain`` entry. Rows without a username
    or password cannot sign in, as with forms sign-in.
    """

    def lookup(sent: str) -> tuple[str, str] | None:
        wanted = sent.strip().casefold()
        bare: list[tuple[str, str]] = []
        for username, password in rows():
            if not username or password is None:
                continue
            if username.casefold() == wanted:
                return username, password
            if "\\" not in wanted and "@" not in wanted and _user_part(username) == wanted:
                bare.append((username, password))
        return bare[0] if len(bare) == 1 else None

    return lookup


def _user_part(username: str) -> str:
    name = username.rpartition("\\")[2]
    return name.partition("@")[0].casefold()


def _import_spnego() -> Any:
    try:
        import spnego  # noqa: PLC0415  # optional extra: only IWA needs it
    except ImportError as exc:
        raise ConfigError(
            ["auth: iwa needs the optional dependency pyspnego: pip install 'cwa2mqtt[iwa]'"]
        ) from exc
    return spnego


def message_type(authorization_header: str | None) -> int | None:
    """The NTLM message type (1 or 3 from a client) an ``Authorization`` header carries, else None.

    Only the type, for recordings: the token itself never leaves this module.
    """
    parsed = _parse_authorization(authorization_header)
    return _message_type(parsed[1]) if parsed is not None else None


def _parse_authorization(header: str | None) -> tuple[str, bytes] | None:
    """(scheme as the client spelled it, canonically cased; token) for NTLM/Negotiate headers."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    canonical = _SCHEMES.get(scheme.casefold())
    if canonical is None or not rest.strip():
        return None
    try:
        return canonical, base64.b64decode(rest.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _message_type(token: bytes) -> int | None:
    """1, 2 or 3 for a raw NTLMSSP message; None for anything else (e.g. SPNEGO/Kerberos)."""
    if len(token) < 12 or not token.startswith(_SIGNATURE):
        return None
    kind: int = struct.unpack_from("<I", token, 8)[0]
    return kind


def _authenticate_names(token: bytes) -> tuple[str, str] | None:
    """(domain, user) from a type 3 message, or None when unusable (anonymous, ':' or newlines)."""
    # No public parser for a type 3 message; _ntlm_raw has been stable since pyspnego 0.1.
    from spnego._ntlm_raw.messages import Authenticate  # noqa: PLC0415

    try:
        auth = Authenticate.unpack(token)
        domain, user = auth.domain_name or "", auth.user_name or ""
    except Exception:
        return None
    if not user or any(c in name for name in (domain, user) for c in ":\r\n\\"):
        return None
    return domain, user


def _store_line(domain: str, user: str, password: str) -> str:
    """smbpasswd form ``NAME:UID:LM:NT:FLAGS:LCT``: hashes, so no clear password on disk, and any
    password works (the ``DOMAIN:USER:PASSWORD`` form breaks on a ':' in the password)."""
    # hashlib has no MD4 under OpenSSL 3, so use pyspnego's own hash functions.
    from spnego._ntlm_raw.crypto import lmowfv1, ntowfv1  # noqa: PLC0415

    name = f"{domain}\\{user}" if domain else user
    return f"{name}:0:{lmowfv1(password).hex().upper()}:{ntowfv1(password).hex().upper()}:[U]:LCT-0\n"


class _CredentialStore:
    """The per-process NTLM_USER_FILE; `lock` serialises every write-verify-empty cycle."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._path: str | None = None

    def ensure(self) -> str:
        with self.lock:
            return self.ensure_locked()

    def ensure_locked(self) -> str:
        """Create the file once and point NTLM_USER_FILE at it (again, if someone moved it)."""
        if self._path is None or not os.path.isfile(self._path):
            directory = tempfile.mkdtemp(prefix="cwa2mqtt-ntlm-")  # 0700
            atexit.register(shutil.rmtree, directory, True)
            self._path = os.path.join(directory, "users")
            _write_private(self._path, "")
        if os.environ.get("NTLM_USER_FILE") != self._path:
            os.environ["NTLM_USER_FILE"] = self._path
        return self._path


_STORE = _CredentialStore()


def _write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
