"""The documentation a user reads matches the code: config reference, quick start, CI entry."""

from __future__ import annotations

import re
from pathlib import Path

from bridge.config import config_reference_markdown
from scripts.gen_docs import readme_block, render_readme

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_config_reference_is_generated_from_the_code() -> None:
    reference = config_reference_markdown()
    assert readme_block(reference) in README, "README's config reference is stale: run `make docs`"
    assert render_readme(README, reference) == README


def test_every_config_section_is_in_the_readme() -> None:
    for section in ("cwa", "watch[]", "mqtt", "homeassistant", "http", "log", "lights[]"):
        assert f"`{section}`" in README


def test_quick_start_has_exactly_the_two_commands_and_they_exist() -> None:
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^make (\w+)", quick, flags=re.MULTILINE)
    assert commands == ["demo", "test"]
    makefile = (ROOT / "Makefile").read_text()
    for target in commands:
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_topic_table_names_every_contract_topic() -> None:
    for topic in (
        "<base>/bridge/state",
        "<base>/bridge/cwa",
        "<base>/bridge/info",
        "<base>/bridge/devices",
        "<base>/<id>/availability",
        "<base>/self/set",
        "<base>/self/set/status",
        "<base>/self/set/note",
        "<base>/bridge/request/refresh",
        "<base>/bridge/request/health_check",
        "<base>/bridge/response/<op>",
        "<base>/lights/<name>/set",
    ):
        assert f"`{topic}`" in README, topic
