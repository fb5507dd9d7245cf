"""``cwa2mqtt`` under tracemalloc, for finding what grows in a long run (bench/soak.py --tracemalloc).

    python -m bench.traced DIR EVERY_S run -c config.yaml

Starts tracemalloc (10 frames), then runs the bridge's own CLI with the remaining arguments; a
daemon thread writes a snapshot to ``DIR/snap-NNNN.tm`` every ``EVERY_S`` seconds (at most
`MAX_SNAPSHOTS`, then the oldest but the first is replaced, so a long run cannot fill the disk).
`diff` compares two of them by traceback: what the soak report lists as "what grew".
tracemalloc itself costs memory per live block, so RSS of a traced run is not the figure to
report: the soak's RSS figures come from an untraced run.
"""

from __future__ import annotations

import gc
import sys
import threading
import tracemalloc
from pathlib import Path

FRAMES = 10
MAX_SNAPSHOTS = 40


def _snapshots(directory: Path, every_s: float, stop: threading.Event) -> None:
    n = 0
    while not stop.wait(every_s):
        n += 1
        gc.collect()
        snap = tracemalloc.take_snapshot().filter_traces(
            (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>"))
        )
        target = directory / f"snap-{n:04d}.tm"
        snap.dump(str(target))
        old = sorted(directory.glob("snap-*.tm"))
        if len(old) > MAX_SNAPSHOTS:
            old[1].unlink()  # keep the first (the baseline) and the newest


def diff(first: Path, last: Path, top: int = 12) -> list[str]:
    """The ``top`` allocation sites (by their innermost frames in the bridge, paho or httpx) that
    grew the most between two snapshots, as ``+KiB (+blocks) file:line <- caller ...`` lines."""
    a = tracemalloc.Snapshot.load(str(first))
    b = tracemalloc.Snapshot.load(str(last))
    stats = b.compare_to(a, "traceback")
    lines = []
    for stat in sorted(stats, key=lambda s: s.size_diff, reverse=True)[:top]:
        frames = [f"{Path(f.filename).name}:{f.lineno}" for f in stat.traceback[:4]]
        lines.append(f"{stat.size_diff / 1024:+.1f} KiB ({stat.count_diff:+d} blocks) " + " <- ".join(frames))
    total = sum(s.size_diff for s in stats)
    lines.append(f"total traced: {total / 1024:+.1f} KiB")
    return lines


def main() -> int:
    directory, every_s, *argv = sys.argv[1:]
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(FRAMES)
    stop = threading.Event()
    threading.Thread(
        target=_snapshots, args=(path, float(every_s), stop), name="bench-tracemalloc", daemon=True
    ).start()
    from bridge.cli import main as bridge_main  # imported after start: its allocations are traced

    try:
        return bridge_main(argv)
    finally:
        stop.set()


if __name__ == "__main__":
    raise SystemExit(main())
