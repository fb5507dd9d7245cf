"""What the CWA client is configured with (README: configuration); a value, no behaviour.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bridge.cwa import codec

# URIs subscribed per data-channel answer: the presence of every new subscription comes back in the
# next answer (§3.6, §4.5), so subscribing 10,000 at once made one ~9.5 MB body whose parse set the
# memory high-water mark (bench/RESULTS.md). A slice per poll keeps each answer ~2.5 MB; at 1,000 a
# 10,000-user start waited ten pollWaitTimes (12.5 s against 6.4 s, 114 against 128 MB at its peak).
SUBSCRIBE_PER_POLL = 2500


@dataclass(frozen=True)
class CwaClientSettings:
    base_url: str
    username: str
    password: str = field(repr=False)
    uri: str
    command_path: str = "/cwa/MainCommandHandler.ashx"
    data_path: str = "/cwa/AsyncDataChannel.ashx"
    auth: Literal["forms", "iwa"] = "forms"  # §2.2: credentials in the body, or NTLM over HTTP
    logon_path: str | None = None  # None: the path of ``auth`` (transport.LOGON_PATHS)
    timeout_s: float = 30.0
    poll_timeout_s: float = 95.0  # overall deadline of one data-channel poll, a held one included
    republish_s: float = 300.0
    initial_availability: int | None = None
    watch_contacts: bool = False
    max_body_bytes: int = codec.DEFAULT_MAX_BYTES
    command_timeout_s: float = 15.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    subscribe_per_poll: int = SUBSCRIBE_PER_POLL
    resync_s: float = 1800.0  # re-query every watched user this often; 0: never
    command_ttl_s: float = 120.0  # a command not sent to CWA within this long is dropped as expired
