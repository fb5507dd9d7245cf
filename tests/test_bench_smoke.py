"""Benchmarks that still measure: every bench module, in its shortest mode, through `bench.run`.

Benchmarks are not pass/fail on their targets (a loaded machine misses some), but a benchmark that
crashes, or whose figure comes out ``n/a`` because a hook stopped seeing the bridge (0.2's
`bench.latency` patched private names that had been renamed, so every sample waited 2 s for a
share that never came), is broken. The real bridge, simulator and mosquitto, each module in its
own process, as ``make bench`` runs them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.run import PIECES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]  # the run itself is bounded by TIMEOUT_S

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 240  # ~30 s on 2 idle cores; generous for a loaded machine
MISSING = re.compile(r"\bn/a\b|\bnan\b|\binf\b", re.IGNORECASE)


def _rows(text: str) -> list[list[str]]:
    """The results table's data rows, split into cells (escaped pipes kept inside cells)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| figure |"):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def test_every_bench_module_runs_and_measures_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, f"a bench module broke:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    rows = _rows(out.read_text())
    assert rows, "no result rows"
    for figure, value, baseline, ratio, target, met in rows:
        assert not MISSING.search(" ".join((value, baseline, ratio))), f"not measured: {figure}: {value}"
        assert target not in {"", "none (informational)"}, f"no goal: {figure}"
        assert met in {"yes", "no"}, f"no verdict: {figure}: {met!r}"
    figures = " ".join(r[0] for r in rows)
    for piece in PIECES:
        assert piece in figures or piece == "profile", f"bench.{piece} reported nothing"
    assert "service: cost of one presence change" in figures  # bench.profile's row
    # Both discovery formats are measured, the start and the batch each against bare paho.
    for fmt in ("component", "device"):
        assert f"{fmt} discovery: sync" in figures
        assert re.search(rf"{fmt} discovery: \d+ changes in one CWA answer", figures)
