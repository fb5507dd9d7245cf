"""The terminal live view of `cwa2mqtt demo` (README, "Quick start" and "Operations"): one line per colleague.

`render` is pure: board entries in, lines out (line 0 is the bridge line, line ``i + 1`` belongs to
``entries[i]``). `LiveView` polls a source every `interval` seconds in one daemon thread and

- on a terminal, redraws the block in place (cursor up, clear line) with the cursor hidden;
- on anything else (``cwa2mqtt demo | cat``, a log file), prints only the lines whose content
  changed, so the output reads like a log instead of a wall of repeated frames.

Names and notes are typed by other people and reach us through CWA: every control character
(ESC, CSI, bidi overrides ...) is removed before a text goes near the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import astuple
from datetime import UTC, datetime
from typing import TextIO

from bridge.http import BoardEntry
from bridge.presence import parse_timestamp

log = logging.getLogger(__name__)

RESET = "\x1b[0m"
HIDE_CURSOR = "\x1b[?25l"
SHOW_CURSOR = "\x1b[?25h"
CLEAR_LINE = "\x1b[2K"
CLEAR_BELOW = "\x1b[J"
DOT = "●"
ELLIPSIS = "…"
# (24-bit RGB, nearest xterm-256 index): 256 colours work everywhere, true colour where COLORTERM says so.
COLORS: dict[str, tuple[tuple[int, int, int], int]] = {
    "available": ((0x00, 0xC8, 0x53), 41),
    "busy": ((0xD5, 0x00, 0x00), 160),
    "do_not_disturb": ((0x8E, 0x24, 0xAA), 91),
    "be_right_back": ((0xFF, 0xAB, 0x00), 214),
    "away": ((0xFF, 0xAB, 0x00), 214),
    "offline": ((0x9E, 0x9E, 0x9E), 247),
    "unknown": ((0x9E, 0x9E, 0x9E), 247),
}
LABELS = {
    "available": "Available",
    "busy": "Busy",
    "do_not_disturb": "Do not disturb",
    "be_right_back": "Be right back",
    "away": "Away",
    "offline": "Offline",
    "unknown": "Unknown",
}
NAME_COLUMN_MAX = 24
ACTIVITY_COLUMN_MAX = 32
# Wide enough that a pipe or a log file gets whole notes; a terminal uses its own width.
PLAIN_WIDTH = 400


def color_code(status: str, *, truecolor: bool = False) -> str:
    """The SGR sequence that colours text like ``status`` (grey for anything unknown)."""
    rgb, index = COLORS.get(status, COLORS["unknown"])
    return "\x1b[38;2;{};{};{}m".format(*rgb) if truecolor else f"\x1b[38;5;{index}m"


def clean(text: str | None) -> str:
    """``text`` safe for a terminal, on one line: control and format characters go, whitespace
    runs (newlines, tabs) become one space. ``"\\x1b[2J"`` becomes the harmless ``"[2J"``."""
    if not text:
        return ""
    kept = [" " if ch.isspace() else ch for ch in text if ch.isspace() or unicodedata.category(ch)[0] != "C"]
    return " ".join("".join(kept).split())


def since(last_change: str | None, now: datetime) -> str:
    """``"since 2m"`` for an ISO timestamp relative to ``now``; empty if unknown."""
    moment = parse_timestamp(last_change)
    if moment is None:
        return ""
    seconds = max(0, int((now.astimezone(UTC) - moment).total_seconds()))
    if seconds < 60:
        return f"since {seconds}s"
    if seconds < 3600:
        return f"since {seconds // 60}m"
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return f"since {hours}h{minutes:02d}m"
    return f"since {seconds // 86400}d"


def render(
    entries: Sequence[BoardEntry],
    *,
    bridge_line: str,
    now: datetime,
    color: bool,
    width: int,
    truecolor: bool = False,
) -> list[str]:
    """The live view's lines, each at most ``width`` terminal cells wide."""
    rows = [_columns(entry, now) for entry in entries]
    name_w = min(NAME_COLUMN_MAX, max((_cells(r[0]) for r in rows), default=0))
    status_w = max((_cells(r[1]) for r in rows), default=0)
    since_w = max((_cells(r[2]) for r in rows), default=0)
    activity_w = min(ACTIVITY_COLUMN_MAX, max((_cells(r[3]) for r in rows), default=0))
    lines = [_fit([(clean(bridge_line), None)], width, color)]
    for entry, (name, status, changed, activity, note) in zip(entries, rows, strict=True):
        code = color_code(entry.status, truecolor=truecolor) if color else None
        segments: list[tuple[str, str | None]] = [(DOT + " ", code)] if color else []
        segments += [
            (_pad(name, name_w) + "  ", None),
            (status, code),
            (" " * (status_w - _cells(status)) + "  " + _pad(changed, since_w), None),
        ]
        if activity_w:
            segments.append(("  " + _pad(activity, activity_w), None))
        if note:
            segments.append((f'  "{note}"', None))
        lines.append(_fit(segments, width, color))
    if not entries:
        lines.append(_fit([("(no colleagues yet)", None)], width, color))
    return lines


def _columns(entry: BoardEntry, now: datetime) -> tuple[str, str, str, str, str]:
    name = clean(entry.name) or clean(entry.uri.removeprefix("sip:"))
    status = LABELS.get(entry.status, clean(entry.status) or "Unknown") + (" (idle)" if entry.idle else "")
    activity = clean(entry.activity).replace("_", " ")
    if entry.out_of_office and activity != "out of office":
        activity = f"out of office · {activity}" if activity else "out of office"
    return name, status, since(entry.last_change, now), activity, clean(entry.note)


