"""Synchronous answers: what the bridge reads back from a command, and what the simulator writes."""

from __future__ import annotations

import pytest
from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from bridge.cwa import codec
from bridge.cwa.messages import Accepted, ErrorInfo, Refused, ResponseBatch, Succeeded
from bridge.errors import CwaProtocolError

DOC_2_3 = b"""<cwaResponses requestProcessed="1" unexpectedElement="0">
  <requestSucceeded rid="">
    <signInData>PHNpZ25JbkRhdGE+PHdvcmtQaG9uZT4rMSA1NTUgMDEwMDwvd29ya1Bob25lPjwvc2lnbkluRGF0YT4=</signInData>
    <uri>sip:alice@example.org</uri>
  </requestSucceeded>
</cwaResponses>"""

SIGN_IN_DATA = "PHNpZ25JbkRhdGE+PHdvcmtQaG9uZT4rMSA1NTUgMDEwMDwvd29ya1Bob25lPjwvc2lnbkluRGF0YT4="


def test_doc_2_3_logon_success() -> None:
    expected = Succeeded(rid="", sign_in_data=SIGN_IN_DATA, uri="sip:alice@example.org")
    assert codec.decode_logon_response(DOC_2_3) == expected
    assert codec.decode_responses(DOC_2_3) == ResponseBatch((expected,))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # §8.3: a bare requestSucceeded / requestFailed without the wrapper
        (
            b'<requestSucceeded rid=""><signInData>x</signInData><uri>sip:a@x</uri></requestSucceeded>',
            Succeeded("", "x", "sip:a@x"),
        ),
        (
            b'<requestFailed rid=""><error code="18000" reason="bad credentials"/></requestFailed>',
            Refused("", "failed", ErrorInfo(code=18000, reason="bad credentials")),
        ),
        # namespaced
        (
            f'<cwaResponses xmlns="{codec.NS_CWA}"><requestSucceeded><uri>sip:a@x</uri></requestSucceeded>'
            "</cwaResponses>".encode(),
            Succeeded(None, None, "sip:a@x"),
        ),
        (b'<cwaResponses><requestFailed rid="1"/></cwaResponses>', Refused("1", "failed", ErrorInfo())),
        (b"<cwaResponses/>", None),
        (b"<html><body>Please sign in</body></html>", None),
        (b"", None),
        (b"<cwaResponses>", None),
    ],
)
def test_logon_response_forms(body: bytes, expected: object) -> None:
    assert codec.decode_logon_response(body) == expected


DOC_3_3_ELEMENTS = b"""<cwaResponses requestProcessed="1" unexpectedElement="0">
  <requestAccepted rid="1">
    <sid>4711</sid>
    <uri>sip:alice@example.org</uri>
    <pollWaitTime>2000</pollWaitTime>
  </requestAccepted>
</cwaResponses>"""

DOC_3_3_ATTRIBUTES = (
    b'<cwaResponses requestProcessed="0" unexpectedElement="0">'
    b'<initiateSessionAccepted rid="1" sid="4711" pollWaitTime="2000"/></cwaResponses>'
)


def test_doc_3_3_initiate_session_answer_in_both_forms() -> None:  # §8.2
    assert codec.decode_responses(DOC_3_3_ELEMENTS) == ResponseBatch(
        (Accepted("1", "4711", "sip:alice@example.org", 2000),)
    )
    assert codec.decode_responses(DOC_3_3_ATTRIBUTES) == ResponseBatch((Accepted("1", "4711", None, 2000),))


