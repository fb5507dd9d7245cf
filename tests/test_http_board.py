"""The presence board page (`/`): self-contained, safe with hostile notes, rendering live data.

The page's own JavaScript is exercised in Node with a tiny DOM stand-in (when `node` exists) and
in headless Chromium (when Debian's `/usr/bin/chromium` exists); otherwise those tests skip.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bridge.http import HealthReport
from tests.support.http_endpoint import BoardServer, fetch, make_entry

HOSTILE_NOTE = "<script>alert(1)</script>"
HOSTILE_NAME = '<img src=x onerror="alert(2)">'


def _page(board_server: BoardServer) -> str:
    answer = fetch(board_server.url + "/")
    assert answer.status == 200
    return answer.text


def _script(page: str) -> str:
    match = re.search(r"<script>(.*?)</script>", page, re.S)
    assert match is not None
    return match.group(1)


def test_the_board_page_loads_as_a_phone_friendly_html_page(board_server: BoardServer) -> None:
    answer = fetch(board_server.url + "/")

    assert answer.status == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    page = answer.text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "prefers-color-scheme: dark" in page
    assert "<title>Team board</title>" in page
    assert "api/presence" in page


def test_the_board_uses_the_status_colours(board_server: BoardServer) -> None:
    page = _page(board_server)

    for colour in ("#00C853", "#D50000", "#8E24AA", "#FFAB00"):
        assert colour in page


def test_the_board_is_self_contained(board_server: BoardServer) -> None:
    page = _page(board_server)

    # No CDN, no external script, style sheet or font: it must work on an isolated network.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page
    assert "<script src" not in page


def test_the_title_is_escaped_into_the_page() -> None:
    from bridge.http import HttpServer
    from bridge.metrics import Metrics

    server = HttpServer(
        "127.0.0.1", 0, health=lambda: HealthReport(True), metrics=Metrics(), board=list, title="<b>R&D</b>"
    )
    with server:
        page = fetch(server.url + "/").text

    assert "<b>R&D</b>" not in page
    assert "&lt;b&gt;R&amp;D&lt;/b&gt;" in page


def test_the_page_script_never_writes_markup(board_server: BoardServer) -> None:
    script = _script(_page(board_server))

    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    assert "textContent" in script


def test_the_csp_admits_exactly_the_inline_script_and_style(board_server: BoardServer) -> None:
    answer = fetch(board_server.url + "/")
    csp = answer.headers["content-security-policy"]
    script = _script(answer.text)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()

    assert f"script-src 'sha256-{digest}'" in csp
    assert "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "connect-src 'self'" in csp


def test_a_hostile_note_never_appears_unescaped_in_any_answer(board_server: BoardServer) -> None:
    board_server.users = [make_entry("bob", note=HOSTILE_NOTE, name=HOSTILE_NAME, activity="<b>x</b>")]
    board_server.health = HealthReport(
        True, {"mqtt": "connected", "cwa": "online", "reasons": [HOSTILE_NOTE]}
    )

    for path in ("/", "/api/presence", "/healthz", "/metrics", "/nope"):
        body = fetch(board_server.url + path).text
        assert "<script>alert" not in body, path
        assert "<img" not in body, path
        assert "<b>x" not in body, path

    # ... and the JSON still carries the note exactly, for the page to show as text.
    data = json.loads(fetch(board_server.url + "/api/presence").body)
    assert data["users"][0]["note"] == HOSTILE_NOTE
    assert data["users"][0]["name"] == HOSTILE_NAME


# --- the page's JavaScript, run for real ---------------------------------------------------------

# A DOM stand-in with only what the page may use; assigning innerHTML/outerHTML throws.
_NODE_HARNESS = r"""
const vm = require("vm");
const fs = require("fs");
const [src, base] = [fs.readFileSync(process.argv[2], "utf8"), process.argv[3]];
const created = [];
class El {
  constructor(tag) { this.tagName = tag.toUpperCase(); this.children = []; this.own = "";
                     this.className = ""; this.hidden = false; this.title = ""; created.push(this.tagName); }
  set textContent(v) { this.children = []; this.own = String(v); }
  get textContent() { return this.own + this.children.map(c => c.textContent).join(""); }
  set innerHTML(v) { throw new Error("innerHTML used"); }
  set outerHTML(v) { throw new Error("outerHTML used"); }
  appendChild(c) { this.children.push(c); return c; }
  replaceChildren(...cs) { this.children = cs; this.own = ""; }
  setAttribute(k, v) { this[k] = String(v); }
  dump() { return { tag: this.tagName, cls: this.className, text: this.textContent, title: this.title,
                    hidden: this.hidden, children: this.children.map(c => c.dump()) }; }
}
const ids = {};
for (const [id, tag] of [["title", "h1"], ["cwa", "span"], ["mqtt", "span"], ["updated", "span"],
                         ["message", "p"], ["board", "ul"]]) ids[id] = new El(tag);
