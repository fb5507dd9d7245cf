"""`load_settings`: find the file, read it and the environment, validate, report every problem.

Every problem is found in one pass and raised at once as `ConfigError`, one ``key.path: message``
line each: the file's syntax, each value's type (`bridge.config.errors`), an unknown ``CWA2MQTT_*``
variable, and the rules across fields (`bridge.config.crosscheck`, applied to the raw input too,
so that a type error elsewhere does not hide them). A problem whose value came from a variable is
named by the variable (`bridge.config.origin`). When no file was found, the first line says so
and where the bridge looked.

Precedence, highest first: the user's environment, the user's file, the packaging defaults file
(``$CWA2MQTT_DEFAULTS_FILE``, e.g. a container image's listen address), the built-in defaults.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from bridge.config.context import CONTEXT, LoadContext
from bridge.config.crosscheck import raw_problems
from bridge.config.document import read_document
from bridge.config.errors import error_items
from bridge.config.origin import Origins, merged
from bridge.config.settings import ENV_PREFIX, SECTIONS, Settings, _EnvSource
from bridge.errors import ConfigError

DEFAULT_PATHS: tuple[Path, ...] = (Path("config.yaml"), Path("/etc/cwa2mqtt/config.yaml"))
DEFAULTS_FILE_ENV = ENV_PREFIX + "DEFAULTS_FILE"
# CWA2MQTT_* variables that are not settings (so not "unknown environment variable"): the config
# path, the packaging defaults file, and CWA2MQTT_TEST_* knobs of the test suite, which child
# processes inherit.
NON_SETTING_ENV = frozenset({"config", "defaults_file"})
NON_SETTING_ENV_PREFIX = "test_"


def find_config_file(path: str | Path | None, env: Mapping[str, str]) -> Path | None:
    """``-c`` path, else ``$CWA2MQTT_CONFIG``, else the first existing default path."""
    if path is not None and str(path) != "":
        return Path(path)
    if env.get("CWA2MQTT_CONFIG"):
        return Path(env["CWA2MQTT_CONFIG"])
    # Looked up on the package at call time: `bridge.config.DEFAULT_PATHS` is the public name, and
    # the one a test replaces so that a config.yaml in the real cwd or /etc cannot leak in.
    import bridge.config  # noqa: PLC0415

    return next((p for p in bridge.config.DEFAULT_PATHS if p.is_file()), None)


def no_file_found() -> str:
    """The line that explains a config without a file: where the bridge looked."""
    import bridge.config  # noqa: PLC0415

    places = ", ".join(str(p if p.is_absolute() else Path.cwd() / p) for p in bridge.config.DEFAULT_PATHS)
    return (
        f"no config file found (looked at $CWA2MQTT_CONFIG: not set, {places}; give one with -c FILE), "
        "so only CWA2MQTT_* environment variables and defaults were read"
    )


def load_settings(path: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> Settings:
    """Load and validate; raises `ConfigError` listing every problem with its key path."""
    env_map = dict(os.environ if env is None else env)
    unreadable: list[str] = []
    file = find_config_file(path, env_map)
    document = _read(file, unreadable, "")
    defaults_path = Path(env_map[DEFAULTS_FILE_ENV]) if env_map.get(DEFAULTS_FILE_ENV) else None
    defaults = _read(defaults_path, unreadable, f"{DEFAULTS_FILE_ENV}: ")
    problems = unreadable + _unknown_env(env_map)
    if unreadable:
        raise ConfigError(problems)  # without the file's values, "required" lines would mislead
    token = CONTEXT.set(LoadContext(env=env_map, document=document, defaults=defaults))
    try:
        settings, found = _validate(env_map, document, defaults, defaults_path)
    finally:
        CONTEXT.reset(token)
    problems += [p for p in found if p not in problems]
    if problems or settings is None:
        if file is None:
            problems.insert(0, no_file_found())
        raise ConfigError(problems) from None
    return settings


def _read(file: Path | None, problems: list[str], label: str) -> dict[str, Any]:
    if file is None:
        return {}
    try:
        return read_document(file)
    except ConfigError as exc:
        problems += [label + p for p in exc.problems]
        return {}


def _validate(
    env: Mapping[str, str],
    document: Mapping[str, Any],
    defaults: Mapping[str, Any],
    defaults_path: Path | None,
) -> tuple[Settings | None, list[str]]:
    """Validate (inside the load context); on failure also apply the cross-field rules to the raw input."""
    try:
        env_tree = _EnvSource(Settings)()
    except SettingsError:
        env_tree = {}
    origins = Origins(
        prefix=ENV_PREFIX,
        env=env,
        env_tree=env_tree,
        document=document,
        defaults=defaults,
        defaults_file=defaults_path,
        env_names=_env_names(),
    )
    try:
        return Settings(), []  # values come from the sources
    except ValidationError as exc:
        found = [
            origins.describe(loc, msg, unknown_key=unknown)
            for loc, msg, unknown in error_items(exc, Settings)
        ]
    except SettingsError as exc:
        field = re.search(r'field "([^"]+)"', str(exc))
        name = field.group(1) if field else "?"
        return None, [f"{ENV_PREFIX}{name.upper()}: cannot parse (expected JSON)"]
    raw = merged(defaults, document, env_tree)
    found += [origins.describe(loc, msg) for loc, msg in raw_problems(raw)]
    return None, list(dict.fromkeys(found))


def _env_names() -> list[str]:
    names = [ENV_PREFIX + name.upper() for name in (*Settings.model_fields, *NON_SETTING_ENV)]
    for section, model, has_env in SECTIONS:
        if has_env:
            names += [f"{ENV_PREFIX}{section.upper()}__{key.upper()}" for key in model.model_fields]
    return names


def _unknown_env(env: Mapping[str, str]) -> list[str]:
    """A mistyped variable (``CWA2MQTT_MQTT_URL``) must not be silently ignored, like a file key."""
    problems = []
    for key in sorted(env):
        if not key.upper().startswith(ENV_PREFIX):
            continue
        top = key[len(ENV_PREFIX) :].split("__", 1)[0].lower()
        if top in Settings.model_fields or top in NON_SETTING_ENV or top.startswith(NON_SETTING_ENV_PREFIX):
            continue
        close = difflib.get_close_matches(key.upper(), _env_names(), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"{key}: unknown environment variable{hint}")
    return problems
