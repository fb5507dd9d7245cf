"""Command-channel requests (§2.1, §3): built by the bridge, parsed by the simulator.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from bridge.cwa import xmlsafe
from bridge.cwa.codec_categories import read_categories
from bridge.cwa.codec_category_writer import write_category
from bridge.cwa.codec_common import (
    DEFAULT_MAX_BYTES,
    NS_CWA,
    Element,
    attr,
    bool_text,
    child,
    child_text,
    children,
    serialize,
    sub,
    to_bool,
    to_int,
    to_opt_bool,
)
from bridge.cwa.messages import (
    AddContact,
    DeleteContact,
    InitiateSession,
    Logon,
    Method,
    PublishSelfPresence,
    QueryPresence,
    RequestEnvelope,
    SubscribePresence,
    TerminateSession,
    UnknownRequest,
)
from bridge.errors import CwaProtocolError

_Q = f"{{{NS_CWA}}}"

# --------------------------------------------------------------------------- building (client side)


def encode_logon(logon: Logon) -> bytes:
    """``<cwaRequests><logon>`` (§2.1): no ``rid``, no namespace; ``uri`` only when given (§8.4)."""
    root = etree.Element("cwaRequests")
    el = sub(root, "logon")
    if logon.user is not None:
        sub(el, "user", logon.user)
    if logon.password is not None:
        sub(el, "password", logon.password)
    if logon.uri is not None:
        sub(el, "uri", logon.uri)
    return serialize(root)


def encode_requests(sid: str | None, methods: Sequence[Method]) -> bytes:
    """``<cwaRequests xmlns=cwa sid=…>`` with the methods in order; ``sid=None`` sends ``"0"`` (§3.1)."""
    root = etree.Element(_Q + "cwaRequests", nsmap={None: NS_CWA})
    root.set("sid", "0" if sid is None else sid)
    for method in methods:
        _write_method(root, method)
    return serialize(root)


def _write_method(root: Element, method: Method) -> None:
    if isinstance(method, InitiateSession):
        el = sub(root, _Q + "initiateSession", rid=method.rid)
        if method.locale_id is not None:
            sub(el, _Q + "localeId", str(method.locale_id))
        if method.security_mode is not None:
            sub(el, _Q + "securityMode", method.security_mode)
        if method.availability is not None:
            sub(el, _Q + "userStateAvailability", str(method.availability))
        if method.auto_publish_machine_state is not None or method.auto_subscribe_contacts is not None:
            sub(
                el,
                _Q + "options",
                autoPublishMachineState=_opt_bool(method.auto_publish_machine_state),
                autoSubscribePresenceForContacts=_opt_bool(method.auto_subscribe_contacts),
            )
        if method.sign_in_data is not None:
            sub(el, _Q + "signInData", method.sign_in_data)
    elif isinstance(method, TerminateSession):
        sub(root, _Q + "terminateSession", rid=method.rid)
    elif isinstance(method, SubscribePresence | QueryPresence):
        name = "subscribePresence" if isinstance(method, SubscribePresence) else "queryPresence"
        el = sub(root, _Q + name, rid=method.rid)
        uris = sub(el, _Q + "uris")
        for uri in method.uris:
            sub(uris, _Q + "uri", uri)
    elif isinstance(method, PublishSelfPresence):
        el = sub(root, _Q + "publishSelfPresence", rid=method.rid)
        for category in method.categories:
            # instanceMask is required in requests (§3.7).
            write_category(el, category, tag=_Q + "cwaCategory", instance_attr="instanceMask")
    elif isinstance(method, AddContact):
        el = sub(root, _Q + "addContact", rid=method.rid)
        sub(
            el,
            _Q + "contact",
            uri=method.uri,
            name=method.name,
            subscribed=bool_text(method.subscribed),
            tag=bool_text(method.tag),
            groups=" ".join(method.groups) if method.groups else None,
        )
    elif isinstance(method, DeleteContact):
        el = sub(root, _Q + "deleteContact", rid=method.rid)
        sub(el, _Q + "uri", method.uri)
    else:
        sub(root, _Q + method.name, rid=method.rid)


def _opt_bool(value: bool | None) -> str | None:
    return None if value is None else bool_text(value)


# --------------------------------------------------------------------------- parsing (server side)


def decode_requests(body: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> RequestEnvelope:
    """Parse a ``cwaRequests`` body: a logon, or methods (unknown ones → `UnknownRequest`).

    Methods that came without ``rid`` are still returned (with ``rid=""``) and named in
    ``missing_rid`` so the simulator can answer ``requestInvalid`` (§3.12).
    """
    root = xmlsafe.parse(body, max_bytes=max_bytes)
    try:
        return _read_envelope(root)
    except CwaProtocolError:
        raise
    except Exception as exc:
        raise CwaProtocolError(f"unreadable cwaRequests ({type(exc).__name__})") from None


def _read_envelope(root: Element) -> RequestEnvelope:
    if xmlsafe.local_name(root.tag) != "cwaRequests":
        raise CwaProtocolError(f"expected cwaRequests, got {xmlsafe.local_name(root.tag)!r}")
    methods: list[Method] = []
    missing: list[str] = []
    logon: Logon | None = None
    for name, el in children(root):
        if name == "logon":
            logon = Logon(
                user=child_text(el, "user"), password=child_text(el, "password"), uri=child_text(el, "uri")
            )
            continue
        rid_attr = attr(el, "rid")
        if rid_attr is None:
            missing.append(name)
        methods.append(_read_method(name, el, rid_attr))
    return RequestEnvelope(
        sid=attr(root, "sid"), methods=tuple(methods), logon=logon, missing_rid=tuple(missing)
    )


def _uris(el: Element) -> tuple[str, ...]:
    holder = child(el, "uris")
    source = holder if holder is not None else el  # tolerate `uri` children without the `uris` wrapper
    return tuple((kid.text or "").strip() for name, kid in children(source) if name == "uri")


def _read_method(name: str, el: Element, rid_attr: str | None) -> Method:
    rid = rid_attr or ""
    if name == "initiateSession":
        options = child(el, "options")
        return InitiateSession(
            rid=rid,
            availability=to_int(child_text(el, "userStateAvailability")),
            auto_publish_machine_state=None
            if options is None
            else to_opt_bool(attr(options, "autoPublishMachineState")),
            auto_subscribe_contacts=(
                None if options is None else to_opt_bool(attr(options, "autoSubscribePresenceForContacts"))
            ),
            sign_in_data=child_text(el, "signInData"),
            locale_id=to_int(child_text(el, "localeId")),
            security_mode=child_text(el, "securityMode"),
        )
    if name == "terminateSession":
        return TerminateSession(rid=rid)
    if name == "subscribePresence":
        return SubscribePresence(rid=rid, uris=_uris(el))
    if name == "queryPresence":
        return QueryPresence(rid=rid, uris=_uris(el))
    if name == "publishSelfPresence":
        categories = tuple(category for _, cats in read_categories(el) for category in cats)
        return PublishSelfPresence(rid=rid, categories=categories)
    if name == "addContact":
        contact = child(el, "contact")
        if contact is None:
            return AddContact(rid=rid, uri="", name="")
        return AddContact(
            rid=rid,
            uri=attr(contact, "uri") or "",
            name=attr(contact, "name") or "",
            subscribed=to_bool(attr(contact, "subscribed"), True),
            tag=to_bool(attr(contact, "tag"), False),
            groups=tuple((attr(contact, "groups") or "").split()),
        )
    if name == "deleteContact":
        uri = child_text(el, "uri")
        if uri is None:
            uri = attr(el, "uri") or ""
        return DeleteContact(rid=rid, uri=uri.strip())
    return UnknownRequest(rid=rid_attr, name=name)
