"""The pure modules stay pure: no network, threads, clocks or event loops (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

FORBIDDEN = {"httpx", "paho", "socket", "threading", "time", "asyncio"}
PURE = [
    "bridge.presence",
    "bridge.cwa.codec",
    "bridge.cwa.messages",
    "bridge.cwa.events",
    "bridge.cwa.codec_categories",
    "bridge.cwa.codec_category_writer",
    "bridge.cwa.codec_errors",
    "bridge.cwa.xmlsafe",
    "bridge.cwa.session",
    "bridge.cwa.watching",
    "bridge.cwa.resync",
    "bridge.cwa.protocol",
    "bridge.cwa.ownstate",
    "bridge.cwa.dispatch",
    "bridge.cwa.notices",
    "bridge.mqtt.topics",
    "bridge.mqtt.discovery",
    "bridge.mqtt.settings",
    "bridge.mqtt.outbox",
    "bridge.commands",
    "bridge.store",
    "bridge.lights.model",
    "bridge.lights.spec",
    "bridge.lights.schedule",
    "bridge.lights.presets",
    "bridge.lights.controller",
    "bridge.service.projection",
    "bridge.service.gate",
]


def _imports(module: str) -> set[str]:
    """Every module ``module`` imports, following ``bridge.*`` imports recursively."""
    seen: set[str] = set()
    found: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
        package = name if spec.origin.endswith("__init__.py") else name.rpartition(".")[0]
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{parent}.{base}" if base else parent
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                found.add(target)
                if target.startswith("bridge.") and _exists(target):
                    todo.append(target)
    return found


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ModuleNotFoundError, ValueError):  # `from pkg.mod import name`: name is not a module
        return False


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io(module: str) -> None:
    # A renamed pure module must fail here (and have this list updated), not be skipped.
    assert _exists(module), f"{module} does not exist: update PURE"
    bad = sorted(name for name in _imports(module) if name.split(".")[0] in FORBIDDEN)
    assert not bad, f"{module} imports {bad}"


def test_the_checker_notices_a_forbidden_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "impure_probe_h1.py").write_text("from time import monotonic\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "time" in _imports("impure_probe_h1")
