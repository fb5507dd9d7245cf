"""The config file reads the same whether PyYAML parses it in C (libyaml) or in pure Python.

`bridge.config.document` parses with libyaml when PyYAML has it (a 10,000-user watch list in a
fraction of the time) and words every refusal as pure-Python PyYAML does. A user must not be
able to tell which one ran: the same document, or the same message with the same line and column.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.config import document
from bridge.errors import ConfigError

pytestmark = pytest.mark.skipif(document._FastLoader is None, reason="PyYAML built without libyaml")

# Characters and snippets where YAML parsers tend to differ: indicators, tabs, odd line breaks,
# byte-order marks, tags, anchors, block scalars, directives, and the scalars the resolvers treat
# specially (the bridge reads ``18:00`` as a string, not as sexagesimal 1080).
PIECES = [
    *"-?:[]{},#&*!|>'\"%@` \t\n\r.0123456789abxy_~\\",
    "é",
    "\ufeff",
    "\x85",
    "\u2028",
    "...",
    "---",
    "!!str ",
    "!!int ",
    "! ",
    "&a ",
    "*a",
    "<<: ",
    "0x1F",
    "1_000",
    "18:00",
    "1e3",
    ".inf",
    "yes",
    "null",
    "\n  ",
    "\n- ",
    ": ",
    "|#",
    ">-\n  ",
    "%YAML 1.2\n",
    "2020-02-30",
    "cwa:\n  url: https://h/cwa?x=1\n",
    "watch:\n  - {uri: 'sip:a@b', id: a}\n",
]
SAMPLE = (
    "cwa:\n  url: https://cwa.example.org/cwa\n  username: alice\n  password: 'p@ss: #1'\n"
    "watch:\n  - uri: sip:bob@example.org\n    id: bob\n  - {uri: 'sip:carol@example.org', id: carol}\n"
    "mqtt:\n  url: mqtt://127.0.0.1:1883\n  base_topic: cwa\n"
    "lights:\n  schedule: {from: 08:00, to: 18:00}\n  note: |\n    two\n    lines\n"
)


def _read(path: Path, fast: bool) -> tuple[str, Any]:
    with mock.patch.object(document, "_FastLoader", document._FastLoader if fast else None):
        try:
            return "document", document.read_document(path)
        except ConfigError as exc:
            return "refused", exc.problems
        except Exception as exc:
            return "raised", f"{type(exc).__name__}: {exc}"


def _same(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    fast, pure = _read(path, True), _read(path, False)
    # repr: a NaN read from ``.nan`` equals nothing, not even itself
    assert repr(fast) == repr(pure), text


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("libyaml") / "config.yaml"


@settings(max_examples=300)
@given(pieces=st.lists(st.sampled_from(PIECES), max_size=30))
def test_yaml_like_text_reads_the_same(config_file: Path, pieces: list[str]) -> None:
    _same(config_file, "".join(pieces))


@settings(max_examples=200)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(SAMPLE)), st.integers(0, 3), st.sampled_from(PIECES)), max_size=4
    )
)
def test_an_edited_config_reads_the_same(config_file: Path, edits: list[tuple[int, int, str]]) -> None:
    text = SAMPLE
    for at, cut, piece in edits:
        text = text[:at] + piece + text[at + cut :]
    _same(config_file, text)


@pytest.mark.parametrize(
    "text",
    [
        SAMPLE,
        "cwa: {url: x\n",  # refused: libyaml words it "did not find expected ',' or '}'"
        "log: {}\nlog: {}\n",  # duplicate key, found by the bridge's own constructor
        "a: !\nb: ! ''\nc: !!str 1\n",  # a bare ``!`` tag means "untagged" to PyYAML
        "a: x\ty\n",  # PyYAML refuses a tab in a plain scalar, libyaml keeps it
        "a: 1\n\ufeffb: 2\n",  # libyaml skips a byte-order mark at a line's start
        "a: |#c\n  x\n",  # PyYAML wants a space before a block scalar's comment
        "a: {url: https://h/x?y=1}\n",  # PyYAML ends a flow plain scalar at '?'
        "t: 18:00\nn: 0x1F\nf: 1_000.5\ne: 1e3\n",
    ],
)
def test_known_differences_of_the_parsers_do_not_show(config_file: Path, text: str) -> None:
    _same(config_file, text)


def test_a_10000_user_watch_list_reads_the_same(config_file: Path) -> None:
    watch = [{"uri": f"sip:user{i:05d}@example.org", "id": f"user{i:05d}"} for i in range(10_000)]
    text = "cwa:\n  url: https://cwa.example.org/cwa\nwatch:\n" + "".join(
        f"- uri: {w['uri']}\n  id: {w['id']}\n" for w in watch
    )
    config_file.write_text(text, encoding="utf-8")
    kind, parsed = _read(config_file, True)
    assert kind == "document"
    assert parsed["watch"] == watch


@pytest.mark.parametrize("text", ["cwa: " + "[" * 100_000, "cwa: " + "{a: " * 100_000, "- " * 100_000 + "x"])
def test_absurdly_deep_nesting_is_a_config_error_not_a_crash(tmp_path: Path, text: str) -> None:
    # libyaml's own composer recurses in C: 100,000 levels overflowed the stack (SIGSEGV).
    path = tmp_path / "deep.yaml"
    path.write_text(text + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "check-config", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 78, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
