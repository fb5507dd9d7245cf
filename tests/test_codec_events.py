"""Data-channel events: every cwa-protocol.md example, the §8 variants, and build → parse round trips."""

from __future__ import annotations

import pytest

from bridge.cwa import codec
from bridge.cwa.events import (
    ConfigurationEvent,
    Contact,
    ContactGroupEvent,
    EventBatch,
    Group,
    RequestFailedEvent,
    RequestSucceededEvent,
    SelfPresenceEvent,
    Subscriber,
    SubscribersEvent,
    SubscriptionState,
    SubscriptionStateEvent,
    UnknownEvent,
    UserPresence,
    UserPresenceEvent,
)
from bridge.cwa.messages import Category, ContactCardContent, ErrorInfo, NoteContent, StateContent
from bridge.errors import CwaProtocolError
from bridge.presence import Note

NS_STATE = 'xmlns="http://schemas.microsoft.com/2006/09/sip/state"'
NS_XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'


def events(inner: str, attrs: str = 'sid="4711" ackId="99" pollWaitTime="2000"') -> EventBatch:
    return codec.decode_events(f"<cwaEvents {attrs}>{inner}</cwaEvents>".encode())


def only(batch: EventBatch) -> object:
    assert len(batch.events) == 1
    return batch.events[0]


# --------------------------------------------------------------------------- §4.2, §5.2 examples

DOC_5_2 = b"""<cwaEvents sid="4711" ackId="31" pollWaitTime="2000">
  <requestSucceeded eid="30" rid="12"/>
  <requestFailed eid="31" rid="13">
    <error code="18201" subCode="0" reason="OCS rejected the operation" detail="Group was not created">
      <sipResponse code="485" subCode="0" detail="A group with this name exists"/>
    </error>
  </requestFailed>
</cwaEvents>"""


def test_doc_5_2_request_succeeded_and_failed() -> None:
    batch = codec.decode_events(DOC_5_2)
    assert (batch.sid, batch.ack_id, batch.poll_wait_time, batch.session_timeout) == ("4711", 31, 2000, None)
    assert batch.events == (
        RequestSucceededEvent(eid=30, rid="12"),
        RequestFailedEvent(
            eid=31,
            rid="13",
            error=ErrorInfo(
                code=18201,
                sub_code=0,
                reason="OCS rejected the operation",
                detail="Group was not created",
                sip_code=485,
                sip_detail="A group with this name exists",
            ),
        ),
    )
    failed = batch.events[1]
    assert isinstance(failed, RequestFailedEvent)
    assert "485" in failed.error.describe()


@pytest.mark.parametrize("name", ["sessionTimeout", "sesionTimeout"])
def test_envelope_session_timeout_in_both_spellings(name: str) -> None:
    batch = events("", f'sid="4711" ackId="27" pollWaitTime="2000" {name}="1800000"')
    assert batch.session_timeout == 1800000


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ('ackId="87"', 87),  # §8.7: equal to the last eid...
        ('ackId="11"', 11),  # ...or one higher: either way echoed as given
        ('ackId="abc"', None),
        ("", None),
    ],
)
def test_ack_id_is_taken_as_given(attrs: str, expected: int | None) -> None:
    assert events('<requestSucceeded eid="10" rid="1"/>', attrs).ack_id == expected


def test_lenient_envelope_numbers() -> None:
    batch = events("", 'sid="4711" ackId=" 5 " pollWaitTime="soon" sessionTimeout=""')
    assert (batch.ack_id, batch.poll_wait_time, batch.session_timeout) == (5, None, None)


def test_request_succeeded_for_logon_carries_sign_in_data() -> None:
    event = only(
        events(
            '<requestSucceeded eid="1" rid=""><signInData>PHg+</signInData>'
            "<uri>sip:a@x</uri></requestSucceeded>"
        )
    )
    assert event == RequestSucceededEvent(eid=1, rid="", sign_in_data="PHg+", uri="sip:a@x")


