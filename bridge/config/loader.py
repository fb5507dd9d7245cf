"""`load_settings`: find the file, read it and the environment, validate, report every problem.

Every problem pydantic finds becomes a ``key.path: message`` line (`bridge.config.errors`), and
an unknown ``CWA2MQTT_*`` variable is one too, like an unknown key in the file; all of them are
raised at once as `ConfigError`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import SettingsError

from bridge.config.context import CONTEXT, LoadContext
from bridge.config.document import read_document
from bridge.config.errors import format_errors
from bridge.config.settings import ENV_PREFIX, SECTIONS, Settings
from bridge.errors import ConfigError

DEFAULT_PATHS: tuple[Path, ...] = (Path("config.yaml"), Path("/etc/cwa2mqtt/config.yaml"))
# CWA2MQTT_* variables that are not settings (so not "unknown environment variable"):
# the config path, and CWA2MQTT_TEST_* knobs of the test suite, which child processes inherit.
NON_SETTING_ENV = frozenset({"config"})
NON_SETTING_ENV_PREFIX = "test_"


def find_config_file(path: str | Path | None, env: Mapping[str, str]) -> Path | None:
    """``-c`` path, else ``$CWA2MQTT_CONFIG``, else the first existing default path (§2)."""
    if path is not None and str(path) != "":
        return Path(path)
    if env.get("CWA2MQTT_CONFIG"):
        return Path(env["CWA2MQTT_CONFIG"])
    # Looked up on the package at call time: `bridge.config.DEFAULT_PATHS` is the public name, and
    # the one a test replaces so that a config.yaml in the real cwd or /etc cannot leak in.
    import bridge.config  # noqa: PLC0415

    return next((p for p in bridge.config.DEFAULT_PATHS if p.is_file()), None)


def load_settings(path: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> Settings:
    """Load and validate; raises `ConfigError` listing every problem with its key path."""
    env_map = dict(os.environ if env is None else env)
    file = find_config_file(path, env_map)
    document = {} if file is None else read_document(file)
    problems = _unknown_env(env_map)
    token = CONTEXT.set(LoadContext(env=env_map, document=document))
    try:
        settings = Settings()  # values come from the sources
    except ValidationError as exc:
        problems += format_errors(exc, Settings)
    except SettingsError as exc:
        field = re.search(r'field "([^"]+)"', str(exc))
        name = field.group(1) if field else "?"
        problems.append(f"{name}: cannot parse {ENV_PREFIX}{name.upper()} (expected JSON)")
    finally:
        CONTEXT.reset(token)
    if problems:
        raise ConfigError(problems) from None
    return settings


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
