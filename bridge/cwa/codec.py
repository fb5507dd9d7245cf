"""Pure bytes ⇄ typed CWA messages, both directions, both sides of the protocol.

API CONTRACT (other modules code against exactly these names and signatures):

Client side (the bridge):
    encode_logon(logon: Logon) -> bytes
    encode_requests(sid: str | None, methods: Sequence[Method]) -> bytes
    decode_responses(body: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ResponseBatch
    decode_logon_response(body: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Succeeded | Refused | None
        (None: the body is not XML we understand; sign-in success is decided by the CWA-Ticket header)
    decode_events(body: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> EventBatch
    state_category(availability: int, manual: bool = True) -> Category          (a userState to publish)
    note_category(text: str) -> Category                                          (a personal note to publish)

Server side (the simulator):
    decode_requests(body: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> RequestEnvelope
    encode_responses(batch: ResponseBatch, style: WireStyle = WireStyle()) -> bytes
    encode_events(batch: EventBatch, style: WireStyle = WireStyle()) -> bytes

Every decode_* raises `CwaProtocolError` (and nothing else) for malformed, hostile or oversized input.

Implementation: `codec_common` (constants, `WireStyle`, lenient readers), `codec_categories`
(reading ``cwaCategory`` payloads), `codec_category_writer` (writing them), `codec_errors`
(``error``), `codec_requests`, `codec_responses`, `codec_events`; the hardened parser is
`bridge.cwa.xmlsafe`. Import from this module only.
"""

from __future__ import annotations

from bridge.cwa.codec_category_writer import note_category, state_category
from bridge.cwa.codec_common import (
    DEFAULT_MAX_BYTES,
    NOTE_INSTANCE_MASK,
    NS_CONTACTCARD,
    NS_CWA,
    NS_NOTE,
    NS_STATE,
    NS_XSI,
    USER_STATE_INSTANCE_MASK,
    WireStyle,
)
from bridge.cwa.codec_events import decode_events, encode_events
from bridge.cwa.codec_requests import decode_requests, encode_logon, encode_requests
from bridge.cwa.codec_responses import decode_logon_response, decode_responses, encode_responses

__all__ = [
    "DEFAULT_MAX_BYTES",
    "NOTE_INSTANCE_MASK",
    "NS_CONTACTCARD",
    "NS_CWA",
    "NS_NOTE",
    "NS_STATE",
    "NS_XSI",
    "USER_STATE_INSTANCE_MASK",
    "WireStyle",
    "decode_events",
    "decode_logon_response",
    "decode_requests",
    "decode_responses",
    "encode_events",
    "encode_logon",
    "encode_requests",
    "encode_responses",
    "note_category",
    "state_category",
]
