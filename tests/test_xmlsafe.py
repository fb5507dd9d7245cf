"""The hardened parser: hostile, oversized and non-XML bodies give one error type and leak nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cwa import codec, xmlsafe
from bridge.errors import CwaProtocolError

DECODERS = [codec.decode_events, codec.decode_responses, codec.decode_requests]

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<cwaEvents sid="1" ackId="1"><configuration eid="1"><userNotice>&lol9;</userNotice>
</configuration></cwaEvents>"""


def _xxe(path: Path, encoding: str = "utf-8") -> bytes:
    doc = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n'
        f'<!DOCTYPE cwaEvents [<!ENTITY xxe SYSTEM "file://{path}">]>\n'
        '<cwaEvents sid="1" ackId="1"><configuration eid="1"><userNotice>&xxe;</userNotice>'
        "</configuration></cwaEvents>"
    )
    return doc.encode(encoding)


@pytest.fixture
def secret_file(tmp_path: Path) -> tuple[Path, str]:
    marker = "MARKER-7f1c9e2a-do-not-leak"
    path = tmp_path / "secret.txt"
    path.write_text(marker)
    return path, marker


@pytest.mark.parametrize("decode", DECODERS)
def test_billion_laughs_is_refused(decode: object) -> None:
    with pytest.raises(CwaProtocolError, match="DTD"):
        decode(BILLION_LAUGHS)  # type: ignore[operator]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
@pytest.mark.parametrize("decode", DECODERS)
def test_external_entity_content_never_appears(
    decode: object, encoding: str, secret_file: tuple[Path, str]
) -> None:
    path, marker = secret_file
    with pytest.raises(CwaProtocolError) as info:
        decode(_xxe(path, encoding))  # type: ignore[operator]
    assert marker not in str(info.value)
    assert marker not in info.value.excerpt


def test_external_entity_is_harmless_for_the_logon_decoder(secret_file: tuple[Path, str]) -> None:
    path, marker = secret_file
    assert codec.decode_logon_response(_xxe(path)) is None
    body = _xxe(path).replace(b"cwaEvents", b"cwaResponses").replace(b"configuration", b"requestSucceeded")
    assert marker not in repr(codec.decode_logon_response(body))


def test_an_internal_doctype_without_entities_is_refused_too() -> None:
    with pytest.raises(CwaProtocolError):
        codec.decode_events(b'<!DOCTYPE cwaEvents><cwaEvents sid="1"/>')


def test_oversized_body_is_refused_before_parsing_and_the_limit_is_per_call() -> None:
    body = b'<cwaEvents sid="1" ackId="1">' + b" " * 2000 + b"</cwaEvents>"
    assert codec.decode_events(body, max_bytes=4096).sid == "1"
    with pytest.raises(CwaProtocolError, match="exceeds the limit of 1024"):
        codec.decode_events(body, max_bytes=1024)
    with pytest.raises(CwaProtocolError, match="limit"):
        codec.decode_logon_response(body, max_bytes=1024)
    with pytest.raises(CwaProtocolError, match="limit"):
        codec.decode_requests(body, max_bytes=1024)


def test_default_limit_is_four_mebibytes() -> None:
    assert codec.DEFAULT_MAX_BYTES == 4 * 1024 * 1024
    body = b'<cwaEvents sid="1">' + b" " * codec.DEFAULT_MAX_BYTES + b"</cwaEvents>"
    with pytest.raises(CwaProtocolError, match="limit"):
        codec.decode_events(body)


HTML_LOGON_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Communicator Web Access</title></head>"
    b"<body><form action='/forms/logon.html'><input name='password'/></form></body></html>"
)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   \n\t",
        b"not xml at all",
        HTML_LOGON_PAGE,
        b"<html><body>Sign in</body></html>",
        b"<cwaEvents sid='1'>",
        b"<cwaEvents><a></b></cwaEvents>",
        b"\xff\xfe\x00garbage",
        b'<?xml version="1.0" encoding="klingon"?><cwaEvents/>',
        b"<cwaEvents>&undefined;</cwaEvents>",
        b"<a:cwaEvents/>",
        b"<" + b"a>" * 20000,
    ],
)
@pytest.mark.parametrize("decode", DECODERS)
def test_malformed_input_gives_exactly_the_protocol_error(body: bytes, decode: object) -> None:
    with pytest.raises(CwaProtocolError):
        decode(body)  # type: ignore[operator]


@pytest.mark.parametrize("body", [b"", b"not xml", HTML_LOGON_PAGE, b"<cwaEvents/>", b"<cwaResponses/>"])
def test_logon_decoder_answers_none_for_bodies_it_does_not_understand(body: bytes) -> None:
    assert codec.decode_logon_response(body) is None


def test_wrong_root_element_is_a_protocol_error_naming_the_root() -> None:
    with pytest.raises(CwaProtocolError, match="cwaEvents"):
        codec.decode_events(b"<cwaResponses/>")
    with pytest.raises(CwaProtocolError, match="cwaResponses"):
        codec.decode_responses(b"<cwaEvents/>")
    with pytest.raises(CwaProtocolError, match="cwaRequests"):
        codec.decode_requests(b"<cwaEvents/>")


def test_deep_nesting_is_refused_without_recursion_errors() -> None:
    body = b"<cwaEvents>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</cwaEvents>"
    with pytest.raises(CwaProtocolError):
        codec.decode_events(body)


def test_excerpt_never_contains_the_password_of_a_broken_logon() -> None:
    body = b"<cwaRequests><logon><user>EXAMPLE\\alice</user><password>s3cret-for-tests</password>"
    with pytest.raises(CwaProtocolError) as info:
        codec.decode_requests(body)
    assert "s3cret" not in str(info.value)
    assert info.value.excerpt.startswith("<cwaRequests><logon><user>EXAMPLE")


@pytest.mark.parametrize(
    ("body", "forbidden"),
    [
        (b"CWA-Ticket: T1-9f3c2a7d5b\r\n<garbage", "T1-9f3c2a7d5b"),
        (b"<x>" + b"a" * 200 + b"hunter2", "hunter2"),
        (b"ticket=ABCDEF", "ABCDEF"),
    ],
)
def test_excerpt_is_short_and_secret_free(body: bytes, forbidden: str) -> None:
    text = xmlsafe.excerpt(body)
    assert forbidden not in text
    assert len(text) <= xmlsafe.EXCERPT_CHARS + 1


def test_excerpt_strips_control_characters() -> None:
    assert xmlsafe.excerpt(b"<a>\x00\x01\x1b[31mred</a>") == "<a>  [31mred</a>".replace("  ", " ")


def test_encoding_errors_do_not_echo_input_bytes() -> None:
    # libxml2 quotes offending bytes in its own message; ours must not (they may be password bytes).
    with pytest.raises(CwaProtocolError) as info:
        codec.decode_events(b"<cwaEvents sid='\xe9\xff\xfe'/>")
    assert "0xFF" not in str(info.value).upper().replace("\\X", "0X")


def test_parse_accepts_comments_and_processing_instructions_and_drops_them() -> None:
    body = b'<?xml version="1.0"?><!-- hi --><cwaEvents sid="1"><?pi x?><!-- c --></cwaEvents>'
    batch = codec.decode_events(body)
    assert batch.sid == "1"
    assert batch.events == ()
