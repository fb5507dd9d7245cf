"""Name a problem by where its value came from: an environment variable, the user's file, or the
packaging defaults file.

A user who typed ``CWA2MQTT_MQTT__URLL`` must be told about that variable, not about a key
``mqtt.urll`` that is in no file. The sources are searched as the settings are built, highest
priority first: a value set by a variable is the variable's problem; a value only the packaging
defaults hold is that file's; everything else (including a missing key) is named by its key path.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bridge.config.errors import format_loc

Loc = tuple[str | int, ...]


class Origins:
    """Where each value of one load came from; `describe` words a problem accordingly."""

    def __init__(
        self,
        *,
        prefix: str,
        env: Mapping[str, str],
        env_tree: Mapping[str, Any],
        document: Mapping[str, Any],
        defaults: Mapping[str, Any],
        defaults_file: Path | None,
        env_names: Sequence[str],
    ) -> None:
        self._env_tree = env_tree
        self._document = document
        self._defaults = defaults
        self._defaults_file = defaults_file
        self._env_names = env_names
        self._vars: dict[tuple[str, ...], str] = {}
        for key in env:
            if key.upper().startswith(prefix):
                self._vars[tuple(key[len(prefix) :].lower().split("__"))] = key

    def describe(self, loc: Loc, message: str, *, unknown_key: bool = False) -> str:
        """``VAR: msg``, ``VAR: key.path: msg``, ``FILE (packaging defaults): key.path: msg`` or
        ``key.path: msg``."""
        var = self._variable(loc)
        if var is not None:
            name, depth = var
            if unknown_key and depth == len(loc):
                close = difflib.get_close_matches(name.upper(), self._env_names, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                return f"{name}: unknown environment variable{hint}"
            return f"{name}: {message}" if depth == len(loc) else f"{name}: {format_loc(loc)}: {message}"
        if self._defaults_file and _reaches(self._defaults, loc) and not _reaches(self._document, loc):
            return f"{self._defaults_file} (packaging defaults): {format_loc(loc)}: {message}"
        return f"{format_loc(loc)}: {message}"

    def _variable(self, loc: Loc) -> tuple[str, int] | None:
        if not loc or not _reaches(self._env_tree, loc, fold=True):
            return None
        parts = [str(p).lower() for p in loc]
        for depth in range(len(parts), 0, -1):
            if any(isinstance(p, int) for p in loc[:depth]):
                continue
            name = self._vars.get(tuple(parts[:depth]))
            if name is not None:
                return name, depth
        return None


def _reaches(tree: Any, loc: Loc, *, fold: bool = False) -> bool:
    """Whether `tree` holds a value at `loc` (or a scalar above it, e.g. a comma-separated list)."""
    node = tree
    for part in loc:
        if isinstance(node, Mapping):
            key = part.lower() if fold and isinstance(part, str) else part
            if key not in node:
                return False
            node = node[key]
        elif isinstance(node, list):
            if not isinstance(part, int) or part >= len(node):
                return False
            node = node[part]
        else:
            return True
    return True


def merged(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """The layers merged as the settings sources are, the last one winning, mappings key by key."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = merged(out[key], value)
            else:
                out[key] = value
    return out
