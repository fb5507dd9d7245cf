"""Switching discovery formats through a real broker, seen from Home Assistant's side.

The plans are published retained, in order, to Mosquitto; a subscriber on the discovery prefix
feeds a model of HA's discovery bookkeeping (tests/support/ha_model.py), and a fresh subscriber
reads what a restarted HA would find retained.
"""

from __future__ import annotations

from collections.abc import Callable

from bridge.mqtt.discovery import (
    Device,
    DiscoveryContext,
    Format,
    bridge_device,
    discovery_plan,
    messages,
    parse_format,
    user_device,
)
from tests.support.convergence import retained_snapshot
from tests.support.ha_model import HomeAssistantModel
from tests.support.mqtt import Broker, MqttProbe

ENTITIES = 4 + 8 + 6  # bridge with one light, self, bob


def contexts(base: str) -> dict[Format, DiscoveryContext]:
    return {
        fmt: DiscoveryContext(f"{base}-ha", base, "0.2.0", discovery_format=fmt)
        for fmt in ("component", "device")
    }


def devices(ctx: DiscoveryContext) -> list[Device]:
    return [
        bridge_device(ctx, lights=("desk",)),
        user_device(ctx, "self", "Alice", "sip:alice@example.org", is_self=True),
        user_device(ctx, "bob", "Bob", "sip:bob@example.org"),
    ]


class Bridge:
    """Publishes what a starting bridge would: read back the remembered format, then the plan."""

    def __init__(self, broker: Broker, probe: MqttProbe, ha: MqttProbe, model: HomeAssistantModel) -> None:
        self.broker, self.probe, self.ha, self.model = broker, probe, ha, model

    def start(self, ctx: DiscoveryContext) -> None:
        previous = parse_format(self.probe.retained(ctx.topics.bridge_discovery))
        self.ha.clear()
        for msg in discovery_plan(ctx, previous, devices(ctx)):
            self.probe.publish(msg.topic, msg.payload, retain=True)
        self.ha.wait_for(ctx.topics.bridge_discovery, lambda p: p == ctx.discovery_format.encode())
        for record in self.ha.records():
            if record.topic.startswith(ctx.prefix + "/"):
                self.model.receive(record.topic, record.payload)


def test_switching_formats_keeps_every_entity_and_leaves_nothing_behind(
    mosquitto: Broker, make_mqtt_probe: Callable[..., MqttProbe], base_topic: str
) -> None:
    ctx = contexts(base_topic)
    prefix = ctx["device"].prefix
    ha = make_mqtt_probe(mosquitto)
    ha.subscribe(f"{prefix}/#")
    ha.subscribe(ctx["device"].topics.bridge_discovery)
    model = HomeAssistantModel(prefix)
    bridge = Bridge(mosquitto, make_mqtt_probe(mosquitto), ha, model)

    bridge.start(ctx["component"])
    ids = set(model.entities())
    assert len(ids) == ENTITIES
    assert model.created == ENTITIES

    bridge.start(ctx["device"])
    assert set(model.entities()) == ids  # same entity ids, settings kept (never deleted)
    assert (model.created, model.deleted, model.conflicts) == (ENTITIES, 0, 0)
    device_topics = {m.topic: m.payload for d in devices(ctx["device"]) for m in messages(ctx["device"], d)}
    assert retained_snapshot(mosquitto, prefix) == device_topics  # the old topics are gone

    restarted = model.restarted()
    for topic, payload in retained_snapshot(mosquitto, prefix).items():
        restarted.receive(topic, payload)
    assert set(restarted.entities()) == ids
    assert restarted.created == 0

    bridge.start(ctx["device"])  # a restart in the same format changes nothing in HA
    assert (model.created, model.deleted, model.updated) == (ENTITIES, 0, 0)
    assert retained_snapshot(mosquitto, prefix) == device_topics

    bridge.start(ctx["component"])
    assert set(model.entities()) == ids
    assert (model.created, model.deleted) == (ENTITIES, 0)
    # Clearing a device topic offers HA an empty config for entities now found elsewhere: refused.
    assert model.conflicts == ENTITIES
    assert all(topic.split("/")[1] != "device" for topic in retained_snapshot(mosquitto, prefix))
    assert len(retained_snapshot(mosquitto, prefix)) == ENTITIES


def test_without_the_handshake_ha_would_lose_the_entities(base_topic: str) -> None:
    """Why the migrate messages exist: new payloads then clearing, alone, delete every entity."""
    ctx = contexts(base_topic)
    model = HomeAssistantModel(ctx["device"].prefix)
    for d in devices(ctx["component"]):
        for msg in messages(ctx["component"], d):
            model.receive(msg.topic, msg.payload)
    plan = discovery_plan(ctx["device"], "component", devices(ctx["device"]))
    for msg in plan:
        if msg.payload != b'{"migrate_discovery":true}' and msg.topic.startswith(model.prefix):
            model.receive(msg.topic, msg.payload)
    assert model.deleted == ENTITIES
