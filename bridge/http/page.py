"""The presence board page, bridge/web/board.html, with its Content-Security-Policy."""

from __future__ import annotations

import base64
import hashlib
import html
import re
from importlib import resources

from bridge.lights.spec import DEFAULT_PALETTE


class BoardPage:
    """The board HTML with the title filled in and a CSP that admits exactly its inline code."""

    _SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
    _STYLE = re.compile(r"<style>(.*?)</style>", re.S)

    def __init__(self, title: str) -> None:
        template = resources.files("bridge").joinpath("web", "board.html").read_text(encoding="utf-8")
        # The status colours are the lights' palette (one palette for lights, colour topics and board).
        for status, color in DEFAULT_PALETTE.items():
            template = template.replace("{{%s}}" % status.value, color)  # noqa: UP031  # braces
        # The title is the only other substitution, escaped for HTML text.
        self.body = template.replace("{{title}}", html.escape(title)).encode("utf-8")
        scripts = " ".join(self._hash(s) for s in self._SCRIPT.findall(template))
        styles = " ".join(self._hash(s) for s in self._STYLE.findall(template))
        # Defence in depth behind textContent: even an injected <script> could not run.
        self.csp = (
            f"default-src 'none'; script-src {scripts}; style-src {styles}; connect-src 'self'; "
            "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )

    @staticmethod
    def _hash(source: str) -> str:
        digest = hashlib.sha256(source.encode("utf-8")).digest()
        return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"