@pytest.mark.parametrize(
    ("inner", "expected"),
    [
        # §8.18 sipResponse attribute variants: prefer `code`
        (
            '<error code="18201"><sipResponse code="404" subCode="0" detail="Not Found"/></error>',
            ErrorInfo(code=18201, sip_code=404, sip_detail="Not Found"),
        ),
        (
            '<error code="18201"><sipResponse code="403" warning="x" description="Forbidden"/></error>',
            ErrorInfo(code=18201, sip_code=403, sip_detail="Forbidden"),
        ),
        (
            '<error code="18201"><sipResponse code="480" reason="Temporarily Unavailable"/></error>',
            ErrorInfo(code=18201, sip_code=480, sip_detail="Temporarily Unavailable"),
        ),
        # the old exception/exceptionDetail form
        (
            '<exception code="18100" reason="Session Not Found"><exceptionDetail>sid 4711 unknown'
            "</exceptionDetail></exception>",
            ErrorInfo(code=18100, reason="Session Not Found", detail="sid 4711 unknown"),
        ),
        (
            "<exception>Session expired</exception><exceptionDetail>idle</exceptionDetail>",
            ErrorInfo(reason="Session expired", detail="idle"),
        ),
        ('<error code="18100"/>', ErrorInfo(code=18100)),
        ('<error code="x18100" subCode="?"/>', ErrorInfo()),
        ("", ErrorInfo()),
        ('<sipResponse code="404"/>', ErrorInfo(sip_code=404)),
    ],
)
def test_request_failed_error_forms(inner: str, expected: ErrorInfo) -> None:
    event = only(events(f'<requestFailed eid="5" rid="7">{inner}</requestFailed>'))
    assert event == RequestFailedEvent(eid=5, rid="7", error=expected)


def test_session_not_found_on_the_data_channel_has_an_empty_rid() -> None:
    event = only(events('<requestFailed eid="1" rid=""><error code="18100"/></requestFailed>'))
    assert isinstance(event, RequestFailedEvent)
    assert (event.rid, event.error.code) == ("", 18100)


# --------------------------------------------------------------------------- §5.3 userPresence

DOC_5_3 = b"""<cwaEvents sid="4711" ackId="40" pollWaitTime="2000">
  <userPresence eid="40">
    <user uri="sip:bob@example.org" sourceNetwork="sameEnterprise">
      <cwaCategory name="state" instance="0" version="3" publishTime="2024-05-02T09:14:00Z">
        <state xmlns="http://schemas.microsoft.com/2006/09/sip/state"
               xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="aggregateState">
          <availability>6500</availability>
          <activity token="in-a-meeting"/>
        </state>
      </cwaCategory>
      <cwaCategory name="note" instance="0" version="1" publishTime="2024-05-02T08:00:00Z">
        <note xmlns="http://schemas.microsoft.com/2006/09/sip/note">
          <body type="personal" uri="">Back at 3pm</body>
        </note>
      </cwaCategory>
      <cwaCategory name="contactCard" instance="0" version="1" publishTime="2024-04-01T10:00:00Z">
        <contactCard xmlns="http://schemas.microsoft.com/2006/09/sip/contactcard">
          <identity><name><displayName>Bob Example</displayName></name>
            <email>bob@example.org</email></identity>
        </contactCard>
      </cwaCategory>
      <cwaCategory name="calendarData"/>   <!-- empty element = no data visible -->
    </user>
  </userPresence>
</cwaEvents>"""


def test_doc_5_3_user_presence() -> None:
    event = only(codec.decode_events(DOC_5_3))
    assert event == UserPresenceEvent(
        eid=40,
        users=(
            UserPresence(
                uri="sip:bob@example.org",
                source_network="sameEnterprise",
                categories=(
                    Category(
                        "state",
                        0,
                        3,
                        "2024-05-02T09:14:00Z",
                        StateContent("aggregateState", 6500, "in-a-meeting"),
                    ),
                    Category(
                        "note", 0, 1, "2024-05-02T08:00:00Z", NoteContent((Note("personal", "Back at 3pm"),))
                    ),
                    Category(
                        "contactCard",
                        0,
                        1,
                        "2024-04-01T10:00:00Z",
                        ContactCardContent("Bob Example", "bob@example.org"),
                    ),
                    Category("calendarData"),
                ),
            ),
        ),
    )
    assert isinstance(event, UserPresenceEvent)
    summary = event.users[0].summary()
    assert (summary.availability, summary.activity, summary.display_name) == (
        6500,
        "in-a-meeting",
        "Bob Example",
    )
    assert summary.notes == (Note("personal", "Back at 3pm"),)


def _user(body: str, uri: str = "sip:bob@example.org") -> UserPresence:
    event = only(events(f'<userPresence eid="1"><user uri="{uri}">{body}</user></userPresence>'))
    assert isinstance(event, UserPresenceEvent)
    assert len(event.users) == 1
    return event.users[0]


