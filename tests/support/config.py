"""Fixtures for configuration tests: a valid base config, a config-file writer and a loader.

Use `make_settings(yaml_text, env=...)` to get a validated `Settings` from YAML text (the password
comes from the environment unless the YAML or `env` set one); `write_config(text)` writes
``config.yaml`` into the test's tmp dir and returns its path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from bridge.config import Settings, load_settings
from tests.support._files import config_file

# Looks like a real password on purpose: tests grep every output for it.
CWA_PASSWORD = "Zq8-cwa-pa55word!"
MQTT_PASSWORD = "Mq7-broker-s3cret?"

BASE_YAML = """\
cwa:
  url: https://cwa.example.org
  username: EXAMPLE\\alice
  uri: sip:alice@example.org
watch:
  - sip:bob@example.org
  - uri: sip:carol.nguyen@example.org
    id: carol
    name: Carol
"""

PASSWORD_ENV: dict[str, str] = {"CWA2MQTT_CWA__PASSWORD": CWA_PASSWORD}

ENV_ONLY: dict[str, str] = {
    "CWA2MQTT_CWA__URL": "https://cwa.example.org",
    "CWA2MQTT_CWA__USERNAME": "EXAMPLE\\alice",
    "CWA2MQTT_CWA__URI": "sip:alice@example.org",
    "CWA2MQTT_CWA__PASSWORD": CWA_PASSWORD,
}


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "config.yaml") -> Path:
        return config_file(tmp_path / name, text)

    return write


@pytest.fixture
def make_settings(write_config: Callable[[str], Path]) -> Callable[..., Settings]:
    def make(text: str = BASE_YAML, env: Mapping[str, str] | None = None) -> Settings:
        return load_settings(write_config(text), env=PASSWORD_ENV if env is None else env)

    return make
