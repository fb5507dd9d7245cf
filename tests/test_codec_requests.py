"""Command-channel requests: the bytes the bridge sends, and the simulator's parse of them."""

from __future__ import annotations

import pytest
from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from bridge.cwa import codec
from bridge.cwa.messages import (
    AddContact,
    Category,
    DeleteContact,
    InitiateSession,
    Logon,
    Method,
    NoteContent,
    PublishSelfPresence,
    QueryPresence,
    RequestEnvelope,
    StateContent,
    SubscribePresence,
    TerminateSession,
    UnknownRequest,
)
from bridge.errors import CwaProtocolError
from bridge.presence import Note

NS = {"c": codec.NS_CWA, "st": codec.NS_STATE, "nt": codec.NS_NOTE, "xsi": codec.NS_XSI}


def tree(body: bytes) -> etree._Element:
    assert body.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    return etree.fromstring(body)


# --------------------------------------------------------------------------- logon (§2.1)


def test_logon_has_no_namespace_no_rid_and_the_uri_only_when_given() -> None:
    root = tree(codec.encode_logon(Logon("EXAMPLE\\alice", "s3cret-for-tests", "sip:alice@example.org")))
    assert root.tag == "cwaRequests"
    assert [(e.tag, e.text) for e in root[0]] == [
        ("user", "EXAMPLE\\alice"),
        ("password", "s3cret-for-tests"),
        ("uri", "sip:alice@example.org"),
    ]
    assert root[0].get("rid") is None
    assert [e.tag for e in tree(codec.encode_logon(Logon("alice@example.org", "pw")))[0]] == [
        "user",
        "password",
    ]
    assert len(tree(codec.encode_logon(Logon(None)))[0]) == 0  # IWA: credentials come from Negotiate


def test_logon_repr_never_shows_the_password() -> None:
    assert "s3cret" not in repr(Logon("alice", "s3cret"))
    envelope = codec.decode_requests(codec.encode_logon(Logon("alice", "s3cret")))
    assert "s3cret" not in repr(envelope)
    assert envelope.logon is not None
    assert envelope.logon.password == "s3cret"


DOC_2_1 = b"""<cwaRequests>
  <logon>
    <user>EXAMPLE\\alice</user>
    <password>s3cret-for-tests</password>
    <uri>sip:alice@example.org</uri>
  </logon>
</cwaRequests>"""


def test_doc_2_1_logon_parses() -> None:
    envelope = codec.decode_requests(DOC_2_1)
    assert envelope == RequestEnvelope(
        sid=None, logon=Logon("EXAMPLE\\alice", "s3cret-for-tests", "sip:alice@example.org")
    )


def test_logon_with_the_cwa_namespace_and_without_uri_parses() -> None:  # §2.1, §8.4
    body = f'<cwaRequests xmlns="{codec.NS_CWA}"><logon><user>a</user><password>b</password></logon>'
    body += "</cwaRequests>"
    assert codec.decode_requests(body.encode()).logon == Logon("a", "b", None)


# --------------------------------------------------------------------------- methods (§3)


def test_envelope_is_namespaced_with_sid_and_zero_before_a_session() -> None:
    root = tree(codec.encode_requests(None, [InitiateSession("1")]))
    assert root.tag == f"{{{codec.NS_CWA}}}cwaRequests"
    assert root.get("sid") == "0"
    assert tree(codec.encode_requests("4711", [TerminateSession("2")])).get("sid") == "4711"


def test_initiate_session_with_everything() -> None:
    method = InitiateSession(
        "1",
        availability=3500,
        auto_publish_machine_state=False,
        auto_subscribe_contacts=True,
        sign_in_data="PHNpZ25JbkRhdGE+",
        locale_id=1033,
        security_mode="private",
    )
    el = tree(codec.encode_requests(None, [method]))[0]
    assert el.get("rid") == "1"
    assert el.findtext("c:localeId", namespaces=NS) == "1033"
    assert el.findtext("c:securityMode", namespaces=NS) == "private"
    assert el.findtext("c:userStateAvailability", namespaces=NS) == "3500"
    assert el.findtext("c:signInData", namespaces=NS) == "PHNpZ25JbkRhdGE+"
    options = el.find("c:options", namespaces=NS)
    assert options is not None
    assert dict(options.attrib) == {
        "autoPublishMachineState": "false",
        "autoSubscribePresenceForContacts": "true",
    }


