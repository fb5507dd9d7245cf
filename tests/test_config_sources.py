"""Where the configuration comes from, as `cwa2mqtt check-config` shows it: the user's variables,
the user's file, the packaging defaults file, the built-in defaults; what it says when no file
was found; and the warnings about a valid configuration (secrets others can read, plain http)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from bridge.simulator import Simulator
from tests.support.bridge import USERS, BridgeProcess, config_dict, write_config
from tests.support.config import BASE_YAML, PASSWORD_ENV
from tests.support.mqtt import Broker

pytestmark = pytest.mark.integration
RunBridge = Callable[..., BridgeProcess]


def check_config(run_bridge: RunBridge, *args: str, env: dict[str, str]) -> tuple[int, str]:
    process = run_bridge("check-config", *args, env=env)
    return process.wait(60), process.output()


def effective(output: str) -> dict[str, object]:
    """The printed effective config (the lines after the auth explanation)."""
    lines = [line for line in output.splitlines() if not line.startswith("cwa2mqtt:")]
    loaded = yaml.safe_load("\n".join(lines))
    assert isinstance(loaded, dict)
    return loaded


def test_packaging_defaults_sit_below_the_users_file_and_variables(
    run_bridge: RunBridge, tmp_path: Path
) -> None:
    defaults = tmp_path / "image-defaults.yaml"
    defaults.write_text('http: {listen: "0.0.0.0:8099"}\nlog: {level: debug}\n')
    env = {**PASSWORD_ENV, "CWA2MQTT_DEFAULTS_FILE": str(defaults)}
    config = tmp_path / "config.yaml"

    config.write_text(BASE_YAML)
    code, out = check_config(run_bridge, "-c", str(config), env=env)
    assert code == 0, out
    assert effective(out)["http"]["listen"] == "0.0.0.0:8099"  # the packaging default applies...
    assert effective(out)["log"] == {"level": "debug", "format": "text", "changes": True}  # ...key by key

    config.write_text(BASE_YAML + "http: {listen: '127.0.0.1:9001'}\n")
    code, out = check_config(run_bridge, "-c", str(config), env=env)
    assert code == 0, out
    assert effective(out)["http"]["listen"] == "127.0.0.1:9001"  # the user's file wins over it

    code, out = check_config(
        run_bridge, "-c", str(config), env={**env, "CWA2MQTT_HTTP__LISTEN": "127.0.0.1:9002"}
    )
    assert code == 0, out
    assert effective(out)["http"]["listen"] == "127.0.0.1:9002"  # the user's variable wins over both


def test_a_broken_packaging_defaults_file_is_named(run_bridge: RunBridge, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(BASE_YAML)
    defaults = tmp_path / "image-defaults.yaml"
    defaults.write_text("http: {lisen: x}\n")
    code, out = check_config(
        run_bridge, "-c", str(config), env={**PASSWORD_ENV, "CWA2MQTT_DEFAULTS_FILE": str(defaults)}
    )
    assert code == 78
    assert f"  {defaults} (packaging defaults): http.lisen: unknown key (did you mean 'listen'?)" in out
    code, out = check_config(
        run_bridge, "-c", str(config), env={**PASSWORD_ENV, "CWA2MQTT_DEFAULTS_FILE": str(tmp_path / "gone")}
    )
    assert code == 78
    assert f"  CWA2MQTT_DEFAULTS_FILE: {tmp_path / 'gone'}: config file not found" in out


def test_without_a_file_it_says_so_and_where_it_looked(run_bridge: RunBridge, tmp_path: Path) -> None:
    if Path("/etc/cwa2mqtt/config.yaml").exists():
        pytest.skip("/etc/cwa2mqtt/config.yaml exists on this machine")
    code, out = check_config(run_bridge, env={"CWA2MQTT_CWA__URI": "alice", "CWA2MQTT_MQTT__URLL": "x"})
    assert code == 78
    assert out.splitlines() == [
        "cwa2mqtt: invalid configuration (6 problems):",
        f"  no config file found (looked at $CWA2MQTT_CONFIG: not set, {tmp_path / 'config.yaml'}, "
        "/etc/cwa2mqtt/config.yaml; give one with -c FILE), so only CWA2MQTT_* environment variables "
        "and defaults were read",
        "  cwa.url: required",
        "  cwa.username: required",
        "  cwa.password: required (set cwa.password, cwa.password_file, CWA2MQTT_CWA__PASSWORD "
        "or the credential cwa_password)",
        "  CWA2MQTT_CWA__URI: not a SIP URI (expected sip:user@domain)",
        "  CWA2MQTT_MQTT__URLL: unknown environment variable (did you mean CWA2MQTT_MQTT__URL?)",
    ]


def test_secrets_others_can_read_and_plain_http_sign_in_are_warned_about(
    run_bridge: RunBridge, tmp_path: Path
) -> None:
    password_file = tmp_path / "cwa_password"
    password_file.write_text("Zq8-cwa-pa55word!\n")
    password_file.chmod(0o640)
    config = tmp_path / "config.yaml"
    config.write_text(
        "cwa:\n  url: http://cwa.example.org\n  username: EXAMPLE\\alice\n  uri: sip:alice@example.org\n"
        f"  password_file: {password_file}\nmqtt:\n  password: 'Mq7-broker-s3cret?'\n"
    )
    config.chmod(0o644)
    code, out = check_config(run_bridge, "-c", str(config), env={})
    assert code == 0, out
    reason = "holds a secret and is readable by group or others; chmod 600"
    assert [line for line in out.splitlines() if line.startswith("cwa2mqtt: warning:")] == [
        f'cwa2mqtt: warning: config.insecure_permissions path={password_file} mode=0640 reason="{reason} '
        f'{password_file}"',
        f'cwa2mqtt: warning: config.insecure_permissions path={config} mode=0644 reason="{reason} {config}"',
        'cwa2mqtt: warning: config.plain_http_sign_in url=http://cwa.example.org reason="forms sign-in sends '
        'cwa.password in clear over http://; use https://"',
    ]
    password_file.chmod(0o600)
    config.chmod(0o600)
    code, out = check_config(run_bridge, "-c", str(config), env={})
    assert code == 0, out
    assert [line for line in out.splitlines() if "insecure_permissions" in line] == []


def test_run_warns_at_start_about_a_config_file_others_can_read(
    make_simulator: Callable[..., Simulator], mosquitto: Broker, run_bridge: RunBridge, tmp_path: Path
) -> None:
    sim = make_simulator(users=list(USERS), poll_wait_ms=50)
    config = write_config(tmp_path / "config.yaml", config_dict(sim, mosquitto.url, "advice"))
    config.chmod(0o604)
    bridge = run_bridge("run", "-c", str(config))
    bridge.wait_output("bridge.ready")
    assert (
        f'WARNING config.insecure_permissions path={config} mode=0604 reason="holds a secret and is readable '
        f'by group or others; chmod 600 {config}"'
    ) in bridge.output()
    assert "config.plain_http_sign_in" not in bridge.output()  # the simulator is on this machine
    bridge.signal(signal.SIGTERM)
    assert bridge.wait(20) == 0
