"""Regenerate the config reference (docs/config-reference.md and its copy in README.md).

Run with ``make docs``. tests/test_docs.py fails when either copy drifts from the code.
"""

from __future__ import annotations

import re
from pathlib import Path

from bridge.config import config_reference_markdown

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def readme_block(reference: str) -> str:
    """The reference as a README subsection: no title, headings one level down."""
    lines = [line for line in reference.splitlines() if not line.startswith("# ")]
    body = "\n".join(re.sub(r"^(#+) ", r"#\1 ", line) for line in lines).strip()
    return f"{START}\n{body}\n{END}"


def render_readme(readme: str, reference: str) -> str:
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    return pattern.sub(lambda _: readme_block(reference), readme)


def main() -> None:
    reference = config_reference_markdown()
    (ROOT / "docs" / "config-reference.md").write_text(reference)
    readme = ROOT / "README.md"
    readme.write_text(render_readme(readme.read_text(), reference))


if __name__ == "__main__":
    main()