@pytest.mark.parametrize(
    ("child", "expected"),
    [
        ('<requestAccepted rid="8"/>', Accepted("8")),
        (
            '<requestAccepted rid="1"><sid> 4711 </sid><pollWaitTime>soon</pollWaitTime></requestAccepted>',
            Accepted("1", "4711"),
        ),
        (
            '<requestInvalid rid="3"><error code="18000" reason="Invalid Format" detail="rid missing"/>'
            "</requestInvalid>",
            Refused("3", "invalid", ErrorInfo(code=18000, reason="Invalid Format", detail="rid missing")),
        ),
        (
            '<requestFailed rid="4"><error code="18100" subCode="0" reason="Session Not Found"/>'
            "</requestFailed>",
            Refused("4", "failed", ErrorInfo(code=18100, sub_code=0, reason="Session Not Found")),
        ),
        (
            '<requestFailed rid="5"><error code="18201"><sipResponse code="485" detail="exists"/></error>'
            "</requestFailed>",
            Refused("5", "failed", ErrorInfo(code=18201, sip_code=485, sip_detail="exists")),
        ),
        ('<requestRejected rid="6"/>', Refused("6", "rejected", ErrorInfo())),  # §8.17
        (
            '<requestRejected rid="6"><error code="18101" reason="Request Throttled"/></requestRejected>',
            Refused("6", "rejected", ErrorInfo(code=18101, reason="Request Throttled")),
        ),
        (
            '<error code="18400" subCode="1" reason="Internal Failure" detail="boom"/>',
            Refused(
                None, "error", ErrorInfo(code=18400, sub_code=1, reason="Internal Failure", detail="boom")
            ),
        ),
        ('<requestSucceeded rid="7"/>', Succeeded("7")),
    ],
)
def test_every_synchronous_answer(child: str, expected: object) -> None:
    batch = codec.decode_responses(
        f'<cwaResponses requestProcessed="9" unexpectedElement="x">{child}</cwaResponses>'.encode()
    )
    assert batch.responses == (expected,)


def test_batch_order_unknown_children_and_for_rid() -> None:
    batch = codec.decode_responses(
        b'<cwaResponses><requestAccepted rid="1"/><initiateImSessionAccepted rid="2" confId="c"/>'
        b'<requestFailed rid="3"><error code="18101"/></requestFailed></cwaResponses>'
    )
    assert [r.rid for r in batch.responses] == ["1", "3"]
    refused = batch.for_rid("3")
    assert isinstance(refused, Refused)
    assert refused.error.code == 18101
    assert batch.for_rid("2") is None


def test_decode_responses_rejects_other_documents() -> None:
    with pytest.raises(CwaProtocolError):
        codec.decode_responses(b"<html/>")
    with pytest.raises(CwaProtocolError):
        codec.decode_responses(b"<cwaResponses><requestAccepted></cwaResponses>")


# --------------------------------------------------------------------------- building (simulator)

ALL_RESPONSES = ResponseBatch(
    (
        Accepted("1", "4711", "sip:alice@example.org", 2000),
        Accepted("2"),
        Refused("3", "invalid", ErrorInfo(code=18000, reason="Invalid Format")),
        Refused("4", "failed", ErrorInfo(18201, 0, "OCS Failure Response", "x", 404, "Not Found")),
        Refused("5", "rejected", ErrorInfo(code=18100)),
        Refused(None, "error", ErrorInfo(code=18400, detail="boom")),
        Refused("6", "error", ErrorInfo(code=18001)),
        Succeeded("", SIGN_IN_DATA, "sip:alice@example.org"),
        Succeeded(None),
    )
)


@pytest.mark.parametrize("form", ["elements", "attributes"])
def test_every_response_round_trips(form: str) -> None:
    style = codec.WireStyle(initiate_form=form)  # type: ignore[arg-type]
    assert codec.decode_responses(codec.encode_responses(ALL_RESPONSES, style)) == ALL_RESPONSES


def test_encode_responses_shapes() -> None:
    root = etree.fromstring(codec.encode_responses(ALL_RESPONSES))
    assert root.tag == "cwaResponses"
    assert root.get("requestProcessed") == "9"
    assert root.get("unexpectedElement") == "0"
    assert [e.tag for e in root] == [
        "requestAccepted",
        "requestAccepted",
        "requestInvalid",
        "requestFailed",
        "requestRejected",
        "error",
        "error",
        "requestSucceeded",
        "requestSucceeded",
    ]
    assert [c.tag for c in root[0]] == ["sid", "uri", "pollWaitTime"]
    error = root[3].find("error")
    assert error is not None
    assert dict(error.attrib) == {
        "code": "18201",
        "subCode": "0",
        "reason": "OCS Failure Response",
        "detail": "x",
    }
    sip = error.find("sipResponse")
    assert sip is not None
    assert sip.get("code") == "404"
    assert root[2].find("error/sipResponse") is None


def test_attribute_form_for_initiate_session() -> None:
    body = codec.encode_responses(
        ResponseBatch((Accepted("1", "4711", None, 2000), Accepted("2"))),
        codec.WireStyle(initiate_form="attributes"),
    )
    root = etree.fromstring(body)
    assert (root[0].tag, dict(root[0].attrib)) == (
        "initiateSessionAccepted",
        {"rid": "1", "sid": "4711", "pollWaitTime": "2000"},
    )
    assert root[1].tag == "requestAccepted"  # only an answer with a sid is an initiateSession answer
