"""The ``http:`` keys new in 0.2: ``token`` / ``token_file`` (a secret like the passwords) and
``allowed_hosts``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.config import Settings
from bridge.errors import ConfigError
from tests.support.bridge import BridgeProcess
from tests.support.config import BASE_YAML, PASSWORD_ENV

MakeSettings = Callable[..., Settings]
TOKEN = "Tk9-board-t0ken-Zq8x"


def test_the_token_comes_from_the_file_and_is_redacted(make_settings: MakeSettings) -> None:
    s = make_settings(BASE_YAML + f"http: {{token: {TOKEN}}}\n", env=PASSWORD_ENV)

    assert s.http.token is not None
    assert s.http.token.get_secret_value() == TOKEN
    assert TOKEN not in s.redacted_yaml()
    assert "token: '**********'" in s.redacted_yaml()
    assert TOKEN not in repr(s)


def test_the_token_comes_from_token_file_env_or_systemd_credential(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    from_file = make_settings(BASE_YAML + f"http: {{token_file: {tmp_path / 'token'}}}\n", env=PASSWORD_ENV)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "http_token").write_text(TOKEN + "-cred\n")
    from_cred = make_settings(env={**PASSWORD_ENV, "CREDENTIALS_DIRECTORY": str(creds)})
    from_env = make_settings(env={**PASSWORD_ENV, "CWA2MQTT_HTTP__TOKEN": TOKEN + "-env"})

    assert from_file.http.token is not None
    assert from_file.http.token.get_secret_value() == TOKEN
    assert from_cred.http.token is not None
    assert from_cred.http.token.get_secret_value() == TOKEN + "-cred"
    assert from_env.http.token is not None
    assert from_env.http.token.get_secret_value() == TOKEN + "-env"
    assert make_settings(env=PASSWORD_ENV).http.token is None


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("short", "http.token: must be at least 16 printable ASCII characters without spaces"),
        ("'with a space in it, long enough'", "http.token: must be at least 16 printable ASCII"),
        ("''", "http.token: must not be empty"),
    ],
)
def test_a_weak_or_malformed_token_is_refused_naming_the_key(
    make_settings: MakeSettings, token: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(BASE_YAML + f"http: {{token: {token}}}\n", env=PASSWORD_ENV)

    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems
    assert all("long enough" not in p for p in caught.value.problems)


def test_allowed_hosts_from_the_file_or_the_environment(make_settings: MakeSettings) -> None:
    from_file = make_settings(BASE_YAML + "http: {allowed_hosts: [Board.Example.org]}\n", env=PASSWORD_ENV)
    from_list = make_settings(env={**PASSWORD_ENV, "CWA2MQTT_HTTP__ALLOWED_HOSTS": "a.lan, b.lan"})
    from_json = make_settings(env={**PASSWORD_ENV, "CWA2MQTT_HTTP__ALLOWED_HOSTS": '["c.lan"]'})

    assert from_file.http.allowed_hosts == ("board.example.org",)
    assert from_list.http.allowed_hosts == ("a.lan", "b.lan")
    assert from_json.http.allowed_hosts == ("c.lan",)
    assert make_settings(env=PASSWORD_ENV).http.allowed_hosts == ()


def test_an_allowed_host_written_as_a_url_is_refused(make_settings: MakeSettings) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(BASE_YAML + "http: {allowed_hosts: ['http://board.lan/']}\n", env=PASSWORD_ENV)

    assert caught.value.problems == [
        "http.allowed_hosts: 'http://board.lan/' is not a host name (no scheme, path or spaces, "
        "e.g. board.example.org)"
    ]


def test_check_config_never_prints_the_token(
    run_bridge: Callable[..., BridgeProcess], tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(BASE_YAML + f"http: {{token: {TOKEN}, allowed_hosts: [board.lan]}}\n")

    process = run_bridge("check-config", "--config", str(config), env=PASSWORD_ENV)

    assert process.wait(30) == 0, process.output()
    assert TOKEN not in process.output()
    assert "token: '**********'" in process.output()
    assert "board.lan" in process.output()