def _state(state_xml: str, category_attrs: str = 'name="state" instance="0"') -> StateContent:
    user = _user(f"<cwaCategory {category_attrs}>{state_xml}</cwaCategory>")
    content = user.categories[0].content
    assert isinstance(content, StateContent)
    return content


@pytest.mark.parametrize(
    "state_xml",
    [
        # default namespace (the doc form)
        f'<state {NS_STATE} {NS_XSI} xsi:type="aggregateState"><availability>3500</availability></state>',
        # prefixed elements, odd xsi prefix
        '<st:state xmlns:st="http://schemas.microsoft.com/2006/09/sip/state" '
        'xmlns:i="http://www.w3.org/2001/XMLSchema-instance" i:type="aggregateState">'
        "<st:availability>3500</st:availability></st:state>",
        # the https:// rendering of the schema namespaces
        '<state xmlns="https://schemas.microsoft.com/2006/09/sip/state" '
        'xmlns:xsi="https://www.w3.org/2001/XMLSchema-instance" xsi:type="aggregateState">'
        "<availability>3500</availability></state>",
        # no namespace at all; type value with a prefix
        '<state type="st:aggregateState"><availability> 3500 </availability></state>',
    ],
)
def test_state_reads_the_same_in_every_namespace_form(state_xml: str) -> None:
    assert _state(state_xml) == StateContent("aggregateState", 3500)


def test_state_activity_custom_text_and_manual() -> None:
    content = _state(
        f'<state {NS_STATE} {NS_XSI} xsi:type="userState" manual="true"><availability>6500</availability>'
        '<activity><custom LCID="1033">Lunch with the team</custom></activity></state>'
    )
    assert content == StateContent("userState", 6500, None, "Lunch with the team", manual=True)


@pytest.mark.parametrize(
    ("availability", "expected"),
    [("18000", 18000), ("0", 0), ("", None), ("busy", None), ("-1", -1)],
)
def test_state_availability_is_lenient(availability: str, expected: int | None) -> None:
    content = _state(f"<state {NS_STATE}><availability>{availability}</availability></state>")
    assert content.availability == expected


def test_doc_8_14_offline_as_zero_with_legacy_token() -> None:
    content = _state(f'<state {NS_STATE}><availability>0</availability><activity token="Offline"/></state>')
    assert (content.availability, content.activity) == (0, "Offline")


@pytest.mark.parametrize(
    ("attrs", "instance"),
    [
        ('name="state" instance="3"', 3),
        ('name="state" instanceMask="536870912"', 536870912),  # §8.15
        ('name="state" instance="x"', None),
        ('name="state"', None),
    ],
)
def test_instance_or_instance_mask(attrs: str, instance: int | None) -> None:
    user = _user(f"<cwaCategory {attrs}/>")
    assert user.categories[0].instance == instance


def test_empty_and_unknown_categories_have_no_content() -> None:
    user = _user(
        '<cwaCategory name="note"/><cwaCategory name="calendarData" instance="0">'
        '<calendarData xmlns="http://schemas.microsoft.com/2006/09/sip/calendarData" '
        'mailboxID="bob@example.org">'
        '<WorkingHours xmlns="http://schemas.microsoft.com/exchange/services/2006/types"/></calendarData>'
        '</cwaCategory><cwaCategory name="services"><services><service uri="sip:bob@example.org"/></services>'
        '</cwaCategory><cwaCategory name="state"/>'
    )
    assert [(c.name, c.content) for c in user.categories] == [
        ("note", None),
        ("calendarData", None),
        ("services", None),
        ("state", None),
    ]


def test_note_bodies_keep_type_and_order_and_empty_text() -> None:
    user = _user(
        '<cwaCategory name="note" instance="0"><note xmlns="http://schemas.microsoft.com/2006/09/sip/note">'
        '<body type="OOF" uri="">On holiday</body><body type="personal" uri="">Back Monday</body>'
        '<body type="personal"/></note></cwaCategory>'
    )
    assert user.categories[0].content == NoteContent(
        (Note("OOF", "On holiday"), Note("personal", "Back Monday"), Note("personal", ""))
    )