const document = { title: "", hidden: false, getElementById: id => ids[id] || null,
                   createElement: tag => new El(tag), addEventListener() {} };
function finish() {
  const out = { documentTitle: document.title, created };
  for (const id in ids) out[id] = ids[id].dump();
  process.stdout.write(JSON.stringify(out));
  process.exit(0);
}
const context = {
  document, console,
  fetch: (url, opts) => fetch(new URL(url, base), opts),
  // The page schedules its next poll once a poll has finished: that is our cue to look.
  setTimeout: () => { setImmediate(finish); return 1; },
  clearTimeout: () => {},
};
vm.runInNewContext(src, context);
setTimeout(() => { process.stderr.write("page never finished a poll"); process.exit(2); }, 10000);
"""


def _run_page(board_server: BoardServer, tmp_path: Path, base: str | None = None) -> dict[str, Any]:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node is not installed: the page's JavaScript is only checked statically")
    (tmp_path / "page.js").write_text(_script(_page(board_server)))
    (tmp_path / "harness.js").write_text(_NODE_HARNESS)
    done = subprocess.run(
        [node, str(tmp_path / "harness.js"), str(tmp_path / "page.js"), base or board_server.url + "/"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _tiles(dom: dict[str, Any]) -> list[dict[str, Any]]:
    tiles: list[dict[str, Any]] = dom["board"]["children"]
    return tiles


def test_the_page_shows_a_hostile_note_as_literal_text(board_server: BoardServer, tmp_path: Path) -> None:
    board_server.users = [make_entry("bob", status="busy", note=HOSTILE_NOTE, name=HOSTILE_NAME)]

    dom = _run_page(board_server, tmp_path)

    (tile,) = _tiles(dom)
    assert HOSTILE_NOTE in tile["text"]
    assert HOSTILE_NAME in tile["text"]
    assert "SCRIPT" not in dom["created"]
    assert "IMG" not in dom["created"]


def test_the_page_renders_one_tile_per_user_with_status_as_text(
    board_server: BoardServer, tmp_path: Path
) -> None:
    board_server.users = [
        make_entry("bob", status="busy", idle=True, activity="in_a_meeting", note="Back at 3pm"),
        make_entry("carol", status="do_not_disturb", out_of_office=True),
        make_entry("dave", status="offline", name=None, watchable=False, last_change=None),
        make_entry("eve", status="something_new"),
    ]

    dom = _run_page(board_server, tmp_path)

    bob, carol, dave, eve = _tiles(dom)
    assert bob["tag"] == "LI"
    assert "s-busy" in bob["cls"]
    assert "Bob" in bob["text"]
    assert "Busy (idle)" in bob["text"]
    assert "In a meeting" in bob["text"]
    assert "Back at 3pm" in bob["text"]
    since = [c for c in bob["children"] if c["cls"] == "since"]
    assert since
    assert since[0]["text"].startswith("since ")
    assert since[0]["title"] == "2026-11-22T09:14:03Z"
    assert "s-do_not_disturb" in carol["cls"]
    assert "Do not disturb" in carol["text"]
    assert "Out of office" in carol["text"]
    assert "sip:dave@example.org" in dave["text"]  # no name: the URI is shown
    assert "unwatchable" in dave["cls"]
    assert "Not watchable" in dave["text"]
    # An unknown status neither breaks the page nor reaches the class attribute.
    assert eve["cls"] == "tile s-unknown"
    assert "Something new" in eve["text"]


def test_the_page_header_shows_the_bridge_state(board_server: BoardServer, tmp_path: Path) -> None:
    board_server.health = HealthReport(False, {"mqtt": "disconnected", "cwa": "online"})

    dom = _run_page(board_server, tmp_path)

    assert dom["cwa"]["text"] == "CWA: online"
    assert dom["cwa"]["cls"] == "pill ok"
    assert dom["mqtt"]["text"] == "MQTT: disconnected"
    assert dom["mqtt"]["cls"] == "pill bad"
    assert dom["documentTitle"] == "Team board"
    assert dom["title"]["text"] == "Team board"
    assert dom["message"]["text"] == "No users are watched."


def test_the_page_says_when_the_bridge_is_unreachable(board_server: BoardServer, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/"

    dom = _run_page(board_server, tmp_path, base=closed)

    assert dom["message"]["hidden"] is False
    assert "not reachable" in dom["message"]["text"]


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.integration
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's /usr/bin/chromium is not installed")
def test_chromium_shows_the_hostile_note_as_text(board_server: BoardServer, tmp_path: Path) -> None:
    board_server.users = [make_entry("bob", status="busy", note=HOSTILE_NOTE)]

    done = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            board_server.url + "/",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert HOSTILE_NOTE not in dom


UNWATCHABLE_REASON = "blocked by the user's privacy settings"


def test_the_page_marks_you_and_says_why_a_user_cannot_be_watched(
    board_server: BoardServer, tmp_path: Path
) -> None:
    board_server.users = [
        make_entry("self", name="Alice", is_self=True, status="busy"),
        make_entry("erin", status="offline", watchable=False, unwatchable=UNWATCHABLE_REASON),
        make_entry("bob", status="offline"),
    ]

    dom = _run_page(board_server, tmp_path)

    me, erin, bob = _tiles(dom)
    assert "self" in me["cls"].split()
    assert [c["text"] for c in me["children"][:2]] == ["you", "Alice"]
    assert "you" not in bob["text"]
    assert "cannot" in erin["cls"].split()
    assert "Cannot be watched" in erin["text"]
    assert UNWATCHABLE_REASON in erin["text"]
    assert "Offline" not in erin["text"]  # not an ordinary Offline tile
    assert "Offline" in bob["text"]


def _chromium_dom(url: str, tmp_path: Path) -> str:
    done = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _tile_html(dom: str, marker: str) -> str:
    for tile in re.findall(r"<li class=\"tile[^\"]*\">.*?</li>", dom, re.S):
        if marker in tile:
            return str(tile)
    raise AssertionError(f"no tile with {marker!r} in {dom[-3000:]}")


@pytest.mark.integration
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's /usr/bin/chromium is not installed")
def test_chromium_shows_you_and_the_reason_a_user_cannot_be_watched(
    board_server: BoardServer, tmp_path: Path
) -> None:
    board_server.users = [
        make_entry("self", name="Alice", is_self=True, status="available"),
        make_entry("erin", name="Erin", status="offline", watchable=False, unwatchable=UNWATCHABLE_REASON),
        make_entry("mallory", name="Mallory", status="offline", watchable=False, unwatchable=HOSTILE_NOTE),
    ]

    dom = _chromium_dom(board_server.url + "/", tmp_path)

    me = _tile_html(dom, "Alice")
    assert '<span class="you">you</span><h2 class="name">Alice</h2>' in me
    erin = _tile_html(dom, "Erin")
    assert "Cannot be watched" in erin
    assert UNWATCHABLE_REASON in erin
    assert "Offline" not in erin
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in _tile_html(dom, "Mallory")
    assert HOSTILE_NOTE not in dom


@pytest.mark.integration
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's /usr/bin/chromium is not installed")
def test_chromium_opens_a_token_protected_board_from_the_token_link(tmp_path: Path) -> None:
    from bridge.http import HttpServer
    from bridge.metrics import Metrics

    token = "Tk9-board-t0ken-Zq8x"
    server = HttpServer(
        "127.0.0.1",
        0,
        health=lambda: HealthReport(True, {"mqtt": "connected", "cwa": "online"}),
        metrics=Metrics(),
        board=lambda: [make_entry("bob", name="Bob", note="Back at 3pm")],
        token=token,
    )
    with server:
        dom = _chromium_dom(f"{server.url}/?token={token}", tmp_path)

    # The page loaded after the redirect, and its own polls passed with the cookie.
    assert "Back at 3pm" in _tile_html(dom, "Bob")
    assert re.search(r'<p class="message" id="message" hidden[^>]*></p>', dom), dom[-2000:]
