"""Command-channel methods (docs/protocol.md §3): synchronous answers, asynchronous outcomes.

Every well-formed method gets ``requestAccepted`` at once; its real outcome is queued on the
session's data channel as events and ``requestSucceeded``/``requestFailed`` by rid (§3.12).
Missing rid, unknown method or missing required element → ``requestInvalid`` (18000/18001);
unknown sid or another user's sid → ``requestFailed`` 18100; throttled → ``requestFailed`` 18101.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.cwa.events import (
    ConfigurationEvent,
    Contact,
    ContactGroupEvent,
    Group,
    RequestFailedEvent,
    RequestSucceededEvent,
    Subscriber,
    SubscribersEvent,
    SubscriptionState,
    SubscriptionStateEvent,
    UserPresence,
    UserPresenceEvent,
)
from bridge.cwa.messages import (
    Accepted,
    AddContact,
    Category,
    DeleteContact,
    ErrorInfo,
    InitiateSession,
    Method,
    NoteContent,
    PublishSelfPresence,
    QueryPresence,
    Refused,
    RequestEnvelope,
    Response,
    StateContent,
    SubscribePresence,
    TerminateSession,
    UnknownRequest,
)
from bridge.presence import Note
from bridge.simulator import wire
from bridge.simulator.records import ContactEntry, SessionRec, UserRec
from bridge.simulator.world import World

INVALID_FORMAT, INVALID_REQUEST, SESSION_NOT_FOUND, THROTTLED, OCS_FAILURE = 18000, 18001, 18100, 18101, 18201
DEFAULT_GROUP = Group(id="1", name="~")


def invalid(rid: str | None, code: int, detail: str) -> Refused:
    reason = "Invalid Format" if code == INVALID_FORMAT else "Invalid Request"
    return Refused(rid, "invalid", ErrorInfo(code=code, sub_code=0, reason=reason, detail=detail))


def failed(rid: str | None, code: int, reason: str, sip_code: int | None = None, detail: str = "") -> Refused:
    error = ErrorInfo(code=code, sub_code=0, reason=reason, detail=detail or None, sip_code=sip_code)
    return Refused(rid, "failed", error)


def session_gone(rid: str | None) -> Refused:
    return failed(rid, SESSION_NOT_FOUND, "Session Not Found")


def handle(world: World, user: UserRec, env: RequestEnvelope) -> tuple[list[Response], SessionRec | None]:
    """Run a ``cwaRequests`` batch for the ticket's ``user``; returns the answers in order."""
    answers: list[Response] = []
    missing = list(env.missing_rid)
    for name in missing:
        answers.append(invalid(None, INVALID_FORMAT, f"{name}: the rid attribute is required"))
    if not env.methods and not missing:
        answers.append(invalid(None, INVALID_FORMAT, "cwaRequests without a method"))
    touched: SessionRec | None = None
    with world.lock:
        for method in env.methods:
            if isinstance(method, UnknownRequest) and method.rid is None:
                if method.name in missing:
                    missing.remove(method.name)  # already answered above
                else:
                    answers.append(
                        invalid(None, INVALID_FORMAT, f"{method.name}: the rid attribute is required")
                    )
                continue
            if world.throttled:
                answers.append(failed(method.rid, THROTTLED, "Request Throttled"))
                continue
            if isinstance(method, InitiateSession):
                started = initiate(world, user, method)
                touched = started
                answers.append(Accepted(method.rid, started.sid, user.uri, world.options.poll_wait_ms))
                continue
            session = world.session(env.sid, user.uri)
            if session is None:
                answers.append(session_gone(method.rid))
                continue
            touched = session
            answers.append(dispatch(world, session, method))
    return answers, touched


