"""A model of Home Assistant's MQTT discovery bookkeeping, to watch a migration from HA's side.

It follows the rules of HA's ``mqtt/discovery.py`` and ``mqtt/entity.py`` (read in 2024.11.3 and
2026.2.3); it is a test aid, not HA:
- an entity is keyed by (platform, "<node> <object>") from its topic; in a device payload the
  node is the device's object id and the object the component key;
- an update for a known key from a different topic is refused ("conflicting MQTT discovery
  message");
- ``{"migrate_discovery": true}`` unloads the entity (on a device topic: every entity HA has for
  that node) and keeps its registry entry; an empty payload removes it and deletes the entry;
- a new config whose ``unique_id`` is in the registry gets the registered entity id back.

Feed it messages in the order a subscriber on ``<prefix>/#`` receives them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

MIGRATE = {"migrate_discovery": True}


@dataclass
class HomeAssistantModel:
    prefix: str
    registry: dict[tuple[str, str], str] = field(default_factory=dict)  # (platform, unique_id) -> entity id
    discovered: dict[tuple[str, str], tuple[str, dict[str, object]]] = field(default_factory=dict)
    created: int = 0
    deleted: int = 0
    updated: int = 0
    conflicts: int = 0

    def restarted(self) -> HomeAssistantModel:
        """HA after a restart: the registry persists, nothing is discovered yet."""
        return HomeAssistantModel(self.prefix, registry=dict(self.registry))

    def receive(self, topic: str, payload: bytes) -> None:
        levels = topic.removeprefix(self.prefix + "/").split("/")
        body = json.loads(payload) if payload else None
        if levels[0] == "device":
            node = levels[1]
            if body is None or body == MIGRATE:
                for key in [k for k in self.discovered if k[1].split(" ")[0] == node]:
                    self._process(key, topic, None, migrate=body is not None)
                return
            for name, config in body["components"].items():
                entity = {k: v for k, v in config.items() if k != "platform"}
                entity |= {"device": body["device"], "origin": body["origin"]}
                self._process((config["platform"], f"{node} {name}"), topic, entity, migrate=False)
            return
        component, node, obj = levels[0], levels[1], levels[2]
        migrate = body == MIGRATE
        self._process((component, f"{node} {obj}"), topic, None if migrate else body, migrate=migrate)

    def _process(
        self, key: tuple[str, str], topic: str, config: dict[str, object] | None, migrate: bool
    ) -> None:
        known = self.discovered.get(key)
        if known is not None:
            if known[0] != topic:
                self.conflicts += 1
            elif config is None:
                del self.discovered[key]
                if not migrate:
                    unique_id = str(known[1]["unique_id"])
                    self.registry.pop((key[0], unique_id), None)
                    self.deleted += 1
            elif config != known[1]:
                self.discovered[key] = (topic, config)
                self.updated += 1
            return
        if config is None:
            return
        registry_key = (key[0], str(config["unique_id"]))
        if registry_key not in self.registry:
            self.registry[registry_key] = str(config["default_entity_id"])
            self.created += 1
        self.discovered[key] = (topic, config)

    def entities(self) -> dict[str, dict[str, object]]:
        """Entity id -> config of every entity HA has loaded now."""
        return {self.registry[(k[0], str(c["unique_id"]))]: c for k, (_t, c) in self.discovered.items()}
