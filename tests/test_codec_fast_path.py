"""The codec's speed-ups (issue 8) change nothing a user sees.

The category cache is keyed by content, so a server that resends a changed category under an old
version (the simulator's contactCard stays at version 1 when the name changes; a restarted server
counts from 1 again) is still read right; the attribute-layout shortcut reads every attribute order
the same; the memo of activity tokens and the "!"-precheck before the DTD regex are invisible.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import presence
from bridge.cwa import codec
from bridge.cwa.events import EventBatch, UserPresence, UserPresenceEvent
from bridge.cwa.messages import Category, ContactCardContent, NoteContent, StateContent
from bridge.errors import CwaProtocolError
from bridge.presence import Note, Presence, normalize_activity


def _event(*categories: str, uri: str = "sip:bob@example.org") -> bytes:
    return (
        f'<cwaEvents sid="1" ackId="1"><userPresence eid="1"><user uri="{uri}">{"".join(categories)}'
        "</user></userPresence></cwaEvents>"
    ).encode()


def _card(
    name: str, attrs: str = 'name="contactCard" instance="0" version="1" publishTime="2024-04-01T10:00:00Z"'
) -> str:
    return (
        f'<cwaCategory {attrs}><contactCard xmlns="http://schemas.microsoft.com/2006/09/sip/contactcard">'
        f"<identity><name><displayName>{name}</displayName></name></identity></contactCard></cwaCategory>"
    )


def _state(
    availability: int, attrs: str = 'name="state" instance="0" version="3" publishTime="2024-05-02T09:14:00Z"'
) -> str:
    return (
        f'<cwaCategory {attrs}><state xmlns="http://schemas.microsoft.com/2006/09/sip/state" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="aggregateState">'
        f"<availability>{availability}</availability></state></cwaCategory>"
    )


def _summary(body: bytes) -> tuple[str | None, int | None]:
    (event,) = codec.decode_events(body).events
    assert isinstance(event, UserPresenceEvent)
    summary = event.users[0].summary()
    return summary.display_name, summary.availability


def test_a_changed_category_under_an_unchanged_version_is_read_with_its_new_content() -> None:
    assert _summary(_event(_state(3500), _card("Bob Example"))) == ("Bob Example", 3500)
    # Same name, instance, version and publishTime, new content: a rename, a new availability.
    assert _summary(_event(_state(6500), _card("Robert Example"))) == ("Robert Example", 6500)
    assert _summary(_event(_state(3500), _card("Bob Example"))) == ("Bob Example", 3500)


def test_two_users_with_identical_category_headers_keep_their_own_content() -> None:
    body = (
        '<cwaEvents sid="1"><userPresence eid="2">'
        f'<user uri="sip:a@example.org">{_card("Ann")}</user>'
        f'<user uri="sip:b@example.org">{_card("Ben")}</user>'
        "</userPresence></cwaEvents>"
    ).encode()
    (event,) = codec.decode_events(body).events
    assert isinstance(event, UserPresenceEvent)
    assert [u.summary().display_name for u in event.users] == ["Ann", "Ben"]


@pytest.mark.parametrize(
    "attrs",
    [
        'name="state" instance="0" version="3" publishTime="2024-05-02T09:14:00Z"',
        'publishTime="2024-05-02T09:14:00Z" version="3" instance="0" name="state"',
        'name="state" instanceMask="0" version="3" publishTime="2024-05-02T09:14:00Z"',
        'xmlns:c="urn:x" c:name="state" instance="0" version="3" publishTime="2024-05-02T09:14:00Z"',
        'name="state" instance="0" version="3" publishTime="2024-05-02T09:14:00Z" effectiveAt="x"',
    ],
)
def test_every_attribute_order_and_spelling_reads_the_same_category(attrs: str) -> None:
    (event,) = codec.decode_events(_event(_state(6500, attrs))).events
    assert isinstance(event, UserPresenceEvent)
    (category,) = event.users[0].categories
    assert category == Category(
        "state", 0, 3, "2024-05-02T09:14:00Z", StateContent("aggregateState", 6500, None, None, False)
    )


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ('name="calendarData"', Category("calendarData")),
        ('name=""', Category("")),
        ('instance="7"', Category("", 7)),
        ('name="services" version="2"', Category("services", None, 2)),
    ],
)
def test_empty_categories_keep_every_attribute_they_have(attrs: str, expected: Category) -> None:
    (event,) = codec.decode_events(_event(f"<cwaCategory {attrs}/>")).events
    assert isinstance(event, UserPresenceEvent)
    assert event.users[0].categories == (expected,)


_TEXT = st.text(alphabet="abcXYZ09 <&>'\"é中!-", min_size=1, max_size=12).map(str.strip).filter(bool)
_OPT_INT = st.none() | st.integers(0, 2**31)
_HEAD = st.tuples(_OPT_INT, _OPT_INT, st.none() | st.sampled_from(["2024-05-02T09:14:00Z", "t", "0"]))
_STATE = st.builds(
    StateContent,
    state_type=st.none() | st.sampled_from(["aggregateState", "userState", "machineState"]),
    availability=_OPT_INT,
    activity=st.none() | st.sampled_from(["in-a-meeting", "on-the-phone", "Offline"]),
    activity_custom=st.none() | _TEXT,
    manual=st.booleans(),
)
_NOTE = st.builds(
    NoteContent,
    st.lists(
        st.builds(Note, st.sampled_from(["personal", "OOF", "custom"]), st.just("") | _TEXT), max_size=3
    ).map(tuple),
)
_CARD = st.builds(ContactCardContent, st.none() | _TEXT, st.none() | _TEXT)


@st.composite
def _categories(draw: st.DrawFn) -> Category:
    instance, version, publish_time = draw(_HEAD)
    kind = draw(st.sampled_from(["state", "note", "contactCard", "calendarData", "services"]))
    content = {"state": _STATE, "note": _NOTE, "contactCard": _CARD}.get(kind)
    return Category(kind, instance, version, publish_time, None if content is None else draw(content))


_USERS = st.lists(
    st.builds(
        UserPresence,
        st.sampled_from(["sip:a@example.org", "sip:b@example.org", "sip:c@example.org"]),
        st.lists(_categories(), max_size=5).map(tuple),
        st.none() | st.just("sameEnterprise"),
    ),
    max_size=4,
)


@settings(max_examples=150)
@given(
    users=_USERS, style=st.sampled_from([codec.WireStyle(), codec.WireStyle(instance_attr="instanceMask")])
)
def test_user_presence_round_trips_and_decodes_the_same_twice(
    users: list[UserPresence], style: codec.WireStyle
) -> None:
    # Hypothesis draws the same headers with other content across examples: a cache keyed on
    # anything less than the content would hand back an earlier example's category here.
    batch = EventBatch("1", 1, 0, None, (UserPresenceEvent(1, tuple(users)),))
    body = codec.encode_events(batch, style)
    assert codec.decode_events(body) == batch
    assert codec.decode_events(body) == batch


def test_a_note_with_an_exclamation_mark_is_read_and_a_doctype_still_refused() -> None:
    note = (
        '<cwaCategory name="note"><note xmlns="http://schemas.microsoft.com/2006/09/sip/note">'
        '<body type="personal">Back soon!</body></note></cwaCategory>'
    )
    (event,) = codec.decode_events(_event(note)).events
    assert isinstance(event, UserPresenceEvent)
    assert event.users[0].summary().notes == (Note("personal", "Back soon!"),)
    with pytest.raises(CwaProtocolError, match="DTD"):
        codec.decode_events(b'<!DoCtYpE x [<!ENTITY a "b">]>' + _event(note))


def test_activity_tokens_normalise_the_same_every_time_and_the_memo_stays_bounded() -> None:
    tokens = ["InAMeeting", "in-a-meeting", "  ", "OUT-OF-OFFICE", "x" * 500]
    first = [normalize_activity(t) for t in tokens]
    assert first == ["in_a_meeting", "in_a_meeting", None, "out_of_office", "x" * 500]
    for n in range(5000):  # a hostile server inventing a token per update
        normalize_activity(f"token-{n}")
    assert len(presence._ACTIVITY_MEMO) <= presence._ACTIVITY_MEMO_MAX
    assert [normalize_activity(t) for t in tokens] == first
    assert Presence.observe("sip:a@example.org", None, 15500, "Out-Of-Office").out_of_office is True
