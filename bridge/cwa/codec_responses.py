"""Synchronous command-channel answers (§2.3, §3.2): parsed by the bridge, built by the simulator.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

from typing import Literal

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from bridge.cwa import xmlsafe
from bridge.cwa.codec_common import (
    DEFAULT_MAX_BYTES,
    Element,
    WireStyle,
    attr,
    child_text,
    children,
    serialize,
    sub,
    to_int,
)
from bridge.cwa.codec_errors import read_error, write_error
from bridge.cwa.messages import Accepted, Refused, Response, ResponseBatch, Succeeded
from bridge.errors import CwaProtocolError

RefusalKind = Literal["invalid", "failed", "rejected", "error"]

_REFUSALS: dict[str, RefusalKind] = {
    "requestInvalid": "invalid",
    "requestFailed": "failed",
    "requestRejected": "rejected",  # §8.17: listed without content; read like the other two
    "error": "error",
}
_REFUSAL_TAGS: dict[str, str] = {kind: tag for tag, kind in _REFUSALS.items()}
_RESPONSE_NAMES = frozenset({"requestAccepted", "initiateSessionAccepted", "requestSucceeded", *_REFUSALS})

# --------------------------------------------------------------------------- parsing (client side)


def _read_response(name: str, el: Element) -> Response | None:
    if name in ("requestAccepted", "initiateSessionAccepted"):
        # §8.2: children (`requestAccepted`) or attributes (`initiateSessionAccepted`); read both.
        sid = attr(el, "sid")
        if sid is None:
            sid = child_text(el, "sid")
        uri = attr(el, "uri")
        if uri is None:
            uri = child_text(el, "uri")
        wait = attr(el, "pollWaitTime")
        if wait is None:
            wait = child_text(el, "pollWaitTime")
        return Accepted(
            rid=attr(el, "rid") or "",
            sid=sid.strip() if sid is not None else None,
            uri=uri.strip() if uri is not None else None,
            poll_wait_time=to_int(wait),
        )
    if name == "requestSucceeded":
        return Succeeded(
            rid=attr(el, "rid"), sign_in_data=child_text(el, "signInData"), uri=child_text(el, "uri")
        )
    kind = _REFUSALS.get(name)
    if kind is not None:
        return Refused(rid=attr(el, "rid"), kind=kind, error=read_error(el))
    return None


def _read_batch(root: Element) -> ResponseBatch:
    name = xmlsafe.local_name(root.tag) or ""
    if name in _RESPONSE_NAMES:  # a bare answer without the cwaResponses wrapper (§8.3)
        single = _read_response(name, root)
        return ResponseBatch(responses=() if single is None else (single,))
    if name != "cwaResponses":
        raise CwaProtocolError(f"expected cwaResponses, got {name!r}")
    responses: list[Response] = []
    for kid_name, kid in children(root):
        response = _read_response(kid_name, kid)
        if response is not None:
            responses.append(response)
    return ResponseBatch(responses=tuple(responses))


def decode_responses(body: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ResponseBatch:
    """A ``cwaResponses`` (or a bare response element) → `ResponseBatch`; unknown children are skipped.

    The ``requestProcessed``/``unexpectedElement`` counts are ignored (§8.27).
    """
    root = xmlsafe.parse(body, max_bytes=max_bytes)
    try:
        return _read_batch(root)
    except CwaProtocolError:
        raise
    except Exception as exc:
        raise CwaProtocolError(f"unreadable cwaResponses ({type(exc).__name__})") from None


def decode_logon_response(body: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Succeeded | Refused | None:
    """The body of a sign-in answer (§2.3, §8.3): its first `Succeeded` or `Refused`.

    ``None`` when the body is empty, not XML (an HTML logon page), or XML without an answer we
    know: sign-in success is decided by the ``CWA-Ticket`` header, not by this. Only an oversized
    body raises `CwaProtocolError`.
    """
    try:
        root = xmlsafe.parse(body, max_bytes=max_bytes)
    except CwaProtocolError:
        if len(body) > max_bytes:
            raise
        return None
    try:
        batch = _read_batch(root)
    except Exception:
        return None
    for response in batch.responses:
        if isinstance(response, Succeeded | Refused):
            return response
    return None


# --------------------------------------------------------------------------- building (server side)


def _write_response(root: Element, response: Response, style: WireStyle) -> None:
    if isinstance(response, Accepted):
        wait = None if response.poll_wait_time is None else str(response.poll_wait_time)
        if response.sid is not None and style.initiate_form == "attributes":
            sub(
                root,
                "initiateSessionAccepted",
                rid=response.rid,
                sid=response.sid,
                uri=response.uri,
                pollWaitTime=wait,
            )
            return
        el = sub(root, "requestAccepted", rid=response.rid)
        if response.sid is not None:
            sub(el, "sid", response.sid)
        if response.uri is not None:
            sub(el, "uri", response.uri)
        if wait is not None:
            sub(el, "pollWaitTime", wait)
    elif isinstance(response, Refused):
        if response.kind == "error":
            write_error(root, response.error, tag="error", rid=response.rid)
        else:
            el = sub(root, _REFUSAL_TAGS[response.kind], rid=response.rid)
            write_error(el, response.error)
    else:
        el = sub(root, "requestSucceeded", rid=response.rid)
        if response.sign_in_data is not None:
            sub(el, "signInData", response.sign_in_data)
        if response.uri is not None:
            sub(el, "uri", response.uri)


def encode_responses(batch: ResponseBatch, style: WireStyle = WireStyle()) -> bytes:  # noqa: B008 - frozen
    """``<cwaResponses requestProcessed unexpectedElement>`` with one child per response (§3.2)."""
    root = etree.Element("cwaResponses")
    root.set("requestProcessed", str(len(batch.responses)))
    root.set("unexpectedElement", "0")
    for response in batch.responses:
        _write_response(root, response, style)
    return serialize(root)