def _char_cells(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _cells(text: str) -> int:
    return sum(_char_cells(ch) for ch in text)


def _clip(text: str, cells: int) -> str:
    used = 0
    for i, ch in enumerate(text):
        used += _char_cells(ch)
        if used > cells:
            return text[:i]
    return text


def _pad(text: str, cells: int) -> str:
    """``text`` filling exactly ``cells`` cells: padded, or cut with an ellipsis."""
    if _cells(text) > cells:
        text = _clip(text, cells - 1) + ELLIPSIS
    return text + " " * (cells - _cells(text))


def _fit(segments: list[tuple[str, str | None]], width: int, color: bool) -> str:
    """Join (text, colour) segments, right-trimmed, cut to ``width`` cells with an ellipsis."""
    while segments and not segments[-1][0].rstrip():
        segments = segments[:-1]
    if segments:
        segments[-1] = (segments[-1][0].rstrip(), segments[-1][1])
    total = sum(_cells(text) for text, _ in segments)
    budget = max(0, width - 1) if total > width else width
    out: list[str] = []
    for text, code in segments:
        piece = _clip(text, budget)
        budget -= _cells(piece)
        if piece:
            out.append(f"{code}{piece}{RESET}" if color and code else piece)
        if budget <= 0:
            break
    if total > width > 0:
        out.append(ELLIPSIS)
    return "".join(out)


Source = Callable[[], tuple[Sequence[BoardEntry], str]]


class LiveView:
    """Shows what ``source()`` returns (board entries, bridge line) until `stop`."""

    def __init__(
        self,
        source: Source,
        stream: TextIO | None = None,
        interval: float = 1.0,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        plain: bool = False,
    ) -> None:
        """``plain``: print changed lines only, as on a pipe, even on a terminal."""
        self._source = source
        self._stream = stream if stream is not None else sys.stdout
        self._interval = interval
        self._clock = clock
        self._tty = not plain and _is_tty(self._stream) and os.environ.get("TERM") != "dumb"
        # https://no-color.org: any non-empty NO_COLOR turns colour off.
        self._color = self._tty and not os.environ.get("NO_COLOR")
        self._truecolor = os.environ.get("COLORTERM", "").lower() in ("truecolor", "24bit")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._frame: list[str] = []  # TTY: the block on screen
        self._last: dict[object, object] = {}  # not a TTY: what each printed line showed
        self._failing = False

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="liveview", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop redrawing; the last frame stays on screen and the cursor comes back."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout)
        if self._tty:
            self._write(SHOW_CURSOR)

    def draw(self) -> None:
        """One frame, now (the thread calls this every `interval`)."""
        try:
            entries, bridge_line = self._source()
        except Exception:
            if not self._failing:
                log.warning("liveview.source_failed", exc_info=True)
            self._failing = True
            return
        self._failing = False
        if self._tty:
            self._draw_in_place(entries, bridge_line)
        else:
            self._print_changes(entries, bridge_line)

    def _run(self) -> None:
        if self._tty:
            self._write(HIDE_CURSOR)
        while True:
            self.draw()
            if self._stop.wait(self._interval):
                return

    def _draw_in_place(self, entries: Sequence[BoardEntry], bridge_line: str) -> None:
        # One cell short of the edge: writing the last column makes some terminals wrap early.
        width = max(20, _terminal_width(self._stream) - 1)
        lines = render(
            entries,
            bridge_line=bridge_line,
            now=self._clock(),
            color=self._color,
            width=width,
            truecolor=self._truecolor,
        )
        if lines == self._frame:  # rewriting the same text only makes the terminal flicker
            return
        up = f"\x1b[{len(self._frame)}A\r" if self._frame else ""
        body = "".join(f"{CLEAR_LINE}{line}\n" for line in lines)
        self._write(up + body + CLEAR_BELOW)
        self._frame = lines

    def _print_changes(self, entries: Sequence[BoardEntry], bridge_line: str) -> None:
        # Compare what was shown, not the rendered text: "since 2m" ticking on is not a change.
        keys: list[tuple[object, object]] = [("bridge", bridge_line)]
        keys += [(("user", entry.id), astuple(entry)) for entry in entries]
        if not entries:
            keys.append((("empty",), None))
        changed = [i for i, (key, value) in enumerate(keys) if self._last.get(key, _UNSEEN) != value]
        if not changed:
            return
        lines = render(entries, bridge_line=bridge_line, now=self._clock(), color=False, width=PLAIN_WIDTH)
        self._write("".join(lines[i] + "\n" for i in changed))
        self._last = dict(keys)

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except UnicodeEncodeError:
            encoding = getattr(self._stream, "encoding", None) or "ascii"
            self._stream.write(text.encode(encoding, "replace").decode(encoding))
            self._stream.flush()
        except (OSError, ValueError):  # closed or broken pipe (`demo | head`): nothing left to show
            self._stop.set()


_UNSEEN = object()


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _terminal_width(stream: TextIO) -> int:
    with contextlib.suppress(AttributeError, ValueError, OSError):
        columns = os.get_terminal_size(stream.fileno()).columns
        if columns > 0:  # a fresh pty may report 0 x 0 until someone sets its size
            return columns
    return shutil.get_terminal_size().columns
