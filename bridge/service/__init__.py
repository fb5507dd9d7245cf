"""The service: the only package that knows both the CWA side and the MQTT side.

- `loop`: the loop thread and the store it owns (`Service`);
- `projection`: pure, an entry or the bridge -> retained messages;
- `retained`: publish-on-change memory, replay, clears;
- `inbox` and `requests`: MQTT commands and requests, the bounded command worker;
- `gate`: the start gate; `status`: snapshots, health, board rows; `ports`: what it needs.
"""

from bridge.service.loop import Service
from bridge.service.ports import ServiceOptions
from bridge.service.status import Snapshot
from bridge.store import SELF_ID, WatchSpec

__all__ = ["SELF_ID", "Service", "ServiceOptions", "Snapshot", "WatchSpec"]
