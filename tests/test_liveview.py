"""The demo's terminal live view: what a newcomer sees, and what a hostile note cannot do to it."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bridge.http import BoardEntry
from bridge.liveview import HIDE_CURSOR, SHOW_CURSOR, LiveView, render

NOW = datetime(2026, 11, 22, 9, 20, 0, tzinfo=UTC)
SGR = re.compile(r"\x1b\[[0-9;]*m")
STATUS_CODES = {
    "available": ("\x1b[38;5;41m", "\x1b[38;2;0;200;83m"),
    "busy": ("\x1b[38;5;160m", "\x1b[38;2;213;0;0m"),
    "do_not_disturb": ("\x1b[38;5;91m", "\x1b[38;2;142;36;170m"),
    "be_right_back": ("\x1b[38;5;214m", "\x1b[38;2;255;171;0m"),
    "away": ("\x1b[38;5;214m", "\x1b[38;2;255;171;0m"),
    "offline": ("\x1b[38;5;247m", "\x1b[38;2;158;158;158m"),
    "unknown": ("\x1b[38;5;247m", "\x1b[38;2;158;158;158m"),
}


def entry(uid: str, **overrides: object) -> BoardEntry:
    values: dict[str, object] = {
        "id": uid,
        "name": uid.capitalize(),
        "uri": f"sip:{uid}@example.org",
        "status": "available",
        "idle": False,
        "activity": None,
        "note": None,
        "out_of_office": False,
        "last_change": "2026-11-22T09:18:00Z",
        "watchable": True,
    }
    values.update(overrides)
    return BoardEntry(**values)  # type: ignore[arg-type]


def lines_for(*entries: BoardEntry, color: bool = False, width: int = 200, **kw: bool) -> list[str]:
    return render(entries, bridge_line="bridge online", now=NOW, color=color, width=width, **kw)


def visible(line: str) -> str:
    return SGR.sub("", line)


# --- render ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(STATUS_CODES))
def test_each_status_shows_in_its_colour(status: str) -> None:
    palette, truecolor = STATUS_CODES[status]
    [_, line] = lines_for(entry("bob", status=status), color=True)
    assert palette in line
    [_, true_line] = lines_for(entry("bob", status=status), color=True, truecolor=True)
    assert truecolor in true_line


@pytest.mark.parametrize("status", sorted(STATUS_CODES))
def test_plain_output_has_no_escape_sequences(status: str) -> None:
    [header, line] = lines_for(entry("bob", status=status, note="\x1b[31mred"), color=False)
    assert "\x1b" not in header + line
    assert line.startswith("Bob")


@pytest.mark.parametrize(
    ("status", "idle", "label"),
    [
        ("available", False, "Available"),
        ("busy", False, "Busy"),
        ("do_not_disturb", False, "Do not disturb"),
        ("be_right_back", False, "Be right back"),
        ("away", True, "Away (idle)"),
        ("offline", False, "Offline"),
        ("unknown", False, "Unknown"),
    ],
)
def test_status_text_is_readable(status: str, idle: bool, label: str) -> None:
    [_, line] = lines_for(entry("bob", status=status, idle=idle))
    assert f"  {label}  " in line


def test_a_line_shows_name_status_activity_note_and_age() -> None:
    [header, line] = lines_for(
        entry("bob", name="Bob Builder", status="busy", activity="In a meeting", note="back at 3")
    )
    assert header == "bridge online"
    assert re.fullmatch(r'Bob Builder\s+Busy\s+since 2m\s+In a meeting\s+"back at 3"', line)


def test_columns_line_up_across_colleagues() -> None:
    lines = lines_for(
        entry("al", name="Al", status="away"),
        entry("bo", name="Bonaventura Long-Name", status="do_not_disturb"),
    )[1:]
    assert len({line.index("since") for line in lines}) == 1
    assert lines[0].index("Away") == lines[1].index("Do not disturb")


def test_name_falls_back_to_the_sip_address_and_out_of_office_shows() -> None:
    [_, line] = lines_for(entry("carol", name=None, out_of_office=True, activity="On holiday"))
    assert line.startswith("carol@example.org")
    assert "out of office · On holiday" in line


def test_long_names_and_activities_are_cut_visibly() -> None:
    [_, line] = lines_for(entry("bob", name="B" * 40, activity="A" * 40, note="n"))
    assert "B" * 23 + "…" in line
    assert "A" * 31 + "…" in line
    assert line.endswith('"n"')


def test_no_colleagues_says_so() -> None:
    assert lines_for() == ["bridge online", "(no colleagues yet)"]


@pytest.mark.parametrize("color", [True, False])
def test_a_note_cannot_send_terminal_escapes(color: bool) -> None:
    hostile = "\x1b[2J\x1b]0;owned\x07line\r\nbreak\x9b31m\u202eevil"
    [_, line] = lines_for(entry("mallory", name="Mal\x1b[5mlory", note=hostile), color=color)
    text = visible(line)  # our own colour codes are the only escapes allowed
    assert not any(ch in text for ch in "\x1b\x07\r\n\x9b\u202e")
    assert "[2J" in text  # the harmless rest is still shown
    assert "line break" in text
    assert text.startswith(("● Mal[5mlory", "Mal[5mlory"))


def test_the_bridge_line_is_cleaned_too() -> None:
    [header] = render([], bridge_line="up\x1b[2J", now=NOW, color=False, width=80)[:1]
    assert header == "up[2J"


@pytest.mark.parametrize("color", [True, False])
@pytest.mark.parametrize("width", [10, 25, 40])
def test_long_lines_are_cut_to_the_width(color: bool, width: int) -> None:
    lines = lines_for(
        entry("bob", status="busy", activity="Presenting", note="a very long note " * 10),
        color=color,
        width=width,
    )
    for line in lines[1:]:
        assert len(visible(line)) == width
        assert visible(line).endswith("…")
    if color:  # a cut colour never bleeds into the rest of the terminal
        assert lines[1].count("\x1b[0m") == lines[1].count("\x1b[38;")


def test_short_lines_are_not_cut_or_padded() -> None:
    [_, line] = lines_for(entry("bob", last_change=None), width=80)
    assert line == "Bob  Available"


def test_wide_characters_count_as_two_cells() -> None:
    [_, line] = lines_for(entry("li", name="李小龍", note="会議中です" * 5), width=30)
    assert sum(2 if "\u3000" <= ch <= "\u9fff" else 1 for ch in line) <= 30
    assert line.endswith("…")


@pytest.mark.parametrize(
    ("last_change", "shown"),
    [
        ("2026-11-22T09:19:55Z", "since 5s"),
        ("2026-11-22T09:18:00Z", "since 2m"),
        ("2026-11-22T08:15:00Z", "since 1h05m"),
        ("2026-11-19T09:20:00Z", "since 3d"),
        ("2026-11-22T09:21:00Z", "since 0s"),  # a clock ahead of ours is not "in -1m"
        ("2026-11-22T10:20:00+01:00", "since 0s"),
    ],
)
def test_last_change_is_shown_relative_to_now(last_change: str, shown: str) -> None:
    [_, line] = lines_for(entry("bob", last_change=last_change))
    assert line.endswith(shown)


@pytest.mark.parametrize("last_change", [None, "", "yesterday"])
def test_an_unknown_last_change_shows_no_age(last_change: str | None) -> None:
    [_, line] = lines_for(entry("bob", last_change=last_change))
    assert "since" not in line


# --- LiveView -------------------------------------------------------------------------------------


class Board:
    """A source the test mutates; counts draws so tests wait on them instead of sleeping."""

    def __init__(self, *entries: BoardEntry) -> None:
        self.entries: list[BoardEntry] = list(entries)
        self.bridge_line = "bridge online · board http://127.0.0.1:8099/"
        self.fail = False
        self.calls = 0
        self._cond = threading.Condition()

    def __call__(self) -> tuple[Sequence[BoardEntry], str]:
        with self._cond:
            self.calls += 1
            self._cond.notify_all()
            if self.fail:
                raise RuntimeError("board unavailable")
            return list(self.entries), self.bridge_line

    def wait_draws(self, more: int = 2, timeout: float = 10.0) -> None:
        """Wait until ``more`` further frames have been taken (so the current state is drawn)."""
        with self._cond:
            target = self.calls + more
            assert self._cond.wait_for(lambda: self.calls >= target, timeout), "the view stopped drawing"


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    """Advances a minute per reading, so the "since" column changes on every frame."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def views() -> Iterator[list[LiveView]]:
    started: list[LiveView] = []
    yield started
    for view in started:
        view.stop()


