"""``cwa.resync_s`` and ``cwa.command_ttl_s``: defaults, 0 = never for resync, errors naming the key."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bridge.config import Settings
from bridge.errors import ConfigError
from tests.support.config import BASE_YAML


def _cwa(extra: str) -> str:
    return BASE_YAML.replace("cwa:\n", "cwa:\n" + extra, 1)


def test_defaults_and_values(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    assert (settings.cwa.resync_s, settings.cwa.command_ttl_s) == (1800, 120)
    settings = make_settings(_cwa("  resync_s: 0\n  command_ttl_s: 30\n"))
    assert (settings.cwa.resync_s, settings.cwa.command_ttl_s) == (0, 30)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("  resync_s: -1\n", "cwa.resync_s: must be greater than or equal to 0"),
        ("  command_ttl_s: 0\n", "cwa.command_ttl_s: must be greater than 0"),
        ("  resync_s: often\n", "cwa.resync_s:"),
    ],
)
def test_bad_values_name_the_key(make_settings: Callable[..., Settings], extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_settings(_cwa(extra))
    assert message in str(info.value)
