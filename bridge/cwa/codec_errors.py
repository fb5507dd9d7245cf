"""``error`` and ``sipResponse`` elements inside responses and requestFailed events, both directions.

Servers nest and spell these in several ways; reading is lenient and keeps whatever it finds.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

from bridge.cwa.codec_common import Element, attr, children, sub, to_int
from bridge.cwa.messages import ErrorInfo

_ERROR_ELEMENTS = frozenset({"error", "exception", "exceptionDetail"})


def read_error(el: Element, depth: int = 0) -> ErrorInfo:
    """Everything an ``error`` (or a ``requestFailed`` around one) says, leniently (§8.18).

    Reads ``code subCode reason detail`` from attributes (or same-named child elements), a
    ``sipResponse`` (``detail``, ``description``, ``reason`` or ``warning`` as its text; ``code``
    preferred for the number), and the old ``exception``/``exceptionDetail`` children.
    """
    code = to_int(attr(el, "code"))
    sub_code = to_int(attr(el, "subCode"))
    reason = attr(el, "reason")
    detail = attr(el, "detail")
    sip_code: int | None = None
    sip_detail: str | None = None
    for name, kid in children(el):
        if name == "sipResponse" and sip_code is None and sip_detail is None:
            sip_code = to_int(attr(kid, "code"))
            sip_detail = (
                attr(kid, "detail") or attr(kid, "description") or attr(kid, "reason") or attr(kid, "warning")
            )
        elif name in _ERROR_ELEMENTS and depth < 8:
            inner = read_error(kid, depth + 1)
            code = code if code is not None else inner.code
            sub_code = sub_code if sub_code is not None else inner.sub_code
            reason = reason or inner.reason
            text = (kid.text or "").strip() or None
            detail = detail or inner.detail or (text if name == "exceptionDetail" else None)
            if name == "exception" and text and not reason:
                reason = text
            if sip_code is None and sip_detail is None:
                sip_code, sip_detail = inner.sip_code, inner.sip_detail
        elif name == "code" and code is None:
            code = to_int(kid.text)
        elif name == "subCode" and sub_code is None:
            sub_code = to_int(kid.text)
        elif name in ("reason", "message") and reason is None:
            reason = (kid.text or "").strip() or None
        elif name == "detail" and detail is None:
            detail = (kid.text or "").strip() or None
    return ErrorInfo(
        code=code, sub_code=sub_code, reason=reason, detail=detail, sip_code=sip_code, sip_detail=sip_detail
    )


def write_error(parent: Element, info: ErrorInfo, *, tag: str = "error", **extra: str | None) -> Element:
    el = sub(
        parent,
        tag,
        **extra,
        code=None if info.code is None else str(info.code),
        subCode=None if info.sub_code is None else str(info.sub_code),
        reason=info.reason,
        detail=info.detail,
    )
    if info.sip_code is not None or info.sip_detail is not None:
        sub(
            el,
            "sipResponse",
            code=None if info.sip_code is None else str(info.sip_code),
            detail=info.sip_detail,
        )
    return el


__all__ = ["read_error", "write_error"]