def test_several_contact_card_instances_are_separate_and_merge_in_the_summary() -> None:
    cc = 'xmlns="http://schemas.microsoft.com/2006/09/sip/contactcard"'
    user = _user(
        f'<cwaCategory name="contactCard" instance="0"><contactCard {cc}><identity><name>'
        "<displayName>Bob Example</displayName></name></identity></contactCard></cwaCategory>"
        f'<cwaCategory name="contactCard" instance="2"><contactCard {cc}><address type="work">'
        "<city>Springfield</city></address></contactCard></cwaCategory>"
        f'<cwaCategory name="contactCard" instance="3"><contactCard {cc}><identity>'
        '<email>bob@example.org</email></identity><phone type="work"><uri>tel:+1</uri>'
        "<displayString>+1</displayString></phone></contactCard></cwaCategory>"
    )
    assert [c.content for c in user.categories] == [
        ContactCardContent("Bob Example", None),
        ContactCardContent(None, None),
        ContactCardContent(None, "bob@example.org"),
    ]
    summary = user.summary()
    assert (summary.display_name, summary.email) == ("Bob Example", "bob@example.org")


def test_several_users_in_one_event_and_users_without_uri_are_skipped() -> None:
    event = only(
        events(
            '<userPresence eid="9">'
            f'<user uri="sip:bob@example.org"><cwaCategory name="state"><state {NS_STATE}>'
            "<availability>3500</availability></state></cwaCategory></user>"
            '<user><cwaCategory name="state"/></user>'
            f'<user uri="sip:carol@example.org" sourceNetwork="federated"><cwaCategory name="state">'
            f"<state {NS_STATE}><availability>18000</availability></state></cwaCategory></user>"
            "</userPresence>"
        )
    )
    assert isinstance(event, UserPresenceEvent)
    assert [(u.uri, u.source_network, u.summary().availability) for u in event.users] == [
        ("sip:bob@example.org", None, 3500),
        ("sip:carol@example.org", "federated", 18000),
    ]


def test_namespaced_envelope_and_events_are_read_by_local_name() -> None:
    body = (
        b'<c:cwaEvents xmlns:c="http://schemas.microsoft.com/2006/09/rtc/cwa" sid="1" ackId="2">'
        b'<c:userPresence eid="2"><c:user uri="sip:bob@example.org"><c:cwaCategory name="state">'
        b'<state xmlns="http://schemas.microsoft.com/2006/09/sip/state"><availability>9500</availability>'
        b"</state></c:cwaCategory></c:user></c:userPresence></c:cwaEvents>"
    )
    event = only(codec.decode_events(body))
    assert isinstance(event, UserPresenceEvent)
    assert event.users[0].summary().availability == 9500


# --------------------------------------------------------------------------- §5.4 to §5.9

DOC_5_4 = f"""<selfPresence eid="5">
  <cwaCategory name="state" instance="0">
    <state {NS_STATE}
           {NS_XSI} xsi:type="aggregateState">
      <availability>3500</availability>
    </state>
  </cwaCategory>
  <cwaCategory name="contactCard" instance="1">
    <contactCard xmlns="http://schemas.microsoft.com/2006/09/sip/contactcard">
      <phone type="mobile"><uri>tel:+15550100</uri><displayString>+1 555 0100</displayString></phone>
    </contactCard>
  </cwaCategory>
</selfPresence>"""


def test_doc_5_4_self_presence() -> None:
    event = only(events(DOC_5_4))
    assert event == SelfPresenceEvent(
        eid=5,
        categories=(
            Category("state", 0, content=StateContent("aggregateState", 3500)),
            Category("contactCard", 1, content=ContactCardContent()),
        ),
    )


def test_doc_5_5_presence_subscription_state() -> None:
    event = only(
        events(
            '<presenceSubscriptionState eid="41">'
            '<user uri="sip:bob@example.org" state="subscribed"/>'
            '<user uri="sip:dave@partner.example.net" state="retrying"/>'
            "</presenceSubscriptionState>"
        )
    )
    assert event == SubscriptionStateEvent(
        eid=41,
        users=(
            SubscriptionState("sip:bob@example.org", "subscribed", "subscribed"),
            SubscriptionState("sip:dave@partner.example.net", "retrying", "retrying"),
        ),
    )


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("Terminated", "terminated"),
        ("RETRYING", "retrying"),
        (" subscribed ", "subscribed"),
        ("3500", "subscribed"),  # §8.23: the integer reading
        ("18000", "subscribed"),
        ("pending", "retrying"),
    ],
)
def test_subscription_state_tokens_and_integers(raw: str, state: str) -> None:
    event = only(
        events(
            f'<presenceSubscriptionState eid="1"><user uri="sip:a@x" state="{raw}"/>'
            "</presenceSubscriptionState>"
        )
    )
    assert isinstance(event, SubscriptionStateEvent)
    assert event.users == (SubscriptionState("sip:a@x", state, raw),)  # type: ignore[arg-type]