def dispatch(world: World, session: SessionRec, method: Method) -> Response:
    if isinstance(method, TerminateSession):
        world.end_session(session)
        return Accepted(method.rid)
    if isinstance(method, SubscribePresence | QueryPresence):
        if not method.uris:
            return invalid(method.rid, INVALID_REQUEST, "uris/uri is required")
        presence(world, session, method.rid, method.uris, subscribe=isinstance(method, SubscribePresence))
        return Accepted(method.rid)
    if isinstance(method, PublishSelfPresence):
        if not method.categories:
            return invalid(method.rid, INVALID_REQUEST, "cwaCategory is required")
        if any(c.instance is None for c in method.categories):
            return invalid(method.rid, INVALID_REQUEST, "cwaCategory/@instanceMask is required (§3.7)")
        publish(world, session, method.rid, method.categories)
        return Accepted(method.rid)
    if isinstance(method, AddContact):
        if not method.uri.strip() or not method.name.strip():
            return failed(
                method.rid, INVALID_FORMAT, "Invalid Format", detail="contact uri and name must be filled"
            )
        add_contact(world, session, method)
        return Accepted(method.rid)
    if isinstance(method, DeleteContact):
        if not method.uri.strip():
            return invalid(method.rid, INVALID_REQUEST, "uri is required")
        delete_contact(world, session, method)
        return Accepted(method.rid)
    if isinstance(method, InitiateSession):  # handled by the caller; kept for exhaustiveness
        return invalid(method.rid, INVALID_REQUEST, "initiateSession inside a session")
    return invalid(method.rid, INVALID_REQUEST, f"unknown method {method.name}")


def initiate(world: World, user: UserRec, method: InitiateSession) -> SessionRec:
    """§3.3 and the initial burst of §5.10, in order with consecutive eids."""
    auto_machine = method.auto_publish_machine_state is not False  # documented default: true
    session = world.new_session(user, auto_machine)
    if method.availability is not None:
        session.published_state = (world.next_seq(), method.availability, None)
    world.refresh(user)
    world.queue(session, lambda eid: ConfigurationEvent(eid, "Welcome to the cwa2mqtt CWA simulator", "or"))
    world.queue(session, lambda eid: contact_list(eid, world, user))
    world.queue_self(session)
    watchers = tuple(
        Subscriber(s.user.uri, s.user.name, acknowledged=True)
        for s in world.sessions.values()
        if s.user is not user and wire.norm_uri(user.uri) in (s.subscriptions | s.contact_subs)
    )
    world.queue(session, lambda eid: SubscribersEvent(eid, watchers))
    subscribed = [c for c in user.contacts.values() if c.subscribed]
    if subscribed:
        snapshots = []
        for contact in subscribed:
            key = wire.norm_uri(contact.uri)
            session.contact_subs.add(key)
            world.watch(session, key)
            known = world.users.get(key)
            snapshots.append(
                world.snapshot_of(known)
                if known
                else wire.unknown_user(contact.uri, world.options.offline_form)
            )
        users = tuple(snapshots)
        world.queue(session, lambda eid: UserPresenceEvent(eid, users))
    return session


def contact_list(eid: int, world: World, user: UserRec) -> ContactGroupEvent:
    contacts = tuple(_contact(c, name=world.display_name(c)) for c in user.contacts.values())
    return ContactGroupEvent(eid, True, user.delta_num, (DEFAULT_GROUP,), contacts)


def _contact(entry: ContactEntry, action: str | None = None, name: str | None = None) -> Contact:
    return Contact(entry.uri, name or entry.name, entry.subscribed, entry.tag, entry.groups, action)  # type: ignore[arg-type]


def presence(world: World, session: SessionRec, rid: str, uris: Sequence[str], subscribe: bool) -> None:
    """§3.5/§3.6: one ``userPresence`` with every known user; unknown ones per `unknown_user`."""
    known: list[UserPresence] = []
    unknown: list[str] = []
    for uri in uris:
        user = world.find_user(uri)
        if user is None:
            unknown.append(uri)
            continue
        known.append(world.snapshot_of(user))
        if subscribe:
            key = wire.norm_uri(uri)
            session.subscriptions.add(key)
            world.watch(session, key)
    offline_mode = world.options.unknown_user == "offline"
    if subscribe and known:
        states = tuple(SubscriptionState(u.uri, "subscribed", "subscribed") for u in known)
        world.queue(session, lambda eid: SubscriptionStateEvent(eid, states))
    if subscribe and unknown and offline_mode:
        ended = tuple(SubscriptionState(u, "terminated", "terminated") for u in unknown)
        world.queue(session, lambda eid: SubscriptionStateEvent(eid, ended))
    if offline_mode:
        known.extend(wire.unknown_user(u, world.options.offline_form) for u in unknown)
    if known:
        users = tuple(known)
        world.queue(session, lambda eid: UserPresenceEvent(eid, users))
    if unknown and not offline_mode:
        for uri in unknown:
            error = ErrorInfo(OCS_FAILURE, 0, "OCS Failure Response", f"unknown user {uri}", 404, "Not Found")
            world.queue(session, lambda eid, e=error: RequestFailedEvent(eid, rid, e))  # type: ignore[misc]
    else:
        world.queue(session, lambda eid: RequestSucceededEvent(eid, rid))


