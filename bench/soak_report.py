"""The soak's report (bench/SOAK.md): verdicts, RSS at 5-minute steps, the trend of the tail.

The trend is the least-squares slope of RSS over the last 40 minutes of the run (over its last two
thirds when the run is shorter than an hour), with the slope's standard error from the residuals
as its noise: "flat" means the slope is within two standard errors of 0 or below 1 KiB/min.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.soak_model import Sample, SoakResult

STEP_S = 300.0  # RSS table granularity
TAIL_S = 40 * 60.0
FLAT_KIB_PER_MIN = 1.0  # below this a slope is flat whatever its noise (1.4 MiB a day)


def tail(samples: list[Sample]) -> tuple[list[Sample], str]:
    """The samples the trend is computed over, and how that span is named in the report."""
    if not samples:
        return [], "no samples"
    span = samples[-1].t - samples[0].t
    if span >= TAIL_S + 20 * 60:
        return [s for s in samples if s.t >= samples[-1].t - TAIL_S], "last 40 min"
    return samples[len(samples) // 3 :], f"last two thirds ({span * 2 / 3 / 60:.0f} min)"


def slope(samples: list[Sample]) -> tuple[float, float]:
    """(slope, standard error) of RSS in KiB/min; nan when too few samples."""
    if len(samples) < 3:
        return float("nan"), float("nan")
    ts = [(s.t - samples[0].t) / 60 for s in samples]
    ys = [float(s.rss_kb) for s in samples]
    fit = statistics.linear_regression(ts, ys)
    residuals = [y - (fit.intercept + fit.slope * t) for t, y in zip(ts, ys, strict=True)]
    mean_t = statistics.fmean(ts)
    spread = sum((t - mean_t) ** 2 for t in ts)
    se = math.sqrt(sum(r * r for r in residuals) / (len(ts) - 2) / spread) if spread else float("nan")
    return fit.slope, se


def is_flat(samples: list[Sample]) -> bool:
    b, se = slope(tail(samples)[0])
    return not math.isnan(b) and (b <= FLAT_KIB_PER_MIN or b <= 2 * se)


def steps(samples: list[Sample]) -> list[str]:
    """One table row per `STEP_S`: RSS, threads and fds at that moment."""
    if not samples:
        return []
    rows, t0, next_at = [], samples[0].t, samples[0].t
    for s in samples:
        if s.t >= next_at:
            rows.append(f"| {(s.t - t0) / 60:.0f} | {s.rss_kb / 1024:.1f} | {s.threads} | {s.fds} |")
            next_at += STEP_S
    last = samples[-1]
    rows.append(
        f"| {(last.t - t0) / 60:.1f} (end) | {last.rss_kb / 1024:.1f} | {last.threads} | {last.fds} |"
    )
    return rows


def _blame(result: SoakResult) -> str:
    """Lost changes counted by the fault injected last before each (what to look at first)."""
    if not result.lost:
        return ""
    counts: dict[str, int] = {}
    t0 = result.samples[0].t if result.samples else 0.0
    for change in result.lost:
        before = [name for at, name in result.faults if at <= change.at - t0]
        key = before[-1] if before else "before any fault"
        counts[key] = counts.get(key, 0) + 1
    return " (after: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")"


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


def report(result: SoakResult, minutes: float, seed: int, grew: list[str] | None = None) -> str:
    flat = result.flatness()
    quiet, every = result.quiet_latencies, result.all_latencies
    by_name: dict[str, int] = {}
    for _, name in result.faults:
        by_name[name] = by_name.get(name, 0) + 1
    excusable = sum(1 for c in result.changes if c.excusable)
    span, span_name = tail(result.samples)
    b, se = slope(span)
    lines = [
        "# Soak run",
        "",
        "`bench/soak.py`: the real `cwa2mqtt run` process against the CWA simulator (pollWaitTime 50 ms,",
        "sessionTimeout 20 s) behind the fault-injecting TCP proxy, and a private mosquitto, with 8 watched",
        "users + a marker user. One presence change every 0.1 s (a unique note each), a fault every 5 s",
        "alternating lossless (drop, 503, malformed, hostile, oversized, slow on the data channel; from the",
        "proxy, for 3 s each: trickle, stall, black hole on the data and on the command channel, reset on",
        "the command channel; `cwa.poll_timeout_s` and `cwa.timeout_s` 3 s) and disruptive (a mutated-body",
        "burst, killed sessions, expired tickets, server restart, throttling, and from the proxy a reset",
        "of every data-channel attempt for 3 s), one MQTT command per second (valid and invalid",
        "`self/set`, `health_check`). RSS, threads and fds of the process from /proc every second.",
        "See the module docstring for the verdict rules.",
        "",
        "Reproduce: `.venv/bin/python -m bench.soak --minutes 60` (needs `mosquitto`; writes this file).",
        "The short version runs in the test suite: `tests/test_soak.py` (~25 s).",
        "",
        f"One run: {minutes:g} min, seed {seed}, {time.strftime('%Y-%m-%d')}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| duration | {result.duration_s:.0f} s |",
        f"| presence changes made | {len(result.changes)} |",
        f"| … outside disruptive windows (must all arrive) | {len(result.changes) - excusable} |",
        f"| … lost (outside windows) | {len(result.lost)}{_blame(result)} |",
        f"| … inside windows, skipped by the recovery (allowed) | {result.excused_missing} of {excusable} |",
        f"| faults injected | {len(result.faults)}: "
        + ", ".join(f"{k} x{v}" for k, v in sorted(by_name.items()))
        + " |",
        f"| retained state converged at the end | {'yes' if result.converged else 'no'} |",
        f"| commands answered | {result.commands_answered} / {result.commands_sent} |",
        f"| invalid commands rejected | {result.bad_commands_rejected} / {result.bad_commands_sent} |",
        f"| last commanded own status held by CWA | {'yes' if result.own_status_ok else 'no'} |",
        f"| process alive / tracebacks / password in output | "
        f"{'yes' if result.process_alive else 'no'} / {result.tracebacks} / {result.secret_leaks} |",
        f"| RSS warm-up max → tail median | {flat['rss_kb'][0] / 1024:.1f} MiB → "
        f"{flat['rss_kb'][1] / 1024:.1f} MiB (flat: {'yes' if flat['rss_kb'][2] else 'no'}) |",
        f"| threads warm-up max → tail max | {flat['threads'][0]:.0f} → {flat['threads'][1]:.0f} "
        f"(flat: {'yes' if flat['threads'][2] else 'no'}) |",
        f"| open fds warm-up max → tail max | {flat['fds'][0]:.0f} → {flat['fds'][1]:.0f} "
        f"(flat: {'yes' if flat['fds'][2] else 'no'}) |",
        f"| RSS min / max over the run | {min((s.rss_kb for s in result.samples), default=0) / 1024:.1f} / "
        f"{max((s.rss_kb for s in result.samples), default=0) / 1024:.1f} MiB |",
        f"| RSS trend, {span_name} (least squares ± standard error) | {b:+.1f} ± {se:.1f} KiB/min "
        f"(goal: within noise of 0, i.e. ≤ 2 standard errors or ≤ {FLAT_KIB_PER_MIN:g} KiB/min: "
        f"{'met' if is_flat(result.samples) else 'not met'}) |",
        f"| latency, quiet changes (n={len(quiet)}), ms | p50 {_pct(quiet, 50) * 1000:.0f}, "
        f"p95 {_pct(quiet, 95) * 1000:.0f}, p99 {_pct(quiet, 99) * 1000:.0f}, "
        f"max {max(quiet, default=float('nan')) * 1000:.0f} |",
        f"| latency, every arrived change (n={len(every)}), ms | p50 {_pct(every, 50) * 1000:.0f}, "
        f"p95 {_pct(every, 95) * 1000:.0f}, p99 {_pct(every, 99) * 1000:.0f}, "
        f"max {max(every, default=float('nan')) * 1000:.0f} |",
        "",
        f"Verdict: {'PASS' if not result.problems() else 'FAIL: ' + '; '.join(result.problems())}",
        "",
        "RSS, threads and open fds every 5 minutes:",
        "",
        "| minute | RSS MiB | threads | fds |",
        "|---|---|---|---|",
        *steps(result.samples),
        "",
    ]
    if grew:
        lines += [
            "What grew (tracemalloc, first vs last snapshot of the traced run):",
            "",
            "```",
            *grew,
            "```",
            "",
        ]
    return "\n".join(lines)