def test_initiate_session_as_a_quiet_observer_leaves_the_state_alone() -> None:
    # interface.md §7.1: no userStateAvailability unless configured; options only when set.
    el = tree(codec.encode_requests(None, [InitiateSession("1", auto_publish_machine_state=False)]))[0]
    assert el.find("c:userStateAvailability", namespaces=NS) is None
    options = el.find("c:options", namespaces=NS)
    assert options is not None
    assert dict(options.attrib) == {"autoPublishMachineState": "false"}
    bare = tree(codec.encode_requests(None, [InitiateSession("1", locale_id=None)]))[0]
    assert len(bare) == 0


DOC_3_3 = b"""<cwaRequests xmlns="http://schemas.microsoft.com/2006/09/rtc/cwa" sid="0">
  <initiateSession rid="1">
    <localeId>1033</localeId>
    <securityMode>private</securityMode>
    <userStateAvailability>3500</userStateAvailability>
    <options autoPublishMachineState="true" autoSubscribePresenceForContacts="true"/>
    <signInData>PHNpZ25JbkRhdGE+PHdvcmtQaG9uZT4rMSA1NTUgMDEwMDwvd29ya1Bob25lPjwvc2lnbkluRGF0YT4=</signInData>
  </initiateSession>
</cwaRequests>"""


def test_doc_3_3_initiate_session_parses() -> None:
    assert codec.decode_requests(DOC_3_3) == RequestEnvelope(
        sid="0",
        methods=(
            InitiateSession(
                "1",
                3500,
                True,
                True,
                "PHNpZ25JbkRhdGE+PHdvcmtQaG9uZT4rMSA1NTUgMDEwMDwvd29ya1Bob25lPjwvc2lnbkluRGF0YT4=",
                1033,
                "private",
            ),
        ),
    )


def test_subscribe_and_query_presence_carry_uri_lists() -> None:
    root = tree(
        codec.encode_requests(
            "4711",
            [
                SubscribePresence("3", ("sip:bob@example.org", "sip:carol@example.org")),
                QueryPresence("4", ()),
            ],
        )
    )
    assert root.xpath("c:subscribePresence/c:uris/c:uri/text()", namespaces=NS) == [
        "sip:bob@example.org",
        "sip:carol@example.org",
    ]
    assert root.xpath("c:queryPresence[@rid='4']/c:uris", namespaces=NS)


DOC_3_5 = b"""<cwaRequests xmlns="http://schemas.microsoft.com/2006/09/rtc/cwa" sid="4711">
<queryPresence rid="7">
  <uris>
    <uri>sip:bob@example.org</uri>
    <uri>sip:carol@example.org</uri>
  </uris>
</queryPresence>
</cwaRequests>"""


def test_doc_3_5_query_presence_parses() -> None:
    assert codec.decode_requests(DOC_3_5).methods == (
        QueryPresence("7", ("sip:bob@example.org", "sip:carol@example.org")),
    )


def test_publish_user_state_has_the_documented_shape() -> None:
    root = tree(codec.encode_requests("4711", [PublishSelfPresence("8", (codec.state_category(6500),))]))
    category = root.find("c:publishSelfPresence/c:cwaCategory", namespaces=NS)
    assert category is not None
    assert dict(category.attrib) == {"name": "state", "instanceMask": "536870912"}
    state = category.find("st:state", namespaces=NS)
    assert state is not None
    assert state.get(f"{{{codec.NS_XSI}}}type") == "userState"
    assert state.get("manual") == "true"
    assert state.findtext("st:availability", namespaces=NS) == "6500"


def test_publish_note_and_the_empty_note_that_clears_it() -> None:
    root = tree(
        codec.encode_requests(
            "4711", [PublishSelfPresence("10", (codec.note_category("Working from the lab today"),))]
        )
    )
    category = root.find("c:publishSelfPresence/c:cwaCategory", namespaces=NS)
    assert category is not None
    assert dict(category.attrib) == {"name": "note", "instanceMask": "0"}
    body = category.find("nt:note/nt:body", namespaces=NS)
    assert body is not None
    assert (dict(body.attrib), body.text) == ({"type": "personal", "uri": ""}, "Working from the lab today")
    cleared = tree(codec.encode_requests("4711", [PublishSelfPresence("11", (codec.note_category(""),))]))
    empty = cleared.find("c:publishSelfPresence/c:cwaCategory/nt:note/nt:body", namespaces=NS)
    assert empty is not None
    assert empty.text is None


