"""Deployment files: the systemd unit, the Dockerfile, .dockerignore, the image's install steps and
the README's instructions for them.

The Dockerfile is checked here for the properties users rely on, and its install steps
(scripts/docker-install.sh) are run for real into a fresh virtualenv; tests/test_container.py
builds and runs the image where a container engine works.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import bridge

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "cwa2mqtt.service"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
INSTALL_SCRIPT = ROOT / "scripts" / "docker-install.sh"
README = ROOT / "README.md"
VENV = "/opt/cwa2mqtt/venv"


def readme_section(title: str) -> str:
    """A README section by its heading (## or ###), up to the next heading of any level."""
    text = README.read_text()
    match = re.search(rf"^#{{2,3}} {re.escape(title)}\n(.*?)(?=^#{{2,3}} )", text, re.MULTILINE | re.DOTALL)
    assert match, f"README has no section {title!r}"
    return match.group(1)


# ---------------------------------------------------------------------------------------------
# systemd unit


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as section -> key -> values (keys like LoadCredential= may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"assignment outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return parse_unit(UNIT.read_text())["Service"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("ExecStart", f"{VENV}/bin/cwa2mqtt run -c /etc/cwa2mqtt/config.yaml"),
        ("WatchdogSec", "60"),
        ("Restart", "on-failure"),
        ("RestartSec", "5"),
        ("TimeoutStopSec", "10"),
        ("DynamicUser", "yes"),
        ("UMask", "0077"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallFilter", "@system-service"),
        ("SystemCallArchitectures", "native"),
        ("CapabilityBoundingSet", ""),
    ],
)
def test_unit_setting(service: dict[str, list[str]], key: str, value: str) -> None:
    assert service.get(key) == [value]


def test_unit_does_not_restart_on_bad_config_or_rejected_credentials(service: dict[str, list[str]]) -> None:
    # Exit 77/78: restarting would only repeat failing sign-ins.
    assert service["RestartPreventExitStatus"] == ["77 78"]


def test_unit_allows_only_inet_and_unix_sockets(service: dict[str, list[str]]) -> None:
    (families,) = service["RestrictAddressFamilies"]
    assert sorted(families.split()) == ["AF_INET", "AF_INET6", "AF_UNIX"]


def test_unit_needs_no_mqtt_password_file(service: dict[str, list[str]]) -> None:
    # systemd refuses to start a unit whose LoadCredential= file is missing (243/CREDENTIALS): a
    # broker without passwords must not need an mqtt_password file. The CWA password is always
    # needed; its name is the one the config loader looks for in $CREDENTIALS_DIRECTORY.
    assert service["LoadCredential"] == ["cwa_password:/etc/cwa2mqtt/cwa_password"]
    assert not any("PASSWORD" in env.upper() for env in service.get("Environment", []))


def readme_mqtt_password_drop_in() -> str:
    """The drop-in the README's systemd section writes for a broker with a password."""
    section = readme_section("systemd")
    match = re.search(r"printf '(\[Service\][^']*)' \\\n\s*> (\S+)", section)
    assert match, "the systemd section shows no mqtt_password drop-in"
    assert match.group(2) == "/etc/systemd/system/cwa2mqtt.service.d/mqtt-password.conf"
    return match.group(1).replace("\\n", "\n")


def test_readme_drop_in_hands_the_mqtt_password_over() -> None:
    drop_in = parse_unit(readme_mqtt_password_drop_in())
    assert drop_in == {"Service": {"LoadCredential": ["mqtt_password:/etc/cwa2mqtt/mqtt_password"]}}
    # The unit's own comment shows the same drop-in.
    comments = "\n".join(line.removeprefix("#") for line in UNIT.read_text().splitlines())
    assert "LoadCredential=mqtt_password:/etc/cwa2mqtt/mqtt_password" in comments


def test_one_virtualenv_path_in_the_readme_and_the_unit() -> None:
    install = readme_section("Install") + readme_section("systemd")
    assert f"python3 -m venv {VENV}\n" in install
    for text in (install, UNIT.read_text()):
        paths = set(re.findall(r"/opt/cwa2mqtt(?:/[\w.-]+)*", text))
        assert paths, "no virtualenv path"
        assert all(p == VENV or p.startswith(f"{VENV}/") for p in paths), paths


@pytest.mark.parametrize(
    "path",
    ["Dockerfile", ".dockerignore", "systemd/cwa2mqtt.service", "scripts/docker-install.sh", "LICENSE"],
)
def test_shipped_files_cite_no_team_documents(path: str) -> None:
    # Users get the README and docs/, never the team's working documents.
    text = (ROOT / path).read_text()
    assert not re.search(r"interface\.md|cwa-protocol\.md|ARCHITECTURE\.md|\.\./shared|§", text)


@pytest.mark.parametrize("title", ["Install", "systemd", "Container", "Development"])
def test_readme_install_sections_cite_no_team_documents(title: str) -> None:
    assert not re.search(
        r"interface\.md|cwa-protocol\.md|ARCHITECTURE\.md|\.\./shared|§", readme_section(title)
    )


def test_readme_installs_from_a_checkout_or_a_wheel_not_a_package_index() -> None:
    install = readme_section("Install")
    commands = re.findall(r"^(?:\S+/)?pip install (.+)$", install, re.MULTILINE)
    assert commands == ["'.[iwa]'", '"$(echo dist/cwa2mqtt-*.whl)[iwa]"'], commands
    assert "pip wheel --no-deps . -w dist" in install


def test_unit_is_enabled_for_boot_and_waits_for_the_network() -> None:
    unit = parse_unit(UNIT.read_text())
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert unit["Unit"]["After"] == ["network-online.target"]
    assert unit["Unit"]["Wants"] == ["network-online.target"]


def test_unit_documents_another_install_path() -> None:
    comments = "\n".join(line for line in UNIT.read_text().splitlines() if line.startswith("#"))
    assert "systemctl edit cwa2mqtt" in comments
    assert re.search(r"^#\s+ExecStart=\s*$", comments, re.MULTILINE), "a drop-in must reset ExecStart"
    assert re.search(r"^#\s+ExecStart=/usr/local/bin/cwa2mqtt run -c ", comments, re.MULTILINE)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("with_drop_in", [False, True], ids=["unit", "unit+mqtt-password-drop-in"])
def test_unit_passes_systemd_analyze_verify(tmp_path: Path, with_drop_in: bool) -> None:
    # verify insists that ExecStart's binary exists; point it at a stand-in so that check passes
    # and any other complaint about the unit shows up.
    stand_in = tmp_path / "cwa2mqtt"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    text = UNIT.read_text().replace(f"ExecStart={VENV}/bin/cwa2mqtt ", f"ExecStart={stand_in} ", 1)
    assert str(stand_in) in text
    copy = tmp_path / "cwa2mqtt.service"
    copy.write_text(text)
    if with_drop_in:
        drop_ins = tmp_path / "cwa2mqtt.service.d"
        drop_ins.mkdir()
        (drop_ins / "mqtt-password.conf").write_text(readme_mqtt_password_drop_in())
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    # Unknown or misspelt keys are only warnings (exit 0), so read the output too. Lines about
    # other units on this machine are not ours to judge.
    ours = [line for line in (result.stdout + result.stderr).splitlines() if "cwa2mqtt" in line]
    assert result.returncode == 0, result.stdout + result.stderr
    assert ours == []


# ---------------------------------------------------------------------------------------------
# Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str] | None:
        try:
            value = json.loads(self.args)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None

    def flags_and_rest(self) -> tuple[dict[str, str], str]:
        """`--from=builder --chown=x a b` -> ({"from": "builder", ...}, "a b")."""
        flags: dict[str, str] = {}
        rest = self.args
        while match := re.match(r"--([a-z-]+)=(\S+)\s+", rest):
            flags[match.group(1)] = match.group(2)
            rest = rest[match.end() :]
        return flags, rest


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """Instructions grouped by build stage, with comments dropped and continuations joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "dangling line continuation"
    stages: list[list[Instruction]] = []
    preamble: list[Instruction] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        (stages[-1] if stages else preamble).append(instruction)
    assert all(i.keyword == "ARG" for i in preamble)
    return stages


def key_values(args: str) -> dict[str, str]:
    """ENV/LABEL/ARG `k=v k2="v 2"` pairs."""
    return {
        m.group(1): m.group(2) if m.group(2) is not None else (m.group(3) or "")
        for m in re.finditer(r'([A-Za-z0-9_.\-]+)(?:="([^"]*)"|=(\S*))?', args)
    }


@pytest.fixture(scope="module")
def stages() -> list[list[Instruction]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def find(stage: list[Instruction], keyword: str) -> list[Instruction]:
    return [i for i in stage if i.keyword == keyword]


def test_image_is_multi_stage_on_python_slim(stages: list[list[Instruction]]) -> None:
    assert len(stages) == 2
    # One base for both stages, python:3.12-slim unless --build-arg PYTHON_IMAGE names a stand-in.
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.12-slim$", DOCKERFILE.read_text(), re.MULTILINE)
    assert stages[0][0].args == "${PYTHON_IMAGE} AS builder"
    assert stages[1][0].args == "${PYTHON_IMAGE}"
    copies = [i.flags_and_rest() for i in find(stages[1], "COPY")]
    assert ({"from": "builder"}, "/install /usr/local") in copies


def test_dependencies_are_installed_before_the_code_is_copied(stages: list[list[Instruction]]) -> None:
    # A code change must not invalidate the dependency layer: the deps step may only see
    # pyproject.toml (and the script), and the code arrives after it.
    builder = stages[0]
    steps = [(i.keyword, i.args) for i in builder if i.keyword in {"COPY", "RUN"}]
    runs = [n for n, (kw, _) in enumerate(steps) if kw == "RUN"]
    assert len(runs) == 2, steps
    deps, app = (steps[n][1] for n in runs)
    assert "scripts/docker-install.sh deps /src /wheels" in deps
    assert "scripts/docker-install.sh app /src /wheels /install" in app
    copied_before_deps = [args for kw, args in steps[: runs[0]] if kw == "COPY"]
    assert copied_before_deps == ["scripts/docker-install.sh scripts/", "pyproject.toml ./"]
    copied_after = [args for kw, args in steps[runs[0] : runs[1]] if kw == "COPY"]
    assert "bridge/ bridge/" in copied_after


def test_no_compiler_is_installed(stages: list[list[Instruction]]) -> None:
    # Every dependency has a wheel; apt-get and gcc would only slow the build down.
    for stage in stages:
        for run in find(stage, "RUN"):
            assert not re.search(r"apt-get|gcc|build-essential", run.args), run.args


def test_image_runs_as_non_root_user_10001(stages: list[list[Instruction]]) -> None:
    final = stages[1]
    users = find(final, "USER")
    assert [u.args for u in users] == ["10001:10001"]
    # Everything after USER runs unprivileged; nothing may switch back or install after it.
    after = final[final.index(users[0]) :]
    assert not find(after, "RUN")


def test_sigterm_reaches_python_through_an_exec_form_entrypoint(stages: list[list[Instruction]]) -> None:
    final = stages[1]
    (entrypoint,) = find(final, "ENTRYPOINT")
    (cmd,) = find(final, "CMD")
    assert entrypoint.exec_form() == ["cwa2mqtt"]
    assert cmd.exec_form() == ["run", "-c", "/config/config.yaml"]


def test_healthcheck_probes_the_bridge(stages: list[list[Instruction]]) -> None:
    (health,) = find(stages[1], "HEALTHCHECK")
    _, rest = health.flags_and_rest()
    assert rest.startswith("CMD ")
    assert Instruction("CMD", rest.removeprefix("CMD ")).exec_form() == ["cwa2mqtt", "health"]


def final_env(stages: list[list[Instruction]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in find(stages[1], "ENV"):
        env.update(key_values(instruction.args))
    return env


def test_health_endpoint_listens_on_the_exposed_port(stages: list[list[Instruction]], tmp_path: Path) -> None:
    final = stages[1]
    env = final_env(stages)
    assert [e.args for e in find(final, "EXPOSE")] == ["8099"]
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["CWA2MQTT_CONFIG"] == "/config/config.yaml"
    # The listen address is a packaging default, written by a RUN step of the image: run that
    # step's printf here and read what it writes.
    defaults = env["CWA2MQTT_DEFAULTS_FILE"]
    (writer,) = [r.args for r in find(final, "RUN") if defaults in r.args]
    match = re.search(rf"(printf '[^']*') > {re.escape(defaults)}", writer)
    assert match, writer
    written = subprocess.run(
        ["sh", "-c", match.group(1)], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert yaml.safe_load(written) == {"http": {"listen": "0.0.0.0:8099"}}


def test_image_sets_no_setting_that_would_override_the_users_file(stages: list[list[Instruction]]) -> None:
    # CWA2MQTT_<SECTION>__<KEY> and CWA2MQTT_<KEY> variables win over the config file; the image may
    # only set the config path and the packaging defaults file, which sits below the user's file.
    settings = {k for k in final_env(stages) if k.startswith("CWA2MQTT_")}
    assert settings == {"CWA2MQTT_CONFIG", "CWA2MQTT_DEFAULTS_FILE"}


def test_image_docs_say_to_set_a_token_beyond_loopback() -> None:
    comments = "\n".join(line for line in DOCKERFILE.read_text().splitlines() if line.startswith("#"))
    assert "http.token" in " ".join(comments.split())
    assert "http.token" in readme_section("Container")


def test_image_labels(stages: list[list[Instruction]]) -> None:
    final = stages[1]
    labels: dict[str, str] = {}
    for instruction in find(final, "LABEL"):
        labels.update(key_values(instruction.args))
    args: dict[str, str] = {}
    for instruction in find(final, "ARG"):
        args.update(key_values(instruction.args))
    assert labels["org.opencontainers.image.title"] == "cwa2mqtt"
    assert labels["org.opencontainers.image.description"]
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert labels["org.opencontainers.image.licenses"] == "MIT"
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    # The default version must follow the package, or images get mislabelled after a release.
    assert args["VERSION"] == bridge.__version__


def test_no_secrets_baked_into_the_image(stages: list[list[Instruction]]) -> None:
    secret_words = re.compile(r"PASSWORD|PASSWD|TICKET|SECRET|TOKEN", re.IGNORECASE)
    for stage in stages:
        for instruction in stage:
            if instruction.keyword in {"ENV", "ARG", "LABEL"}:
                for key in key_values(instruction.args):
                    assert not secret_words.search(key), f"{instruction.keyword} {key}"
            if instruction.keyword == "COPY":
                assert not secret_words.search(instruction.args)


def test_readme_container_run_mounts_the_secret_and_passes_no_password() -> None:
    section = readme_section("Container")
    runs = re.findall(r"^docker run .*?(?<!\\)$", section.replace("\\\n", " "), re.MULTILINE)
    assert runs, "no docker run example"
    for run in runs:
        assert not re.search(r"(-e|--env)\s+\S*PASSWORD", run, re.IGNORECASE), run
    (main,) = [r for r in runs if "-v " in r]
    assert "/srv/cwa2mqtt/cwa_password:/run/secrets/cwa_password:ro" in main
    assert "/srv/cwa2mqtt/config.yaml:/config/config.yaml:ro" in main
    (config,) = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert yaml.safe_load(config)["cwa"]["password_file"] == "/run/secrets/cwa_password"
    assert "chown 10001:10001 /srv/cwa2mqtt/cwa_password" in section


@pytest.mark.parametrize(
    "needle",
    [
        "podman build --format docker -t cwa2mqtt .",  # podman's OCI format drops the HEALTHCHECK
        "docker build -t cwa2mqtt .",
        "`localhost` is the container itself",
        "--network host",
        "uid 10001",
        "-p 127.0.0.1:8099:8099",
        "podman unshare chown",
        "so `-p` cannot reach them",
    ],
)
def test_readme_container_section_warns_where_users_trip(needle: str) -> None:
    assert needle in " ".join(readme_section("Container").split())


# ---------------------------------------------------------------------------------------------
# .dockerignore and the build context


def dockerignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def is_ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes; a matched dir drops its contents."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern.removeprefix("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        ".pytest_cache/v/cache/lastfailed",
        ".mypy_cache/3.11/bridge.json",
        ".ruff_cache/CACHEDIR.TAG",
        ".hypothesis/examples/x",
        "bridge/__pycache__/presence.cpython-311.pyc",
        "cwa2mqtt.egg-info/PKG-INFO",
        "tests/test_sdnotify.py",
        "config.yaml",
    ],
)
def test_dockerignore_keeps_local_clutter_out_of_the_build(path: str) -> None:
    assert is_ignored(path, dockerignore_patterns())


def builder_copies(stages: list[list[Instruction]]) -> list[tuple[list[str], str]]:
    copies = []
    for instruction in find(stages[0], "COPY"):
        flags, rest = instruction.flags_and_rest()
        assert "from" not in flags
        *sources, dest = rest.split()
        copies.append((sources, dest))
    return copies


def test_dockerignore_keeps_everything_the_build_copies(stages: list[list[Instruction]]) -> None:
    patterns = dockerignore_patterns()
    for sources, _ in builder_copies(stages):
        for source in sources:
            assert not is_ignored(source.rstrip("/"), patterns), source
    assert not is_ignored("bridge/presence.py", patterns)


def make_build_context(stages: list[list[Instruction]], target: Path) -> None:
    """What the builder stage's COPY lines put into WORKDIR /src, with .dockerignore applied."""
    patterns = dockerignore_patterns()
    (workdir,) = find(stages[0], "WORKDIR")
    assert workdir.args == "/src"
    for sources, dest in builder_copies(stages):
        for source in sources:
            origin = ROOT / source
            if not origin.exists():
                pytest.skip(f"{source} is not in the tree yet (the Dockerfile COPYs it)")
            files = [origin] if origin.is_file() else sorted(p for p in origin.rglob("*") if p.is_file())
            for file in files:
                rel = file.relative_to(ROOT).as_posix()
                if is_ignored(rel, patterns):
                    continue
                # `COPY dir/ dest/` copies the directory's contents; `COPY file dir/` keeps the name.
                inner = file.relative_to(origin).as_posix() if origin.is_dir() else file.name
                destination = target / dest / inner
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, destination)


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_install_script_gives_a_working_cwa2mqtt_command(
    stages: list[list[Instruction]], tmp_path: Path
) -> None:
    # The same steps the image build runs, from the same build context, into a fresh venv
    # (slow-ish: resolves and installs every dependency; pip's cache makes reruns quicker).
    if not (ROOT / "bridge" / "cli.py").exists():
        pytest.skip("bridge/cli.py (the cwa2mqtt entry point) is not written yet")
    context = tmp_path / "src"
    make_build_context(stages, context)
    assert (context / "pyproject.toml").is_file()
    assert not list(context.rglob("__pycache__"))

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PYTHON"] = str(venv / "bin" / "python")
    script = str(context / "scripts" / "docker-install.sh")
    wheels = tmp_path / "wheels"
    for step in (["deps", str(context), str(wheels)], ["app", str(context), str(wheels), str(venv)]):
        result = subprocess.run(
            ["sh", script, *step], env=env, capture_output=True, text=True, timeout=540, check=False
        )
        assert result.returncode == 0, step[0] + result.stdout[-3000:] + result.stderr[-3000:]

    version = subprocess.run(
        [str(venv / "bin" / "cwa2mqtt"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert version.returncode == 0, version.stderr
    assert bridge.__version__ in version.stdout + version.stderr
    # Zone data comes with the install, not from the base image (slim bases lack legacy names).
    zone = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import zoneinfo; print(zoneinfo.ZoneInfo('US/Eastern'))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**env, "PYTHONTZPATH": ""},
    )
    assert zone.returncode == 0, zone.stderr
    assert zone.stdout.strip() == "US/Eastern"