def publish(world: World, session: SessionRec, rid: str, categories: Sequence[Category]) -> None:
    """§3.7: a transaction — one invalid category and nothing is applied."""
    state: tuple[int, str | None] | None = None
    note: Note | None = None
    has_note = False
    machine: int | None = None
    problem = ""
    for category in categories:
        name = category.name.strip().lower()
        content = category.content
        if name == "state" and isinstance(content, StateContent):
            kind = (content.state_type or "userState").lower()
            value = content.availability
            if value is None or not 3000 <= value <= 18999:
                problem = f"state availability {value} is outside 3000-18999"
            elif kind == "userstate":
                state = (value, content.activity)
            elif kind == "machinestate":
                machine = value
            else:
                problem = f"cannot publish a {content.state_type}"
        elif name in ("note", "customnote") and isinstance(content, NoteContent | None):
            has_note = True
            bodies = [b for b in (content.bodies if content else ()) if b.text.strip()]
            note = bodies[0] if bodies else None
        else:
            problem = f"category {category.name!r} cannot be published here"
        if problem:
            break
    if problem:
        error = ErrorInfo(OCS_FAILURE, 0, "OCS Failure Response", problem, 400, "Bad Request")
        world.queue(session, lambda eid: RequestFailedEvent(eid, rid, error))
        return
    if state is not None:
        session.published_state = (world.next_seq(), state[0], state[1])
    if has_note:
        session.published_note = (world.next_seq(), note)
    if machine is not None and not session.auto_machine:
        session.machine = machine
    world.queue(session, lambda eid: RequestSucceededEvent(eid, rid))
    world.refresh(session.user, force_self=True)


def add_contact(world: World, session: SessionRec, method: AddContact) -> None:
    user = session.user
    key = wire.norm_uri(method.uri)
    action = "updated" if key in user.contacts else "added"
    entry = ContactEntry(method.uri, method.name, method.subscribed, method.tag, method.groups or ("1",))
    user.contacts[key] = entry
    user.delta_num += 1
    world.queue(session, lambda eid: RequestSucceededEvent(eid, method.rid))
    _contact_delta(world, user, entry, action)
    for own in list(user.sessions):
        if method.subscribed and key not in own.contact_subs:
            own.contact_subs.add(key)
            world.watch(own, key)
            known = world.find_user(method.uri)
            snap = (
                world.snapshot_of(known)
                if known
                else wire.unknown_user(method.uri, world.options.offline_form)
            )
            world.queue(own, lambda eid, s=snap: UserPresenceEvent(eid, (s,)))  # type: ignore[misc]
        elif not method.subscribed and key in own.contact_subs:
            own.contact_subs.discard(key)
            world.unwatch(own, key)


def delete_contact(world: World, session: SessionRec, method: DeleteContact) -> None:
    user = session.user
    key = wire.norm_uri(method.uri)
    entry = user.contacts.pop(key, None)
    if entry is None:
        error = ErrorInfo(OCS_FAILURE, 0, "OCS Failure Response", "not a contact", 404, "Not Found")
        world.queue(session, lambda eid: RequestFailedEvent(eid, method.rid, error))
        return
    user.delta_num += 1
    world.queue(session, lambda eid: RequestSucceededEvent(eid, method.rid))
    _contact_delta(world, user, entry, "deleted")
    for own in list(user.sessions):
        own.contact_subs.discard(key)
        world.unwatch(own, key)


def _contact_delta(world: World, user: UserRec, entry: ContactEntry, action: str) -> None:
    """§5.6: every session of the user gets the change as a ``fullList="false"`` delta."""
    contact = _contact(entry, action)
    for own in list(user.sessions):
        world.queue(own, lambda eid: ContactGroupEvent(eid, False, user.delta_num, (), (contact,)))
