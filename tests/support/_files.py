"""Plain helpers shared by the support plugins (not a plugin itself: no fixtures here)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


def config_file(path: Path, config: Mapping[str, Any] | str) -> Path:
    """The one config writer of the tests: YAML text as given, or a mapping dumped as YAML."""
    text = config if isinstance(config, str) else yaml.safe_dump(dict(config))
    path.write_text(text, encoding="utf-8")
    return path