def test_state_and_note_category_builders() -> None:
    assert codec.state_category(3500) == Category(
        "state", codec.USER_STATE_INSTANCE_MASK, content=StateContent("userState", 3500, manual=True)
    )
    assert codec.state_category(5000, manual=False).content == StateContent("userState", 5000)
    assert codec.note_category("hi") == Category("note", 0, content=NoteContent((Note("personal", "hi"),)))


DOC_3_7_STATE = b"""<cwaRequests xmlns="http://schemas.microsoft.com/2006/09/rtc/cwa" sid="4711">
  <publishSelfPresence rid="8">
    <cwaCategory name="state" instanceMask="536870912">
      <state xmlns="http://schemas.microsoft.com/2006/09/sip/state"
             xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
             xsi:type="userState" manual="true">
        <availability>6500</availability>
      </state>
    </cwaCategory>
  </publishSelfPresence>
</cwaRequests>"""

DOC_3_7_MACHINE = b"""<cwaRequests xmlns="http://schemas.microsoft.com/2006/09/rtc/cwa" sid="4711">
<publishSelfPresence rid="9">
  <cwaCategory name="state" instanceMask="805306368">
    <state xmlns="http://schemas.microsoft.com/2006/09/sip/state"
           xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
           xsi:type="machineState" manual="false">
      <availability>3500</availability>   <!-- 3500 active; 5000 inactive (the 5-minute idle case) -->
    </state>
  </cwaCategory>
</publishSelfPresence></cwaRequests>"""

DOC_3_7_NOTE = b"""<cwaRequests xmlns="http://schemas.microsoft.com/2006/09/rtc/cwa" sid="4711">
<publishSelfPresence rid="10">
  <cwaCategory name="note" instanceMask="0">
    <note xmlns="http://schemas.microsoft.com/2006/09/sip/note">
      <body type="personal" uri="">Working from the lab today</body>
    </note>
  </cwaCategory>
</publishSelfPresence></cwaRequests>"""


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (DOC_3_7_STATE, PublishSelfPresence("8", (codec.state_category(6500),))),
        (
            DOC_3_7_MACHINE,
            PublishSelfPresence(
                "9", (Category("state", 805306368, content=StateContent("machineState", 3500)),)
            ),
        ),
        (DOC_3_7_NOTE, PublishSelfPresence("10", (codec.note_category("Working from the lab today"),))),
    ],
)
def test_doc_3_7_publish_examples_parse(body: bytes, expected: PublishSelfPresence) -> None:
    assert codec.decode_requests(body).methods == (expected,)


@pytest.mark.parametrize(
    "category_xml",
    [
        # §8.12: the doc's publish example omits the state namespace
        '<cwaCategory name="state" instanceMask="536870912"><state '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="userState" manual="true">'
        "<availability>6500</availability></state></cwaCategory>",
        # ...or has no xsi at all
        '<cwaCategory name="state" instanceMask="536870912"><state type="userState" manual="1">'
        "<availability>6500</availability></state></cwaCategory>",
    ],
)
def test_doc_8_12_publish_without_state_namespace(category_xml: str) -> None:
    body = f'<cwaRequests xmlns="{codec.NS_CWA}" sid="1"><publishSelfPresence rid="8">{category_xml}'
    method = codec.decode_requests((body + "</publishSelfPresence></cwaRequests>").encode()).methods[0]
    assert method == PublishSelfPresence("8", (codec.state_category(6500),))


def test_doc_8_13_custom_note_form_reads_as_a_personal_note() -> None:
    body = (
        f'<cwaRequests xmlns="{codec.NS_CWA}" sid="1"><publishSelfPresence rid="10">'
        '<cwaCategory name="CustomNote" instanceMask="0"><note value="Gone fishing"/></cwaCategory>'
        "</publishSelfPresence></cwaRequests>"
    )
    method = codec.decode_requests(body.encode()).methods[0]
    assert method == PublishSelfPresence(
        "10", (Category("note", 0, content=NoteContent((Note("personal", "Gone fishing"),))),)
    )


