"""The ``cwa2mqtt`` command as a user runs it (interface.md §2): output, exit codes, no tracebacks."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from bridge import __version__
from bridge.cli import main
from bridge.config import Settings
from tests.support.config import BASE_YAML, CWA_PASSWORD, ENV_ONLY, MQTT_PASSWORD, PASSWORD_ENV

pytestmark = pytest.mark.integration
COMMANDS = ("run", "check-config", "demo", "simulate", "health")


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real program with a clean CWA2MQTT_* environment."""
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("CWA2MQTT_")}
    base.pop("CREDENTIALS_DIRECTORY", None)
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        env={**base, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    out = result.stdout + result.stderr
    assert "Traceback" not in out
    assert CWA_PASSWORD not in out
    assert MQTT_PASSWORD not in out


@pytest.fixture(autouse=True)
def _restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.upper().startswith("CWA2MQTT_") or key == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(key)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def test_version(tmp_path: Path) -> None:
    result = cli("--version", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, f"cwa2mqtt {__version__}\n")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"usage: cwa2mqtt {command}" in out
    assert "example" in out
    assert f"cwa2mqtt {command}" in out.split("example", 1)[1]


def test_top_level_help_lists_the_commands(tmp_path: Path) -> None:
    result = cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout
    assert cli(cwd=tmp_path).returncode == 2  # no command: usage, not a crash


def test_check_config_prints_the_redacted_config(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(BASE_YAML + "mqtt: {username: bridge}\n")
    result = cli(
        "check-config",
        env={**PASSWORD_ENV, "CWA2MQTT_MQTT__PASSWORD": MQTT_PASSWORD, "CWA2MQTT_LOG__LEVEL": "debug"},
        cwd=tmp_path,
    )
    assert_clean(result)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("password: '**********'") == 2
    assert "  level: debug\n" in result.stdout  # env overrides and is shown as effective config
    assert "- uri: sip:bob@example.org\n  id: bob\n" in result.stdout


def test_check_config_lists_every_problem_and_exits_78(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        BASE_YAML.replace("uri: sip:alice", "uri: alice")
        + f"  - sip:bob@other.org\n  - {{uri: sip:x@example.org, id: self}}\nmqtt:\n  base_topic: a/#\n"
        f"  output: attributes\n  pasword: {MQTT_PASSWORD}\nlog: {{level: loud}}\n"
        "lights:\n  - {name: door, watch: [bob, zed], preset: wled, device: door, colors: {busy: red}}\n"
        "  - {name: door, watch: [carol], preset: raw, device: x}\n"
    )
    result = cli(
        "check-config",
        "-c",
        str(bad),
        env={**PASSWORD_ENV, "CWA2MQTT_MQTT__KEEPALIVE_S": "soon"},
        cwd=tmp_path,
    )
    assert_clean(result)
    assert result.returncode == 78
    assert result.stdout == ""
    # One run names them all: types, the variable's value, and every rule across fields, although
    # the sections those rules read are themselves broken.
    assert result.stderr.splitlines() == [
        "cwa2mqtt: invalid configuration (14 problems):",
        "  cwa.uri: not a SIP URI (expected sip:user@domain)",
        "  watch[3].id: 'self' is reserved (set another id)",
        "  CWA2MQTT_MQTT__KEEPALIVE_S: must be a whole number",
        "  mqtt.base_topic: must not contain +, # or NUL",
        "  mqtt.pasword: unknown key (did you mean 'password'?)",
        "  log.level: must be 'debug', 'info', 'warning' or 'error'",
        "  lights[0].colors.busy: not a colour (expected #RRGGBB)",
        "  lights[1].topic: required for preset raw",
        "  lights[1].payload: required for preset raw",
        "  lights[1].device: not used by preset raw (set topic and payload)",
        "  watch[2].id: id 'bob' of sip:bob@other.org clashes with sip:bob@example.org (watch[0])",
        "  homeassistant.discovery: Home Assistant reads the JSON state topic: with discovery on, "
        "mqtt.output must be json or both, not attributes",
        "  lights[0].watch[1]: unknown id 'zed' (known: bob, carol, self)",
        "  lights[1].name: 'door' is already used by lights[0]",
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "cwa: {url: [\n",
            "config.yaml:2:1: YAML syntax error: expected the node content, but found '<stream end>'",
        ),
        ("[1, 2]\n", "config.yaml: the top level must be a mapping of keys, not a list"),
        (b"\xff\xfe bad bytes", "config.yaml: cannot read the config file (not UTF-8 text)"),
    ],
)
def test_check_config_never_shows_a_traceback(
    tmp_path: Path, content: str | bytes, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    assert main(["check-config", "-c", str(path)]) == 78
    err = capsys.readouterr().err
    assert err.splitlines()[1] == f"  {path.parent}/{expected}"
    assert "Traceback" not in err


def test_check_config_from_environment_alone(tmp_path: Path) -> None:
    if Path("/etc/cwa2mqtt/config.yaml").exists():
        pytest.skip("a system config file exists on this machine")
    result = cli("check-config", env=ENV_ONLY, cwd=tmp_path)
    assert_clean(result)
    assert result.returncode == 0, result.stderr
    assert "uri: sip:alice@example.org" in result.stdout
    missing = cli("check-config", env={"CWA2MQTT_CWA__URL": "https://x"}, cwd=tmp_path)
    assert missing.returncode == 78
    assert "  cwa.username: required" in missing.stderr.splitlines()


def test_password_file_and_credentials_directory(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(BASE_YAML)
    (tmp_path / "pw").write_text(CWA_PASSWORD + "\n")
    via_file = cli("check-config", env={"CWA2MQTT_CWA__PASSWORD_FILE": str(tmp_path / "pw")}, cwd=tmp_path)
    assert_clean(via_file)
    assert via_file.returncode == 0, via_file.stderr
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "cwa_password").write_text(CWA_PASSWORD)
    (creds / "mqtt_password").write_text(MQTT_PASSWORD)
    via_creds = cli("check-config", env={"CREDENTIALS_DIRECTORY": str(creds)}, cwd=tmp_path)
    assert_clean(via_creds)
    assert via_creds.returncode == 0, via_creds.stderr
    assert via_creds.stdout.count("password: '**********'") == 2


def test_run_with_bad_config_exits_78_before_starting(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(BASE_YAML)
    result = cli("run", env={"CWA2MQTT_CWA__PASSWORD": ""}, cwd=tmp_path)
    assert_clean(result)
    assert result.returncode == 78
    assert "  CWA2MQTT_CWA__PASSWORD: must not be empty" in result.stderr.splitlines()


def _fake_module(monkeypatch: pytest.MonkeyPatch, name: str, **functions: Any) -> None:
    module = types.ModuleType(name)
    for attr, func in functions.items():
        setattr(module, attr, func)
    monkeypatch.setitem(sys.modules, name, module)


def test_run_hands_the_settings_to_the_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(BASE_YAML + "log: {format: json}\n")
    monkeypatch.setenv("CWA2MQTT_CWA__PASSWORD", CWA_PASSWORD)
    seen: list[Settings] = []

    def run(settings: Settings) -> int:
        seen.append(settings)
        logging.getLogger("bridge.app").info("app.started password=%s", CWA_PASSWORD)
        return 77

    _fake_module(monkeypatch, "bridge.app", run=run)
    assert main(["run", "-c", str(tmp_path / "c.yaml")]) == 77
    assert [w.id for w in seen[0].watch] == ["bob", "carol"]


def test_unexpected_error_is_one_line_without_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "c.yaml").write_text(BASE_YAML)
    monkeypatch.setenv("CWA2MQTT_CWA__PASSWORD", CWA_PASSWORD)

    def run(settings: Settings) -> int:
        raise RuntimeError(f"leaky {settings.cwa.password.get_secret_value()}")

    _fake_module(monkeypatch, "bridge.app", run=run)
    assert main(["run", "-c", str(tmp_path / "c.yaml")]) == 1
    err = capsys.readouterr().err
    assert CWA_PASSWORD not in err
    assert "Traceback" not in err
    [line] = err.splitlines()
    # What failed and why, the secret redacted; the class only as an extra.
    assert line.endswith('ERROR cli.crashed command=run reason="leaky **********" type=RuntimeError')


def test_demo_and_simulate_are_handed_their_options(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any]] = []

    def demo_main(args: Any) -> int:
        calls.append(("demo", args))
        return 0

    def simulator_main(*args: Any) -> int:
        calls.append(("simulate", args))
        return 0

    _fake_module(monkeypatch, "bridge.demo", main=demo_main)
    _fake_module(monkeypatch, "bridge.simulator", cli_main=simulator_main)
    assert (
        main(["demo", "--mqtt-url", "mqtt://127.0.0.1:1", "--http-listen", "127.0.0.1:0", "--no-live"]) == 0
    )
    assert main(["simulate", "--listen", "127.0.0.1:0", "--users", "u.yaml", "--control", "[::1]:9"]) == 0
    assert main(["simulate"]) == 0
    (_, demo_args), (_, sim_args), (_, sim_defaults) = calls
    assert (demo_args.mqtt_url, demo_args.http_listen, demo_args.no_live) == (
        "mqtt://127.0.0.1:1",
        "127.0.0.1:0",
        True,
    )
    assert sim_args == ("127.0.0.1:0", "u.yaml", "[::1]:9")
    assert sim_defaults == (None, None, None)


def test_bad_listen_address_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--listen", "nohostport"]) == 2
    assert "--listen: 'nohostport': expected HOST:PORT" in capsys.readouterr().err


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        body = b'{"mqtt": "connected", "cwa": "online"}' if self.path == "/healthz" else b"{}"
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[str, type[_Health]]]:
    handler = type("Handler", (_Health,), {"status": 200})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_health(health_server: tuple[str, type[_Health]], capsys: pytest.CaptureFixture[str]) -> None:
    url, handler = health_server
    assert main(["health", "--url", url + "/"]) == 0
    assert capsys.readouterr().out == 'healthy: {"mqtt": "connected", "cwa": "online"}\n'
    handler.status = 503
    assert main(["health", "--url", url]) == 1
    assert capsys.readouterr().err == 'unhealthy: HTTP 503 {"mqtt": "connected", "cwa": "online"}\n'


def test_health_of_nothing_listening(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = cli("health", "--url", f"http://127.0.0.1:{port}", cwd=tmp_path)
    assert_clean(result)
    assert result.returncode == 1
    assert (
        result.stderr
        == f"unhealthy: http://127.0.0.1:{port}/healthz unreachable ([Errno 111] Connection refused)\n"
    )
