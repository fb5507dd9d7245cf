"""The container image, built and run the way the README's "Container" section says, word for word
(only the host paths, the image and container names, the CWA server and the broker are this test's).

Runs when a container engine (podman, else docker) works and the base image is there or can be
pulled; otherwise it is skipped with the reason. `CWA2MQTT_TEST_BASE_IMAGE` names a locally built
stand-in for python:3.12-slim (passed as --build-arg PYTHON_IMAGE) where the registry is unreachable.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bridge.simulator import Simulator
from tests.support.bridge import ALICE, BOB, PASSWORD, USERS
from tests.support.convergence import eventually, retained_snapshot
from tests.support.mqtt import Broker, wait_port

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = "python:3.12-slim"
README_PORT = 8099  # the README's --network host example keeps the board on the host's 127.0.0.1:8099

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def readme_container_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("### Container\n")
    end = text.index("\n## ", start)
    return text[start:end]


def fenced(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)


def commands(section: str) -> list[str]:
    """Every shell command of the section's sh blocks: continuations joined, comments dropped."""
    out: list[str] = []
    for block in fenced(section, "sh"):
        for line in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"\s+#\s.*$", "", line).strip()
            if command:
                out.append(re.sub(r"\s+", " ", command))
    return out


@dataclass(frozen=True)
class Engine:
    name: str

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.name, *args], capture_output=True, text=True, timeout=timeout, check=False
        )


def _usable_engine() -> Engine:
    for name in ("podman", "docker"):
        if shutil.which(name) is None:
            continue
        probe = Engine(name).run("info", timeout=60)
        if probe.returncode == 0:
            return Engine(name)
        if name == "docker":
            pytest.skip(f"docker is on PATH but does not work: {probe.stderr.strip()[:200]}")
    pytest.skip("no container engine (podman/docker) on PATH")


@pytest.fixture(scope="module")
def engine() -> Engine:
    return _usable_engine()


@pytest.fixture(scope="module")
def base_image(engine: Engine) -> str:
    stand_in = os.environ.get("CWA2MQTT_TEST_BASE_IMAGE")
    image = stand_in or BASE_IMAGE
    if engine.run("image", "inspect", image).returncode == 0:
        return image
    if stand_in:
        pytest.fail(f"CWA2MQTT_TEST_BASE_IMAGE={stand_in} is not an image of {engine.name}")
    try:
        pulled = engine.run("pull", image, timeout=180).returncode == 0
    except subprocess.TimeoutExpired:
        pulled = False
    if not pulled:
        pytest.skip(f"base image {BASE_IMAGE} not available locally and the registry is unreachable")
    return image


@pytest.fixture(scope="module")
def image(engine: Engine, base_image: str) -> Iterator[str]:
    section = readme_container_section()
    (build,) = [c for c in commands(section) if c.startswith(f"{engine.name} build ")]
    tag = f"cwa2mqtt-test-{secrets.token_hex(4)}"
    argv = build.split()[1:]
    argv[argv.index("-t") + 1] = tag
    if base_image != BASE_IMAGE:
        argv[-1:-1] = ["--build-arg", f"PYTHON_IMAGE={base_image}"]
    assert argv[-1] == "."
    argv[-1] = str(ROOT)
    result = engine.run(*argv, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield tag
    engine.run("rmi", "-f", tag)


def _run_argv(engine: Engine, section: str, name: str, tag: str, host_dir: Path) -> list[str]:
    """The README's `docker run` line for this engine, with this test's paths and names."""
    (run,) = [c for c in commands(section) if c.startswith("docker run ")]
    argv = run.replace("/srv/cwa2mqtt", str(host_dir)).split()[1:]
    argv[argv.index("--name") + 1] = name
    assert argv[-1] == "cwa2mqtt"
    argv[-1] = tag
    return argv


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the TCP sockets listening on `port` (the container shares the host's
    network with --network host, so the host's /proc/net shows its sockets)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, _remote, state = line.split()[1:4]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                raw = bytes.fromhex(address)
                # /proc/net/tcp writes each 32-bit word in host (little-endian) order.
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(str(ipaddress.ip_address(words)))
    return found


def _health(engine: Engine, name: str) -> str:
    if engine.name == "podman":
        # podman runs HEALTHCHECKs on a systemd timer; the README says to run it by hand otherwise.
        return "healthy" if engine.run("healthcheck", "run", name).returncode == 0 else "unhealthy"
    return engine.run("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()


def test_readme_container_section_runs_as_written(
    engine: Engine,
    image: str,
    tmp_path: Path,
    make_simulator: Callable[..., Simulator],
    mosquitto: Broker,
) -> None:
    if wait_port("127.0.0.1", README_PORT, timeout=0.5):
        pytest.skip(f"port {README_PORT} is taken on this machine; the README's example serves there")
    section = readme_container_section()
    simulator = make_simulator(list(USERS))

    # The host's files, as the section prepares them: the config from its YAML block, the
    # password in a file of its own, private to uid 10001.
    host_dir = tmp_path / "srv"
    host_dir.mkdir()
    (config_text,) = fenced(section, "yaml")
    config = yaml.safe_load(config_text)
    assert config["cwa"]["password_file"] == "/run/secrets/cwa_password"
    assert config["http"]["listen"] == f"127.0.0.1:{README_PORT}"
    config["cwa"].update(url=simulator.url, username=ALICE.username, uri=ALICE.uri)
    config["watch"] = [BOB.uri]
    config["mqtt"]["url"] = mosquitto.url
    (host_dir / "config.yaml").write_text(yaml.safe_dump(config))
    (host_dir / "config.yaml").chmod(0o644)
    secret = host_dir / "cwa_password"
    secret.write_text(PASSWORD)
    secret.chmod(0o600)
    if os.geteuid() == 0:
        os.chown(secret, 10001, 10001)
    else:
        assert engine.run("unshare", "chown", "10001:10001", str(secret)).returncode == 0

    name = f"cwa2mqtt-test-{secrets.token_hex(4)}"
    started = engine.run(*_run_argv(engine, section, name, image, host_dir), timeout=120)
    assert started.returncode == 0, started.stderr
    try:
        healthy = eventually(lambda: _health(engine, name) == "healthy", timeout=120, interval=1.0)
        logs = engine.run("logs", name)
        assert healthy, logs.stdout[-3000:] + logs.stderr[-3000:]
        # The file's http.listen wins over the image's packaging default (0.0.0.0:8099): with
        # --network host the board stays on the host's loopback.
        assert _listening_addresses(README_PORT) == {"127.0.0.1"}
        assert engine.run("exec", name, "id", "-u").stdout.strip() == "10001"
        snapshot = retained_snapshot(mosquitto, "cwa2mqtt")
        assert snapshot.get("cwa2mqtt/bridge/state") == b"online", snapshot

        # No secret anywhere the engine shows: container and image metadata, the build history.
        for shown in (
            engine.run("inspect", name),
            engine.run("image", "inspect", image),
            engine.run("history", "--no-trunc", image),
        ):
            assert shown.returncode == 0, shown.stderr
            assert PASSWORD not in shown.stdout
            assert "CWA2MQTT_CWA__PASSWORD" not in shown.stdout

        stopped = engine.run("stop", name, timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        exit_code = engine.run("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        assert exit_code == "0", engine.run("logs", name).stderr[-3000:]
        final = retained_snapshot(mosquitto, "cwa2mqtt")
        assert final.get("cwa2mqtt/bridge/state") == b"offline", final
    finally:
        engine.run("rm", "-f", name, timeout=60)
