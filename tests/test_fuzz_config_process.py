"""Bad configs through the real program (issue 7): exit 78 and a precise message, never a traceback.

`tests/test_config_fuzz.py` fuzzes `check-config` in-process; this runs a handful of generated bad
configs through `python -m bridge check-config` and `run`, where a traceback would really reach
the user (logging set-up, imports and the exit path are all real here).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.bridge import PASSWORD, BridgeProcess

pytestmark = pytest.mark.integration

VALID: dict[str, Any] = {
    "cwa": {
        "url": "https://cwa.example.org",
        "username": "EXAMPLE\\alice",
        "password": PASSWORD,
        "uri": "sip:alice@example.org",
    },
    "watch": ["sip:bob@example.org"],
    "mqtt": {"url": "mqtt://127.0.0.1:1"},
    "http": {"listen": ""},
}
REQUIRED = [("cwa", "url"), ("cwa", "username"), ("cwa", "uri"), ("cwa", "password")]
# (section, key, values that are wrong there): wrong types, out of range, empty, huge, odd text.
WRONG: list[tuple[str, str, list[Any]]] = [
    ("cwa", "url", ["", -1, [], "ftp://x", "\x00"]),
    ("cwa", "timeout_s", [-1, 10**30, "", [], "1e999x"]),
    ("cwa", "auth", ["kerberos", 7, None, "ü" * 300]),
    ("mqtt", "url", ["", -1, "http://h", {}]),
    ("mqtt", "qos", [7, -1, "one", 1.5e308]),
    ("mqtt", "output", ["xml", None, []]),
]


def _broken(seed: int) -> str:
    """A valid config given one or two generated problems, or its YAML damaged."""
    rng = random.Random(seed)
    doc: dict[str, Any] = yaml.safe_load(yaml.safe_dump(VALID))
    if seed % 3 == 2:
        text = yaml.safe_dump(doc)
        return text[: rng.randrange(len(text) // 2, len(text))] + rng.choice(["\t:", "[", "{{", "- : -"])
    if seed % 3 == 0:
        section, key = rng.choice(REQUIRED)
        del doc[section][key]
    for _ in range(rng.randint(1, 2)):
        section, key, values = rng.choice(WRONG)
        doc[section][key] = rng.choice(values)
    return yaml.safe_dump(doc)


@pytest.mark.parametrize("seed", range(4))
def test_bad_configs_exit_78_without_a_traceback(
    seed: int, tmp_path: Path, run_bridge: Callable[..., BridgeProcess]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(_broken(seed), encoding="utf-8")
    for command in ("check-config", "run"):
        process = run_bridge(command, "-c", str(path))
        assert process.wait(timeout=30) == 78, (command, path.read_text(), process.output())
        output = process.output()
        assert "Traceback" not in output, output
        assert "invalid configuration" in output, output
        assert PASSWORD not in output, output
