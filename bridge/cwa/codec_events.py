"""Data-channel ``cwaEvents`` (§4.2, §5): parsed by the bridge, built by the simulator.

Parsing is on the hot path (every poll): one parse, one pass over each element's children,
no XPath, and dispatch on the element's local name through a dict.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from bridge.cwa import xmlsafe
from bridge.cwa.codec_categories import read_categories
from bridge.cwa.codec_category_writer import write_category
from bridge.cwa.codec_common import (
    DEFAULT_MAX_BYTES,
    Element,
    WireStyle,
    attr,
    bool_text,
    child,
    child_text,
    children,
    serialize,
    sub,
    to_bool,
    to_int,
)
from bridge.cwa.codec_errors import read_error, write_error
from bridge.cwa.events import (
    ConfigurationEvent,
    Contact,
    ContactAction,
    ContactGroupEvent,
    Event,
    EventBatch,
    Group,
    RequestFailedEvent,
    RequestSucceededEvent,
    SelfPresenceEvent,
    Subscriber,
    SubscribersEvent,
    SubscriptionState,
    SubscriptionStateEvent,
    SubscriptionToken,
    UnknownEvent,
    UserPresence,
    UserPresenceEvent,
)
from bridge.errors import CwaProtocolError

# --------------------------------------------------------------------------- parsing (client side)

_ACTIONS: dict[str, ContactAction] = {
    "add": "added",
    "added": "added",
    "update": "updated",
    "updated": "updated",
    "delete": "deleted",  # §8.16: the Events list says "delete"
    "deleted": "deleted",
}
_TOKENS: dict[str, SubscriptionToken] = {
    "subscribed": "subscribed",
    "retrying": "retrying",
    "terminated": "terminated",
}


def _action(value: str | None) -> ContactAction | None:
    return None if value is None else _ACTIONS.get(value.strip().lower())


def _subscription_state(value: str) -> SubscriptionToken:
    token = _TOKENS.get(value.strip().lower())
    if token is not None:
        return token
    if to_int(value) is not None:
        return "subscribed"  # §8.23: an integer is an availability, i.e. presence flows
    return "retrying"  # an unknown word: presence is not known to flow, so treat it as not yet there


def _request_succeeded(eid: int, el: Element) -> Event:
    return RequestSucceededEvent(
        eid=eid, rid=attr(el, "rid"), sign_in_data=child_text(el, "signInData"), uri=child_text(el, "uri")
    )


def _request_failed(eid: int, el: Element) -> Event:
    return RequestFailedEvent(eid=eid, rid=attr(el, "rid"), error=read_error(el))


def _user_presence(eid: int, el: Element) -> Event:
    users = []
    for user, categories in read_categories(el, users=True):
        if user is not None and (uri := user.get("uri")):
            users.append(UserPresence(uri, tuple(categories), user.get("sourceNetwork")))
    return UserPresenceEvent(eid, tuple(users))  # positional: cheaper on the hot path


def _self_presence(eid: int, el: Element) -> Event:
    categories = [category for _, cats in read_categories(el) for category in cats]
    return SelfPresenceEvent(eid=eid, categories=tuple(categories))


def _subscription(eid: int, el: Element) -> Event:
    users = []
    for name, user in children(el):
        uri = attr(user, "uri") if name == "user" else None
        if uri:
            raw = attr(user, "state") or ""
            users.append(SubscriptionState(uri=uri, state=_subscription_state(raw), raw=raw))
    return SubscriptionStateEvent(eid=eid, users=tuple(users))


def _contact_group(eid: int, el: Element) -> Event:
    groups: list[Group] = []
    contacts: list[Contact] = []
    for name, kid in children(el):
        if name == "group":
            group_id = attr(kid, "id")
            if group_id is not None:
                groups.append(Group(id=group_id, name=attr(kid, "name"), action=_action(attr(kid, "action"))))
        elif name == "contact":
            uri = attr(kid, "uri")
            if uri:
                contacts.append(
                    Contact(
                        uri=uri,
                        name=attr(kid, "name"),
                        subscribed=to_bool(attr(kid, "subscribed"), False),
                        tag=to_bool(attr(kid, "tag"), False),
                        groups=tuple((attr(kid, "groups") or "").split()),
                        action=_action(attr(kid, "action")),
                    )
                )
    return ContactGroupEvent(
        eid=eid,
        full_list=to_bool(attr(el, "fullList"), False),
        delta_num=to_int(attr(el, "deltaNum")),
        groups=tuple(groups),
        contacts=tuple(contacts),
    )


def _subscribers(eid: int, el: Element) -> Event:
    found = tuple(
        Subscriber(
            uri=uri,
            display_name=attr(kid, "displayName"),
            acknowledged=to_bool(attr(kid, "acknowledged"), False),
        )
        for name, kid in children(el)
        if name == "subscriber" and (uri := attr(kid, "uri"))
    )
    return SubscribersEvent(eid=eid, subscribers=found)


def _configuration(eid: int, el: Element) -> Event:
    search = child(el, "search")
    return ConfigurationEvent(
        eid=eid,
        user_notice=child_text(el, "userNotice"),
        search_default_function=None if search is None else attr(search, "defaultFunction"),
    )


_READERS: dict[str, Callable[[int, Element], Event]] = {
    "requestSucceeded": _request_succeeded,
    "requestFailed": _request_failed,
    "userPresence": _user_presence,
    "selfPresence": _self_presence,
    "presenceSubscriptionState": _subscription,
    "contactGroup": _contact_group,
    "contactGroupChanged": _contact_group,  # §8.16: the pre-release name
    "subscribers": _subscribers,
    "configuration": _configuration,
    "configurations": _configuration,  # §8.26
}


def _read_events(root: Element) -> EventBatch:
    root_name = xmlsafe.local_name(root.tag)
    if root_name != "cwaEvents":
        raise CwaProtocolError(f"expected cwaEvents, got {root_name!r}")
    events: list[Event] = []
    for name, el in children(root):
        eid = to_int(el.get("eid"))
        reader = _READERS.get(name)
        if reader is None:
            events.append(UnknownEvent(eid=eid, name=name))  # IM, containers, search…: not an error
            continue
        if eid is None:
            # The eid is what makes re-delivered events idempotent (§4.3); without it we cannot apply it.
            raise CwaProtocolError(f"{name} event without an integer eid")
        events.append(reader(eid, el))
    # Envelope attributes are unqualified (§4.2); plain `get` keeps the per-poll cost down.
    get = root.get
    timeout = get("sessionTimeout")
    if timeout is None:
        timeout = get("sesionTimeout")  # §4.2: the syntax line's spelling
    # Positional (sid, ack_id, poll_wait_time, session_timeout, events): once per poll, and a frozen
    # dataclass's keyword call costs measurably more.
    return EventBatch(
        get("sid"),
        to_int(get("ackId")),  # §8.7: echoed verbatim, whatever its relation to eid
        to_int(get("pollWaitTime")),
        to_int(timeout),
        tuple(events),
    )


def decode_events(body: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> EventBatch:
    """A ``cwaEvents`` body → `EventBatch`. Unknown events become `UnknownEvent`, never errors."""
    root = xmlsafe.parse(body, max_bytes=max_bytes)
    try:
        return _read_events(root)
    except CwaProtocolError:
        raise
    except Exception as exc:
        raise CwaProtocolError(f"unreadable cwaEvents ({type(exc).__name__})") from None


# --------------------------------------------------------------------------- building (server side)


def _int_text(value: int | None) -> str | None:
    return None if value is None else str(value)


def _write_event(root: Element, event: Event, style: WireStyle) -> None:
    eid = _int_text(event.eid)
    if isinstance(event, RequestSucceededEvent):
        el = sub(root, "requestSucceeded", eid=eid, rid=event.rid)
        if event.sign_in_data is not None:
            sub(el, "signInData", event.sign_in_data)
        if event.uri is not None:
            sub(el, "uri", event.uri)
    elif isinstance(event, RequestFailedEvent):
        el = sub(root, "requestFailed", eid=eid, rid=event.rid)
        write_error(el, event.error)
    elif isinstance(event, UserPresenceEvent):
        el = sub(root, "userPresence", eid=eid)
        for user in event.users:
            user_el = sub(el, "user", uri=user.uri, sourceNetwork=user.source_network)
            for category in user.categories:
                write_category(user_el, category, tag="cwaCategory", instance_attr=style.instance_attr)
    elif isinstance(event, SelfPresenceEvent):
        el = sub(root, "selfPresence", eid=eid)
        for category in event.categories:
            write_category(el, category, tag="cwaCategory", instance_attr=style.instance_attr)
    elif isinstance(event, SubscriptionStateEvent):
        el = sub(root, "presenceSubscriptionState", eid=eid)
        for state in event.users:
            sub(el, "user", uri=state.uri, state=state.raw or state.state)
    elif isinstance(event, ContactGroupEvent):
        el = sub(
            root,
            "contactGroup",
            eid=eid,
            fullList=bool_text(event.full_list),
            deltaNum=_int_text(event.delta_num),
        )
        for group in event.groups:
            sub(el, "group", id=group.id, name=group.name, action=group.action)
        for contact in event.contacts:
            sub(
                el,
                "contact",
                uri=contact.uri,
                name=contact.name,
                subscribed=bool_text(contact.subscribed),
                tag=bool_text(contact.tag),
                groups=" ".join(contact.groups),
                action=contact.action,
            )
    elif isinstance(event, SubscribersEvent):
        el = sub(root, "subscribers", eid=eid)
        for subscriber in event.subscribers:
            sub(
                el,
                "subscriber",
                uri=subscriber.uri,
                displayName=subscriber.display_name,
                acknowledged=bool_text(subscriber.acknowledged),
            )
    elif isinstance(event, ConfigurationEvent):
        el = sub(root, "configuration", eid=eid)
        if event.search_default_function is not None:
            sub(el, "search", defaultFunction=event.search_default_function)
        if event.user_notice is not None:
            sub(el, "userNotice", event.user_notice)
    else:
        sub(root, event.name, eid=eid)


def encode_events(batch: EventBatch, style: WireStyle = WireStyle()) -> bytes:  # noqa: B008 - frozen
    """``<cwaEvents sid ackId pollWaitTime sessionTimeout>`` with each event in order (§4.2, §5)."""
    root = etree.Element("cwaEvents")
    for key, value in (
        ("sid", batch.sid),
        ("ackId", _int_text(batch.ack_id)),
        ("pollWaitTime", _int_text(batch.poll_wait_time)),
        ("sessionTimeout", _int_text(batch.session_timeout)),
    ):
        if value is not None:
            root.set(key, value)
    for event in batch.events:
        _write_event(root, event, style)
    return serialize(root)
