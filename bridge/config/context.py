"""What one `load_settings` call reads: the environment mapping and the parsed file.

pydantic-settings builds `Settings` without arguments, so its sources (and the password
resolution, which needs ``$CREDENTIALS_DIRECTORY``) find the caller's inputs here, in a context
variable: that is how a caller or a test passes an explicit environment instead of ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LoadContext:
    env: Mapping[str, str]
    document: Mapping[str, Any]
    defaults: Mapping[str, Any] = field(default_factory=dict)  # the packaging defaults file


CONTEXT: ContextVar[LoadContext | None] = ContextVar("cwa2mqtt_config_load", default=None)


def current() -> LoadContext:
    """The inputs of the running load; outside one (a model built in code) ``os.environ`` and no file."""
    return CONTEXT.get() or LoadContext(env=os.environ, document={})
