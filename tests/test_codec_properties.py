"""Garbage in gives a typed result or `CwaProtocolError`, never another exception, never a hang."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from bridge.cwa import codec
from bridge.errors import CwaProtocolError
from tests.test_codec_events import ALL_EVENTS, DOC_5_3
from tests.test_codec_requests import ALL_METHODS
from tests.test_codec_responses import ALL_RESPONSES

VALID = [
    codec.encode_events(ALL_EVENTS),
    DOC_5_3,
    codec.encode_responses(ALL_RESPONSES),
    codec.encode_requests("4711", ALL_METHODS),
]
DECODERS: list[Callable[[bytes], object]] = [
    codec.decode_events,
    codec.decode_responses,
    codec.decode_requests,
    codec.decode_logon_response,
]


def _survives(body: bytes) -> None:
    for decode in DECODERS:
        with contextlib.suppress(CwaProtocolError):  # the one allowed error; anything else fails
            decode(body)


@settings(max_examples=300)
@given(st.binary(max_size=512))
def test_arbitrary_bytes(body: bytes) -> None:
    _survives(body)


@settings(max_examples=200)
@given(
    st.text(alphabet="<>/=\"' abcxyzeid:{}&;!?-\n", max_size=200).map(lambda s: ("<cwaEvents>" + s).encode())
)
def test_arbitrary_markup_like_text(body: bytes) -> None:
    _survives(body)


@settings(max_examples=300)
@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8))
def test_byte_flips(body: bytes, flips: list[tuple[int, int]]) -> None:
    data = bytearray(body)
    for position, value in flips:
        data[position % len(data)] = value
    _survives(bytes(data))


@settings(max_examples=200)
@given(st.sampled_from(VALID), st.integers(0, 10**6))
def test_truncation(body: bytes, cut: int) -> None:
    _survives(body[: cut % (len(body) + 1)])


@settings(max_examples=200)
@given(st.sampled_from(VALID), st.lists(st.integers(0, 10**6), min_size=1, max_size=6))
def test_element_and_attribute_deletion(body: bytes, picks: list[int]) -> None:
    root = etree.fromstring(body)
    for pick in picks:
        elements = list(root.iter())
        victim = elements[pick % len(elements)]
        parent = victim.getparent()
        if parent is not None and pick % 2:
            parent.remove(victim)
        elif victim.attrib:
            del victim.attrib[sorted(victim.attrib)[pick % len(victim.attrib)]]
    _survives(etree.tostring(root))