DOC_5_6 = """<contactGroup eid="3" fullList="true" deltaNum="17">
  <group id="1" name="~"/>
  <group id="2" name="Project X"/>
  <contact uri="sip:bob@example.org" name="Bob Example" subscribed="true" tag="false" groups="1 2"/>
  <contact uri="sip:carol@example.org" name="Carol Nguyen" subscribed="true" tag="true" groups="1"/>
</contactGroup>"""


def test_doc_5_6_contact_group_full_list() -> None:
    assert only(events(DOC_5_6)) == ContactGroupEvent(
        eid=3,
        full_list=True,
        delta_num=17,
        groups=(Group("1", "~"), Group("2", "Project X")),
        contacts=(
            Contact("sip:bob@example.org", "Bob Example", subscribed=True, tag=False, groups=("1", "2")),
            Contact("sip:carol@example.org", "Carol Nguyen", subscribed=True, tag=True, groups=("1",)),
        ),
    )


@pytest.mark.parametrize("element", ["contactGroup", "contactGroupChanged"])  # §8.16
def test_contact_group_deltas_with_every_action_spelling(element: str) -> None:
    event = only(
        events(
            f'<{element} eid="8" fullList="false" deltaNum="x">'
            '<group id="3" name="New" action="added"/>'
            '<group name="no id"/>'
            '<contact uri="sip:bob@example.org" action="delete"/>'
            '<contact uri="sip:carol@example.org" name="Carol" action="Updated" groups=""/>'
            '<contact uri="sip:dave@example.org" action="deleted"/>'
            '<contact uri="sip:erin@example.org" action="exploded"/>'
            f"</{element}>"
        )
    )
    assert event == ContactGroupEvent(
        eid=8,
        full_list=False,
        delta_num=None,
        groups=(Group("3", "New", "added"),),
        contacts=(
            Contact("sip:bob@example.org", action="deleted"),
            Contact("sip:carol@example.org", "Carol", action="updated"),
            Contact("sip:dave@example.org", action="deleted"),
            Contact("sip:erin@example.org"),
        ),
    )


def test_doc_5_7_subscribers() -> None:
    event = only(
        events(
            '<subscribers eid="6"><subscriber uri="sip:dave@example.org" displayName="Dave" '
            'sourceNetwork="sameEnterprise" acknowledged="false"/>'
            '<subscriber uri="sip:erin@example.org" acknowledged="true"/></subscribers>'
        )
    )
    assert event == SubscribersEvent(
        eid=6,
        subscribers=(
            Subscriber("sip:dave@example.org", "Dave", acknowledged=False),
            Subscriber("sip:erin@example.org", None, acknowledged=True),
        ),
    )


def test_doc_5_8_search_result_is_an_unknown_event() -> None:
    event = only(
        events(
            '<searchResult eid="50" rid="11" returned="1" moreAvailable="false">'
            '<user uri="sip:carol@example.org" displayName="Carol Nguyen" title="Engineer"/></searchResult>'
        )
    )
    assert event == UnknownEvent(eid=50, name="searchResult")


@pytest.mark.parametrize("element", ["configuration", "configurations"])  # §8.26
def test_doc_5_9_configuration(element: str) -> None:
    event = only(
        events(
            f'<{element} eid="2"><search defaultFunction="and" defaultFields="0100"/>'
            '<imComposingTimers refreshInterval="3" timeout="60"/>'
            f"<userNotice>Test notice from the administrator</userNotice></{element}>"
        )
    )
    assert event == ConfigurationEvent(
        eid=2, user_notice="Test notice from the administrator", search_default_function="and"
    )


def test_unknown_events_never_fail_even_without_eid() -> None:
    batch = events(
        '<conference eid="7" confId="c1"/><initiateImSessionAccepted/><containers eid="x"/>'
        '<userPresence eid="8"/>'
    )
    assert batch.events == (
        UnknownEvent(7, "conference"),
        UnknownEvent(None, "initiateImSessionAccepted"),
        UnknownEvent(None, "containers"),
        UserPresenceEvent(8, ()),
    )


