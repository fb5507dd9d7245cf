"""The simulator's configuration values: users (`SimUser`) and server behaviour (`SimOptions`).

Every option that picks a side of an ambiguity names the ``docs/protocol.md`` §8 item it covers,
so a test can run the bridge against either reading.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Channel = Literal["any", "logon", "data", "command"]

EXPIRED_TICKET_MODES = ("401", "403", "302", "html")


@dataclass(frozen=True)
class SimUser:
    """One account of the simulated OCS pool.

    Users without ``username``/``password`` can be watched but cannot sign in. ``availability``
    ``None`` means signed out (offline). ``note_type`` is the ``note/body`` type (``personal`` or
    ``OOF``, §6.6): the demo's out-of-office colleague uses ``OOF``.
    """

    uri: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    name: str | None = None
    availability: int | None = 3500
    activity: str | None = None
    note: str | None = None
    contacts: tuple[str, ...] = ()
    note_type: str = "personal"


@dataclass
class SimOptions:
    """How the simulated server behaves. Times in seconds unless the name says ``_ms``."""

    host: str = "127.0.0.1"
    port: int = 0
    control: bool = True
    control_port: int = 0
    poll_wait_ms: int = 1000
    long_poll: bool = False  # §8.6: hold the GET until an event is queued or max_hold_s passes
    max_hold_s: float = 25.0
    session_timeout_ms: int = 600_000  # §8.9: milliseconds; any request on the session is activity
    ticket_rotate_s: float | None = None  # §8.30
    ticket_grace_s: float = 30.0
    ticket_lifetime_s: float | None = None  # counted from sign-in; None = forever
    initiate_form: Literal["elements", "attributes"] = "elements"  # §8.2
    expired_ticket: Literal["401", "403", "302", "html"] = "401"  # §7.2.1, §8.5
    # §2.2: "forms" signs in at /forms/logon.html (credentials in the XML body); "iwa" plays IIS
    # with Integrated Windows Authentication: /iwa/logon.html runs a real NTLM handshake against
    # the user table (needs pyspnego) and /forms/logon.html is refused with 403, as on a server
    # where only the Windows-authentication sign-in is enabled.
    auth: Literal["forms", "iwa"] = "forms"
    offline_form: Literal["18000", "zero"] = "18000"  # §8.14
    instance_attr: Literal["instance", "instanceMask"] = "instance"  # §8.15
    ack_mode: Literal["last", "next"] = "last"  # §8.7
    unknown_user: Literal["offline", "404"] = "offline"  # §8.22
    unknown_sid_data: Literal["events", "404"] = "events"  # §7.3
    command_path: str = "/cwa/MainCommandHandler.ashx"  # §8.1
    data_path: str = "/cwa/AsyncDataChannel.ashx"
    scenario: Literal["demo", "static", "load"] = "static"
    scenario_interval_s: float = 3.0
    seed: int | None = None
    # Beyond the brief's list (all optional):
    machine_idle_s: float = 300.0  # §8.10: UA=false this long ⇒ machine state 5000 (inactive)
    machine_away_s: float = 900.0  # … and this much longer ⇒ 15500 (away)
    load_users: int = 1000  # scenario "load" without explicit users
    load_rate: float = 100.0  # scenario "load": presence changes per second
    max_recordings: int = 100_000  # oldest recordings are dropped beyond this
    max_body_bytes: int = 1_048_576  # larger request bodies are refused (413)
    tls_cert: str | None = None  # PEM certificate (chain) path: serve the CWA endpoints over https
    tls_key: str | None = None  # its private key (PEM); the control API stays plain http on loopback

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.expired_ticket not in EXPIRED_TICKET_MODES:
            problems.append(f"expired_ticket must be one of {EXPIRED_TICKET_MODES}")
        for name, allowed in (
            ("initiate_form", ("elements", "attributes")),
            ("offline_form", ("18000", "zero")),
            ("instance_attr", ("instance", "instanceMask")),
            ("ack_mode", ("last", "next")),
            ("unknown_user", ("offline", "404")),
            ("unknown_sid_data", ("events", "404")),
            ("scenario", ("demo", "static", "load")),
            ("auth", ("forms", "iwa")),
        ):
            if getattr(self, name) not in allowed:
                problems.append(f"{name} must be one of {allowed}")
        if self.poll_wait_ms < 0 or self.session_timeout_ms <= 0:
            problems.append("poll_wait_ms must be >= 0 and session_timeout_ms > 0")
        if not self.command_path.startswith("/") or not self.data_path.startswith("/"):
            problems.append("command_path and data_path must start with '/'")
        if (self.tls_cert is None) != (self.tls_key is None):
            problems.append("tls_cert and tls_key go together")
        if problems:
            raise ValueError("; ".join(problems))
