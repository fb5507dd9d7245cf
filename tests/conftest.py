"""Shared pytest setup: every module in tests/support/ is loaded as a fixture plugin."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, settings

pytest_plugins = [
    f"tests.support.{path.stem}"
    for path in sorted((Path(__file__).parent / "support").glob("*.py"))
    if not path.stem.startswith("_")
]

# Shared, noisy machines: never fail a property test on wall-clock time.
settings.register_profile(
    "cwa2mqtt", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("cwa2mqtt")