def test_add_and_delete_contact() -> None:
    root = tree(
        codec.encode_requests(
            "4711",
            [
                AddContact("12", "sip:bob@example.org", "Bob Example", True, False, ("1",)),
                AddContact("13", "sip:carol@example.org", "Carol"),
                DeleteContact("14", "sip:bob@example.org"),
            ],
        )
    )
    contacts = root.findall("c:addContact/c:contact", namespaces=NS)
    assert dict(contacts[0].attrib) == {
        "uri": "sip:bob@example.org",
        "name": "Bob Example",
        "subscribed": "true",
        "tag": "false",
        "groups": "1",
    }
    assert "groups" not in contacts[1].attrib
    assert root.findtext("c:deleteContact/c:uri", namespaces=NS) == "sip:bob@example.org"


DOC_3_10 = b"""<cwaRequests xmlns="http://schemas.microsoft.com/2006/09/rtc/cwa" sid="4711">
  <addContact rid="12">
    <contact uri="sip:bob@example.org" name="Bob Example" subscribed="true" tag="false" groups="1"/>
  </addContact>
</cwaRequests>"""


def test_doc_3_10_add_contact_parses() -> None:
    assert codec.decode_requests(DOC_3_10) == RequestEnvelope(
        sid="4711", methods=(AddContact("12", "sip:bob@example.org", "Bob Example", True, False, ("1",)),)
    )


def test_terminate_session_is_just_a_rid() -> None:
    root = tree(codec.encode_requests("4711", [TerminateSession("42")]))
    assert [(e.tag, dict(e.attrib), len(e)) for e in root] == [
        (f"{{{codec.NS_CWA}}}terminateSession", {"rid": "42"}, 0)
    ]


def test_missing_rid_and_unknown_methods_are_reported_not_raised() -> None:
    body = (
        f'<cwaRequests xmlns="{codec.NS_CWA}" sid="4711"><terminateSession/>'
        '<search rid="11"><firstName>Carol</firstName></search><addGroup/></cwaRequests>'
    )
    envelope = codec.decode_requests(body.encode())
    assert envelope.methods == (
        TerminateSession(""),
        UnknownRequest("11", "search"),
        UnknownRequest(None, "addGroup"),
    )
    assert envelope.missing_rid == ("terminateSession", "addGroup")


def test_requests_without_namespace_or_sid_parse() -> None:
    envelope = codec.decode_requests(b'<cwaRequests><initiateSession rid="1"/></cwaRequests>')
    assert envelope == RequestEnvelope(sid=None, methods=(InitiateSession("1", locale_id=None),))


def test_lenient_request_values() -> None:
    body = (
        b'<cwaRequests sid="1"><initiateSession rid="1"><localeId>en-US</localeId>'
        b'<userStateAvailability>lots</userStateAvailability><options autoPublishMachineState="maybe"/>'
        b'</initiateSession><addContact rid="2"/><deleteContact rid="3" uri="sip:x@y"/></cwaRequests>'
    )
    assert codec.decode_requests(body).methods == (
        InitiateSession("1", None, None, None, None, None, None),
        AddContact("2", "", ""),
        DeleteContact("3", "sip:x@y"),
    )


ALL_METHODS: list[Method] = [
    InitiateSession("1", 3500, False, True, "blob", 1033, "private"),
    InitiateSession("2", locale_id=None),
    TerminateSession("3"),
    SubscribePresence("4", ("sip:bob@example.org", "sip:carol@example.org")),
    QueryPresence("5", ("sip:bob@example.org",)),
    PublishSelfPresence(
        "6",
        (
            codec.state_category(12500),
            codec.note_category("Ünïcödé & <markup>"),
            codec.note_category(""),
            Category("state", 805306368, content=StateContent("machineState", 5000)),
        ),
    ),
    AddContact("7", "sip:bob@example.org", "Bob", subscribed=False, tag=True, groups=("1", "2")),
    DeleteContact("8", "sip:bob@example.org"),
    UnknownRequest("9", "search"),
]


def test_every_request_round_trips() -> None:
    envelope = codec.decode_requests(codec.encode_requests("4711", ALL_METHODS))
    assert envelope == RequestEnvelope(sid="4711", methods=tuple(ALL_METHODS))


@pytest.mark.parametrize(
    "logon", [Logon("EXAMPLE\\alice", "p<a&s>s", "sip:alice@example.org"), Logon("a", None), Logon(None)]
)
def test_logon_round_trips(logon: Logon) -> None:
    assert codec.decode_requests(codec.encode_logon(logon)) == RequestEnvelope(sid=None, logon=logon)


def test_decode_requests_rejects_garbage() -> None:
    with pytest.raises(CwaProtocolError):
        codec.decode_requests(b"<cwaRequests>")