def run_view(views: list[LiveView], board: Board, stream: io.StringIO) -> LiveView:
    view = LiveView(board, stream=stream, interval=0.01, clock=Clock())
    views.append(view)
    view.start()
    board.wait_draws()
    return view


def test_piped_output_prints_only_what_changed(views: list[LiveView]) -> None:
    board = Board(entry("alice"), entry("bob", status="busy"))
    out = io.StringIO()
    run_view(views, board, out)
    first = out.getvalue().splitlines()
    assert first[0] == board.bridge_line
    assert [line.split()[0] for line in first[1:]] == ["Alice", "Bob"]

    board.wait_draws(3)  # time passes ("since" moves on), nothing else does
    assert out.getvalue().splitlines() == first

    board.entries[1] = replace(board.entries[1], status="away", note="lunch")
    board.wait_draws()
    new = out.getvalue().splitlines()[len(first) :]
    assert len(new) == 1
    assert new[0].startswith("Bob")
    assert "Away" in new[0]
    assert '"lunch"' in new[0]

    board.bridge_line = "bridge offline"
    board.entries.append(entry("carol", status="do_not_disturb"))
    board.wait_draws()
    newer = out.getvalue().splitlines()[len(first) + 1 :]
    assert newer[0] == "bridge offline"
    assert newer[1].startswith("Carol")
    assert len(newer) == 2
    assert "\x1b" not in out.getvalue()