@pytest.mark.parametrize("eid", ['eid="x"', 'eid=""', ""])
def test_a_known_event_without_integer_eid_is_a_protocol_error(eid: str) -> None:
    with pytest.raises(CwaProtocolError, match="eid"):
        events(f"<userPresence {eid}/>")


def test_empty_event_batch() -> None:
    batch = codec.decode_events(b'<cwaEvents sid="4711" ackId="27" pollWaitTime="2000"/>')
    assert batch == EventBatch(sid="4711", ack_id=27, poll_wait_time=2000)


# --------------------------------------------------------------------------- round trips

STATE = Category("state", 0, 3, "2024-05-02T09:14:00Z", StateContent("aggregateState", 6500, "on-the-phone"))
CUSTOM = Category(
    "state", 536870912, 1, None, StateContent("userState", 6500, None, "Heads down", manual=True)
)
NOTE = Category("note", 0, 1, None, NoteContent((Note("personal", "Back at 3pm"), Note("OOF", ""))))
CARD = Category("contactCard", 0, None, None, ContactCardContent("Bob <&> Example", "bob@example.org"))
EMPTY = Category("calendarData")

ALL_EVENTS = EventBatch(
    sid="4711",
    ack_id=12,
    poll_wait_time=2000,
    session_timeout=1_800_000,
    events=(
        RequestSucceededEvent(1, "12"),
        RequestSucceededEvent(2, None, "PHg+", "sip:alice@example.org"),
        RequestFailedEvent(3, "13", ErrorInfo(18201, 0, "OCS failure", "no", 485, "exists")),
        RequestFailedEvent(4, "", ErrorInfo(code=18100)),
        UserPresenceEvent(
            5,
            (
                UserPresence("sip:bob@example.org", (STATE, NOTE, CARD, EMPTY), "sameEnterprise"),
                UserPresence("sip:carol@example.org", (CUSTOM,)),
                UserPresence("sip:dave@example.org"),
            ),
        ),
        SelfPresenceEvent(6, (STATE, CARD)),
        SubscriptionStateEvent(7, (SubscriptionState("sip:bob@example.org", "terminated", "terminated"),)),
        SubscriptionStateEvent(8, (SubscriptionState("sip:bob@example.org", "subscribed", "3500"),)),
        ContactGroupEvent(
            9,
            True,
            17,
            (Group("1", "~"), Group("2", "X", "deleted")),
            (Contact("sip:bob@example.org", "Bob", True, True, ("1", "2"), "added"),),
        ),
        SubscribersEvent(10, (Subscriber("sip:dave@example.org", "Dave", True),)),
        ConfigurationEvent(11, "Notice", "or"),
        UnknownEvent(12, "containers"),
    ),
)


@pytest.mark.parametrize(
    "style",
    [
        codec.WireStyle(),
        codec.WireStyle(instance_attr="instanceMask"),
        codec.WireStyle(initiate_form="attributes"),
    ],
)
def test_every_event_round_trips(style: codec.WireStyle) -> None:
    body = codec.encode_events(ALL_EVENTS, style)
    assert body.startswith(b"<?xml")
    assert codec.decode_events(body) == ALL_EVENTS


def test_encode_events_uses_the_chosen_instance_attribute_and_proper_namespaces() -> None:
    batch = EventBatch("1", 1, 2000, events=(SelfPresenceEvent(1, (STATE, NOTE, CARD, EMPTY)),))
    default = codec.encode_events(batch)
    assert b'instance="0"' in default
    assert b"instanceMask" not in default
    assert b'instanceMask="0"' in codec.encode_events(batch, codec.WireStyle(instance_attr="instanceMask"))
    for ns in (codec.NS_STATE, codec.NS_NOTE, codec.NS_CONTACTCARD, codec.NS_XSI):
        assert ns.encode() in default
    assert b'xsi:type="aggregateState"' in default
    assert b'<cwaCategory name="calendarData"/>' in default


def test_encode_events_drops_characters_xml_cannot_carry() -> None:
    batch = EventBatch("1", 1, 1, events=(ConfigurationEvent(1, "bell\x07 and nul\x00 gone"),))
    event = codec.decode_events(codec.encode_events(batch)).events[0]
    assert event == ConfigurationEvent(1, "bell and nul gone")
