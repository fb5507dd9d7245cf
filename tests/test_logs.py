"""Log lines as an operator reads them, and the redaction net under the "never log a secret" rule."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from bridge.logs import MAX_SECRETS, clear_secrets, register_secret, setup_logging

SECRET = "Zq8-cwa-pa55word!"
TICKET = "AAEAAQ-ticket-value=="


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    clear_secrets()
    yield
    clear_secrets()
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def _fail(exc: Exception) -> None:
    raise exc


def _log(fmt: str, level: str = "info") -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    setup_logging(level, fmt, stream=stream)  # type: ignore[arg-type]
    return logging.getLogger("bridge.test"), stream


def test_text_lines_are_utc_level_and_message() -> None:
    log, stream = _log("text")
    log.info("cwa.session.online sid=%s", 4711)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ INFO cwa.session.online sid=4711\n", stream.getvalue()
    )


def test_json_lines_carry_event_and_exception() -> None:
    log, stream = _log("json")
    log.warning("mqtt.disconnected rc=%d", 7)
    try:
        _fail(RuntimeError("boom"))
    except RuntimeError:
        log.exception("cwa.poll.failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "WARNING"
    assert first["logger"] == "bridge.test"
    assert first["event"] == "mqtt.disconnected"
    assert first["msg"] == "mqtt.disconnected rc=7"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["ts"])
    assert "exc" not in first
    assert second["event"] == "cwa.poll.failed"
    assert "RuntimeError: boom" in second["exc"]


def test_level_filters_lower_records() -> None:
    log, stream = _log("text", level="warning")
    log.info("quiet.event")
    log.error("loud.event")
    assert "quiet.event" not in stream.getvalue()
    assert "loud.event" in stream.getvalue()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_registered_secrets_are_redacted_everywhere(fmt: str) -> None:
    register_secret(SECRET)
    register_secret(TICKET)
    register_secret("")  # ignored, must not blank every line
    log, stream = _log(fmt)
    log.info("cwa.signin password=%s", SECRET)
    log.info(f"cwa.ticket value={TICKET}")
    try:
        _fail(ValueError(f"bad {SECRET}"))
    except ValueError:
        log.exception("cwa.error")
    out = stream.getvalue()
    assert SECRET not in out
    assert TICKET not in out
    assert out.count("**********") == 3
    assert "ValueError" in out


def test_setting_up_twice_does_not_duplicate_lines() -> None:
    setup_logging("info", "json", stream=io.StringIO())
    log, stream = _log("text")
    log.info("once.only")
    assert stream.getvalue().count("once.only") == 1


def test_a_broken_format_string_still_logs_the_event() -> None:
    stream = io.StringIO()
    handler = setup_logging("info", "text", stream=stream)
    # Straight to our handler: pytest's own capture handler would raise on this record first.
    record = logging.LogRecord("bridge.test", logging.INFO, __file__, 1, "cwa.odd value=%d", ("x",), None)
    handler.handle(record)
    assert "cwa.odd value=%d (unformattable arguments: TypeError)" in stream.getvalue()


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="log level"):
        setup_logging("verbose", "text")


def test_the_password_stays_redacted_after_hundreds_of_ticket_rotations() -> None:
    """Tickets rotate for as long as the bridge runs; only the newest are kept, never at the
    expense of the password registered at start-up."""
    register_secret(SECRET)
    for n in range(MAX_SECRETS + 50):
        register_secret(f"{TICKET}{n}", rotating=True)
    newest = f"{TICKET}{MAX_SECRETS + 49}"
    log, stream = _log("text")
    log.info("cwa.oops password=%s ticket=%s", SECRET, newest)
    assert "cwa.oops password=********** ticket=**********" in stream.getvalue()


def test_log_changes_false_keeps_presence_lines_out(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info", "text", changes=False)
    logging.getLogger("bridge.changes").info("presence.changed id=bob status=busy activity=None")
    logging.getLogger("bridge.service").info("service.contact_added id=bob")
    setup_logging("info", "text")
    logging.getLogger("bridge.changes").info("presence.changed id=carol status=away activity=None")
    err = capsys.readouterr().err
    assert "id=bob status=busy" not in err
    assert "service.contact_added id=bob" in err
    assert "id=carol status=away" in err
