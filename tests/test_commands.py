"""Validation of MQTT command payloads: every malformed form gets a precise error."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.commands import (
    Refresh,
    Rejected,
    SelfSet,
    parse_refresh,
    parse_self_set,
    parse_set_note,
    parse_set_status,
    parse_transaction,
)
from bridge.presence import Status


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"status": "busy"}', SelfSet(status=Status.BUSY)),
        (b'{"note": "Back at 3"}', SelfSet(note="Back at 3")),
        (b'{"note": ""}', SelfSet(note="")),
        (b'{"note": null}', SelfSet(note="")),
        (
            b'{"status": "Do_Not_Disturb ", "note": "x", "transaction": 7}',
            SelfSet(status=Status.DO_NOT_DISTURB, note="x", transaction=7),
        ),
        (b'{"status": "offline"}', SelfSet(status=Status.OFFLINE)),
    ],
)
def test_valid_self_set(payload: bytes, expected: SelfSet) -> None:
    assert parse_self_set(payload, 255) == expected


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"not json", "payload is not valid JSON (Expecting value)"),
        (b"\xff\xfe", "payload is not valid UTF-8 text"),
        (b"[1, 2]", 'payload must be a JSON object like {"status": "busy", "note": "..."}'),
        (b"{}", "nothing to set: give status and/or note"),
        (b'{"transaction": 1}', "nothing to set: give status and/or note"),
        (
            b'{"status": "lunch"}',
            "unknown status 'lunch'; allowed: available, busy, do_not_disturb, be_right_back, away, offline",
        ),
        (
            b'{"status": "unknown"}',
            "unknown status 'unknown'; allowed: "
            "available, busy, do_not_disturb, be_right_back, away, offline",
        ),
        (
            b'{"status": 5}',
            "status must be a string, one of: available, busy, do_not_disturb, be_right_back, away, offline",
        ),
        (b'{"note": 5}', "note must be a string (empty clears the note)"),
        (b'{"note": "a\\u0000b"}', "note must not contain the control character U+0000"),
        (b'{"note": "bell\\u0007"}', "note must not contain the control character U+0007"),
        (b'{"note": "\\ud800"}', "note must not contain the control character U+D800"),
        (b'{"colour": "red", "status": "busy"}', "unknown keys: colour; allowed: status, note, transaction"),
    ],
)
def test_invalid_self_set_names_the_problem(payload: bytes, error: str) -> None:
    result = parse_self_set(payload, 255)
    assert isinstance(result, Rejected)
    assert result.error == error


def test_note_length_limit_counts_characters() -> None:
    assert parse_self_set(json.dumps({"note": "é" * 255}).encode(), 255) == SelfSet(note="é" * 255)
    result = parse_self_set(json.dumps({"note": "x" * 256, "transaction": "t1"}).encode(), 255)
    assert result == Rejected("note is 256 characters long; at most 255 are allowed", "t1")


def test_rejection_echoes_transaction() -> None:
    result = parse_self_set(b'{"status": "nap", "transaction": "abc"}', 255)
    assert isinstance(result, Rejected)
    assert result.transaction == "abc"


def test_plain_status_and_note_topics() -> None:
    assert parse_set_status(b"busy") == SelfSet(status=Status.BUSY)
    assert parse_set_status(b" Away\n") == SelfSet(status=Status.AWAY)
    assert isinstance(parse_set_status(b""), Rejected)
    assert isinstance(parse_set_status(b"unknown"), Rejected)
    assert parse_set_note(b"", 10) == SelfSet(note="")
    assert parse_set_note("Grüße".encode(), 10) == SelfSet(note="Grüße")
    assert parse_set_note(b"x" * 11, 10) == Rejected("note is 11 characters long; at most 10 are allowed")
    assert parse_set_note(b"\xc3", 10) == Rejected("payload is not valid UTF-8 text")


def test_refresh_requests() -> None:
    known = frozenset({"bob", "carol", "self"})
    assert parse_refresh(b"", known) == Refresh()
    assert parse_refresh(b"  ", known) == Refresh()
    assert parse_refresh(b"{}", known) == Refresh()
    assert parse_refresh(b'{"id": "bob", "transaction": 3}', known) == Refresh(id="bob", transaction=3)
    assert parse_refresh(b'{"id": "zed"}', known) == Rejected("unknown id 'zed'; known: bob, carol, self")
    assert parse_refresh(b'{"id": 1}', known) == Rejected("id must be a string")
    assert parse_refresh(b'{"who": "bob"}', known) == Rejected("unknown keys: who; allowed: id, transaction")
    assert isinstance(parse_refresh(b"bob", known), Rejected)


def test_parse_transaction_any_payload() -> None:
    assert parse_transaction(b'{"transaction": "x"}') == "x"
    assert parse_transaction(b"") is None
    assert parse_transaction(b"garbage") is None


@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_a_command_or_a_rejection(raw: bytes) -> None:
    for result in (
        parse_self_set(raw, 255),
        parse_set_status(raw),
        parse_set_note(raw, 255),
        parse_refresh(raw, frozenset({"bob"})),
    ):
        assert isinstance(result, SelfSet | Refresh | Rejected)
        if isinstance(result, Rejected):
            assert result.error


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=300),
        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
        max_leaves=10,
    )
)
def test_arbitrary_json_gives_a_command_or_a_rejection(value: object) -> None:
    raw = json.dumps(value).encode()
    result = parse_self_set(raw, 255)
    assert isinstance(result, SelfSet | Rejected)
    if isinstance(result, SelfSet):
        assert result.status is not None or result.note is not None
        assert result.note is None or len(result.note) <= 255


def test_a_transaction_too_long_to_echo_is_refused_not_echoed() -> None:
    huge = "x" * 20_000_000
    for parsed in (
        parse_self_set(json.dumps({"status": "busy", "transaction": huge}).encode(), 255),
        parse_refresh(json.dumps({"transaction": huge}).encode(), frozenset()),
        parse_transaction(json.dumps({"transaction": huge}).encode()),
    ):
        assert isinstance(parsed, Rejected)
        assert parsed.transaction is None
        assert "at most 256" in parsed.error
    ok = parse_self_set(json.dumps({"status": "busy", "transaction": "t" * 250}).encode(), 255)
    assert isinstance(ok, SelfSet)
