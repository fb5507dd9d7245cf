"""The distribution a user installs: sdist and wheel built from a checkout, their metadata, and
what the installed package needs at run time (zone data for light schedules).

The README says to install from a checkout or a built wheel; these tests build both the way it
and CI do (`python -m build`, then `twine check`) and read what is inside.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import bridge

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in this environment (it comes with the dev extra)")
    return str(path)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdist + wheel, built from a copy of the tree (the build writes egg-info next to its sources)."""
    work = tmp_path_factory.mktemp("pkg")
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "bridge", source / "bridge", ignore=shutil.ignore_patterns("__pycache__"))
    out = work / "dist"
    # --no-isolation: the build backend comes from the dev extra, so no download during the test.
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0 and "No module named build" in result.stderr:
        pytest.skip("the `build` package is not installed (it comes with the dev extra)")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def _wheel(dist: Path) -> Path:
    (wheel,) = dist.glob("cwa2mqtt-*.whl")
    return wheel


def _sdist(dist: Path) -> Path:
    (sdist,) = dist.glob("cwa2mqtt-*.tar.gz")
    return sdist


@pytest.mark.timeout(300)
def test_sdist_and_wheel_pass_twine_check(dist: Path) -> None:
    files = [str(_sdist(dist)), str(_wheel(dist))]
    result = subprocess.run(
        [_tool("twine"), "check", "--strict", *files],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_wheel_metadata_names_the_project_version_and_license(dist: Path) -> None:
    wheel = _wheel(dist)
    assert wheel.name == f"cwa2mqtt-{bridge.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        info = f"cwa2mqtt-{bridge.__version__}.dist-info"
        metadata = Parser().parsestr(archive.read(f"{info}/METADATA").decode())
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        names = archive.namelist()
    assert metadata["Name"] == "cwa2mqtt"
    assert metadata["Version"] == bridge.__version__
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert f"{info}/licenses/LICENSE" in names
    requirements = metadata.get_all("Requires-Dist") or []
    assert any(r.startswith("tzdata") for r in requirements), requirements
    assert "[console_scripts]\ncwa2mqtt = bridge.cli:main" in entry_points


def test_wheel_carries_the_board_and_nothing_but_the_package(dist: Path) -> None:
    with zipfile.ZipFile(_wheel(dist)) as archive:
        names = archive.namelist()
    assert "bridge/web/board.html" in names
    assert "bridge/py.typed" in names
    assert "bridge/cli.py" in names
    top_levels = {name.split("/", 1)[0] for name in names}
    assert top_levels == {"bridge", f"cwa2mqtt-{bridge.__version__}.dist-info"}, top_levels


def test_sdist_carries_the_license_readme_and_board(dist: Path) -> None:
    with tarfile.open(_sdist(dist)) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "README.md", "pyproject.toml", "bridge/web/board.html"} <= names


def test_license_is_mit_for_the_contributors() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 cwa2mqtt contributors" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text


# ---------------------------------------------------------------------------------------------
# Zone data: a light schedule's `timezone` must work on a base without (legacy) zone files.


def _without_system_zones() -> dict[str, str]:
    """An environment where zoneinfo finds no system zone files, as on a slim or Debian 13 base
    (whose tzdata no longer carries legacy names such as US/Eastern): only the tzdata package."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CWA2MQTT_")}
    env["PYTHONTZPATH"] = ""
    return env


def test_legacy_zone_names_resolve_without_system_zone_files() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import zoneinfo; print(zoneinfo.ZoneInfo('US/Eastern').key, zoneinfo.TZPATH)",
        ],
        env=_without_system_zones(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "US/Eastern ()"


def test_light_schedule_in_a_legacy_zone_passes_check_config(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "cwa:\n"
        "  url: https://cwa.example.org\n"
        "  username: EXAMPLE\\alice\n"
        "  password: not-a-real-one\n"
        "  uri: sip:alice@example.org\n"
        "watch: [sip:bob@example.org]\n"
        "lights:\n"
        "  - name: door\n"
        "    watch: [bob]\n"
        "    preset: wled\n"
        "    device: door\n"
        "    schedule: {days: mon-fri, from: '08:00', to: '18:00', timezone: US/Eastern}\n"
    )
    result = subprocess.run(
        [str(BIN / "cwa2mqtt"), "check-config", "-c", str(config)],
        env=_without_system_zones(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "US/Eastern" in result.stdout
