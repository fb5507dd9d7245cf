"""The project's exceptions, in one tree.

Foreign exceptions (httpx, lxml, paho, pydantic) are translated into these at exactly one place
per adapter, keeping the cause (``raise ... from exc``). Messages never contain secrets.

    BridgeError
    ├── ConfigError                 bad configuration (exit 78); `problems` lists "key.path: message"
    ├── CwaProtocolError            malformed, hostile or oversized XML; `excerpt` is short and secret-free
    ├── CwaError                    talking to the CWA server went wrong
    │   ├── AuthRejected            the credentials were refused at sign-in (exit 77 at start-up)
    │   ├── TicketExpired           401/403, a redirect to a logon page, or a non-XML body (§7.2.1)
    │   ├── SessionGone             error 18100: the session is unknown to the server
    │   ├── Throttled               error 18101 or HTTP 503: back off
    │   ├── CwaUnavailable          transport error, timeout, other 5xx: retry with back-off
    │   └── CommandFailed           CWA answered a command with requestInvalid/Failed/Rejected
    └── MqttError                   a paho return code or a broker problem

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(BridgeError):
    """The configuration is invalid; `problems` holds one ``key.path: message`` line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in self.problems))


class CwaProtocolError(BridgeError):
    """A body that is not a well-formed, safe, size-limited CWA message."""

    def __init__(self, message: str, excerpt: str = "") -> None:
        self.excerpt = excerpt
        super().__init__(f"{message}: {excerpt!r}" if excerpt else message)


class CwaError(BridgeError):
    """Talking to the CWA server failed. `kind` is a stable label for metrics and logs."""

    kind = "cwa"


class AuthRejected(CwaError):
    kind = "auth_rejected"


class TicketExpired(CwaError):
    kind = "ticket_expired"


class SessionGone(CwaError):
    kind = "session_gone"


class Throttled(CwaError):
    kind = "throttled"


class CwaUnavailable(CwaError):
    kind = "unavailable"


class CommandFailed(CwaError):
    """CWA refused a command. `code`/`sip_code` come from the ``error``/``sipResponse`` elements."""

    kind = "command_failed"

    def __init__(self, message: str, code: int | None = None, sip_code: int | None = None) -> None:
        self.code = code
        self.sip_code = sip_code
        super().__init__(message)


class MqttError(BridgeError):
    """A paho-mqtt return code or broker problem, translated."""

    def __init__(self, message: str, rc: int | None = None) -> None:
        self.rc = rc
        super().__init__(message)


# Exit codes of `cwa2mqtt` (documented in the README): the one place they are defined.
EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_AUTH = 77  # CWA rejected the credentials (EX_NOPERM)
EXIT_CONFIG = 78  # the configuration cannot work (EX_CONFIG): systemd must not restart in a loop
