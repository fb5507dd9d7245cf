"""One log line per presence change: what an operator reads to see the bridge working.

At info for a change, at debug for the first report of each user (a 10,000-user start would
otherwise log 10,000 lines). The logger is ``bridge.changes``: set it to warning to turn the lines
down (README, "Logs").
"""

from __future__ import annotations

import logging

from bridge.presence import Presence
from bridge.store import Entry

changes = logging.getLogger("bridge.changes")


def log_change(entry: Entry, before: Presence | None) -> bool:
    """One line per presence change at info (the first report of each user at debug): what an
    operator reads to see the bridge working (set the ``bridge.changes`` logger to warning to turn
    it down). True when a known presence changed."""
    after = entry.presence
    if after is None or (before is not None and not after.differs_from(before)):
        return False
    level = logging.DEBUG if before is None else logging.INFO
    if changes.isEnabledFor(level):
        status, activity = after.status.value, after.activity
        changes.log(level, "presence.changed id=%s status=%s activity=%s", entry.id, status, activity)
    return before is not None