def test_terminal_output_redraws_in_place_and_restores_the_cursor(
    views: list[LiveView], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    board = Board(entry("alice"), entry("bob", status="busy"))
    term = FakeTerminal()
    view = run_view(views, board, term)
    board.wait_draws()
    view.stop()

    shown = term.getvalue()
    assert shown.startswith(HIDE_CURSOR)
    assert shown.endswith(SHOW_CURSOR)
    assert "\x1b[3A" in shown  # back up over the bridge line and two colleagues
    assert STATUS_CODES["busy"][0] in shown
    for line in visible(shown).split("\n"):
        assert len(re.sub(r"\x1b\[[^a-zA-Z]*[a-zA-Z]", "", line)) <= 99


def test_no_color_is_respected_on_a_terminal(views: list[LiveView], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    term = FakeTerminal()
    view = run_view(views, Board(entry("alice"), entry("bob", status="busy")), term)
    view.stop()
    assert "\x1b[38;" not in term.getvalue()
    assert "Busy" in term.getvalue()


def test_a_failing_source_does_not_end_the_view(
    views: list[LiveView], caplog: pytest.LogCaptureFixture
) -> None:
    board = Board(entry("alice"))
    board.fail = True
    out = io.StringIO()
    run_view(views, board, out)
    assert out.getvalue() == ""

    board.fail = False
    board.wait_draws()
    assert "Alice" in out.getvalue()
    assert [r.getMessage() for r in caplog.records].count("liveview.source_failed") == 1


def test_stop_ends_the_thread(views: list[LiveView]) -> None:
    view = run_view(views, Board(entry("alice")), io.StringIO())
    view.stop()
    assert not [t for t in threading.enumerate() if t.name == "liveview"]
    view.stop()  # idempotent


def test_an_unchanged_terminal_frame_is_not_rewritten(
    views: list[LiveView], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    board = Board(entry("alice"))
    term = FakeTerminal()
    view = LiveView(board, stream=term, interval=0.01, clock=lambda: NOW)
    views.append(view)
    view.start()
    board.wait_draws()
    first = term.getvalue()
    board.wait_draws(3)
    assert term.getvalue() == first
    assert first.count("Alice") == 1
